"""``evaluate``: every method x protocol x FMR target on one score set, as tidy rows and curve points;
plus the two small helpers the pipeline needs before it (pair quality, pair cosine similarity)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from ._core import (
    DEFAULT_DISCARD_LIMIT,
    DEFAULT_REJECT_FRACTIONS,
    EvaluationError,
    Scores,
    check_pairs,
    check_quality,
    nearest_fmr_thresholds,
)
from .points import CurvePoints
from .protocols import edc_note, erc_note
from .stats import Setup, method_arrays, percentile_ci, run_bootstrap, step_values

EDC_MAX_POINTS = 501  # curves.csv gets the exact EDC steps up to this many, else a 501-point grid


def pair_quality(image_quality: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pair quality = the lower of the two images' qualities (higher = better); the rule is
    :func:`fiqa_bench.types.pair_quality_min`."""
    from ..types import pair_quality_min

    q = np.asarray(image_quality)
    return pair_quality_min(q[np.asarray(a)], q[np.asarray(b)])


def normalised_pair_rows(emb: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Checked inputs of a pair-similarity computation: (L2-normalised rows, a, b, pairs per chunk of
    about 64 MB of gathered rows). Shared by the NumPy path here and the GPU path (fiqa_bench.similarity)."""
    e = np.asarray(emb)
    if e.ndim != 2:
        raise EvaluationError(f"embeddings must be a 2-D array (images x dims), got shape {e.shape}")
    if e.dtype not in (np.float32, np.float64):
        e = e.astype(np.float32)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise EvaluationError(f"pair index arrays must be 1-D and of equal length, got {a.shape} and {b.shape}")
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= len(e)):
        raise EvaluationError(f"pair indices out of range for {len(e)} embeddings")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    bad = ~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0))
    if bad.any():
        raise EvaluationError(f"{int(bad.sum())} embedding(s) have zero or non-finite norm (first: row {int(np.argmax(bad))})")
    return e / norms, a, b, (1 << 24) // max(1, e.shape[1])


def cosine_similarity_pairs(emb: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1_000_000) -> np.ndarray:
    """Cosine similarity of embedding rows a[i] and b[i], as float64.

    Rows are L2-normalised once; the dot products run over slices of at most ``chunk`` pairs (and at
    most ~64 MB of gathered rows per slice), so memory beyond the normalised copy is O(chunk x D).
    """
    e, a, b, max_step = normalised_pair_rows(emb, a, b)
    step = max(1, min(int(chunk), max_step))
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), step):
        out[s : s + step] = np.einsum("ij,ij->i", e[a[s : s + step]], e[b[s : s + step]])
    return out


def evaluate(
    similarity: np.ndarray,
    genuine: np.ndarray,
    qualities: Mapping[str, np.ndarray],
    fmrs: Sequence[float],
    *,
    folds: np.ndarray | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    discard_limit: float = DEFAULT_DISCARD_LIMIT,
    fractions: np.ndarray = DEFAULT_REJECT_FRACTIONS,
    normalised: bool = False,
    progress: bool = False,
    threads: int | None = None,
) -> tuple[list[dict[str, Any]], CurvePoints]:
    """ERC (recomputed threshold) and EDC (fixed threshold) for every method and FMR target.

    Methods are evaluated ``threads`` at a time (default: the CPUs this process may use, at most 8;
    NumPy's sorts and gathers release the GIL), with identical results in the same order.

    ``qualities`` maps method name -> PAIR quality (higher = better). Without bootstrap the methods
    are read one at a time, so a lazy mapping keeps memory at one method's arrays.

    Returns (rows, curve points). Row keys: method, protocol, fmr, auc, ci_low, ci_high (NaN without
    bootstrap), n_pairs, n_genuine, n_impostor, fmr_resolvable, achieved_fmr, threshold, fnmr_at_0,
    reject_max (ERC; NaN for EDC), discard_limit (EDC; NaN for ERC), normalised (EDC pAUC minus the
    ideal curve's area), n_bootstrap, note. Curve points (``CurvePoints``: column blocks; ``to_frame()``
    for the table, iteration for one dict per point): method, protocol, fmr, fraction, fnmr
    (+ fnmr_lo, fnmr_hi: pointwise 2.5/97.5 percentiles when bootstrap > 0). ERC points are the
    reject fractions; EDC points are the curve's steps (read them as a step function, "steps-post"),
    or a 501-point grid of the step function when it has more steps than that.
    """
    sim, gen = check_pairs(similarity, genuine)
    setup = Setup.make(fmrs, fractions, discard_limit, normalised)
    if bootstrap < 0:
        raise EvaluationError(f"bootstrap must be >= 0, got {bootstrap}")
    sc = Scores.build(sim, gen, checked=True)
    edc_thr = nearest_fmr_thresholds(sc.imp_neg, setup.fmrs)
    names = list(qualities)
    rows: list[dict[str, Any]] = []
    points = CurvePoints()
    edc_at: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    base = {"n_pairs": sc.n, "n_genuine": sc.n_gen, "n_impostor": sc.n_imp, "n_bootstrap": int(bootstrap)}
    nan = float("nan")
    for name, q, (erc, edc) in _method_arrays_in_threads(sc, qualities, names, setup, edc_thr, threads):
        if bootstrap:
            kept.append(q)
        at = edc.at
        edc_at.append(at)
        edc_on = step_values(edc.x, edc.fnmr, at)
        for t, f in enumerate(setup.fmrs):
            f = float(f)
            resolvable = bool(f * sc.n_imp >= 1)
            a_erc = float(erc.accepted0[t] / erc.n_imp[0]) if erc.n_imp[0] else nan
            a_edc = float(edc.accepted[t] / sc.n_imp)
            common = {"method": name, "fmr": f, "ci_low": nan, "ci_high": nan, **base, "fmr_resolvable": resolvable}
            rows.append(
                {
                    **common,
                    "protocol": "ERC",
                    "auc": float(erc.auc[t]),
                    "achieved_fmr": a_erc,
                    "threshold": float(erc.threshold0[t]),
                    "fnmr_at_0": float(erc.fnmr[t, 0]),
                    "reject_max": float(setup.fractions[-1]),
                    "discard_limit": nan,
                    "normalised": False,
                    "note": erc_note(f, erc.n_imp, erc.n_gen, setup.fractions, a_erc),
                }
            )
            rows.append(
                {
                    **common,
                    "protocol": "EDC",
                    "auc": float(edc.auc[t]),
                    "achieved_fmr": a_edc,
                    "threshold": float(edc.threshold[t]),
                    "fnmr_at_0": float(edc.fnmr[t, 0]),
                    "reject_max": nan,
                    "discard_limit": setup.discard_limit,
                    "normalised": setup.normalised,
                    "note": edc_note(f, sc.n_imp, a_edc, None),
                }
            )
            points.add(name, "ERC", f, setup.fractions, erc.fnmr[t])
            points.add(name, "EDC", f, at, edc_on[t])
        del q
    if bootstrap and names:
        _add_bootstrap(rows, points, sim, gen, kept, setup, folds, bootstrap, seed, edc_at, progress)
    return rows, points


def default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _method_arrays_in_threads(
    sc: Scores,
    qualities: Mapping[str, np.ndarray],
    names: list[str],
    setup: Setup,
    edc_thr: tuple[np.ndarray, np.ndarray],
    threads: int | None,
) -> Iterator[tuple[str, np.ndarray, Any]]:
    """(name, quality, (ERC, EDC arrays)) in the order of ``names``. Qualities are read here, in the
    caller's thread (a lazy mapping need not be thread-safe), and at most ``threads`` methods are in
    flight, so memory stays at that many methods' arrays."""
    n_threads = default_threads() if threads is None else max(1, int(threads))
    n_threads = min(n_threads, max(1, len(names)))

    def arrays(q: np.ndarray) -> Any:
        return method_arrays(sc, q, setup, edc_thr, edc_max_points=EDC_MAX_POINTS)

    if n_threads == 1:
        for name in names:
            q = check_quality(qualities[name], sc.n, f"quality {name!r}")
            yield name, q, arrays(q)
        return
    pending: deque[tuple[str, np.ndarray, Future[Any]]] = deque()
    with ThreadPoolExecutor(n_threads, thread_name_prefix="fiqa-eval") as pool:
        for name in names:
            q = check_quality(qualities[name], sc.n, f"quality {name!r}")
            pending.append((name, q, pool.submit(arrays, q)))
            if len(pending) >= n_threads:
                done_name, done_q, fut = pending.popleft()
                yield done_name, done_q, fut.result()
        while pending:
            done_name, done_q, fut = pending.popleft()
            yield done_name, done_q, fut.result()


def _add_bootstrap(
    rows: list[dict[str, Any]],
    points: CurvePoints,
    sim: np.ndarray,
    gen: np.ndarray,
    qualities: list[np.ndarray],
    setup: Setup,
    folds: np.ndarray | None,
    n: int,
    seed: int,
    edc_at: list[np.ndarray],
    progress: bool,
) -> None:
    res = run_bootstrap(sim, gen, qualities, setup, folds=folds, n=n, seed=seed, edc_at=edc_at, keep_curves=True, progress=progress)
    assert res.erc_fnmr is not None and res.edc_fnmr is not None
    n_t = len(setup.fmrs)
    erc_lo, erc_hi = percentile_ci(res.erc_auc)  # methods x targets
    edc_lo, edc_hi = percentile_ci(res.edc_auc)
    band_erc = percentile_ci(res.erc_fnmr)  # methods x targets x fractions
    # rows come as (method, target, ERC/EDC); point blocks as (method, target, ERC/EDC) too
    i = 0
    for m in range(len(qualities)):
        band_edc = percentile_ci(res.edc_fnmr[m])  # targets x points
        for t in range(n_t):
            for k, (lo, hi, aucs) in enumerate(((erc_lo, erc_hi, res.erc_auc), (edc_lo, edc_hi, res.edc_auc))):
                row = rows[i + k]
                row["ci_low"], row["ci_high"] = float(lo[m, t]), float(hi[m, t])
                undefined = int(np.count_nonzero(~np.isfinite(aucs[:, m, t])))
                if undefined:
                    extra = f"{undefined} of {n} bootstrap resamples undefined, left out of the interval"
                    row["note"] = f"{row['note']}; {extra}" if row["note"] else extra
                block = points.blocks[i + k]
                band = (band_erc[0][m, t], band_erc[1][m, t]) if k == 0 else (band_edc[0][t], band_edc[1][t])
                block.fnmr_lo, block.fnmr_hi = (np.asarray(b, dtype=np.float64) for b in band)
            i += 2
