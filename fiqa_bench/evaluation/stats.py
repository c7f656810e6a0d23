"""Bootstrap confidence intervals and the paired bootstrap test for ERC/EDC areas.

Resampling: pairs are drawn with replacement inside each stratum, a stratum being one (fold, genuine
or impostor) cell, so every resample keeps the fold structure and the numbers of genuine and impostor
pairs (and hence the FMR resolution) of the data. Resamples come from ``np.random.default_rng(seed)``
drawing positions in each stratum, whose pairs are put in a canonical order first (similarity, then
the qualities), so no interval depends on the order of rows. Where similarity scores are distinct the
order ignores the qualities and the same seed gives the same resamples to every method:
``evaluate``'s intervals, ``bootstrap_auc`` and ``paired_bootstrap`` agree.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from ._core import (
    DEFAULT_DISCARD_LIMIT,
    EvaluationError,
    Scores,
    check_fmrs,
    check_fractions,
    check_pairs,
    check_quality,
)
from .registry import Context, get_protocol


def strata(
    genuine: np.ndarray, folds: np.ndarray | None, keys: Sequence[np.ndarray] = ()
) -> list[np.ndarray]:
    """Pair indices per (fold, genuine) cell, cells in sorted order; inside a cell the pairs are ordered
    by ``keys`` (first key first; e.g. similarity, then each quality), so that the resamples do not
    depend on the order of rows: pairs equal in every key are interchangeable. Without keys: row order."""
    n = len(genuine)
    if folds is None:
        fold_codes = np.zeros(n, dtype=np.int64)
    else:
        f = np.asarray(folds)
        if f.shape != (n,):
            raise EvaluationError(f"folds must give one fold per pair: expected shape ({n},), got {f.shape}")
        fold_codes = np.unique(f, return_inverse=True)[1].reshape(-1)
    key = fold_codes * 2 + genuine.astype(np.int64)
    order = (
        np.lexsort((*reversed([np.asarray(k) for k in keys]), key))
        if keys
        else np.argsort(key, kind="stable")
    )
    cuts = np.flatnonzero(np.diff(key[order])) + 1
    return np.split(order, cuts)


def resamples(
    genuine: np.ndarray, folds: np.ndarray | None, n: int, seed: int, keys: Sequence[np.ndarray] = ()
) -> Iterator[np.ndarray]:
    """``n`` seeded index arrays, each a with-replacement draw inside every (fold, label) stratum
    (pairs inside a stratum ordered by ``keys``, see ``strata``)."""
    cells = strata(genuine, folds, keys)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield np.concatenate([c[rng.integers(0, len(c), len(c))] for c in cells])


def step_values(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Value of the step curve (y[k] on [x[k], x[k+1])) at the points ``at``; y may be 2-D (rows)."""
    return y[..., np.searchsorted(x, at, side="right") - 1]


