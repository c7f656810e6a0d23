"""Detector confidence: YuNet's face score as a quality measure."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.faces import YUNET_WEIGHTS
from fiqa_bench.registry import Card, Option, register_method

from ._common import CROP_PAD, BaseMethod, detect_on_crops

YUNET_CARD = Card(
    name="yunet_confidence",
    kind="method",
    summary="YuNet face-detector confidence (from on-the-fly alignment when available, else re-detected on the crop)",
    aliases=("detector_confidence", "det_score"),
    paper="Wu, Peng, Yu, YuNet: A Tiny Millisecond-level Face Detector, Machine Intelligence Research 2023",
    licence="MIT (YuNet model, OpenCV Zoo); Apache-2.0 (fiqa-bench wrapper)",
    input_size=(112 + 2 * CROP_PAD, 112 + 2 * CROP_PAD),
    colour="BGR inside OpenCV (converted from RGB in fiqa_bench.faces)",
    normalisation=f"aligned crop framed by {CROP_PAD} px of black on each side, raw 0..255 pixels",
    score_direction="higher_better",
    weights=(YUNET_WEIGHTS,),
    exempt_degradations=(),
    options=(
        Option(
            "use_meta",
            True,
            "use the dataset's own detector score where it has one (false: re-detect on the crop)",
        ),
    ),
    notes=(
        "Score in [0, 1]. If the dataset aligned the faces itself (meta 'det_score', e.g. the lfw folder "
        "dataset), that score of the ORIGINAL photo is used (0 for photos where no face was found); "
        "otherwise YuNet runs on the aligned crop in a black frame (28 px; measured to find every face of "
        "40 aligned LFW crops) with threshold 0 and the candidate closest to the template position is "
        "taken; no candidate -> 0. Option use_meta=False forces re-detection on the crop."
    ),
)


class YuNetConfidence(BaseMethod):
    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        if self.options["use_meta"] and meta is not None and "det_score" in meta:
            return np.asarray(meta["det_score"], dtype=np.float64)
        scores, _ = detect_on_crops(images)
        return scores


register_method(YUNET_CARD)(YuNetConfidence)
