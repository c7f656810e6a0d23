"""Cheap, honest image measures on the face region of the aligned crop: sharpness, exposure, contrast.

All three work on the luma (BT.601) of the face region (rows 28..107, cols 20..91 of the 112x112
crop: the face without the background corners and black warp borders).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from fiqa_bench.registry import Card, register_method

from ._common import BaseMethod, face_region, grey

_REGION = "luma (BT.601) of the face region, rows 28..107 x cols 20..91 of the 112x112 aligned crop"

SHARPNESS_CARD = Card(
    name="sharpness",
    kind="method",
    summary="variance of the Laplacian of the face region (focus measure)",
    aliases=("laplacian_variance", "blur"),
    paper="Pech-Pacheco et al., Diatom autofocusing in brightfield microscopy, ICPR 2000 (variance of the Laplacian)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    normalisation=f"{_REGION}, float in [0, 255]; 3x3 Laplacian kernel [[0,1,0],[1,-4,1],[0,1,0]] (cv2 ksize=1) on the whole crop, variance over the face region",
    score_direction="higher_better",
    exempt_degradations=("jpeg", "noise", "occlude_eyes"),
    notes=(
        "Measures high-frequency energy: additive noise, JPEG block edges and the hard edges of an "
        "occluding bar raise it by design (exempt: jpeg, noise, occlude_eyes). Unbounded; scale depends "
        "on image content."
    ),
)

EXPOSURE_CARD = Card(
    name="exposure",
    kind="method",
    summary="well-exposedness: mean of exp(-(L-0.5)^2 / (2*0.2^2)) over the face region, L = luma/255",
    aliases=("well_exposedness", "brightness"),
    paper="Mertens, Kautz, Van Reeth, Exposure Fusion, Pacific Graphics 2007 (well-exposedness weight, sigma 0.2)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    normalisation=f"{_REGION}, scaled to [0, 1]",
    score_direction="higher_better",
    exempt_degradations=("blur", "jpeg", "downscale", "noise"),
    notes=(
        "In (0, 1]: 1 when every face pixel is mid-grey, small for under- or over-exposed faces. Blind by "
        "design to blur, JPEG, downscaling and zero-mean noise (they keep the brightness distribution). "
        "Flat mid-grey scores high: pair it with contrast."
    ),
)

CONTRAST_CARD = Card(
    name="contrast",
    kind="method",
    summary="RMS contrast: standard deviation of luma/255 over the face region",
    aliases=("rms_contrast",),
    paper="Peli, Contrast in complex images, JOSA A 1990 (RMS contrast)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    normalisation=f"{_REGION}, scaled to [0, 1]",
    score_direction="higher_better",
    exempt_degradations=("jpeg", "noise", "occlude_eyes"),
    notes=(
        "In [0, 0.5]. Lowered by darkening, blur and downscaling (fine detail carries part of the spread); "
        "JPEG keeps the block means, noise and a black bar increase the spread by design (exempt)."
    ),
)


class Sharpness(BaseMethod):
    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        g = grey(images)
        lap = np.stack([cv2.Laplacian(x, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT) for x in g])
        return face_region(lap).reshape(len(images), -1).var(axis=1)


class Exposure(BaseMethod):
    SIGMA = 0.2

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        lum = face_region(grey(images)) / 255.0
        w = np.exp(-((lum - 0.5) ** 2) / (2 * self.SIGMA**2))
        return w.reshape(len(images), -1).mean(axis=1)


class Contrast(BaseMethod):
    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        lum = face_region(grey(images)) / 255.0
        return lum.reshape(len(images), -1).std(axis=1)


register_method(SHARPNESS_CARD)(Sharpness)
register_method(EXPOSURE_CARD)(Exposure)
register_method(CONTRAST_CARD)(Contrast)
