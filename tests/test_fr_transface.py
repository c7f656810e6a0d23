"""transface: the authors' key layout, strict loading, and the forward pass against a functional version.

The released TransFace .pt files are not on this machine: small random networks are saved with exactly the
authors' parameter names (backbones/vit.py) and shapes; width and depth are read from the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _vit_reference import encode, patch_tokens
from fiqa_bench.fr_models.transface import TransFace

import fiqa_bench
from fiqa_bench.errors import CheckpointError

DIM, DEPTH, HIDDEN = 32, 2, 96


def _random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    out = {}
    for k, v in TransFace(dim=DIM, depth=DEPTH, hidden=HIDDEN).state_dict().items():
        if k.endswith("running_var"):
            out[k] = torch.rand_like(v) + 0.5
        elif k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        else:
            out[k] = torch.randn_like(v) * (0.02 if k.startswith(("senet", "feature.0")) else 0.2)
    return out


def _authors_keys() -> set[str]:
    keys = {
        "pos_embed",
        "mask_token",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm.weight",
        "norm.bias",
        "senet.0.weight",
        "senet.2.weight",
        "feature.0.weight",
        "feature.2.weight",
    }
    for i in range(DEPTH):
        keys |= {
            f"blocks.{i}.{p}"
            for p in (
                "norm1.weight",
                "norm1.bias",
                "attn.qkv.weight",
                "attn.proj.weight",
                "attn.proj.bias",
                "norm2.weight",
                "norm2.bias",
                "mlp.fc1.weight",
                "mlp.fc1.bias",
                "mlp.fc2.weight",
                "mlp.fc2.bias",
            )
        }
    keys |= {
        f"feature.{i}.{p}"
        for i in (1, 3)
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    return keys


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("transface") / "glint360k_model_TransFace_L.pt"
    torch.save(_random_state(), path)
    return path


def _reference(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int = 8) -> torch.Tensor:
    """backbones/vit.py forward (eval) written functionally, SDPA attention; returns the embedding."""
    t = encode(state, patch_tokens(state, x) + state["pos_embed"], DEPTH, heads)
    b = len(t)
    w = torch.sigmoid(F.relu(t.reshape(b, -1) @ state["senet.0.weight"].T) @ state["senet.2.weight"].T)
    z = (w.unsqueeze(-1) * t).reshape(b, -1)

    def bn(z: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(
            z,
            state[p + "running_mean"],
            state[p + "running_var"],
            state[p + "weight"],
            state[p + "bias"],
            eps=2e-5,
        )

    z = bn(z @ state["feature.0.weight"].T, "feature.1.")
    return bn(z @ state["feature.2.weight"].T, "feature.3.")


def test_layout_round_trip_forward(ckpt, aligned_lfw_sample):
    state = torch.load(ckpt, weights_only=True)
    assert set(state) == _authors_keys()
    fr = fiqa_bench.get_fr_model("transface", weights=ckpt, device="cpu")
    loaded = fr.torch_module.state_dict()
    for k, v in state.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)
    faces = aligned_lfw_sample["images"][:6]
    emb = fr.embed(faces)
    assert emb.shape == (6, 512) and np.isfinite(emb).all()
    x = torch.from_numpy(faces.copy()).permute(0, 3, 1, 2).float() / 127.5 - 1.0  # RGB, [-1, 1]
    np.testing.assert_allclose(emb, _reference(state, x).numpy(), rtol=1e-4, atol=1e-4)
    single = np.concatenate([fr.embed(f[None]) for f in faces])
    np.testing.assert_allclose(emb, single, rtol=1e-4, atol=1e-5)
    by_name = fiqa_bench.get_fr_model("transface", weights_dir=ckpt.parent, device="cpu")
    np.testing.assert_allclose(by_name.embed(faces[:2]), emb[:2], rtol=1e-5, atol=1e-6)
    assert fiqa_bench.get_fr_model("transface", weights=ckpt, device="cpu", flip_tta=True).embed(
        faces[:2]
    ).shape == (2, 1024)


def test_wrapped_file_without_mask_token(tmp_path, aligned_lfw_sample):
    state = _random_state(3)
    state.pop("mask_token")
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "ms1mv2_model_TransFace_S.pt")
    fr = fiqa_bench.get_fr_model("transface", weights=tmp_path / "ms1mv2_model_TransFace_S.pt", device="cpu")
    assert np.isfinite(fr.embed(aligned_lfw_sample["images"][:2])).all()


def test_bad_files_one_line(ckpt, tmp_path):
    broken = torch.load(ckpt, weights_only=True)
    broken.pop("senet.2.weight")
    broken["head.weight"] = torch.zeros(3)
    broken["norm.weight"] = torch.zeros(DIM + 1)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_fr_model("transface", weights=tmp_path / "broken.pt", device="cpu")
    msg = str(e.value)
    assert (
        "\n" not in msg
        and "senet.2.weight" in msg
        and "head.weight" in msg
        and f"norm.weight ({DIM + 1},) vs ({DIM},)" in msg
    )
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[:3000])
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_fr_model("transface", weights=cut, device="cpu")
    assert str(cut) in str(e.value) and "\n" not in str(e.value)
    torch.save({"conv1.weight": torch.zeros(2)}, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match="not a TransFace checkpoint"):
        fiqa_bench.get_fr_model("transface", weights=tmp_path / "resnet.pt", device="cpu")
