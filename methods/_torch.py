"""Torch helpers for methods that run an FR model themselves (private; imports torch lazily by module)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from fiqa_bench.errors import UnsupportedCombinationError
from fiqa_bench.registry import Card
from fiqa_bench.types import FRModel

from ._common import TORCH_SPLIT_MODELS


def torch_parts(card: Card, fr_model: FRModel | None, *, need_head_split: bool = False,
                need_batchnorm: bool = False) -> tuple[nn.Module, Any]:
    """The FR model's nn.Module and preprocess function, or one clear error saying what is missing."""
    module = getattr(fr_model, "torch_module", None)
    preprocess = getattr(fr_model, "preprocess", None)
    name = getattr(getattr(fr_model, "card", None), "name", type(fr_model).__name__)
    if module is None or preprocess is None:
        raise UnsupportedCombinationError(
            f"{card.name} needs a torch FR model (sface_torch, or an iResNet card such as arcface_r100 or crfiqa_l); {name!r} is not one."
        )
    if need_head_split and not (hasattr(module, "forward_backbone") and hasattr(module, "forward_head")):
        raise UnsupportedCombinationError(
            f"{card.name} needs an FR model with a dropout-able embedding layer (forward_backbone/forward_head, "
            f"as {', '.join(TORCH_SPLIT_MODELS)}); {name!r} has none."
        )
    if need_batchnorm and not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
        raise UnsupportedCombinationError(f"{card.name} needs an FR model with BatchNorm2d layers; {name!r} has none.")
    return module, preprocess


def image_generator(image: np.ndarray, seed: int, device: str | torch.device) -> torch.Generator:
    """A torch RNG seeded by the image's bytes and the user's seed: results do not depend on batch
    composition or order, and identical images get identical draws."""
    h = hashlib.sha256(np.ascontiguousarray(image).tobytes())
    h.update(int(seed).to_bytes(8, "little", signed=True))
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1))
    return g


def embedding_of(out: Any) -> torch.Tensor:
    """Models with a quality head (CR-FIQA) return (embedding, qs): the embedding is the first."""
    return out[0] if isinstance(out, (tuple, list)) else out
