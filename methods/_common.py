"""Shared pieces of the built-in quality methods (private: not a registry module)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import UnsupportedCombinationError
from fiqa_bench.faces import CROP_PAD, detect_on_crops  # noqa: F401  (one implementation, in the engine; re-exported)
from fiqa_bench.registry import Card
from fiqa_bench.types import BuildContext, FRModel, QualityMethod

# Face region of a 112x112 ArcFace-aligned crop (rows, cols): from just above the eyebrows to below
# the mouth and between the cheeks. The crop's corners hold background and, after warping, black
# borders, which would otherwise dominate image statistics.
FACE_ROWS = slice(28, 108)
FACE_COLS = slice(20, 92)


class BaseMethod(QualityMethod):
    """A built-in method: built from the build context (the class itself is the factory).

    ``self.options`` holds the card's declared options, parsed; ``self.fr_model`` the bound FR model.
    """

    def __init__(
        self,
        ctx: BuildContext | Card,
        options: Mapping[str, Any] | None = None,
        weights_path: Path | None = None,
        fr_model: FRModel | None = None,
    ) -> None:
        if isinstance(ctx, BuildContext):
            super().__init__(ctx)
            return
        # Older form (card, options, weights_path, fr_model), kept for methods written before the build
        # context: the engine binds the declared options, weight files and FR model afterwards anyway.
        super().__init__(None)
        self.card = ctx
        self.options = dict(options or {})
        self.weights_path = weights_path
        self.fr_model = fr_model


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
