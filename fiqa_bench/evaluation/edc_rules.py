"""EDC (Schlett et al.): thresholds from an FMR target or a starting error, FNM-EDC and FM-EDC, and
every pAUC variant of one curve.

Restated from dasec/quality-assessment-evaluation ``edc.py`` (commit 2a66097, ``compute_edc``,
``compute_edc_pauc``, ``compute_edc_area_under_theoretical_best``) and ``../shared/REFERENCE.md`` 5:

- Starting error e (Schlett's semantics): FNM-EDC threshold t = ``np.quantile(genuine scores, e)``
  (NumPy's default linear interpolation) and a genuine comparison with score < t is the error; FM-EDC
  threshold t = ``np.quantile(impostor scores, 1 - e)`` and an impostor with score >= t is the error.
- From an FMR target instead: the threshold with the FMR nearest the target on all impostors
  (``_core.nearest_fmr_thresholds``: accepted = score strictly above it), as fiqa-bench always did.
- Comparisons of the error's kind are discarded lowest pair quality first, tied qualities together;
  error = errors among the remaining / remaining; the curve ends at (1, 0).
- pAUC: stepwise area from 0 to each discard limit; ``pauc_minus_best`` subtracts the area under the
  theoretical best curve max(0, e0 - x); ``pauc_normalised`` divides the pAUC by e0 x limit, the area
  of the curve that stays at the starting error (see ``PAUC_NORMALISED_SOURCE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ._core import EvaluationError, Scores, fmt_fmr, nearest_fmr_thresholds
from .protocols import EdcArrays, edc_arrays, stepwise_areas
from .registry import Context, Entry, Parameter, ProtocolCard, register_protocol
from .stats import step_values

PAUC_NORMALISED_SOURCE = (
    "DifFIQA (Babnik et al., IJCB 2023, arXiv:2305.05768), eDifFIQA (TBIOM 2024) and FROQ (IJCB 2025, "
    "arXiv:2509.17689) report pAUC of the FNMR-vs-discard EDC at FMR 1e-3 to discard 0.2/0.3 (FROQ's README, "
    "LSIbabnikz/FROQ@840028d, states only that); values near 1 for weak methods (above 1 for PCNet) imply a "
    "division by the no-discard FNMR times the limit. The defining sentence was NOT found in the text available "
    "to us (the papers' abstracts/pages and the LSIbabnikz DifFIQA, eDifFIQA and FROQ repositories): this "
    "definition is inferred from the published values and must be confirmed before comparing digits."
)


def check_starting_errors(values: float | Sequence[float] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    vals = tuple(float(v) for v in np.atleast_1d(np.asarray(values, dtype=np.float64)))
    if not vals or not all(0 <= v <= 1 for v in vals):
        raise EvaluationError(f"starting error must lie in [0, 1], got {list(vals)}")
    return vals


def check_limits(limits: float | Sequence[float]) -> tuple[float, ...]:
    vals = tuple(float(v) for v in np.atleast_1d(np.asarray(limits, dtype=np.float64)))
    if not vals or not all(0 < v <= 1 for v in vals):
        raise EvaluationError(f"discard limits must lie in (0, 1], got {list(vals)}")
    return tuple(dict.fromkeys(vals))


def mirrored(sc: Scores) -> Scores:
    """The impostor side seen as the 'genuine' side of ``edc_arrays``: negated impostor scores, so that
    'negated score <= v' counts impostors with score >= -v (false matches)."""
    cached = sc.cache.get("mirrored")
    if cached is None:
        imp_idx = np.flatnonzero(~sc.genuine)
        cached = Scores(-sc.sim, ~sc.genuine, sc.gen_asc, sc.gen_sorted, sc.imp_desc, sc.imp_neg, imp_idx)
        sc.cache["mirrored"] = cached
    return cached


@dataclass
class EdcThresholds:
    """Thresholds of one EDC side, ready for ``edc_arrays`` (error = score <= edge on that side)."""

    edge: np.ndarray  # per threshold: value on the side's ascending scale (see mirrored)
    threshold: np.ndarray  # the similarity threshold as reported
    accepted: np.ndarray  # impostors accepted (score above / at the threshold) on all pairs
    fmr: np.ndarray  # FMR target (NaN when from a starting error)
    starting_error: np.ndarray  # NaN when from an FMR target


def _edge_below(sorted_side: np.ndarray, count: np.ndarray) -> np.ndarray:
    """A value v with exactly ``count`` entries of ``sorted_side`` (ascending) <= v, given that the
    first ``count`` entries are strictly below the rest."""
    below_min = np.nextafter(sorted_side[0], sorted_side.dtype.type(-np.inf))
    return np.where(count > 0, sorted_side[np.maximum(count - 1, 0)], below_min)


def fnm_thresholds(
    sc: Scores, fmrs: np.ndarray | None, starting_errors: tuple[float, ...] | None
) -> EdcThresholds:
    n_imp = sc.n_imp
    if starting_errors is None:
        assert fmrs is not None
        c, thr = nearest_fmr_thresholds(sc.imp_neg, fmrs)
        edge = thr.astype(sc.sim.dtype)
        nan = np.full(len(fmrs), np.nan)
        return EdcThresholds(edge, thr.astype(np.float64), c, fmrs, nan)
    e = np.asarray(starting_errors)
    gen64 = sc.gen_sorted.astype(np.float64)
    t = np.quantile(gen64, e)  # linear, as edc.py
    fnm = np.searchsorted(gen64, t, side="left")  # genuine with score < t
    imp_asc = (-sc.imp_neg[::-1]).astype(np.float64)
    accepted = n_imp - np.searchsorted(imp_asc, t, side="left")  # impostors with score >= t
    return EdcThresholds(
        _edge_below(sc.gen_sorted, fnm), t, accepted, np.full(len(e), np.nan), e.astype(np.float64)
    )


def fm_thresholds(
    sc: Scores, fmrs: np.ndarray | None, starting_errors: tuple[float, ...] | None
) -> EdcThresholds:
    neg = sc.imp_neg  # ascending negated impostor scores: the mirrored side
    if starting_errors is None:
        assert fmrs is not None
        c, thr = nearest_fmr_thresholds(neg, fmrs)  # accepted = score > thr: the first c of neg
        nan = np.full(len(fmrs), np.nan)
        return EdcThresholds(_edge_below(neg, c), thr.astype(np.float64), c, fmrs, nan)
    e = np.asarray(starting_errors)
    imp_asc = (-neg[::-1]).astype(np.float64)
    t = np.quantile(imp_asc, 1 - e)
    c = len(imp_asc) - np.searchsorted(imp_asc, t, side="left")  # impostors with score >= t
    return EdcThresholds(_edge_below(neg, c), t, c, np.full(len(e), np.nan), e.astype(np.float64))


@dataclass
class EdcCurves:
    arrays: EdcArrays  # x, error (thresholds x steps)
    thresholds: EdcThresholds
    limits: tuple[float, ...]
    pauc: np.ndarray  # thresholds x limits
    pauc_minus_best: np.ndarray
    pauc_normalised: np.ndarray
    n_side: int  # comparisons of the error's kind


def edc_curves(
    sc: Scores,
    q: np.ndarray,
    side: str,
    fmrs: np.ndarray | None,
    starting_errors: tuple[float, ...] | None,
    limits: tuple[float, ...],
    *,
    at: np.ndarray | None = None,
    max_points: int | None = None,
) -> EdcCurves:
    """All EDC curves of one quality on one side ("fnm" or "fm"), with every pAUC variant per limit."""
    if side == "fnm":
        th, view = fnm_thresholds(sc, fmrs, starting_errors), sc
    else:
        th, view = fm_thresholds(sc, fmrs, starting_errors), mirrored(sc)
    arr = edc_arrays(view, q, th.edge, th.accepted, max(limits), False, at=at, max_points=max_points)
    e0 = arr.fnmr[:, 0]
    pauc = np.stack([stepwise_areas(arr.x, arr.fnmr, lim) for lim in limits], axis=1)
    best = np.stack([stepwise_areas(arr.x, arr.fnmr, lim, True) for lim in limits], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = pauc / (e0[:, None] * np.asarray(limits)[None, :])
    norm = np.where(e0[:, None] > 0, norm, np.nan)
    return EdcCurves(arr, th, limits, pauc, best, norm, len(view.gen_idx))


# ------------------------------------------------------------------------------------ registered protocols

EDC_TIES = "Tied pair qualities are discarded together (curve steps only between distinct qualities): order-independent by construction."
EDC_PARAMS = (
    Parameter(
        "fmr",
        "1e-3,1e-4",
        "FMR targets fixing the threshold on all impostors (when no starting error is given)",
    ),
    Parameter(
        "starting_error",
        None,
        "Schlett's starting error(s): threshold = a NumPy linear quantile of the scores instead",
    ),
    Parameter("discard_limit", 0.2, "pAUC discard limit(s); one row each"),
)
EDC_CARD = ProtocolCard(
    name="edc",
    kind="edc",
    title="Schlett FNM-EDC",
    source="Schlett et al., dasec/quality-assessment-evaluation edc.py (commit 2a66097): compute_edc, compute_edc_pauc",
    rule=(
        "Threshold fixed once on all pairs: from a starting error e, t = np.quantile(genuine scores, e) and a "
        "genuine score < t is a false non-match; from an FMR target, the impostor score whose FMR (accepted = "
        "score > t) is nearest the target (ties to the lower FMR) and genuine score <= t is the error. Genuine "
        "pairs are discarded lowest pair quality first, tied qualities together; FNMR = errors among the "
        "remaining / remaining; the curve ends at (1, 0). auc = stepwise pAUC from 0 to the discard limit; "
        "pauc_minus_best = pAUC minus the area under max(0, e0 - x); pauc_normalised = pAUC / (e0 x limit)."
    ),
    parameters=EDC_PARAMS,
    ties=EDC_TIES,
    edge_cases=(
        "FMR below 1/#impostors: nearest achievable FMR, noted. e0 = 0 (no error to start from): "
        "pauc_normalised is NaN, noted. No genuine above the top impostor: FNMR 1 at FMR 0, noted."
    ),
    references=(
        "Schlett et al., Considerations on the Evaluation of Biometric Quality Assessment Algorithms, IEEE TBIOM 2024 (arXiv:2303.13294)",
        "pauc_normalised: " + PAUC_NORMALISED_SOURCE,
    ),
)
EDC_FM_CARD = ProtocolCard(
    name="edc_fm",
    kind="edc",
    title="Schlett FM-EDC",
    source=EDC_CARD.source,
    rule=(
        "As edc with false matches: from a starting error e, t = np.quantile(impostor scores, 1 - e) and an "
        "impostor score >= t is a false match; from an FMR target, the threshold of edc and score > t. Impostor "
        "pairs are discarded lowest pair quality first, tied qualities together; error = FMR among the remaining."
    ),
    parameters=EDC_PARAMS,
    ties=EDC_TIES,
    edge_cases="As edc; error_at_0 is the FMR at no discard.",
    references=EDC_CARD.references[:1],
)


def _edc_runner(side: str) -> Callable[..., list[Entry]]:
    def run(ctx: Context, q: np.ndarray, at: np.ndarray | None = None) -> list[Entry]:
        fmrs = ctx.fmrs if ctx.starting_errors is None else None
        cur = edc_curves(
            ctx.sc,
            q,
            side,
            fmrs,
            ctx.starting_errors,
            ctx.discard_limits,
            at=at,
            max_points=ctx.edc_max_points,
        )
        arr, th = cur.arrays, cur.thresholds
        shown = step_values(arr.x, arr.fnmr, arr.at)
        n_imp = ctx.sc.n_imp
        out = []
        for h in range(len(th.edge)):
            f, e = float(th.fmr[h]), float(th.starting_error[h])
            achieved = float(th.accepted[h] / n_imp)
            e0 = float(arr.fnmr[h, 0])
            note = edc_threshold_note(f, e, n_imp, achieved, side)
            for li, lim in enumerate(cur.limits):
                extra = "" if e0 > 0 else "no error at discard 0: pauc_normalised undefined (NaN)"
                fields = {
                    "threshold": float(th.threshold[h]),
                    "achieved_fmr": achieved,
                    "fnmr_at_0": e0 if side == "fnm" else float("nan"),
                    "error_at_0": e0,
                    "fmr_resolvable": bool(f * n_imp >= 1) if np.isfinite(f) else True,
                    "pauc_minus_best": float(cur.pauc_minus_best[h, li]),
                    "pauc_normalised": float(cur.pauc_normalised[h, li]),
                    "note": "; ".join(p for p in (note, extra) if p),
                }
                auc = float(cur.pauc_minus_best[h, li] if ctx.normalised else cur.pauc[h, li])
                curve = (arr.at, shown[h]) if li == 0 else None
                out.append(
                    Entry({"fmr": f, "starting_error": e, "discard_limit": float(lim)}, auc, fields, curve)
                )
        return out

    return run


def edc_threshold_note(fmr: float, starting_error: float, n_imp: int, achieved: float, side: str) -> str:
    if np.isfinite(starting_error):
        kind = "genuine" if side == "fnm" else "impostor"
        return f"threshold from starting error {starting_error:g} (linear quantile of the {kind} scores); achieved FMR {achieved:.3g}"
    if fmr * n_imp < 1:
        return f"FMR {fmt_fmr(fmr)} below impostor resolution 1/{n_imp}; nearest achievable {achieved:.3g}"
    return ""


register_protocol(EDC_CARD)(_edc_runner("fnm"))
register_protocol(EDC_FM_CARD)(_edc_runner("fm"))
