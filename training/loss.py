"""The CR-FIQA objective (REFERENCE.md 4): ArcFace head + regression of ``qs`` on the certainty ratio.

cos = normalised embedding . normalised class centres (columns of ``kernel`` [D, C]).
CCS = cos to the sample's own centre, NNCCS = largest cos to any other centre, both taken before the
margin and detached. Target: CCS / NNCCS ("released", what the published code trains on, the default)
or CCS / (NNCCS + 1 + eps) ("paper", the formula printed in the paper).
Loss = CE(s * ArcFace logits) + alpha * SmoothL1(beta)(qs, target).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

TARGETS = {"released": "ccs/nnccs", "paper": "ccs/(nnccs+1+eps)"}


class LossParts(NamedTuple):  # a tuple, so DistributedDataParallel can wrap the head
    total: torch.Tensor
    ce: torch.Tensor
    quality: torch.Tensor  # SmoothL1 before the alpha weight
    ccs: torch.Tensor
    nnccs: torch.Tensor
    target: torch.Tensor


def certainty_ratio_parts(cos: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(CCS, NNCCS), each [N], from pre-margin cosines [N, C]; detached."""
    cos = cos.detach()
    rows = torch.arange(cos.shape[0], device=cos.device)
    ccs = cos[rows, labels]
    others = cos.clone()
    others[rows, labels] = float("-inf")  # exclude the own class, whatever the signs of the others
    nnccs = others.max(dim=1).values
    return ccs, nnccs


def quality_target(
    ccs: torch.Tensor, nnccs: torch.Tensor, variant: str = "released", eps: float = 1e-9
) -> torch.Tensor:
    if variant == "released":
        return ccs / nnccs
    if variant == "paper":
        return ccs / (nnccs + 1.0 + eps)
    raise ValueError(f"unknown CR-FIQA target variant {variant!r}; use one of {sorted(TARGETS)}")


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """The head runs in fp32 under mixed precision (float64 stays float64, for exact gradient checks)."""
    return t if t.dtype == torch.float64 else t.float()


class CRFIQAHead(nn.Module):
    """ArcFace classification head with the CR-FIQA quality regression term."""

    def __init__(
        self,
        embedding_size: int,
        num_classes: int,
        s: float = 64.0,
        m: float = 0.5,
        alpha: float = 10.0,
        beta: float = 0.5,
        target: str = "released",
        eps: float = 1e-9,
    ) -> None:
        super().__init__()
        if target not in TARGETS:
            raise ValueError(f"unknown CR-FIQA target variant {target!r}; use one of {sorted(TARGETS)}")
        self.kernel = nn.Parameter(torch.empty(embedding_size, num_classes))
        nn.init.normal_(self.kernel, std=0.01)
        self.s, self.m, self.alpha, self.beta, self.target, self.eps = s, m, alpha, beta, target, eps

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        emb = F.normalize(_at_least_fp32(embeddings), dim=1)
        centres = F.normalize(_at_least_fp32(self.kernel), dim=0)
        return (emb @ centres).clamp(-1.0, 1.0)

    def forward(self, embeddings: torch.Tensor, qs: torch.Tensor, labels: torch.Tensor) -> LossParts:
        cos = self.cosines(embeddings)
        ccs, nnccs = certainty_ratio_parts(cos, labels)
        # cos(theta + m) on the target column only; written with sin so the gradient stays finite at cos=+-1
        # (same value as cos(acos(cos) + m)).
        rows = torch.arange(cos.shape[0], device=cos.device)
        c = cos[rows, labels]
        sin = torch.sqrt((1.0 - c * c).clamp_min(1e-12))
        with_margin = c * math.cos(self.m) - sin * math.sin(self.m)
        logits = cos.scatter(1, labels[:, None], with_margin[:, None]) * self.s
        ce = F.cross_entropy(logits, labels)
        target = quality_target(ccs, nnccs, self.target, self.eps)
        quality = F.smooth_l1_loss(_at_least_fp32(qs).reshape(-1).to(target.dtype), target, beta=self.beta)
        return LossParts(ce + self.alpha * quality, ce, quality, ccs, nnccs, target)
