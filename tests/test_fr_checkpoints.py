"""Checkpoint layouts through the public API: plain, prefixed, wrapped, MagFace, truncated, wrong architecture, missing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fiqa_bench.fr_models._checkpoint import match_state_dict, read_checkpoint
from fiqa_bench.fr_models._iresnet import iresnet, randomise_for_testing_

import fiqa_bench
from fiqa_bench.errors import CheckpointError, MissingWeightsError

torch.set_num_threads(2)


def random_state(depth: int, with_qs: bool, seed: int, num_features: int = 512) -> dict[str, torch.Tensor]:
    m = randomise_for_testing_(iresnet(depth, with_qs=with_qs, num_features=num_features), seed=seed)
    return {k: v.clone() for k, v in m.state_dict().items()}


def reference_embedding(
    state: dict[str, torch.Tensor], depth: int, images: np.ndarray, *, bgr_unit: bool = False
) -> np.ndarray:
    """The embedding computed by hand: the card's normalisation written out, no fiqa-bench wrapper."""
    m = iresnet(depth, with_qs="qs.weight" in state, num_features=state["fc.weight"].shape[0])
    m.load_state_dict(state)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = x.flip(1) / 255.0 if bgr_unit else (x / 255.0 - 0.5) / 0.5
    with torch.inference_mode():
        out = m.eval()(x)
    return (out[0] if isinstance(out, tuple) else out).numpy()


