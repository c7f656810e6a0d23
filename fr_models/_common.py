"""Pieces shared by the torch and ONNX backends: input conversion spec and flip test-time augmentation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Option, to_bool

FlipMode = Literal["none", "concat", "sum"]


@dataclass(frozen=True)
class InputSpec:
    """How a model wants its pixels: ``(x[channel order] - mean) / std`` with x in 0..255.

    fiqa-bench hands every model RGB uint8; ``colour="BGR"`` means the model was trained on OpenCV-decoded
    images, so the channels are reversed before normalising.
    """

    colour: Literal["RGB", "BGR"] = "RGB"
    mean: float = 127.5
    std: float = 127.5
    size: tuple[int, int] = (112, 112)  # (height, width)

    def describe(self) -> str:
        if self.mean == 127.5 and self.std == 127.5:
            return "(x/255 - 0.5) / 0.5, i.e. [-1, 1]"
        if self.mean == 0 and self.std == 255:
            return "x/255, i.e. [0, 1]"
        if self.mean == 0 and self.std == 1:
            return "raw 0..255 floats"
        return f"(x - {self.mean:g}) / {self.std:g} with x in 0..255"


# Named normalisations for the generic ``onnx:`` card.
NORMALISATIONS: dict[str, tuple[float, float]] = {
    "arcface": (127.5, 127.5),  # [-1, 1]
    "unit": (0.0, 255.0),  # [0, 1]
    "raw": (0.0, 1.0),  # 0..255
}


def parse_normalisation(value: str | tuple[float, float] | list[float]) -> tuple[float, float]:
    """ "arcface" | "unit" | "raw" | "MEAN,STD" | (mean, std) -> (mean, std) in pixel units."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return float(value[0]), float(value[1])
    text = str(value).strip().lower()
    if text in NORMALISATIONS:
        return NORMALISATIONS[text]
    try:
        mean, std = (float(v) for v in text.split(","))
    except ValueError:
        raise FiqaError(
            f"normalisation {value!r}: expected one of {', '.join(NORMALISATIONS)} or 'MEAN,STD' in pixel units "
            "(e.g. '127.5,127.5')."
        ) from None
    if std == 0:
        raise FiqaError(f"normalisation {value!r}: std must not be 0.")
    return mean, std


def parse_colour(value: str) -> Literal["RGB", "BGR"]:
    text = str(value).strip().upper()
    if text not in ("RGB", "BGR"):
        raise FiqaError(f"colour {value!r}: expected RGB or BGR.")
    return text  # type: ignore[return-value]


def parse_flip(value: Any) -> FlipMode:
    """flip_tta option: False/"none", True/"concat" (REFERENCE 5), or "sum"."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "concat"
    text = str(value).strip().lower()
    if text in ("none", "false", "0", "off", "no"):
        return "none"
    if text in ("concat", "true", "1", "on", "yes"):
        return "concat"
    if text == "sum":
        return "sum"
    raise FiqaError(f"flip_tta {value!r}: expected false, true/concat or sum.")


def combine_flip_np(emb: np.ndarray, emb_flip: np.ndarray, mode: FlipMode) -> np.ndarray:
    """Combine embeddings of images and their mirrors.

    concat: [e/|e|, f/|f|] (2D): the reference evaluation's form; its cosine is the mean of the two
            normalised cosines, and its norm is always sqrt(2) - so norm-based quality is lost.
    sum:    e + f (D), raw: insightface's verification form; keeps a meaningful magnitude.
    """
    if mode == "sum":
        return emb + emb_flip
    n1 = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    n2 = emb_flip / np.maximum(np.linalg.norm(emb_flip, axis=1, keepdims=True), 1e-12)
    return np.concatenate([n1, n2], axis=1)


def flip_embedding_size(size: int | None, mode: FlipMode) -> int | None:
    return size * 2 if (size and mode == "concat") else size


def check_size(images: np.ndarray, size: tuple[int, int], name: str) -> None:
    if tuple(images.shape[1:3]) != tuple(size):
        raise FiqaError(
            f"{name}: expects aligned faces of {size[0]}x{size[1]} pixels, got {images.shape[1]}x{images.shape[2]}. "
            "Align the images to the ArcFace 112x112 template first (fiqa_bench.faces.align)."
        )


def _optional_threads(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("", "none", "auto", "0"):
        return None
    n = int(value)
    if n < 1:
        raise ValueError("needs a positive integer (or none for ONNX Runtime's default)")
    return n


# Options shared by the FR-model cards (declared on each card; fiqa_bench.registry.Option).
FLIP_OPTION = Option(
    "flip_tta",
    "none",
    "flip test-time augmentation: false/none | true/concat ([e/|e|, f/|f|], the reference evaluation) | sum (e + f)",
    parse=parse_flip,
    choices=("none", "concat", "sum"),
)
PRECISION_OPTION = Option(
    "precision",
    "fp32",
    "precision of the forward pass (fp16: CUDA only)",
    parse=lambda v: str(v).strip().lower(),
    choices=("fp32", "bf16", "fp16"),
)
CHANNELS_LAST_OPTION = Option(
    "channels_last",
    True,
    "channels_last memory layout (speed only; default on)",
    parse=to_bool,
    fingerprint=False,
)
THREADS_OPTION = Option(
    "threads",
    None,
    "ONNX Runtime intra-op threads (speed only; default: its own choice)",
    parse=_optional_threads,
    fingerprint=False,
)
TORCH_MODEL_OPTIONS = (FLIP_OPTION, PRECISION_OPTION, CHANNELS_LAST_OPTION)
