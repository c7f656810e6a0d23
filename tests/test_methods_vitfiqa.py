"""vitfiqa: the authors' key layout, the forward pass against an independent functional version, input.

The released model.pt is not on this machine: small random networks are saved with exactly the
authors' parameter names (backbones/vit_qs.py, mode "token", mask_ratio > 0) and shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _vit_reference import encode, patch_tokens
from fiqa_bench.methods.vitfiqa import ViTQualityToken

import fiqa_bench
from fiqa_bench.errors import CheckpointError, FiqaError

DIM, DEPTH, HIDDEN = 32, 2, 96


def _random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = ViTQualityToken(dim=DIM, depth=DEPTH, hidden=HIDDEN)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith("running_var"):
            state[k] = torch.rand_like(v) + 0.5
        elif k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(1000)
        else:
            state[k] = torch.randn_like(v) * 0.2
    return state


def _authors_key_names() -> set[str]:
    keys = {
        "qs_token",
        "pos_embed",
        "mask_token",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm.weight",
        "norm.bias",
    }
    for i in range(DEPTH):
        for part in (
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
        ):
            keys.add(f"blocks.{i}.{part}")
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys |= {"feature.0.weight", "feature.2.weight", "head_qs.1.weight"}
    keys |= {f"{m}.{p}" for m in ("feature.1", "feature.3", "head_qs.0") for p in bn}
    return keys


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("vitfiqa") / "model.pt"
    torch.save(_random_state(), path)
    return path


def _reference_quality(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int = 8) -> torch.Tensor:
    """The forward of backbones/vit_qs.py (mode token) written functionally, with SDPA attention."""
    tokens = patch_tokens(state, x)
    t = encode(
        state,
        torch.cat([state["qs_token"].expand(len(x), -1, -1), tokens], 1) + state["pos_embed"],
        DEPTH,
        heads,
    )
    s = "head_qs.0."
    qs = F.batch_norm(
        t[:, 0],
        state[s + "running_mean"],
        state[s + "running_var"],
        state[s + "weight"],
        state[s + "bias"],
        eps=2e-5,
    )
    return qs @ state["head_qs.1.weight"].T


def test_layout_round_trip_and_forward(ckpt, aligned_lfw_sample):
    state = torch.load(ckpt, weights_only=True)
    assert set(state) == _authors_key_names()
    m = fiqa_bench.get_method("vitfiqa", weights=ckpt, device="cpu")
    loaded = m.model.state_dict()
    for k, v in state.items():
        torch.testing.assert_close(loaded[k], v, rtol=0, atol=0)
    faces = aligned_lfw_sample["images"][:8]
    q = m.score(faces)
    assert q.shape == (8,) and np.isfinite(q).all() and np.ptp(q) > 0
    # Input: BGR, (x/255 - 0.5)/0.5.
    x = torch.from_numpy(faces[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    np.testing.assert_allclose(
        q, _reference_quality(state, x).reshape(-1).double().numpy(), rtol=1e-4, atol=1e-5
    )
    single = np.concatenate([m.score(f[None]) for f in faces])
    np.testing.assert_allclose(q, single, rtol=1e-5, atol=1e-6)
    rgb = fiqa_bench.get_method("vitfiqa", weights=ckpt, device="cpu", colour="rgb")
    np.testing.assert_allclose(rgb.score(faces[..., ::-1].copy()), q, rtol=1e-6)
    by_name = fiqa_bench.get_method("vitfiqa", weights_dir=ckpt.parent, device="cpu")  # published file name
    np.testing.assert_allclose(by_name.score(faces[:2]), q[:2], rtol=1e-5, atol=1e-7)


def test_wrapped_and_training_only_keys(tmp_path, aligned_lfw_sample):
    state = _random_state(1)
    state.pop("mask_token")  # mask_ratio = 0 configs have none; unused at inference
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "model.pt")
    m = fiqa_bench.get_method("vitfiqa", weights=tmp_path / "model.pt", device="cpu")
    assert np.isfinite(m.score(aligned_lfw_sample["images"][:2])).all()


def test_bad_files_one_line(ckpt, tmp_path):
    state = torch.load(ckpt, weights_only=True)
    broken = dict(state)
    broken.pop("blocks.1.attn.qkv.weight")
    broken["head_qs.2.weight"] = torch.zeros(1)
    broken["head_qs.1.weight"] = torch.zeros(2, DIM)
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method("vitfiqa", weights=tmp_path / "broken.pt", device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and "blocks.1.attn.qkv.weight" in msg and "head_qs.2.weight" in msg
    assert f"head_qs.1.weight (2, {DIM}) vs (1, {DIM})" in msg
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[:4096])
    with pytest.raises(CheckpointError) as e:
        fiqa_bench.get_method("vitfiqa", weights=cut, device="cpu")
    assert str(cut) in str(e.value) and "\n" not in str(e.value)
    torch.save({"conv1.weight": torch.zeros(3, 3), "fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a ViT-FIQA checkpoint"):
        fiqa_bench.get_method("vitfiqa", weights=tmp_path / "other.pt", device="cpu")
    with pytest.raises(FiqaError, match="colour"):
        fiqa_bench.get_method("vitfiqa", weights=ckpt, device="cpu", colour="YUV")
