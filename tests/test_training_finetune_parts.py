"""Fast checks of the fine-tuning parts: qs wrapper layout, input conversion, data fingerprint (no real data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fiqa_bench.fr_models._common import InputSpec
from fiqa_bench.fr_models._qs_head import WithQualityHead
from fiqa_bench.training.data import data_fingerprint
from fiqa_bench.training.finetune import CachedEmbeddings, input_adapter
from torch import nn


def test_qs_wrapper_keeps_the_networks_keys_and_returns_embedding_and_quality() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.Dropout(0.5))
    model = WithQualityHead(net, 4)
    assert sorted(model.state_dict()) == ["1.bias", "1.weight", "qs.bias", "qs.weight"]
    model.eval()
    x = torch.randn(3, 3, 2, 2)
    emb, qs = model(x)
    assert torch.equal(emb, net(x)) and qs.shape == (3, 1)
    assert torch.allclose(qs, model.qs(emb))
    model.train()
    assert net.training and net[2].training  # the wrapped network follows train()/eval()
    with pytest.raises(ValueError, match="already has a qs head"):
        WithQualityHead(_with_qs(), 2)


def _with_qs() -> nn.Module:
    m = nn.Sequential(nn.Linear(2, 2))
    m.add_module("qs", nn.Linear(2, 1))
    return m


@pytest.mark.parametrize("spec", [InputSpec("RGB", 127.5, 128.0), InputSpec("BGR", 0.0, 255.0), InputSpec()])
def test_input_adapter_gives_the_cards_own_normalisation(spec: InputSpec) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    trainer = torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div(255).sub(0.5).div(0.5)  # data.to_tensor
    want = (torch.from_numpy(rgb).permute(0, 3, 1, 2).float() - spec.mean) / spec.std
    if spec.colour == "BGR":
        want = want.flip(1)
    torch.testing.assert_close(input_adapter(spec)(trainer), want, rtol=0, atol=1e-5)


def test_cached_embeddings_pick_the_mirrored_row() -> None:
    emb = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    ds = CachedEmbeddings(emb, torch.tensor([0, 1, 1]), 2)
    assert torch.equal(ds[(2, False)][0], emb[0, 2]) and torch.equal(ds[(2, True)][0], emb[1, 2])
    assert ds[(1, True)][1] == 1 and len(ds) == 3


def test_data_fingerprint_follows_content_not_location(tmp_path: Path) -> None:
    for root in ("a", "b"):
        (tmp_path / root / "id1").mkdir(parents=True)
        (tmp_path / root / "id1" / "x.jpg").write_bytes(b"12345")
    assert data_fingerprint(str(tmp_path / "a")) == data_fingerprint(str(tmp_path / "b"))
    (tmp_path / "b" / "id1" / "y.jpg").write_bytes(b"1")
    assert data_fingerprint(str(tmp_path / "a")) != data_fingerprint(str(tmp_path / "b"))
    assert data_fingerprint("synthetic:8:2") != data_fingerprint("synthetic:8:3")
