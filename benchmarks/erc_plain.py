"""The ERC rules of fiqa_bench.evaluation.erc_rules written plainly: every pair at every reject fraction.

The oracle of tests/test_evaluation_rules.py for ``erc_fast`` (what the protocols run): the same tie rule
(fractional retention with exact integer weights) and each program's threshold rule applied to the weighted
counts of all retained pairs, at O(pairs) per reject fraction. It lives here, not in the package (one
place for each rule there), like the straightforward implementation in bench_evaluation.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fiqa_bench.evaluation._core import Scores
from fiqa_bench.evaluation.erc_rules import (
    CutPlan,
    ErcResult,
    ErcSchedule,
    _no_gen_above,
    cut_plan,
    erc_notes,
    magface_decades,
)


@dataclass
class DescOrder:
    """Pairs sorted by similarity, most similar first, grouped by equal similarity. Shared by all
    methods of one score set (built once; ``Scores`` caches it)."""

    order: np.ndarray  # pair indices, similarity descending
    s: np.ndarray  # similarity in that order
    is_gen: np.ndarray  # int64 0/1 in that order
    gstart: np.ndarray  # first position of each group of equal similarity
    gend: np.ndarray  # last position (inclusive)

    @classmethod
    def of(cls, sc: Scores) -> DescOrder:
        cached = sc.cache.get("desc_order")
        if cached is None:
            order = np.argsort(-sc.sim, kind="stable")
            s = sc.sim[order]
            cut = np.flatnonzero(s[1:] != s[:-1]) + 1
            gstart = np.concatenate(([0], cut))
            gend = np.concatenate((cut - 1, [len(s) - 1]))
            cached = cls(order, s, sc.genuine[order].astype(np.int64), gstart, gend)
            sc.cache["desc_order"] = cached
        return cached


@dataclass
class RetainedCounts:
    """Exact (scaled) weighted counts of the retained pairs at one cut, in ``DescOrder`` order."""

    scale: int
    w_imp: int  # retained impostor weight
    w_gen: int
    imp_through: np.ndarray  # per group: impostor weight with similarity >= the group's score
    imp_before: np.ndarray  # per group: impostor weight strictly above
    gen_before: np.ndarray  # per group: genuine weight strictly above
    group_w: np.ndarray  # per group: retained weight in the group


def retained_counts(do: DescOrder, qd: np.ndarray, plan: CutPlan, i: int) -> RetainedCounts:
    v = plan.value[i]
    scale = int(plan.scale[i])
    if plan.split[i]:
        w = np.where(qd > v, scale, 0)
        w[qd == v] = int(plan.kept[i])
    else:
        w = (qd >= v).astype(np.int64)
    wi = w * (1 - do.is_gen)
    ci = np.cumsum(wi)
    cg = np.cumsum(w - wi)
    cw = ci + cg
    before = do.gstart - 1
    z = before < 0
    bi = np.where(z, 0, ci[np.maximum(before, 0)])
    bg = np.where(z, 0, cg[np.maximum(before, 0)])
    bw = np.where(z, 0, cw[np.maximum(before, 0)])
    return RetainedCounts(scale, int(ci[-1]), int(cg[-1]), ci[do.gend], bi, bg, cw[do.gend] - bw)


@dataclass
class RuleResult:
    """One reject fraction, all targets: threshold, weighted accepted impostors, weighted false non-matches."""

    threshold: np.ndarray
    accepted: np.ndarray  # scaled
    fnm: np.ndarray  # scaled
    distance_tie: np.ndarray  # bool: two candidates were exactly equally near the target


Rule = Callable[[DescOrder, RetainedCounts, np.ndarray], RuleResult]


def rule_crfiqa(do: DescOrder, rc: RetainedCounts, fmrs: np.ndarray) -> RuleResult:
    """CR-FIQA ``roc.calculate_roc`` + ``get_fmr_op`` + ``getFNMRFixedTH``, in similarity terms.

    Candidates: every distinct retained score (genuine and impostor). FMR(t) = retained impostors with
    score >= t / retained impostors. Chosen: the candidate with FMR nearest the target (|FMR - target|,
    computed as the program does); equally near candidates -> the lowest threshold. FNM: genuine pairs
    with score <= t (a genuine score equal to the threshold is a false non-match)."""
    keep = np.flatnonzero(rc.group_w > 0)
    fm = rc.imp_through[keep]
    fmr_c = fm / rc.w_imp  # nondecreasing along the candidates (most similar first)
    n_t = len(fmrs)
    # Nearest plateau of equal FMR: the two FMR values around the target; ties go to the higher FMR
    # (its candidates have lower thresholds), and within a plateau to its lowest threshold (last index).
    p = np.searchsorted(fmr_c, fmrs, side="left")
    lo_i = np.maximum(p - 1, 0)
    hi_i = np.minimum(p, len(fmr_c) - 1)
    d_lo = np.abs(fmr_c[lo_i] - fmrs)
    d_hi = np.abs(fmr_c[hi_i] - fmrs)
    pick_hi = (p < len(fmr_c)) & ((p == 0) | (d_hi <= d_lo))
    val = np.where(pick_hi, fmr_c[hi_i], fmr_c[lo_i])
    tie = (p > 0) & (p < len(fmr_c)) & (d_hi == d_lo) & (fmr_c[hi_i] != fmr_c[lo_i])
    j = np.searchsorted(fmr_c, val, side="right") - 1
    g = keep[j]
    thr = do.s[do.gstart[g]]
    fnm = rc.w_gen - rc.gen_before[g]
    return RuleResult(thr.astype(np.float64), rc.imp_through[g], fnm, tie.reshape(n_t))


def rule_strict(do: DescOrder, rc: RetainedCounts, fmrs: np.ndarray) -> RuleResult:
    """fiqa-bench's own rule (``erc_strict``): candidates are the retained impostor scores; threshold v
    accepts pairs strictly above it; FMR = accepted impostors / retained impostors; nearest FMR wins,
    exact distance ties go to the lower FMR (higher threshold); FNM: genuine pairs with score <= v."""
    keep = np.flatnonzero((rc.imp_through - rc.imp_before) > 0)
    c = rc.imp_before[keep]  # strictly increasing
    x = fmrs * rc.w_imp
    p_hi = np.searchsorted(c, x, side="left")  # smallest c >= x
    p_lo = np.searchsorted(c, x, side="right") - 1  # largest c <= x
    p_lo = np.maximum(p_lo, 0)
    has_hi = p_hi < len(c)
    c_hi = c[np.minimum(p_hi, len(c) - 1)]
    c_lo = c[p_lo]
    use_hi = has_hi & ((c_hi - x) < (x - c_lo))
    tie = has_hi & ((c_hi - x) == (x - c_lo)) & (c_hi != c_lo)
    j = np.where(use_hi, np.minimum(p_hi, len(c) - 1), p_lo)
    g = keep[j]
    thr = do.s[do.gstart[g]]
    fnm = rc.w_gen - rc.gen_before[g]
    return RuleResult(thr.astype(np.float64), rc.imp_before[g], fnm, tie)


def rule_magface(do: DescOrder, rc: RetainedCounts, fmrs: np.ndarray) -> RuleResult:
    """MagFace ``eval_quality.py``: impostor distances ascending (= similarities descending), n retained
    impostors, index k = n - 1 divided by 10 with truncation once per decade of the target (FMR 1e-3:
    int(int(int((n-1)/10)/10)/10)); threshold = the k-th (0-based) most similar impostor; a genuine pair
    is accepted iff strictly more similar (distance strictly below). Nested truncation equals
    (n - 1) // 10^m, so with weighted counts k = floor((n_w - 1) / 10^m) in exact integers."""
    m = magface_decades(fmrs)
    s = rc.scale
    k = np.maximum((rc.w_imp - s) // (s * 10**m), 0)  # weighted index, unscaled
    # the impostor at weighted position k: first group whose cumulative impostor weight exceeds k
    g = np.searchsorted(rc.imp_through, k * s, side="right")
    g = np.minimum(g, len(rc.imp_through) - 1)
    thr = do.s[do.gstart[g]]
    fnm = rc.w_gen - rc.gen_before[g]
    return RuleResult(thr.astype(np.float64), rc.imp_before[g], fnm, np.zeros(len(fmrs), dtype=bool))


def erc_weighted(sc: Scores, q: np.ndarray, fmrs: np.ndarray, schedule: ErcSchedule, rule: Rule) -> ErcResult:
    """ERC of one quality method under ``rule`` (see the module docstring for the tie rule).

    FNMR = weighted false non-matches / weighted retained genuine pairs. Where no genuine pair or no
    impostor is retained FNMR is taken as 0 (stated in the note). AUC = trapezoid over ``schedule.auc_x``.
    """
    do = DescOrder.of(sc)
    n = sc.n
    ks = schedule.counts(n)
    plan = cut_plan(q, ks)
    qd = q[do.order]
    n_f, n_t = len(ks), len(fmrs)
    fnmr = np.zeros((n_t, n_f))
    n_imp = np.zeros(n_f)
    n_gen = np.zeros(n_f)
    ties = np.zeros((n_t, n_f), dtype=bool)
    thr0 = np.full(n_t, np.nan)
    acc0 = np.full(n_t, np.nan)
    for i in range(n_f):
        rc = retained_counts(do, qd, plan, i)
        n_imp[i], n_gen[i] = rc.w_imp / rc.scale, rc.w_gen / rc.scale
        if rc.w_imp == 0 or rc.w_gen == 0:
            continue
        res = rule(do, rc, fmrs)
        fnmr[:, i] = res.fnm / rc.w_gen
        ties[:, i] = res.distance_tie
        if i == 0:
            thr0, acc0 = res.threshold, res.accepted / rc.w_imp
    auc = np.trapezoid(fnmr, schedule.auc_x, axis=1) if n_f > 1 else np.zeros(n_t)
    out = ErcResult(
        schedule.fractions, fnmr, auc, thr0, acc0, n_imp, n_gen, ties.sum(axis=1), plan.split_share
    )
    no_gen_above = _no_gen_above(sc)
    for t in range(n_t):
        out.notes.append(erc_notes(float(fmrs[t]), out, t, no_gen_above))
    return out