def percentile_ci(values: np.ndarray, level: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval ignoring NaN resamples (NaN where every resample is NaN)."""
    a = (1 - level) / 2 * 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give NaN, which is what we want
        lo = np.nanpercentile(values, a, axis=axis)
        hi = np.nanpercentile(values, 100 - a, axis=axis)
    return lo, hi


def _registered(protocol: str) -> str:
    """A registry name, matched case-insensitively (reports show protocol names upper-case)."""
    from .registry import protocol_names

    names = protocol_names()
    if protocol in names:
        return protocol
    if protocol.lower() in names:
        return protocol.lower()
    raise EvaluationError(f"unknown protocol {protocol!r}; known: {', '.join(names)}")


def _single_fmr(fmr: float) -> np.ndarray:
    f = check_fmrs(fmr)
    if len(f) != 1:
        raise EvaluationError("give one FMR target for a bootstrap of one curve")
    return f


def _context(sc: Scores, fmr: float, kw: dict[str, object]) -> Context:
    from .edc_rules import check_limits, check_starting_errors

    limit = kw.get("discard_limit", DEFAULT_DISCARD_LIMIT)
    fractions = kw.get("fractions")
    return Context(
        sc=sc,
        fmrs=_single_fmr(fmr),
        fractions=check_fractions(fractions) if fractions is not None else None,  # type: ignore[arg-type]
        discard_limits=check_limits(limit),  # type: ignore[arg-type]
        starting_errors=check_starting_errors(kw.get("starting_error")),  # type: ignore[arg-type]
        normalised=bool(kw.get("normalised", False)),
    )


def _areas(
    sim: np.ndarray,
    gen: np.ndarray,
    qs: list[np.ndarray],
    protocol: str,
    fmr: float,
    folds: np.ndarray | None,
    n: int,
    seed: int,
    kw: dict[str, object],
) -> tuple[np.ndarray, np.ndarray]:
    """(point areas per method, resamples x methods areas) of the first row of ``protocol``."""
    name = _registered(protocol)
    proto = get_protocol(name)
    if proto.kind == "verification":
        raise EvaluationError(f"protocol {name!r} has no area to bootstrap (verification accuracy)")
    if n < 1:
        raise EvaluationError(f"bootstrap needs at least 1 resample, got {n}")
    ctx = _context(Scores.build(sim, gen, checked=True), fmr, kw)
    point = np.array([proto.runner(ctx, q)[0].auc for q in qs])
    out = np.full((n, len(qs)), np.nan)
    progress = bool(kw.get("progress", False))
    it = resamples(gen, folds, n, seed, (sim, *qs))  # pairs in a canonical order: no row order
    for b, idx in enumerate(
        tqdm(it, total=n, desc="bootstrap", unit="resample", disable=None if progress else True)
    ):
        ctx_b = Context(
            Scores.build(sim[idx], gen[idx], checked=True),
            ctx.fmrs,
            ctx.fractions,
            ctx.discard_limits,
            ctx.starting_errors,
            ctx.normalised,
        )
        for j, q in enumerate(qs):
            out[b, j] = proto.runner(ctx_b, q[idx])[0].auc
    return point, out


def bootstrap_auc(
    similarity: np.ndarray,
    genuine: np.ndarray,
    pair_quality: np.ndarray,
    fmr: float,
    protocol: str,
    *,
    folds: np.ndarray | None = None,
    n: int = 1000,
    seed: int = 0,
    **kw: object,
) -> tuple[float, float, np.ndarray]:
    """95% percentile interval of the area of ``protocol`` (a registry name, any case) and the ``n``
    bootstrap values.

    Keywords: fractions, discard_limit, starting_error, normalised (as for ``evaluate``), progress.
    Resamples in which the area is undefined (NaN) are kept in the returned array and left out of the
    interval. Same resamples as ``evaluate(..., bootstrap=n, seed=seed)``.
    """
    sim, gen = check_pairs(similarity, genuine)
    q = check_quality(pair_quality, len(sim))
    _, aucs = _areas(sim, gen, [q], protocol, fmr, folds, n, seed, kw)
    lo, hi = percentile_ci(aucs[:, 0])
    return float(lo), float(hi), aucs[:, 0]


def paired_bootstrap(
    similarity: np.ndarray,
    genuine: np.ndarray,
    quality_a: np.ndarray,
    quality_b: np.ndarray,
    fmr: float,
    protocol: str,
    *,
    folds: np.ndarray | None = None,
    n: int = 1000,
    seed: int = 0,
    **kw: object,
) -> dict[str, float]:
    """Paired bootstrap of AUC(a) - AUC(b): both methods are evaluated on the same resamples.

    ``protocol``: a registry name with an area (erc, erc_strict, erc_magface, edc, edc_fm; any case).
    Returns auc_a, auc_b (point estimates on all pairs), diff = auc_a - auc_b,
    ci_low/ci_high (95% percentile interval of the resampled differences), p_value and n. Lower area
    = better method. p_value is two-sided: 2 x min(share of differences <= 0, share >= 0), each share
    counted with the usual +1 correction ((count + 1) / (n + 1)), capped at 1. Identical methods give
    1; a method better in every resample gives 2 / (n + 1).
    """
    sim, gen = check_pairs(similarity, genuine)
    qa = check_quality(quality_a, len(sim), "quality_a")
    qb = check_quality(quality_b, len(sim), "quality_b")
    point, aucs = _areas(sim, gen, [qa, qb], protocol, fmr, folds, n, seed, kw)
    diff = aucs[:, 0] - aucs[:, 1]
    diff = diff[np.isfinite(diff)]
    nv = len(diff)
    if nv == 0:
        lo = hi = p = float("nan")
    else:
        lo, hi = (float(v) for v in percentile_ci(diff))
        tail = min(int(np.count_nonzero(diff <= 0)), int(np.count_nonzero(diff >= 0)))
        p = min(1.0, 2 * (tail + 1) / (nv + 1))
    return {
        "auc_a": float(point[0]),
        "auc_b": float(point[1]),
        "diff": float(point[0] - point[1]),
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "n": nv,
    }
