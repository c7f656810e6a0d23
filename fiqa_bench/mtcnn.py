"""MTCNN face detector (facenet-pytorch's implementation and its shipped P/R/O-net weights).

Same interface as :class:`fiqa_bench.faces.YuNetDetector`: ``detect(rgb) -> list[Detection]`` with
boxes as x, y, w, h and landmarks in ArcFace-template order. facenet-pytorch returns boxes as
x1, y1, x2, y2 and landmarks as (image-left eye, image-right eye, nose, image-left mouth corner,
image-right mouth corner) - the template's order already, so only the box is converted.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .errors import import_optional
from .faces import Detection

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0 (ships the MTCNN weights)"


class MTCNNDetector:
    """facenet_pytorch.MTCNN(keep_all=True). One shared network; calls are serialised by a lock."""

    name = "mtcnn"

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
    ) -> None:
        MTCNN = import_optional(
            "facenet_pytorch", "MTCNN face detector", "facenet-pytorch", INSTALL_HINT
        ).MTCNN
        self._net: Any = MTCNN(
            keep_all=True, device=device, min_face_size=min_face_size, thresholds=list(thresholds)
        )
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import torch

        img = np.ascontiguousarray(rgb)
        with self._lock, torch.inference_mode():
            # MTCNN runs many tiny convolutions; torch's thread pool costs more than it gains there
            # (10-20x slower on a busy 2-core machine), so one thread while detecting.
            prev = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                boxes, probs, points = self._net.detect(img, landmarks=True)
            finally:
                torch.set_num_threads(prev)
        if boxes is None or points is None:
            return []
        out = []
        for box, prob, lm in zip(boxes, probs, points, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                Detection(
                    box=np.array([x1, y1, x2 - x1, y2 - y1], np.float32),
                    landmarks=np.asarray(lm, dtype=np.float32).reshape(5, 2),
                    score=float(prob),
                )
            )
        return out