def assert_module_holds(model: object, state: dict[str, torch.Tensor]) -> None:
    got = model.torch_module.state_dict()  # type: ignore[attr-defined]
    assert set(got) == set(state)
    for k, v in state.items():
        assert torch.equal(got[k].cpu(), v), k


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(2, 112, 112, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def r100_qs() -> dict[str, torch.Tensor]:
    return random_state(100, True, seed=1)


@pytest.fixture(scope="module")
def r50_qs() -> dict[str, torch.Tensor]:
    return random_state(50, True, seed=2)


@pytest.fixture(scope="module")
def r18_state() -> dict[str, torch.Tensor]:
    return random_state(18, True, seed=6)


@pytest.fixture()
def no_weight_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Nothing outside the test may satisfy a weights lookup.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FIQA_BENCH_WEIGHTS", raising=False)
    return tmp_path


def test_crfiqa_l_published_file_name_in_weights_dir_embeds_like_the_reference(
    no_weight_dirs: Path, r100_qs, faces
) -> None:
    wdir = no_weight_dirs / "weights"
    wdir.mkdir()
    torch.save(r100_qs, wdir / "181952backbone.pth")  # plain state_dict, as published
    model = fiqa_bench.get_fr_model("crfiqa_l", weights_dir=wdir, device="cpu")
    assert model.weights_path == wdir / "181952backbone.pth"
    assert_module_holds(model, r100_qs)
    # One r100 forward (slow on CPU): a hook records what embed() fed the module and what it returned.
    seen: dict[str, object] = {}
    hook = model.torch_module.register_forward_hook(
        lambda _m, inp, out: seen.update(x=inp[0].clone(), out=out)
    )
    emb = model.embed(faces[:1])
    hook.remove()
    assert emb.shape == (1, 512) and emb.dtype == np.float32 and np.isfinite(emb).all()
    by_hand = (torch.from_numpy(faces[:1]).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    torch.testing.assert_close(seen["x"], by_hand, rtol=0, atol=1e-6)
    ref, qs = seen["out"]  # type: ignore[misc]
    np.testing.assert_array_equal(emb, ref.numpy())  # the embedding, not the quality output
    assert qs.shape == (1, 1) and model.options["flip_tta"] == "none"


def test_wrong_architecture_names_what_the_file_looks_like(tmp_path: Path, r50_qs) -> None:
    path = tmp_path / "r50.pth"
    torch.save(r50_qs, path)
    with pytest.raises(CheckpointError) as err:
        fiqa_bench.get_fr_model("crfiqa_l", weights=path, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg and "iresnet100+qs" in msg  # what the card wanted
    assert "looks like iresnet50+qs (512-d embedding)" in msg  # what the file is
    assert "missing: layer2.10.bn1.bias" in msg  # r50 has 4 blocks in layer2, r100 has 13 (sorted: 10 first)


def test_truncated_and_garbage_files_name_the_file(tmp_path: Path, r18_state) -> None:
    full = tmp_path / "full.pth"
    torch.save(r18_state, full)
    cut = tmp_path / "32572backbone.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    with pytest.raises(
        CheckpointError, match=r"32572backbone\.pth: cannot read this checkpoint \(truncated or corrupt"
    ):
        fiqa_bench.get_fr_model("crfiqa_s", weights=cut)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth: cannot read"):
        fiqa_bench.get_fr_model("crfiqa_s", weights=junk)
    # A checkpoint that is not a state_dict (here: a list) is named too.
    odd = tmp_path / "odd.pth"
    torch.save([1, 2, 3], odd)
    with pytest.raises(CheckpointError, match="odd.pth: not a state_dict"):
        fiqa_bench.get_fr_model("crfiqa_s", weights=odd)


@pytest.mark.parametrize(
    "layout",
    ["plain", "module.", "features.module.", "backbone.+head", "module.backbone.", "{'model': plain}"],
)
def test_prefixed_and_wrapped_layouts_match_exactly(tmp_path: Path, r18_state, layout: str) -> None:
    if layout == "plain":
        obj: object = dict(r18_state)
    elif layout == "backbone.+head":  # a training model: backbone beside its margin head
        obj = {**{"backbone." + k: v for k, v in r18_state.items()}, "head.kernel": torch.zeros(512, 10)}
    elif layout.startswith("{'model'"):
        obj = {"model": dict(r18_state)}
    else:
        obj = {layout + k: v for k, v in r18_state.items()}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    matched = match_state_dict(iresnet(18, with_qs=True), read_checkpoint(path), source=str(path))
    assert set(matched) == set(r18_state) and all(torch.equal(matched[k], r18_state[k]) for k in r18_state)


def test_wrapped_dataparallel_checkpoint_through_the_public_api(tmp_path: Path, r50_qs) -> None:
    path = tmp_path / "ckpt.pth"
    torch.save(
        {"epoch": 3, "state_dict": {"module." + k: v for k, v in r50_qs.items()}, "optimizer": {"state": {}}},
        path,
    )
    model = fiqa_bench.get_fr_model("crfiqa_s", weights=path, device="cpu")
    assert_module_holds(model, r50_qs)


def test_extra_misshaped_and_missing_keys_are_listed(r18_state) -> None:
    model = iresnet(18, with_qs=True)
    with pytest.raises(CheckpointError, match=r"1 unexpected: qs2\.weight"):
        match_state_dict(model, {**r18_state, "qs2.weight": torch.zeros(1, 512)}, source="extra.pth")
    bad = dict(r18_state)
    bad["fc.weight"] = torch.zeros(256, 25088)
    with pytest.raises(
        CheckpointError, match=r"mis-shaped \(file vs model\): fc\.weight \(256, 25088\) vs \(512, 25088\)"
    ):
        match_state_dict(model, bad, source="bad.pth")
    no_qs = {k: v for k, v in r18_state.items() if not k.startswith("qs.")}
    with pytest.raises(
        CheckpointError, match=r"^noqs\.pth: .*2 missing: qs\.bias, qs\.weight.*looks like iresnet18 \(512-d"
    ):
        match_state_dict(model, no_qs, source="noqs.pth")


@pytest.mark.parametrize("prefix", ["features.module.", "module.features."])
def test_magface_training_checkpoint_layouts(prefix: str) -> None:
    # MagFace saves {"epoch", "arch", "state_dict", "optimizer"}: the backbone under a wrapper prefix and
    # the MagLinear head ("fc.weight" [512, classes]) beside it. Checked on an r18 (same code path as r100).
    state = random_state(18, False, seed=3)
    head = "fc.weight" if prefix.startswith("features") else "module.fc.weight"
    ckpt = {**{prefix + k: v for k, v in state.items()}, head: torch.zeros(512, 1000)}
    m = iresnet(18, bn_eps=2e-5)
    matched = match_state_dict(m, ckpt, source="magface_epoch_00025.pth")
    assert set(matched) == set(state) and all(torch.equal(matched[k], state[k]) for k in state)


def test_magface_card_reads_its_published_layout_and_bgr_unit_input(tmp_path: Path, r100_qs, faces) -> None:
    state = {k: v for k, v in r100_qs.items() if not k.startswith("qs.")}
    path = tmp_path / "magface_epoch_00025.pth"
    torch.save(
        {
            "epoch": 25,
            "arch": "iresnet100",
            "state_dict": {
                **{"features.module." + k: v for k, v in state.items()},
                "fc.weight": torch.zeros(512, 7),
            },
        },
        path,
    )
    model = fiqa_bench.get_fr_model("magface_r100", weights=path, device="cpu")
    assert_module_holds(model, state)
    assert all(b.eps == 2e-5 for b in model.torch_module.modules() if isinstance(b, torch.nn.BatchNorm2d))
    # Input: a pure red RGB pixel reaches the network as channel 2 (BGR) = 1.0, channels 0/1 = 0.0.
    red = np.zeros((1, 112, 112, 3), np.uint8)
    red[..., 0] = 255
    x = model.preprocess(red)
    assert x.shape == (1, 3, 112, 112)
    assert float(x[0, 2].min()) == 1.0 and float(x[0, :2].abs().max()) == 0.0


def test_num_batches_tracked_may_be_absent(tmp_path: Path) -> None:
    state = random_state(18, True, seed=4)
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    model = fiqa_bench.get_fr_model(f"crfiqa:{path}", device="cpu")
    got = model.torch_module.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items() if not k.endswith("num_batches_tracked"))


def test_generic_crfiqa_card_infers_depth_head_and_size(tmp_path: Path, faces) -> None:
    state = random_state(18, True, seed=5, num_features=128)
    path = tmp_path / "trained.pth"
    torch.save({"module." + k: v for k, v in state.items()}, path)
    model = fiqa_bench.get_fr_model(f"crfiqa:{path}", device="cpu")
    assert model.card.embedding_size == 128 and "iresnet18+qs" in model.card.notes
    emb = model.embed(faces)
    np.testing.assert_allclose(emb, reference_embedding(state, 18, faces), rtol=1e-4, atol=1e-3)
    not_iresnet = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, not_iresnet)
    with pytest.raises(CheckpointError, match="not an iResNet checkpoint"):
        fiqa_bench.get_fr_model(f"crfiqa:{not_iresnet}")


def test_missing_weights_name_the_file_and_where_to_get_it(no_weight_dirs: Path) -> None:
    for name, filename in [
        ("crfiqa_l", "181952backbone.pth"),
        ("elasticface_arc", "295672backbone.pth"),
        ("arcface_r100", "ms1mv3_arcface_r100_fp16/backbone.pth"),
        ("magface_r100", "magface_epoch_00025.pth"),
    ]:
        with pytest.raises(MissingWeightsError) as err:
            fiqa_bench.get_fr_model(name, weights_dir=no_weight_dirs / "empty", device="cpu")
        assert repr(filename) in str(err.value) and "Get it from" in str(err.value)
        assert str(no_weight_dirs / "empty") in str(err.value)


def test_read_checkpoint_uses_weights_only(tmp_path: Path) -> None:
    # A pickled arbitrary object is refused (weights_only=True), not executed.
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "cfg": os.environ.__class__}, path)
    with pytest.raises(CheckpointError, match="pickled.pth: holds a pickled Python object"):
        read_checkpoint(path)
