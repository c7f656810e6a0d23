"""A torch FR model: an ``nn.Module`` in eval mode plus its card's input conversion.

Contract used by methods (SER-FIQ, GraFIQs, CR-FIQA): ``model.torch_module`` (the nn.Module, eval mode,
on ``model.device``), ``model.preprocess(images)`` (RGB uint8 N x H x W x 3 -> normalised float tensor
N x 3 x H x W on ``model.device``) and ``model.device`` (a string such as "cpu" or "cuda:0").
``model.autocast()`` is the precision context ``embed`` uses, for callers that run the module themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Card
from fiqa_bench.types import FRModel

from ._common import FlipMode, InputSpec, check_size, flip_embedding_size, parse_flip

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_options(card: Card, device: str, flip_tta: Any, precision: str) -> tuple[FlipMode, str]:
    """Validate the wrapper's options (cheap: factories call it before reading a big checkpoint)."""
    flip = parse_flip(flip_tta)
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise FiqaError(f"{card.name}: precision {precision!r}: expected one of {', '.join(PRECISIONS)}.")
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise FiqaError(f"{card.name}: precision fp16 needs a CUDA device (use bf16 or fp32 on CPU).")
    return flip, precision


class TorchFRModel(FRModel):
    """Options: ``flip_tta`` (False | True/"concat" | "sum"), ``precision`` ("fp32" | "bf16" | "fp16"),
    ``channels_last`` (default on: faster on CUDA and, measured here, on CPU with oneDNN too)."""

    def __init__(
        self,
        card: Card,
        module: nn.Module,
        spec: InputSpec,
        *,
        weights_path: str | Path | None = None,
        device: str = "cpu",
        flip_tta: Any = False,
        precision: str = "fp32",
        channels_last: bool | None = None,
        output_index: int | None = 0,
    ) -> None:
        self.card = card
        self.spec = spec
        self.device = str(device)
        self.weights_path = Path(weights_path) if weights_path else None
        self.flip_mode, precision = check_options(card, self.device, flip_tta, precision)
        self._cuda = self.device.startswith("cuda")
        self.precision = precision
        self.channels_last = True if channels_last is None else bool(channels_last)
        # A module returning (embedding, quality) - CR-FIQA - is read at ``output_index``.
        self.output_index = output_index
        module = module.eval().to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.torch_module = module
        self.embedding_size = flip_embedding_size(card.embedding_size, self.flip_mode)
        # Everything that changes the numbers (cache key); channels_last / device do not, beyond rounding.
        self.options = {"flip_tta": self.flip_mode, "precision": precision}
        # Constants of the input conversion, on the device once.
        self._scale = torch.tensor(1.0 / spec.std, device=self.device)
        self._shift = torch.tensor(-spec.mean / spec.std, device=self.device)

    # -- input ------------------------------------------------------------------------------
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 N x H x W x 3 -> float32 N x 3 x H x W, channel order and normalisation of the card."""
        if images.ndim == 3:
            images = images[None]
        check_size(images, self.spec.size, self.card.name)
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        if self.spec.colour == "BGR":
            x = x.flip(-1)
        # uint8 NHWC -> float NCHW; permute is a view, so the result is channels_last in memory for free.
        x = x.permute(0, 3, 1, 2).float()
        x = torch.addcmul(self._shift, x, self._scale)  # (x - mean) / std in one pass
        if not self.channels_last:
            x = x.contiguous()
        else:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            yield
            return
        with torch.autocast(device_type="cuda" if self._cuda else "cpu", dtype=dtype):
            yield

    # -- forward ----------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            out = self.torch_module(x)
        if isinstance(out, (tuple, list)):
            out = out[self.output_index or 0]
        return out.float()

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = self.preprocess(images)
            emb = self._forward(x)
            if self.flip_mode != "none":
                emb_flip = self._forward(x.flip(3))
                if self.flip_mode == "sum":
                    emb = emb + emb_flip
                else:
                    emb = torch.cat(
                        [
                            torch.nn.functional.normalize(emb, dim=1),
                            torch.nn.functional.normalize(emb_flip, dim=1),
                        ],
                        1,
                    )
            return emb.cpu().numpy()

    def __repr__(self) -> str:
        w = self.weights_path.name if self.weights_path else "random weights"
        return f"<{type(self).__name__} {self.card.name} ({w}) on {self.device}, {self.precision}, flip={self.flip_mode}>"
