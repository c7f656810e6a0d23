"""``evaluate``: every method x protocol x FMR target on one score set, as tidy rows and curve points;
plus the two small helpers the pipeline needs before it (pair quality, pair cosine similarity)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from . import edc_rules, erc_rules, verification  # noqa: F401  (register the protocols)
from ._core import (
    DEFAULT_DISCARD_LIMIT,
    EvaluationError,
    Scores,
    check_fmrs,
    check_fractions,
    check_pairs,
    check_quality,
)
from .edc_rules import check_limits, check_starting_errors
from .erc_rules import magface_decades
from .points import CurvePoints
from .registry import DEFAULT_PROTOCOLS, Context, Entry, get_protocol, parse_protocols
from .stats import percentile_ci, resamples

EDC_MAX_POINTS = 501  # curves.csv gets the exact EDC steps up to this many, else a 501-point grid


def pair_quality(image_quality: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pair quality = the lower of the two images' qualities (higher = better)."""
    q = np.asarray(image_quality)
    return np.minimum(q[np.asarray(a)], q[np.asarray(b)])


def normalised_pair_rows(
    emb: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Checked inputs of a pair-similarity computation: (L2-normalised rows, a, b, pairs per chunk of
    about 64 MB of gathered rows). Shared by the NumPy path here and the GPU path (fiqa_bench.similarity)."""
    e = np.asarray(emb)
    if e.ndim != 2:
        raise EvaluationError(f"embeddings must be a 2-D array (images x dims), got shape {e.shape}")
    if e.dtype not in (np.float32, np.float64):
        e = e.astype(np.float32)
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise EvaluationError(
            f"pair index arrays must be 1-D and of equal length, got {a.shape} and {b.shape}"
        )
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= len(e)):
        raise EvaluationError(f"pair indices out of range for {len(e)} embeddings")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    bad = ~(np.isfinite(norms[:, 0]) & (norms[:, 0] > 0))
    if bad.any():
        raise EvaluationError(
            f"{int(bad.sum())} embedding(s) have zero or non-finite norm (first: row {int(np.argmax(bad))})"
        )
    return e / norms, a, b, (1 << 24) // max(1, e.shape[1])


def cosine_similarity_pairs(
    emb: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 1_000_000
) -> np.ndarray:
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


VERIFICATION_METHOD = "(all pairs)"  # the method column of verification rows: accuracy uses no quality

ROW_COLUMNS = (
    "method",
    "protocol",
    "kind",
    "fmr",
    "starting_error",
    "discard_limit",
    "reject_max",
    "auc",
    "pauc_minus_best",
    "pauc_normalised",
    "accuracy",
    "accuracy_std",
    "ci_low",
    "ci_high",
    "n_pairs",
    "n_genuine",
    "n_impostor",
    "fmr_resolvable",
    "achieved_fmr",
    "threshold",
    "fnmr_at_0",
    "error_at_0",
    "split_tie_share",
    "normalised",
    "n_folds",
    "n_bootstrap",
    "note",
)


def evaluate(
    similarity: np.ndarray,
    genuine: np.ndarray,
    qualities: Mapping[str, np.ndarray],
    fmrs: Sequence[float] | float,
    *,
    protocols: str | Sequence[str] | None = None,
    folds: np.ndarray | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    discard_limit: float = DEFAULT_DISCARD_LIMIT,
    discard_limits: Sequence[float] | None = None,
    starting_error: float | Sequence[float] | None = None,
    fractions: np.ndarray | None = None,
    normalised: bool = False,
    n_folds: int = 10,
    progress: bool = False,
    threads: int | None = None,
) -> tuple[list[dict[str, Any]], CurvePoints]:
    """Every quality method under every selected protocol (see the package docstring for the API).

    ``protocols``: registry names (``protocol_names()``), a comma string or a list; default
    ``DEFAULT_PROTOCOLS`` = erc, edc. ``qualities`` maps method name -> PAIR quality (N, float, higher =
    better); ``similarity`` (N, float, higher = more alike) and ``genuine`` (N, bool) are shared.
    ``discard_limits`` (EDC pAUC limits, one row each) overrides the single ``discard_limit``;
    ``starting_error`` (one or several, in [0, 1]) fixes the EDC thresholds from Schlett's quantile rule
    instead of the FMR targets; ``fractions`` (default: each ERC protocol's own schedule) overrides the
    reject fractions; ``normalised`` makes EDC ``auc`` the pAUC minus the theoretical best;
    ``n_folds``: verification folds. Methods run ``threads`` at a time (default: CPUs, at most 8) with
    identical results in the same order; without bootstrap the qualities are read one at a time.

    Returns (rows, curve points). One row per method x protocol x parameter set (FMR target or
    starting error, and discard limit for EDC), in that order, then one row per verification protocol
    (method ``VERIFICATION_METHOD`` = "(all pairs)"); keys ``ROW_COLUMNS`` (NaN where a column does not apply). Curve points: one block per
    curve (method, protocol, kind, fmr, starting_error, fraction, fnmr = the protocol's error; + fnmr_lo/
    fnmr_hi with bootstrap). EDC points are the curve's steps (read "steps-post") or a 501-point grid of
    the step function when it has more steps. Raises EvaluationError on bad inputs or parameters.
    """
    sim, gen = check_pairs(similarity, genuine)
    names = parse_protocols(protocols, DEFAULT_PROTOCOLS)
    if bootstrap < 0:
        raise EvaluationError(f"bootstrap must be >= 0, got {bootstrap}")
    limits = check_limits(discard_limits if discard_limits is not None else (discard_limit,))
    if int(n_folds) < 2:
        raise EvaluationError(f"n_folds must be at least 2 (verification folds), got {n_folds}")
    sc = Scores.build(sim, gen, checked=True)
    ctx = Context(
        sc=sc,
        fmrs=check_fmrs(fmrs),
        fractions=check_fractions(fractions) if fractions is not None else None,
        discard_limits=limits,
        starting_errors=check_starting_errors(starting_error),
        normalised=bool(normalised),
        n_folds=int(n_folds),
        edc_max_points=EDC_MAX_POINTS,
        folds=None if folds is None else np.asarray(folds),
    )
    if "erc_magface" in names:
        magface_decades(ctx.fmrs)
    per_method = [get_protocol(n) for n in names if get_protocol(n).kind != "verification"]
    accuracy_protos = [get_protocol(n) for n in names if get_protocol(n).kind == "verification"]
    base = {"n_pairs": sc.n, "n_genuine": sc.n_gen, "n_impostor": sc.n_imp, "n_bootstrap": int(bootstrap)}
    rows: list[dict[str, Any]] = []
    points = CurvePoints()
    kept: list[np.ndarray] = []
    edc_at: list[dict[str, np.ndarray]] = []  # per method: each EDC protocol's curve points
    method_names = list(qualities)
    for name, q, results in _results_in_threads(ctx, qualities, method_names, per_method, threads):
        if bootstrap:
            kept.append(q)
        at: dict[str, np.ndarray] = {}
        for proto, entries in zip(per_method, results, strict=True):
            for e in entries:
                rows.append(_row(name, proto, e, base, ctx))
                if e.curve is not None:
                    points.add(name, proto.name, e.params["fmr"], e.curve[0], e.curve[1])
                    points.blocks[-1].kind = proto.kind
                    points.blocks[-1].starting_error = e.params["starting_error"]
                    if proto.kind == "edc":
                        at[proto.name] = e.curve[0]
        edc_at.append(at)
    if bootstrap and method_names and per_method:
        _add_bootstrap(rows, points, ctx, per_method, kept, folds, bootstrap, seed, edc_at, progress)
    for proto in accuracy_protos:
        for e in proto.runner(ctx, None):
            rows.append(_row(VERIFICATION_METHOD, proto, e, base, ctx))
    return rows, points


def _row(method: str, proto: Any, e: Entry, base: dict[str, Any], ctx: Context) -> dict[str, Any]:
    nan = float("nan")
    row: dict[str, Any] = dict.fromkeys(ROW_COLUMNS, nan)
    row.update(base)
    row.update(
        method=method,
        protocol=proto.name,
        kind=proto.kind,
        auc=e.auc,
        note="",
        split_tie_share=0.0,
        normalised=bool(ctx.normalised) if proto.kind == "edc" else False,
        fmr_resolvable=True,
        n_folds=nan,
    )
    row.update(e.params)
    row.update(e.fields)
    return row


def _results_in_threads(
    ctx: Context,
    qualities: Mapping[str, np.ndarray],
    names: list[str],
    protos: list[Any],
    threads: int | None,
) -> Iterator[tuple[str, np.ndarray, list[list[Entry]]]]:
    """(name, quality, entries per protocol) in the order of ``names``. Qualities are read here, in the
    caller's thread (a lazy mapping need not be thread-safe), and at most ``threads`` methods are in
    flight, so memory stays at that many methods' arrays."""
    n_threads = default_threads() if threads is None else max(1, int(threads))
    n_threads = min(n_threads, max(1, len(names)))

    def compute(q: np.ndarray) -> list[list[Entry]]:
        return [p.runner(ctx, q) for p in protos]

    if n_threads == 1:
        for name in names:
            q = check_quality(qualities[name], ctx.sc.n, f"quality {name!r}")
            yield name, q, compute(q)
        return
    pending: deque[tuple[str, np.ndarray, Future[Any]]] = deque()
    with ThreadPoolExecutor(n_threads, thread_name_prefix="fiqa-eval") as pool:
        for name in names:
            q = check_quality(qualities[name], ctx.sc.n, f"quality {name!r}")
            pending.append((name, q, pool.submit(compute, q)))
            if len(pending) >= n_threads:
                done_name, done_q, fut = pending.popleft()
                yield done_name, done_q, fut.result()
        while pending:
            done_name, done_q, fut = pending.popleft()
            yield done_name, done_q, fut.result()


def _add_bootstrap(
    rows: list[dict[str, Any]],
    points: CurvePoints,
    ctx: Context,
    protos: list[Any],
    qualities: list[np.ndarray],
    folds: np.ndarray | None,
    n: int,
    seed: int,
    edc_at: list[dict[str, np.ndarray]],
    progress: bool,
) -> None:
    """Percentile intervals of every row's area and pointwise bands of every curve, from ``n`` resamples
    drawn inside each (fold, genuine/impostor) stratum (``stats.resamples``: same seed, same resamples)."""
    from tqdm.auto import tqdm

    sim, gen = ctx.sc.sim, ctx.sc.genuine
    n_rows = len(rows)
    aucs = np.full((n, n_rows), np.nan)
    curves: list[list[np.ndarray]] = [[] for _ in points.blocks]
    it = resamples(gen, folds, n, seed, (sim, *qualities))  # pairs in a canonical order: no row order
    for b, idx in enumerate(
        tqdm(it, total=n, desc="bootstrap", unit="resample", disable=None if progress else True)
    ):
        sc_b = Scores.build(sim[idx], gen[idx], checked=True)
        ctx_b = replace(ctx, sc=sc_b, folds=None)
        r = b_curve = 0
        for j, q in enumerate(qualities):
            for proto in protos:
                entries = proto.runner(ctx_b, q[idx], at=edc_at[j].get(proto.name))
                for e in entries:
                    aucs[b, r] = e.auc
                    r += 1
                    if e.curve is not None:
                        curves[b_curve].append(e.curve[1].astype(np.float32))
                        b_curve += 1
    lo, hi = percentile_ci(aucs)
    for r, row in enumerate(rows[:n_rows]):
        row["ci_low"], row["ci_high"] = float(lo[r]), float(hi[r])
        undefined = int(np.count_nonzero(~np.isfinite(aucs[:, r])))
        if undefined:
            extra = f"{undefined} of {n} bootstrap resamples undefined, left out of the interval"
            row["note"] = f"{row['note']}; {extra}" if row["note"] else extra
    for block, ys in zip(points.blocks, curves, strict=True):
        band = percentile_ci(np.stack(ys).astype(np.float64))
        block.fnmr_lo, block.fnmr_hi = (np.asarray(v, dtype=np.float64) for v in band)


def default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))
