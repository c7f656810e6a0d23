"""ERC threshold rules of the published programs, on one order-independent engine.

Every ERC drops the lowest-quality pairs at each reject fraction and recomputes the threshold on the
retained pairs. The programs differ in the reject schedule, the candidate thresholds, the tie rule of
the nearest-FMR search and whether a genuine score equal to the threshold is a match. The rules are
restated from ``../shared/REFERENCE.md`` section 5 and were checked against the programs' sources
(CR-FIQA ``ERC/erc.py`` + ``ERC/roc.py`` at fdbtrs/CR-FIQA@eb03b81; MagFace
``eval/eval_quality/eval_quality.py`` at IrvingMeng/MagFace@ee9de18).

Tied qualities (one rule for every ERC protocol). A reject cut k (drop the k lowest-quality pairs)
that falls inside a block of pairs with equal quality [lo, hi) (positions in the quality order) would
make the result depend on which of the block's pairs come first, i.e. on row order (the reference
programs use an unstable argsort: arbitrary). Here every pair of a split block is instead *retained
with weight* (hi - k) / (hi - lo): the share of the block that the cut keeps; pairs above the block
have weight 1, pairs below it 0. All counts of the protocol (retained impostors, impostors accepted,
genuine pairs rejected) are the weighted counts, i.e. the expected counts over all orders of the block,
and the protocol's rule is applied to them unchanged. Weights are kept as exact integers (scaled by the
block size), so no sum depends on summation order. For cuts that split no block (tie-free qualities)
every weight is 0 or 1 and the rule is the program's rule exactly. A quality that is constant over all
pairs keeps the same weighted score distribution at every cut: its ERC is flat, as "no information"
should be. Each row reports the share of pairs that lie in a split block (``split_tie_share``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._core import DEFAULT_REJECT_FRACTIONS, EvaluationError, Scores, fmt_fmr, quality_buckets, reject_counts
from .protocols import erc_arrays
from .registry import Context, Entry, Parameter, ProtocolCard, register_protocol

# CR-FIQA's schedule: unconsidered_rates = np.arange(0, 0.98, 0.05); the cut is int(r * N); the AUC's
# x axis is (100 * r) / 100 (the program scales the rates to percent for the plot and back for sklearn's
# auc). Both quirks are kept so that areas agree with the program to the last bit.
CRFIQA_FRACTIONS: np.ndarray = np.arange(0, 0.98, 0.05)
CRFIQA_AUC_X: np.ndarray = (100 * np.arange(0, 0.98, 0.05)) / 100


def truncated_counts(fractions: np.ndarray, n: int) -> np.ndarray:
    """int(r * n) per fraction, as the reference programs compute the cut (no rounding first)."""
    return np.trunc(np.asarray(fractions, dtype=np.float64) * n).astype(np.int64)


@dataclass
class CutPlan:
    """Per reject cut: the quality value at the cut and, where the cut splits a tie block, the
    block's size (the weight scale) and how many of its pairs the cut keeps."""

    value: np.ndarray  # quality at position k of the ascending quality order
    scale: np.ndarray  # hi - lo where split, else 1
    kept: np.ndarray  # hi - k where split, else 1 (the weight of a block pair, scaled)
    split: np.ndarray  # bool
    split_share: float  # share of all pairs that lie in a block split by some cut
    sorted_q: np.ndarray  # np.sort(q), for the fast engine


def cut_plan(q: np.ndarray, ks: np.ndarray) -> CutPlan:
    srt = np.sort(q)
    ks = np.asarray(ks, dtype=np.int64)
    value = srt[ks]
    lo = np.searchsorted(srt, value, side="left")
    hi = np.searchsorted(srt, value, side="right")
    split = lo < ks
    scale = np.where(split, hi - lo, 1)
    kept = np.where(split, hi - ks, 1)
    share = 0.0
    if split.any():
        vals = np.unique(value[split])
        share = float(np.count_nonzero(np.isin(q, vals)) / len(q))
    return CutPlan(value, scale.astype(np.int64), kept.astype(np.int64), split, share, srt)


