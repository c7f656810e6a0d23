"""clibfiqa: prompts, score rule and strict loading of CLIP-layout checkpoints.

The released CLIB-FIQA_R50.pth and OpenAI's RN50.pt are not on this machine: the tests save small
random CLIP networks of the same family (ModifiedResNet image tower, text transformer, OpenAI key names
and the extra RN50.pt entries) in both files' layouts, then check loading, round trip and the score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("open_clip")

import torch  # noqa: E402
from fiqa_bench.methods.clibfiqa import distribution_to_score, prompts  # noqa: E402

import fiqa_bench  # noqa: E402
from fiqa_bench.errors import CheckpointError, FiqaError  # noqa: E402


def _tiny_clip(seed: int) -> torch.nn.Module:
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=8, image_size=224, patch_size=None)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=64, heads=1, layers=1)
    model = CLIP(32, vision_cfg=vision, text_cfg=text, quick_gelu=True)
    with torch.no_grad():
        for p in model.parameters():  # spread the logits so the softmax is far from uniform
            p.add_(torch.randn_like(p) * 0.05)
        model.logit_scale.fill_(float(np.log(100.0)))
    return model.eval()


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clib")
    rn50 = _tiny_clip(0).state_dict()
    rn50.update(
        {
            "input_resolution": torch.tensor(224),
            "context_length": torch.tensor(77),
            "vocab_size": torch.tensor(49408),
        }
    )
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in rn50.items()}, d / "RN50.pt")
    clib = {f"module.{k}": v for k, v in _tiny_clip(1).state_dict().items()}  # DataParallel save
    torch.save(clib, d / "CLIB-FIQA_R50.pth")
    return {"dir": d, "clib": d / "CLIB-FIQA_R50.pth", "rn50": d / "RN50.pt"}


@pytest.fixture(scope="module")
def method(clip_files):
    return fiqa_bench.get_method("clibfiqa", weights_dir=clip_files["dir"], device="cpu")


def test_prompts_in_authors_order():
    p = prompts()
    assert len(p) == 360 == len(set(p))
    assert (
        p[0]
        == "a photo of a hazy, obstructed, and profile face with exaggerated expression under extreme lighting, which is of bad quality"
    )
    assert p[4].endswith("of perfect quality") and p[5].endswith("normal lighting, which is of bad quality")
    assert (
        p[-1]
        == "a photo of a clear, unobstructed, and frontal face with typical expression under normal lighting, which is of perfect quality"
    )


def test_score_rule_hand_computed():
    one_hot = np.zeros((3, 360))
    one_hot[0, 4] = 1.0  # hazy ... perfect
    one_hot[1, 357] = 1.0  # clear ... fair (357 % 5 == 2)
    one_hot[2] = 1.0 / 360
    np.testing.assert_allclose(distribution_to_score(one_hot), [0.9, 0.5, 0.5])


def test_every_tensor_from_the_clib_file(method, clip_files):
    clib = torch.load(clip_files["clib"], weights_only=True)
    got = method.model.state_dict()
    assert set(got) == {k.removeprefix("module.") for k in clib}
    for k, v in clib.items():
        mine = got[k.removeprefix("module.")]
        torch.testing.assert_close(mine, v.to(mine.dtype), rtol=0, atol=0)


def test_round_trip_batch_single_finite(method, clip_files, aligned_lfw_sample):
    faces = aligned_lfw_sample["images"][:6]
    q = method.score(faces)
    assert q.shape == (6,) and np.isfinite(q).all() and ((q >= 0.1 - 1e-9) & (q <= 0.9 + 1e-9)).all()
    single = np.concatenate([method.score(f[None]) for f in faces])
    np.testing.assert_allclose(q, single, rtol=1e-6, atol=1e-9)
    again = fiqa_bench.get_method(
        "clibfiqa", weights=clip_files["clib"], clip_weights=str(clip_files["rn50"]), device="cpu"
    )
    np.testing.assert_array_equal(again.score(faces), q)
    p = method.probabilities(faces)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-9)
    assert np.ptp(q) > 0  # the tiny random net does tell the faces apart


def test_input_conversion(method):
    img = np.full((1, 112, 112, 3), 128, np.uint8)
    x = method.preprocess(img)
    assert tuple(x.shape) == (1, 3, 224, 224)
    expected = (128 / 255.0 - np.array([0.48145466, 0.4578275, 0.40821073])) / np.array(
        [0.26862954, 0.26130258, 0.27577711]
    )
    np.testing.assert_allclose(x[0, :, 100, 100].numpy(), expected, rtol=1e-5)


def test_bad_files_one_line(clip_files, tmp_path):
    clib = torch.load(clip_files["clib"], weights_only=True)
    broken = dict(clib)
    broken.pop("module.visual.conv1.weight")
    broken["module.extra_head.weight"] = torch.zeros(2)
    broken["module.text_projection"] = torch.zeros(64, 16)
    torch.save(broken, tmp_path / "CLIB-FIQA_R50.pth")
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method(
            "clibfiqa",
            weights=tmp_path / "CLIB-FIQA_R50.pth",
            clip_weights=str(clip_files["rn50"]),
            device="cpu",
        )
    msg = str(e.value)
    assert "\n" not in msg and "1 missing: visual.conv1.weight" in msg and "extra_head.weight" in msg
    assert "text_projection (64, 16) vs (64, 32)" in msg
    cut = tmp_path / "cut.pth"
    cut.write_bytes(clip_files["clib"].read_bytes()[:5000])
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method("clibfiqa", weights=cut, clip_weights=str(clip_files["rn50"]), device="cpu")
    assert str(cut) in str(e.value) and "\n" not in str(e.value)
    junk = tmp_path / "RN50.pt"
    junk.write_bytes(b"\0" * 1000)
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method("clibfiqa", weights=clip_files["clib"], clip_weights=str(junk), device="cpu")
    assert str(junk) in str(e.value) and "\n" not in str(e.value)
    not_clip = tmp_path / "not_clip.pt"
    torch.save({"conv.weight": torch.zeros(3, 3)}, not_clip)
    with pytest.raises(CheckpointError, match="not an OpenAI CLIP"):
        fiqa_bench.get_method(
            "clibfiqa", weights=clip_files["clib"], clip_weights=str(not_clip), device="cpu"
        )
    with pytest.raises(FiqaError, match="RN50.pt"):
        fiqa_bench.get_method(
            "clibfiqa", weights=clip_files["clib"], weights_dir=tmp_path / "none", device="cpu"
        )
