"""Torch helpers for methods that run an FR model themselves (private; imports torch lazily by module)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from fiqa_bench.errors import UnsupportedCombinationError
from fiqa_bench.registry import Card
from fiqa_bench.types import FRModel, missing_capabilities


def torch_parts(card: Card, fr_model: FRModel | None) -> tuple[nn.Module, Any]:
    """The FR model's nn.Module and preprocess function, or one clear error naming the missing
    capability (the card's ``needs_capabilities``, checked structurally; the engine checks them first)."""
    missing = missing_capabilities(("torch", *card.needs_capabilities), fr_model)
    if missing:
        name = fr_model.card.name if fr_model is not None else "none"
        raise UnsupportedCombinationError(
            f"{card.name} needs {'; '.join(missing)}; FR model {name!r} is not one."
        )
    assert fr_model is not None
    return fr_model.torch_module, fr_model.preprocess  # type: ignore[attr-defined]


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