def magface_decades(fmrs: np.ndarray) -> np.ndarray:
    """FMR 10^-m -> m; any other target is an error (MagFace divides its index by 10 per decade)."""
    m = np.round(-np.log10(np.where(fmrs > 0, fmrs, 1.0))).astype(np.int64)
    ok = (fmrs > 0) & (m >= 0) & np.isclose(10.0 ** (-m.astype(np.float64)), fmrs, rtol=1e-9, atol=0)
    if not ok.all():
        bad = ", ".join(f"{f:g}" for f in fmrs[~ok])
        raise EvaluationError(
            f"erc_magface takes FMR targets 1, 1e-1, 1e-2, ... only (MagFace's index is divided by 10 per decade); got {bad}"
        )
    return m


@dataclass
class ErcResult:
    fractions: np.ndarray  # reject fractions as reported (curve x)
    fnmr: np.ndarray  # targets x fractions
    auc: np.ndarray  # per target
    threshold0: np.ndarray  # per target at the first fraction
    achieved0: np.ndarray  # FMR achieved at the first fraction
    n_imp: np.ndarray  # retained impostors per fraction (weighted)
    n_gen: np.ndarray
    distance_ties: np.ndarray  # targets: fractions with an exact distance tie
    split_share: float
    notes: list[str] = field(default_factory=list)  # per target


@dataclass(frozen=True)
class ErcSchedule:
    """Reject fractions, how a fraction becomes a cut count, and the x axis of the area."""

    fractions: np.ndarray  # as reported
    counts: Callable[[int], np.ndarray]
    auc_x: np.ndarray


def crfiqa_schedule(fractions: np.ndarray | None = None) -> ErcSchedule:
    if fractions is None:
        return ErcSchedule(
            DEFAULT_REJECT_FRACTIONS, lambda n: truncated_counts(CRFIQA_FRACTIONS, n), CRFIQA_AUC_X
        )
    fr = np.asarray(fractions, dtype=np.float64)
    return ErcSchedule(fr, lambda n: truncated_counts(fr, n), fr)


def strict_schedule(fractions: np.ndarray | None = None) -> ErcSchedule:
    fr = DEFAULT_REJECT_FRACTIONS if fractions is None else np.asarray(fractions, dtype=np.float64)
    return ErcSchedule(fr, lambda n: reject_counts(fr, n), fr)


def erc_notes(fmr: float, res: ErcResult, t: int, no_gen_above: bool) -> str:
    parts = []
    fr = res.fractions
    if fmr * res.n_imp[0] < 1:
        parts.append(
            f"FMR {fmt_fmr(fmr)} below impostor resolution 1/{res.n_imp[0]:.0f}; nearest achievable {res.achieved0[t]:.3g}"
        )
    else:
        short = np.flatnonzero(fmr * res.n_imp < 1)
        if len(short):
            parts.append(
                f"FMR {fmt_fmr(fmr)} unresolved from reject fraction {fr[short[0]]:.2f} (fewer than {int(np.ceil(1 / fmr))} impostors left)"
            )
    if no_gen_above:
        parts.append(
            "no genuine pair scores above the top impostor (a threshold at FMR 0 rejects every genuine pair)"
        )
    for counts, what, why in (
        (res.n_imp, "impostor", "no FMR to fix a threshold"),
        (res.n_gen, "genuine", "nothing to reject wrongly"),
    ):
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            parts.append(
                f"no {what} pair left from reject fraction {fr[empty[0]]:.2f} ({why}): FNMR taken as 0 there"
            )
    if res.distance_ties[t]:
        parts.append(
            f"exact FMR distance tie at {int(res.distance_ties[t])} reject fraction(s), resolved by the protocol's tie rule"
        )
    if res.split_share > 0:
        parts.append(
            f"{100 * res.split_share:.1f}% of pairs lie in tied-quality blocks split by a reject cut "
            "(fractional retention, order-independent)"
        )
    return "; ".join(parts)


