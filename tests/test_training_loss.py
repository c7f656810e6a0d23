"""CR-FIQA objective against numbers worked out by hand on a 3-sample, 3-class, 2-D batch."""

from __future__ import annotations

import pytest
import torch
from fiqa_bench.training.config import apply_overrides, load_config, lr_multiplier, scaled_lr
from fiqa_bench.training.loss import CRFIQAHead, certainty_ratio_parts

# Class centres (columns of the kernel): c0 = (1, 0), c1 = (0, 1), c2 = (-1, 0).
KERNEL = [[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
# Embeddings (normalised: (0.6, 0.8), (-0.8, 0.6), (0.8, -0.6)) and labels.
EMB = [[3.0, 4.0], [-4.0, 3.0], [4.0, -3.0]]
LABELS = [0, 2, 0]
# cos rows: [0.6, 0.8, -0.6], [-0.8, 0.6, 0.8], [0.8, -0.6, -0.8]
CCS = [0.6, 0.8, 0.8]
NNCCS = [0.8, 0.6, -0.6]  # row 3: every other centre is negative; the max is still -0.6 (not 0)
# released target CCS/NNCCS = 0.75, 1.3333, -1.3333; paper CCS/(NNCCS+1) = 0.3333, 0.5, 2.0
# With qs = 1: |d| = 0.25, 0.3333, 2.3333 -> SmoothL1(beta .5) = d^2 (<.5) or |d| - .25:
#   released: 0.0625, 0.111111, 2.083333 -> mean 0.752315
#   paper:    |d| = 0.6667, 0.5, 1.0 -> 0.416667, 0.25, 0.75 -> mean 0.472222
# ArcFace (s 64, m .5): target logit 64 cos(acos(c) + .5): 0.6 -> 9.152583, 0.8 -> 26.522286;
#   CE row 1 = logsumexp(9.152583, 51.2, -38.4) - 9.152583 = 42.047417
#   CE row 2 = logsumexp(-51.2, 38.4, 26.522286) - 26.522286 = 11.877720
#   CE row 3 = logsumexp(26.522286, -38.4, -51.2) - 26.522286 = 0.000000 -> mean 17.975046
CE = 17.975046
Q_RELEASED, Q_PAPER = 0.752315, 0.472222


def _head(target: str) -> CRFIQAHead:
    head = CRFIQAHead(2, 3, target=target)
    with torch.no_grad():
        head.kernel.copy_(torch.tensor(KERNEL))
    return head


def test_ccs_nnccs_hand_computed() -> None:
    head = _head("released")
    cos = head.cosines(torch.tensor(EMB))
    ccs, nnccs = certainty_ratio_parts(cos, torch.tensor(LABELS))
    torch.testing.assert_close(ccs, torch.tensor(CCS), atol=1e-6, rtol=0)
    torch.testing.assert_close(nnccs, torch.tensor(NNCCS), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("target", "quality"), [("released", Q_RELEASED), ("paper", Q_PAPER)])
def test_loss_hand_computed(target: str, quality: float) -> None:
    head = _head(target)
    emb = torch.tensor(EMB, requires_grad=True)
    qs = torch.ones(3, 1, requires_grad=True)
    parts = head(emb, qs, torch.tensor(LABELS))
    assert parts.ce.item() == pytest.approx(CE, abs=2e-5)
    assert parts.quality.item() == pytest.approx(quality, abs=2e-6)
    assert parts.total.item() == pytest.approx(CE + 10 * quality, abs=5e-5)
    expected = [0.75, 4 / 3, -4 / 3] if target == "released" else [1 / 3, 0.5, 2.0]
    torch.testing.assert_close(parts.target, torch.tensor(expected), atol=1e-6, rtol=0)
    # CCS/NNCCS are detached: the quality term moves qs only, never the embedding or the centres.
    parts.quality.backward()
    assert emb.grad is None or torch.count_nonzero(emb.grad) == 0
    assert head.kernel.grad is None or torch.count_nonzero(head.kernel.grad) == 0
    # d/dqs of mean SmoothL1: (qs - t)/beta/3 inside beta, sign/3 outside
    g = [(1 - expected[0]) / 0.5 / 3 if abs(1 - expected[0]) < 0.5 else 1 / 3]
    assert qs.grad[0, 0].item() == pytest.approx(g[0], abs=1e-6)


def test_configs_match_the_paper() -> None:
    s, l_ = load_config("crfiqa_s"), load_config("crfiqa_l")
    assert (s["network"], s["epochs"], s["lr_steps"]) == ("iresnet50", 34, [20, 28, 32])
    assert (l_["network"], l_["epochs"], l_["lr_steps"]) == ("iresnet100", 18, [8, 14])
    for c in (s, l_):
        assert (c["momentum"], c["weight_decay"], c["clip_grad_norm"], c["dropout"], c["batch_size"]) == (
            0.9,
            5e-4,
            5.0,
            0.4,
            128,
        )
        assert (c["s"], c["m"], c["alpha"], c["beta"], c["target"]) == (64.0, 0.5, 10.0, 0.5, "released")
    assert scaled_lr(s, 4) == pytest.approx(0.1) and scaled_lr(s, 1) == pytest.approx(0.025)
    # reference formula 0.1 ** #{m : m - 1 <= epoch}: epochs 1..7 (1-based) at 1, 8..13 at 0.1, 14.. at 0.01
    assert [lr_multiplier(e, [8, 14]) for e in (0, 6, 7, 12, 13, 17)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01]
    )
    c = apply_overrides(
        load_config("crfiqa_s"), ["epochs=2", "target=paper", "lr_steps=[1]", "verify_sets=['lfw']"]
    )
    assert (c["epochs"], c["target"], c["lr_steps"], c["verify_sets"]) == (2, "paper", [1], ["lfw"])
    with pytest.raises(Exception, match="unknown config key"):
        apply_overrides(c, ["epoch=3"])
