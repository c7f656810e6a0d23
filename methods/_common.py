"""Shared pieces of the built-in quality methods (private: not a registry module)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import FiqaError, UnsupportedCombinationError
from fiqa_bench.faces import CROP_PAD, detect_on_crops  # noqa: F401  (one implementation, in the engine; re-exported)
from fiqa_bench.registry import Card
from fiqa_bench.types import FRModel, QualityMethod

# Face region of a 112x112 ArcFace-aligned crop (rows, cols): from just above the eyebrows to below
# the mouth and between the cheeks. The crop's corners hold background and, after warping, black
# borders, which would otherwise dominate image statistics.
FACE_ROWS = slice(28, 108)
FACE_COLS = slice(20, 92)


class BaseMethod(QualityMethod):
    """QualityMethod with the attributes the cache fingerprint reads (weights_path, options, fr_model)."""

    def __init__(
        self,
        card: Card,
        options: dict[str, Any] | None = None,
        weights_path: Path | None = None,
        fr_model: FRModel | None = None,
    ) -> None:
        self.card = card
        self.options = dict(options or {})
        self.weights_path = weights_path
        if fr_model is not None:
            self.fr_model = fr_model


# Torch FR models that expose forward_backbone / forward_head (a dropout-able embedding layer) and carry
# real BatchNorm statistics: the iResNet cards (fr_models/iresnet_models.py) and sface_torch.
IRESNET_MODELS = (
    "arcface_r100",
    "arcface_r50",
    "cosface_r100",
    "elasticface_arc",
    "magface_r100",
    "crfiqa_l",
    "crfiqa_s",
    "crfiqa",
)
# The IR-101 cards (fr_models/irse_models.py) expose the same forward_backbone/forward_head/dropout contract.
IRSE_MODELS = ("adaface_ir101", "curricularface_ir101")
TORCH_SPLIT_MODELS = (*IRESNET_MODELS, *IRSE_MODELS, "sface_torch")


def reject_unknown(card: Card, options: Mapping[str, Any], allowed: set[str]) -> None:
    """One clear error for options a method does not understand (they would be silently ignored)."""
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise FiqaError(
            f"{card.name}: unknown option(s) {', '.join(unknown)}. Known options: {', '.join(sorted(allowed)) or 'none'}."
        )


def grey(images: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma of RGB uint8 images as float64 in [0, 255] (N x H x W)."""
    x = np.asarray(images, dtype=np.float64)
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def face_region(a: np.ndarray) -> np.ndarray:
    """The face region of N x 112 x 112 (x C) arrays; other sizes are scaled proportionally."""
    h, w = a.shape[1:3]
    if (h, w) == (112, 112):
        return a[:, FACE_ROWS, FACE_COLS]
    r = slice(FACE_ROWS.start * h // 112, FACE_ROWS.stop * h // 112)
    c = slice(FACE_COLS.start * w // 112, FACE_COLS.stop * w // 112)
    return a[:, r, c]


def require_fr_model(card: Card, fr_model: FRModel | None) -> FRModel:
    if fr_model is None:
        raise UnsupportedCombinationError(
            f"{card.name} needs an FR model; pass fr_model=get_fr_model(...) or name one with --models."
        )
    return fr_model


def stable_uniform(image: np.ndarray, seed: int) -> float:
    """A uniform [0, 1) number determined by the image's bytes and a seed (order-independent)."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(image).tobytes())
    h.update(int(seed).to_bytes(8, "little", signed=True))
    return int.from_bytes(h.digest()[:8], "little") / 2.0**64
