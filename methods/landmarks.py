"""Geometric measures from the five facial landmarks: inter-eye distance and head pose (yaw/pitch)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.errors import UnsupportedCombinationError
from fiqa_bench.registry import Card, Option, register_method

from ._common import BaseMethod, detect_on_crops

_ALL = ("blur", "jpeg", "downscale", "occlude_eyes", "darken", "noise")

IED_CARD = Card(
    name="inter_eye_distance",
    kind="method",
    summary="distance between the eye centres in the ORIGINAL photo's pixels (face resolution)",
    aliases=("ied", "eye_distance"),
    paper="ISO/IEC 29794-5 / OFIQ (inter-eye distance as a resolution measure)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    input_size=None,
    normalisation="landmarks from the dataset (meta 'landmarks', N x 5 x 2 in source pixels, template order)",
    score_direction="higher_better",
    exempt_degradations=_ALL,
    notes=(
        "Needs the landmarks of the original photo, which datasets that align on the fly provide (lfw "
        "folder form); a photo where no face was found scores 0 (worst). On already-aligned sets (.bin) every crop has the template's 35.2 px by "
        "construction, so the method raises a clear error there instead of returning a constant. Blind "
        "by design to every pixel degradation of the aligned crop (all exempt); it falls with the "
        "photo's resolution (tested by downscaling the original photo)."
    ),
)

HEAD_POSE_CARD = Card(
    name="head_pose",
    kind="method",
    summary="deviation from frontal pose, sqrt(yaw^2 + pitch^2) in degrees, estimated from the 5 landmarks",
    aliases=("pose", "frontality"),
    paper="landmark-geometry pose proxy (cf. OFIQ head pose; ISO/IEC 29794-5); constants are anthropometric approximations (unverified)",
    licence="Apache-2.0 (fiqa-bench implementation)",
    input_size=(112, 112),
    normalisation=(
        "landmarks from the dataset (meta 'landmarks') or from YuNet on the aligned crop; frame rotated so "
        "the eyes are horizontal. yaw = atan(a / 0.5), a = nose offset from the eye midpoint along the eye "
        "line / inter-eye distance; pitch = atan((0.56 - r) / 0.5), r = nose depth below the eye line / "
        "eye-to-mouth distance (0.56 = median of YuNet landmarks on 464 LFW photos)"
    ),
    score_direction="lower_better",
    exempt_degradations=_ALL,
    options=(
        Option(
            "component",
            "both",
            "which angle: both (sqrt(yaw^2 + pitch^2)), yaw or pitch",
            choices=("both", "yaw", "pitch"),
        ),
    ),
    notes=(
        "Similarity-invariant, so aligned crops keep the pose signal (yaw shows as nose offset from the eye "
        "midpoint). No face (the dataset found none, or YuNet scores the crop below 0.6) gets 90 degrees (worst). Option component: both | yaw | "
        "pitch. Blind to pixel degradations by design (all exempt). The 0.5 nose-depth ratios and the 0.56 frontal reference are "
        "approximate anthropometric constants: the angles are a monotone proxy, not calibrated degrees."
    ),
)

# Frontal reference of r for YuNet landmarks (the detector fiqa-bench uses everywhere): the median
# over 464 LFW photos (every 5th file; LFW is mostly near-frontal). The ArcFace template's own ratio
# is 0.495, but YuNet places the nose tip lower, so the template would call every face "looking down".
FRONTAL_PITCH_RATIO = 0.56
YAW_DEPTH = 0.5  # nose-tip protrusion / inter-eye distance (approximate)
PITCH_DEPTH = 0.5  # nose-tip protrusion / eye-to-mouth distance (YuNet: eye-to-mouth ~ 1.0 x IED)
# YuNet's own default score threshold: below it a candidate on an aligned crop is not taken as a face
# (aligned LFW faces score >= 0.78 with the crop padding; flat or faceless crops score far lower).
MIN_FACE_SCORE = 0.6


def pose_from_landmarks(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(yaw, pitch) in degrees from N x 5 x 2 landmarks (template order); NaN rows stay NaN."""
    lm = np.asarray(lm, dtype=np.float64)
    eye_l, eye_r, nose, mouth_l, mouth_r = (lm[:, k] for k in range(5))
    eye_mid, mouth_mid = (eye_l + eye_r) / 2, (mouth_l + mouth_r) / 2
    d = eye_r - eye_l
    ied = np.linalg.norm(d, axis=1)
    u = d / np.where(ied > 0, ied, np.nan)[:, None]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)  # perpendicular, pointing down the face (image y down)
    height = np.einsum("ij,ij->i", mouth_mid - eye_mid, v)
    a = np.einsum("ij,ij->i", nose - eye_mid, u) / ied
    r = np.einsum("ij,ij->i", nose - eye_mid, v) / np.where(np.abs(height) > 0, height, np.nan)
    yaw = np.degrees(np.arctan(a / YAW_DEPTH))
    pitch = np.degrees(np.arctan((FRONTAL_PITCH_RATIO - r) / PITCH_DEPTH))
    return yaw, pitch


class InterEyeDistance(BaseMethod):
    WORST = 0.0  # no face found

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        if meta is None or "landmarks" not in meta:
            raise UnsupportedCombinationError(
                "inter_eye_distance needs the original photo's landmarks (meta 'landmarks'), which this dataset "
                "does not provide: its faces are already aligned, so every crop has the template's inter-eye "
                "distance. Use it with a dataset aligned on the fly (e.g. the lfw folder form) or drop it from --methods."
            )
        lm = np.asarray(meta["landmarks"], dtype=np.float64)
        ied = np.linalg.norm(lm[:, 1] - lm[:, 0], axis=1)
        return np.where(np.isfinite(ied), ied, self.WORST)  # no face found (NaN landmarks): worst


class HeadPose(BaseMethod):
    WORST = 90.0

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        if meta is not None and "landmarks" in meta:
            lm = np.asarray(meta["landmarks"], dtype=np.float64)  # NaN where the dataset found no face
        else:
            score, lm = detect_on_crops(images)
            # The crop detector returns every candidate (threshold 0) so that yunet_confidence can grade
            # poor faces; a pose needs a real face, so weak candidates count as "no face" (worst).
            lm[score < MIN_FACE_SCORE] = np.nan
        yaw, pitch = pose_from_landmarks(lm)
        comp = self.options["component"]
        dev = np.abs(yaw) if comp == "yaw" else np.abs(pitch) if comp == "pitch" else np.hypot(yaw, pitch)
        return np.where(np.isfinite(dev), dev, self.WORST)


register_method(IED_CARD)(InterEyeDistance)
register_method(HEAD_POSE_CARD)(HeadPose)
