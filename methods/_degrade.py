"""Controlled image degradations for tests, demos and sanity checks of quality methods.

Each function takes one RGB uint8 image (H x W x 3, normally a 112x112 aligned face) and an optional
strength, and returns a new RGB uint8 image of the same size. Defaults are deliberately strong: they
are meant to make a face clearly worse, not to model a subtle capture defect.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

# ArcFace template eye centres in 112x112 pixels (left eye, right eye of the image).
_EYES_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014]], dtype=np.float64)


def _check(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected one RGB uint8 image H x W x 3, got {arr.shape} {arr.dtype}")
    return arr


def blur(image: np.ndarray, strength: float = 4.0) -> np.ndarray:
    """Gaussian blur with sigma = ``strength`` pixels (kernel covers +-3 sigma)."""
    img = _check(image)
    k = 2 * int(np.ceil(3 * strength)) + 1
    return cv2.GaussianBlur(
        img, (k, k), sigmaX=float(strength), sigmaY=float(strength), borderType=cv2.BORDER_REFLECT
    )


def jpeg(image: np.ndarray, strength: float = 5) -> np.ndarray:
    """Re-encode as JPEG with quality ``strength`` (1..100; 5 = heavy blocking)."""
    img = _check(image)
    ok, buf = cv2.imencode(
        ".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(strength)]
    )
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def downscale(image: np.ndarray, strength: float = 4.0) -> np.ndarray:
    """Downscale by ``strength`` (area averaging), then upscale back (bilinear): lost resolution."""
    img = _check(image)
    h, w = img.shape[:2]
    small = cv2.resize(
        img, (max(1, round(w / strength)), max(1, round(h / strength))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def occlude_eyes(image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Black bar over both eyes at the ArcFace template positions (the image must be aligned).

    The bar spans the eye centres +- 16 px horizontally and +- 10 px vertically (at 112x112, scaled by
    the image size and by ``strength``).
    """
    img = _check(image).copy()
    h, w = img.shape[:2]
    sx, sy = w / 112.0, h / 112.0
    x0 = int(np.floor((_EYES_112[0, 0] - 16 * strength) * sx))
    x1 = int(np.ceil((_EYES_112[1, 0] + 16 * strength) * sx))
    yc = _EYES_112[:, 1].mean()
    y0 = int(np.floor((yc - 10 * strength) * sy))
    y1 = int(np.ceil((yc + 10 * strength) * sy))
    img[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)] = 0
    return img


def darken(image: np.ndarray, strength: float = 0.25) -> np.ndarray:
    """Multiply intensities by ``strength`` (0.25 = two stops under-exposed)."""
    img = _check(image)
    return np.clip(np.rint(img.astype(np.float32) * float(strength)), 0, 255).astype(np.uint8)


def noise(image: np.ndarray, strength: float = 25.0, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise with standard deviation ``strength`` grey levels (seeded: reproducible)."""
    img = _check(image)
    rng = np.random.default_rng(seed)
    noisy = img.astype(np.float32) + rng.normal(0.0, float(strength), img.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


DEGRADATIONS: dict[str, Callable[..., np.ndarray]] = {
    "blur": blur,
    "jpeg": jpeg,
    "downscale": downscale,
    "occlude_eyes": occlude_eyes,
    "darken": darken,
    "noise": noise,
}


def apply(name: str, images: np.ndarray, strength: float | None = None) -> np.ndarray:
    """Degrade every image of an N x H x W x 3 batch with the named degradation."""
    fn = DEGRADATIONS[name]
    return np.stack([fn(im) if strength is None else fn(im, strength) for im in np.asarray(images)])
