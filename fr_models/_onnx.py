"""ONNX Runtime backend for FR models (SFace, any ``onnx:PATH`` model)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import CheckpointError, FiqaError
from fiqa_bench.registry import Card
from fiqa_bench.types import FRModel

from ._common import InputSpec, check_size, combine_flip_np, flip_embedding_size, parse_flip


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def open_session(path: str | Path, device: str = "cpu", threads: int | None = None) -> Any:
    """An onnxruntime InferenceSession, quiet, with ``threads`` intra-op threads (default: all cores, max 8)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = (
        3  # models exported by old converters list initialisers as inputs: noisy, harmless
    )
    opts.intra_op_num_threads = int(threads) if threads else min(8, os.cpu_count() or 1)
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=_providers(device))
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: cannot load this ONNX model ({first}). Check the file is a complete .onnx export."
        ) from None


class OnnxFRModel(FRModel):
    """Runs an ONNX FR model on RGB uint8 faces; the input layout (NCHW/NHWC) is read from the model.

    Options: ``flip_tta`` (False | True/"concat" | "sum"), ``threads`` (intra-op threads).
    """

    def __init__(
        self,
        card: Card,
        path: str | Path,
        spec: InputSpec,
        *,
        device: str = "cpu",
        flip_tta: Any = False,
        threads: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.card = card
        self.spec = spec
        self.device = str(device)
        self.weights_path = Path(path)
        self.session = open_session(path, device, threads)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        if len(shape) != 4:
            raise FiqaError(
                f"{path}: expected a 4-D image input, the model's input {inp.name!r} has shape {shape}."
            )
        self.channels_first = shape[1] == 3 or (shape[-1] != 3)
        # A fixed batch dimension (e.g. SFace's [1, 3, 112, 112]) means feeding that many at a time.
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.output_name = self.session.get_outputs()[0].name
        self.flip_mode = parse_flip(flip_tta)
        self.embedding_size = flip_embedding_size(card.embedding_size, self.flip_mode)
        self.options = {"flip_tta": self.flip_mode, **(options or {})}

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """RGB uint8 N x H x W x 3 -> float32 in the model's layout, colour order and normalisation."""
        if images.ndim == 3:
            images = images[None]
        check_size(images, self.spec.size, self.card.name)
        x = images[..., ::-1] if self.spec.colour == "BGR" else images
        x = (x.astype(np.float32) - np.float32(self.spec.mean)) * np.float32(1.0 / self.spec.std)
        if self.channels_first:
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x)

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self.fixed_batch or len(x)
        outs = [
            self.session.run([self.output_name], {self.input_name: x[i : i + step]})[0]
            for i in range(0, len(x), step)
        ]
        out = np.concatenate(outs).astype(np.float32, copy=False)
        return out.reshape(len(x), -1)

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        x = self.preprocess(images)
        emb = self._run(x)
        if self.flip_mode != "none":
            flipped = x[..., ::-1] if self.channels_first else x[:, :, ::-1, :]
            emb = combine_flip_np(emb, self._run(np.ascontiguousarray(flipped)), self.flip_mode)
        return emb

    def __repr__(self) -> str:
        return f"<OnnxFRModel {self.card.name} ({self.weights_path.name}) on {self.device}, flip={self.flip_mode}>"
