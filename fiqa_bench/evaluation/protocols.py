"""ERC with recomputed threshold (CR-FIQA / MagFace protocol) and EDC with fixed threshold
(Schlett et al., ISO/IEC 29794-1 style), vectorised across FMR targets.

Pair order: pairs sorted by pair quality, lowest first; tied qualities in original pair-index order
(a stable sort). ERC at reject fraction r drops the first floor(r N) pairs of that order, so a run of
tied qualities can be split by the cut. EDC never splits a tie: tied qualities are discarded together.

Decision rule (both protocols): accepted = similarity strictly greater than the threshold; a genuine
pair with similarity <= threshold is a false non-match. Threshold choice: see
``_core.nearest_counts`` (candidates are impostor scores; nearest FMR wins; exact distance ties
go to the lower FMR).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._core import (
    DEFAULT_DISCARD_LIMIT,
    DEFAULT_REJECT_FRACTIONS,
    EvaluationError,
    Scores,
    check_fmrs,
    check_fractions,
    check_quality,
    fmt_fmr,
    fnm_counts_rows,
    nearest_fmr_thresholds,
    suffix_thresholds,
)


@dataclass
class Curve:
    """One ERC or EDC curve with its area and the facts needed to read it honestly."""

    protocol: str  # "ERC" (threshold recomputed on retained pairs) or "EDC" (threshold fixed on all pairs)
    fmr: float  # target FMR (NaN for an EDC whose threshold came from a starting error)
    fractions: np.ndarray  # reject (ERC) / discard (EDC) fractions
    fnmr: np.ndarray  # FNMR at each fraction
    auc: float  # ERC: trapezoid over the fractions (not normalised); EDC: stepwise pAUC to discard_limit
    threshold: float  # ERC: threshold at the first fraction (r = 0); EDC: the fixed threshold
    achieved_fmr: float  # FMR actually achieved at r = 0 / by the fixed threshold
    fmr_resolvable: bool  # False when target < 1 / (number of impostor pairs)
    note: str = ""
    n_genuine: int = 0
    n_impostor: int = 0
    discard_limit: float = float("nan")  # EDC only
    normalised: bool = False  # EDC: auc has the ideal curve's area max(0, e0 - x) subtracted
    starting_error: float | None = (
        None  # EDC: threshold fixed from this genuine-score quantile instead of an FMR
    )
    extra: dict[str, object] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- ERC


@dataclass
class ErcArrays:
    fnmr: np.ndarray  # targets x fractions
    auc: np.ndarray  # per target
    threshold0: np.ndarray  # per target, at the first fraction
    accepted0: np.ndarray  # impostors accepted at the first fraction (achieved FMR = accepted0 / n_imp0)
    n_imp: np.ndarray  # remaining impostors per fraction
    n_gen: np.ndarray  # remaining genuine pairs per fraction


def erc_arrays(sc: Scores, bucket: np.ndarray, fractions: np.ndarray, fmrs: np.ndarray) -> ErcArrays:
    """``bucket`` from ``quality_buckets``: pair p remains at fraction i <=> bucket[p] > i; layer i
    (bucket i + 1) holds the pairs that fraction i keeps and fraction i + 1 drops."""
    n_frac = len(fractions)
    b_imp = bucket[sc.imp_desc]  # per impostor rank (most similar first)
    b_gen = bucket[sc.gen_asc]  # in genuine-score order, least similar first
    del bucket
    n_imp = np.cumsum(np.bincount(b_imp, minlength=n_frac + 1)[:0:-1])[::-1]  # remaining per fraction
    n_gen = np.cumsum(np.bincount(b_gen, minlength=n_frac + 1)[:0:-1])[::-1]
    c, thr = suffix_thresholds(sc, b_imp, n_imp, fmrs)
    del b_imp

    n_t = len(fmrs)
    # Where no genuine pair is left nothing can be falsely rejected, and where no impostor is left there
    # is no FMR to bound the threshold: FNMR is taken as 0 in both cases (the EDC's end point convention).
    fnmr = np.zeros((n_t, n_frac))
    thr0 = thr[0].astype(np.float64)
    acc0 = np.maximum(c[0], 0)
    rows = np.flatnonzero((n_imp > 0) & (n_gen > 0))
    if len(rows):
        counts = fnm_counts_rows(sc, thr[rows].astype(sc.sim.dtype), b_gen, rows)
        fnmr[:, rows] = (counts / n_gen[rows][:, None]).T
    auc = np.trapezoid(fnmr, fractions, axis=1) if n_frac > 1 else np.zeros(n_t)
    return ErcArrays(fnmr, auc, thr0, acc0, n_imp, n_gen)


def erc_note(fmr: float, n_imp: np.ndarray, n_gen: np.ndarray, fractions: np.ndarray, achieved: float) -> str:
    parts = []
    if fmr * n_imp[0] < 1:
        parts.append(
            f"FMR {fmt_fmr(fmr)} below impostor resolution 1/{int(n_imp[0])}; nearest achievable {achieved:.3g}"
        )
    else:
        short = np.flatnonzero(fmr * n_imp < 1)
        if len(short):
            parts.append(
                f"FMR {fmt_fmr(fmr)} unresolved from reject fraction {fractions[short[0]]:.2f} "
                f"(fewer than {int(np.ceil(1 / fmr))} impostors left)"
            )
    for counts, what, why in (
        (n_imp, "impostor", "no FMR to fix a threshold"),
        (n_gen, "genuine", "nothing to reject wrongly"),
    ):
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            parts.append(
                f"no {what} pair left from reject fraction {fractions[empty[0]]:.2f} ({why}): FNMR taken as 0 there"
            )
    return "; ".join(parts)


def erc_recomputed(
    similarity: np.ndarray,
    genuine: np.ndarray,
    pair_quality: np.ndarray,
    fmr: float,
    fractions: np.ndarray = DEFAULT_REJECT_FRACTIONS,
) -> Curve:
    """ERC of the ``erc_strict`` protocol (fiqa-bench's own rule) for one FMR target.

    At reject fraction r the floor(r N) lowest-quality pairs are dropped; on the remaining impostors
    the threshold whose FMR is nearest ``fmr`` is chosen (candidates: the remaining impostor scores;
    accepted = strictly more similar; distance ties go to the lower FMR; with tied impostor scores only
    FMRs at tie-block starts are achievable); FNMR = remaining genuine pairs with similarity <= threshold
    / remaining genuine pairs. A cut that splits a block of tied qualities keeps each pair of the block
    with the share of the block it keeps (``erc_rules``: order-independent). Where no genuine pair
    remains, or no impostor, FNMR is taken as 0 and the note says from which fraction. AUC = trapezoid
    over the fractions, not normalised. The CR-FIQA and MagFace rules: ``evaluate(protocols=...)``.
    """
    from .erc_rules import run_erc_strict
    from .registry import Context

    sc = Scores.build(similarity, genuine)
    q = check_quality(pair_quality, sc.n)
    fr = check_fractions(fractions)
    fmrs = check_fmrs(fmr)
    (e,) = run_erc_strict(Context(sc, fmrs[:1], fr, (DEFAULT_DISCARD_LIMIT,), None), q)
    return Curve(
        protocol="ERC",
        fmr=float(fmrs[0]),
        fractions=fr,
        fnmr=np.asarray(e.curve[1]) if e.curve else np.zeros(len(fr)),
        auc=e.auc,
        threshold=e.fields["threshold"],
        achieved_fmr=e.fields["achieved_fmr"],
        fmr_resolvable=e.fields["fmr_resolvable"],
        note=e.fields["note"],
        n_genuine=sc.n_gen,
        n_impostor=sc.n_imp,
    )


def erc_curve(res: ErcArrays, t: int, fmr: float, fractions: np.ndarray, sc: Scores) -> Curve:
    achieved = float(res.accepted0[t] / res.n_imp[0]) if res.n_imp[0] else float("nan")
    return Curve(
        protocol="ERC",
        fmr=fmr,
        fractions=fractions,
        fnmr=res.fnmr[t],
        auc=float(res.auc[t]),
        threshold=float(res.threshold0[t]),
        achieved_fmr=achieved,
        fmr_resolvable=bool(fmr * sc.n_imp >= 1),
        note=erc_note(fmr, res.n_imp, res.n_gen, fractions, achieved),
        n_genuine=sc.n_gen,
        n_impostor=sc.n_imp,
    )


# ----------------------------------------------------------------------------------------------- EDC


@dataclass
class EdcArrays:
    x: np.ndarray  # discard fractions at the computed steps, ending with 1
    fnmr: np.ndarray  # targets x computed steps, ending with 0
    auc: np.ndarray  # per target
    threshold: np.ndarray
    accepted: np.ndarray  # impostors accepted by the fixed threshold
    at: np.ndarray  # where to read the curve for output: every step, or the requested points


def edc_arrays(
    sc: Scores,
    q: np.ndarray,
    thr: np.ndarray,
    accepted: np.ndarray,
    limit: float,
    normalised: bool,
    *,
    at: np.ndarray | None = None,
    max_points: int | None = None,
) -> EdcArrays:
    """EDC over the genuine pairs: discarding the genuine pairs of lowest quality first, ties together.

    The discard fraction counts genuine pairs (as in Schlett et al.: the FNMR EDC is computed on the
    mated comparisons only); impostors only fix the threshold. At each distinct quality level: x =
    discarded genuine / all genuine, FNMR = false non-matches among the remaining genuine / remaining
    genuine. The curve ends at (1, 0).

    Without ``at``/``max_points`` every step is computed. With ``at`` (or when the curve has more than
    ``max_points`` steps: ``at`` = a ``max_points`` grid on [0, 1]) only the steps below ``limit`` (for
    the area) and the steps in force at the ``at`` points are computed: same area, same values there.

    Cost: one sort of the genuine qualities; the false non-matches of the loosest threshold (usually
    a small share) are binned by the step that discards them, once for all thresholds.
    """
    qg = np.sort(q[sc.gen_idx])  # genuine qualities, ascending
    ng = len(qg)
    d = np.concatenate(([0], np.flatnonzero(qg[1:] != qg[:-1]) + 1))  # discard counts at each step
    levels = qg[d]  # step k discards every genuine pair with quality < levels[k]
    del qg
    x = d / ng
    if at is None and max_points is not None and len(d) + 1 > max_points:
        at = np.linspace(0.0, 1.0, max_points)
    if at is not None:
        below = int(np.searchsorted(x, limit, side="left"))  # steps 0 .. below-1 start under the limit
        active = np.searchsorted(x, at, side="right") - 1  # step in force at each point (len(d) - 1 at most)
        active = active[active >= below]  # sorted, as ``at`` is; keep each step once
        active = active[np.concatenate(([True], active[1:] != active[:-1]))] if len(active) else active
        steps = np.concatenate((np.arange(max(1, below)), active[active >= max(1, below)]))
        d, levels, x = d[steps], levels[steps], x[steps]
    x = np.append(x, 1.0)
    remaining = ng - d
    fnm = np.searchsorted(sc.gen_sorted, thr, side="right")  # false non-matches per threshold
    fnmr = np.zeros((len(thr), len(x)))
    fnmr[:, :-1] = (fnm[:, None] - discarded_errors(sc, q, fnm, levels)) / remaining
    auc = stepwise_areas(x, fnmr, limit, normalised)
    return EdcArrays(x, fnmr, auc, thr, accepted, x if at is None else np.asarray(at, dtype=np.float64))


def discarded_errors(sc: Scores, q: np.ndarray, fnm: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """targets x steps: false non-matches with quality below ``levels[k]`` (discarded by step k).

    Target t's false non-matches are the ``fnm[t]`` least similar genuine pairs, so the sets are
    nested: the loosest target's set is sorted by quality once (searchsorted with sorted keys is
    several times faster than with random ones), each member is binned by (how many targets' sets it
    misses, first step that discards it), and cumulative sums give every target's counts.
    """
    n_t, n_k = len(fnm), len(levels)
    top = int(fnm.max()) if n_t else 0
    if top == 0:
        return np.zeros((n_t, n_k), dtype=np.int64)
    cand = q[sc.gen_asc[:top]]
    o = np.argsort(cand)
    step = np.searchsorted(levels, cand[o], side="right")  # gone from this step on
    by_size = np.argsort(fnm, kind="stable")
    missed = np.zeros(top, dtype=np.int64)  # member of the sets by_size[missed:]
    for size in fnm[by_size]:
        missed += o >= size
    counts = np.bincount(missed * (n_k + 1) + step, minlength=(n_t + 1) * (n_k + 1)).reshape(n_t + 1, n_k + 1)
    gone = np.cumsum(counts[:n_t, :n_k], axis=1)
    for u in range(1, n_t):  # a row-by-row sum: NumPy's cumsum down axis 0 is strided and slower
        gone[u] += gone[u - 1]
    out = np.empty_like(gone)
    out[by_size] = gone
    return out


def stepwise_areas(x: np.ndarray, e: np.ndarray, limit: float, normalised: bool = False) -> np.ndarray:
    """``stepwise_area`` of every row of ``e`` (same bits: each row is summed left to right)."""
    if limit <= 0:
        area = np.zeros(len(e))
    else:
        k = min(int(np.searchsorted(x, limit, side="left")), len(x) - 1)  # steps starting below limit
        widths = np.minimum(x[1 : k + 1], limit) - x[:k]
        area = np.cumsum(e[:, :k] * widths, axis=1)[:, -1] if k else np.zeros(len(e))
    if normalised:
        e0 = e[:, 0]
        area = area - (e0 * e0 / 2 - np.maximum(0.0, e0 - limit) ** 2 / 2)
    return area


def stepwise_area(x: np.ndarray, e: np.ndarray, limit: float, normalised: bool = False) -> float:
    """Area under the step curve (value e[k] on [x[k], x[k+1])) from 0 to ``limit``, no interpolation.

    Summed left to right (cumsum) so that it equals the plain loop bit for bit. ``normalised``
    subtracts the area of the ideal curve max(0, e0 - x) over [0, limit].
    """
    return float(stepwise_areas(x, np.asarray(e)[None, :], limit, normalised)[0])


def edc_note(fmr: float, n_imp: int, achieved: float, starting_error: float | None) -> str:
    if starting_error is not None:
        return f"threshold fixed from starting error {starting_error:g} on the genuine scores; achieved FMR {achieved:.3g}"
    if fmr * n_imp < 1:
        return f"FMR {fmt_fmr(fmr)} below impostor resolution 1/{n_imp}; nearest achievable {achieved:.3g}"
    return ""


def edc_fixed(
    similarity: np.ndarray,
    genuine: np.ndarray,
    pair_quality: np.ndarray,
    fmr: float,
    discard_limit: float = DEFAULT_DISCARD_LIMIT,
    *,
    starting_error: float | None = None,
    normalised: bool = False,
) -> Curve:
    """EDC, threshold fixed once on all pairs (Schlett et al. / ISO/IEC 29794-1 style).

    The threshold comes from ``fmr`` on all impostor scores (same rule as ERC at r = 0) or, when
    ``starting_error`` is given, Schlett's rule: t = NumPy's linear quantile of the genuine scores at
    the starting error and a genuine score < t is the error (``edc_rules``; ``fmr`` is then ignored and
    reported as NaN). Discarding runs over the genuine pairs, lowest pair quality
    first, tied qualities together; the curve has one step per distinct quality and ends at (1, 0).
    ``auc`` is the stepwise pAUC over [0, discard_limit]; ``normalised=True`` subtracts the ideal
    curve's area max(0, e0 - x).
    """
    sc = Scores.build(similarity, genuine)
    q = check_quality(pair_quality, sc.n)
    if not 0 <= discard_limit <= 1:
        raise EvaluationError(f"discard_limit must lie in [0, 1], got {discard_limit}")
    if starting_error is None:
        fmrs = check_fmrs(fmr)
        c, thr = nearest_fmr_thresholds(sc.imp_neg, fmrs)
        fmr_value = float(fmrs[0])
    else:  # Schlett: t = NumPy's linear quantile of the genuine scores, error = score < t
        from .edc_rules import check_starting_errors, fnm_thresholds

        th = fnm_thresholds(sc, None, check_starting_errors(starting_error))
        res = edc_arrays(sc, q, th.edge, th.accepted, float(discard_limit), normalised)
        res.threshold = th.threshold
        return edc_curve(res, 0, float("nan"), float(discard_limit), normalised, sc, starting_error)
    res = edc_arrays(sc, q, thr, c, float(discard_limit), normalised)
    return edc_curve(res, 0, fmr_value, float(discard_limit), normalised, sc, starting_error)


def edc_curve(
    res: EdcArrays,
    t: int,
    fmr: float,
    limit: float,
    normalised: bool,
    sc: Scores,
    starting_error: float | None = None,
) -> Curve:
    achieved = float(res.accepted[t] / sc.n_imp)
    return Curve(
        protocol="EDC",
        fmr=fmr,
        fractions=res.x,
        fnmr=res.fnmr[t],
        auc=float(res.auc[t]),
        threshold=float(res.threshold[t]),
        achieved_fmr=achieved,
        fmr_resolvable=bool(fmr * sc.n_imp >= 1) if starting_error is None else True,
        note=edc_note(fmr, sc.n_imp, achieved, starting_error),
        n_genuine=sc.n_gen,
        n_impostor=sc.n_imp,
        discard_limit=limit,
        normalised=normalised,
        starting_error=starting_error,
    )