# ------------------------------------------------------------------------------------ registered protocols

TIES = (
    "Tied pair qualities split by a reject cut: every pair of the split block is retained with weight "
    "(share of the block the cut keeps) and all counts are weighted (expected counts over all orders of "
    "the block); exact 0/1 weights, hence the program's rule, wherever no block is split. "
    "split_tie_share = share of pairs in split blocks."
)
ERC_EDGES = (
    "No genuine or no impostor pair retained at a fraction: FNMR taken as 0 there (note names the first such "
    "fraction). FMR below 1/#impostors: the rule's nearest achievable FMR is used and noted. No genuine "
    "pair above the top impostor: noted (FNMR 1 at FMR 0). Exact FMR distance ties: the rule's tie "
    "resolution, counted in the note."
)
FMR_PARAM = Parameter("fmr", "1e-3,1e-4", "FMR targets; one curve each")
FRACTIONS_PARAM = Parameter("reject_max", 0.95, "reject fractions 0, 0.05, ..., 0.95 (20 points)")

CRFIQA_CARD = ProtocolCard(
    name="erc",
    kind="erc",
    title="CR-FIQA reference rule",
    source="CR-FIQA reference code, ERC/erc.py getFNMRFixedTH + ERC/roc.py (github.com/fdbtrs/CR-FIQA @ eb03b81)",
    rule=(
        "Drop the int(r*N) lowest-quality pairs, r from np.arange(0, 0.98, 0.05). On the retained pairs the "
        "candidate thresholds are all distinct scores (genuine and impostor); FMR(t) = impostors with score >= t "
        "/ impostors; the candidate with |FMR - target| smallest wins, equally near ones go to the lowest "
        "threshold; FNMR = genuine pairs with score <= t / genuine pairs (a genuine score equal to the "
        "threshold is a false non-match). AUC = trapezoid (sklearn.metrics.auc) over x = (100 r) / 100."
    ),
    parameters=(FMR_PARAM, FRACTIONS_PARAM),
    ties=TIES,
    edge_cases=ERC_EDGES,
    references=("Boutros et al., CR-FIQA, CVPR 2023", "../shared/REFERENCE.md section 5"),
)
STRICT_CARD = ProtocolCard(
    name="erc_strict",
    kind="erc",
    title="fiqa-bench strict rule",
    source="fiqa-bench's own ERC before issue 13 (one decision rule for FMR and FNMR; agrees with pyeer)",
    rule=(
        "Drop the floor(r*N) lowest-quality pairs (r*N rounded to 6 decimals first), r = 0, 0.05, ..., 0.95. "
        "Candidates: the retained impostor scores; threshold v accepts pairs strictly above it; FMR = accepted "
        "impostors / impostors, nearest the target wins, exact distance ties go to the lower FMR; FNMR = "
        "genuine pairs with score <= v / genuine pairs. AUC = trapezoid over r."
    ),
    parameters=(FMR_PARAM, FRACTIONS_PARAM),
    ties=TIES,
    edge_cases=ERC_EDGES,
)
MAGFACE_CARD = ProtocolCard(
    name="erc_magface",
    kind="erc",
    title="MagFace eval_quality.py rule",
    source="MagFace eval/eval_quality/eval_quality.py perform_1v1_quality_eval (github.com/IrvingMeng/MagFace @ ee9de18)",
    rule=(
        "Same schedule as erc (int(r*N), r from np.arange(0, 0.98, 0.05)). Impostor distances ascending "
        "(= similarities descending), n retained impostors; index k = n - 1 divided by 10 with truncation once "
        "per decade of the target (FMR 1e-3: int(int(int((n-1)/10)/10)/10)); threshold = the k-th (0-based) "
        "most similar impostor; a genuine pair is accepted iff strictly more similar. FMR targets must be "
        "powers of ten. AUC = trapezoid as erc."
    ),
    parameters=(Parameter("fmr", "1e-3", "FMR targets, powers of ten only"), FRACTIONS_PARAM),
    ties=TIES,
    edge_cases=ERC_EDGES
    + " With weighted counts k = floor((n_w - 1) / 10^m), at least 0. MagFace's loop stops once its index"
    " reaches 0, so with fewer than 10^(m-1) + 1 retained impostors it prints no value at 10^-m for that"
    " fraction (its curve gets shorter); here the point is kept with k = 0 (threshold = the top impostor).",
    references=("Meng et al., MagFace, CVPR 2021", "../shared/REFERENCE.md section 5"),
)


def _entries(ctx: Context, res: ErcResult) -> list[Entry]:
    nan = float("nan")
    out = []
    for t, f in enumerate(ctx.fmrs.tolist()):
        fields = {
            "reject_max": float(res.fractions[-1]),
            "threshold": float(res.threshold0[t]),
            "achieved_fmr": float(res.achieved0[t]),
            "fnmr_at_0": float(res.fnmr[t, 0]),
            "error_at_0": float(res.fnmr[t, 0]),
            "fmr_resolvable": bool(f * ctx.sc.n_imp >= 1),
            "split_tie_share": res.split_share,
            "note": res.notes[t],
        }
        params = {"fmr": float(f), "starting_error": nan, "discard_limit": nan}
        out.append(Entry(params, float(res.auc[t]), fields, (res.fractions, res.fnmr[t])))
    return out


@register_protocol(CRFIQA_CARD)
def run_erc(ctx: Context, q: np.ndarray, at: np.ndarray | None = None) -> list[Entry]:
    from .erc_fast import choose_crfiqa, erc_prefix  # same numbers as benchmarks/erc_plain.py

    return _entries(ctx, erc_prefix(ctx.sc, q, ctx.fmrs, crfiqa_schedule(ctx.fractions), choose_crfiqa))


@register_protocol(MAGFACE_CARD)
def run_erc_magface(ctx: Context, q: np.ndarray, at: np.ndarray | None = None) -> list[Entry]:
    from .erc_fast import choose_magface, erc_prefix  # same numbers as benchmarks/erc_plain.py

    return _entries(ctx, erc_prefix(ctx.sc, q, ctx.fmrs, crfiqa_schedule(ctx.fractions), choose_magface))


@register_protocol(STRICT_CARD)
def run_erc_strict(ctx: Context, q: np.ndarray, at: np.ndarray | None = None) -> list[Entry]:
    """Fast vectorised engine (``_core``) wherever no reject cut splits a tie block; else ``erc_fast``
    with the same rule (identical numbers where nothing is split: tested)."""
    sched = strict_schedule(ctx.fractions)
    ks = sched.counts(ctx.sc.n)
    plan = cut_plan(q, ks)
    if plan.split.any():
        from .erc_fast import choose_strict, erc_prefix  # same numbers as benchmarks/erc_plain.py

        res = erc_prefix(ctx.sc, q, ctx.fmrs, sched, choose_strict)
        res.distance_ties[:] = 0
        res.notes = [erc_notes(float(f), res, t, _no_gen_above(ctx.sc)) for t, f in enumerate(ctx.fmrs)]
        return _entries(ctx, res)
    arr = erc_arrays(ctx.sc, quality_buckets(q, ks, plan.sorted_q), sched.fractions, ctx.fmrs)
    achieved = arr.accepted0 / arr.n_imp[0] if arr.n_imp[0] else np.full(len(ctx.fmrs), np.nan)
    res = ErcResult(
        sched.fractions,
        arr.fnmr,
        arr.auc,
        arr.threshold0,
        achieved,
        arr.n_imp.astype(np.float64),
        arr.n_gen.astype(np.float64),
        np.zeros(len(ctx.fmrs), dtype=np.int64),
        0.0,
    )
    res.notes = [erc_notes(float(f), res, t, _no_gen_above(ctx.sc)) for t, f in enumerate(ctx.fmrs)]
    return _entries(ctx, res)


def _no_gen_above(sc: Scores) -> bool:
    return not bool(np.any(sc.gen_sorted[-1:] > -sc.imp_neg[:1]))
