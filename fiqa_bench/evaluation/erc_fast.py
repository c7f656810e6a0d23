"""The ERC rules of ``erc_rules`` computed from the few pairs that decide them.

Same numbers as ``benchmarks/erc_plain.py`` (the plain engine: every pair at every reject fraction;
tested to be equal), at a cost per reject fraction proportional to the impostors above the threshold
(about FMR x #impostors, doubled until enough) plus the genuine pairs below it (the false
non-matches), instead of all pairs:

- retained totals per kind come from the sorted qualities of each kind (two binary searches);
- the threshold only depends on the retained impostors in the top of the impostor score order, taken
  in tie groups of equal score (weights summed per group, groups without retained weight dropped);
- the false non-matches are the retained genuine pairs with score <= threshold, a prefix of the genuine
  scores in ascending order;
- the CR-FIQA rule's candidate thresholds between two impostor groups are genuine scores: only the
  lowest retained one in that gap can be chosen, found by a short scan of the ascending genuine scores.

Weights follow the tie rule of ``erc_rules`` (exact integers scaled by the split block's size).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._core import Scores
from .erc_rules import ErcResult, ErcSchedule, cut_plan, erc_notes, magface_decades

SCAN = 64  # genuine pairs looked at per step of a scan for the next retained one


@dataclass
class MethodView:
    """One quality method's arrays in the orders the rules read (built once per method)."""

    sc: Scores
    qi: np.ndarray  # quality of impostors, most similar first (sc.imp_desc order)
    qg: np.ndarray  # quality of genuine pairs, least similar first (sc.gen_asc order)
    qi_sorted: np.ndarray
    qg_sorted: np.ndarray


@dataclass
class Cut:
    """One reject fraction: how a quality value is weighted, and the retained totals (scaled)."""

    v: float
    split: bool
    scale: int
    kept: int
    w_imp: int
    w_gen: int

    def weights(self, qq: np.ndarray) -> np.ndarray:
        if self.split:
            return np.where(qq > self.v, self.scale, np.where(qq == self.v, self.kept, 0))
        return (qq >= self.v).astype(np.int64)

    def total(self, q_sorted: np.ndarray) -> int:
        lo = int(np.searchsorted(q_sorted, self.v, side="left"))
        hi = int(np.searchsorted(q_sorted, self.v, side="right"))
        above, eq = len(q_sorted) - hi, hi - lo
        return above * self.scale + eq * self.kept if self.split else above + eq


@dataclass
class TopGroups:
    """Retained impostor tie groups in the top ``m`` impostors: scores (descending), cumulative weight
    F[j] through group j, and how many of them are certainly complete."""

    s: np.ndarray
    F: np.ndarray
    complete: int
    whole: bool  # the prefix holds every impostor


def top_groups(mv: MethodView, cut: Cut, m: int) -> TopGroups:
    sc = mv.sc
    m = min(m, sc.n_imp)
    neg = sc.imp_neg[:m]
    w = cut.weights(mv.qi[:m])
    starts = np.concatenate(([0], np.flatnonzero(neg[1:] != neg[:-1]) + 1))
    gw = np.add.reduceat(w, starts)
    whole = m == sc.n_imp
    n_complete = len(starts) if whole else len(starts) - 1  # the last group may continue past m
    keep = gw > 0
    complete = int(np.count_nonzero(keep[:n_complete]))
    return TopGroups(-neg[starts][keep], np.cumsum(gw[keep]), complete, whole)


def gen_weight_le(mv: MethodView, cut: Cut, t: float) -> int:
    """Retained genuine weight with score <= t."""
    m = int(np.searchsorted(mv.sc.gen_sorted, t, side="right"))
    return int(cut.weights(mv.qg[:m]).sum()) if m else 0


def lowest_retained_gen_above(mv: MethodView, cut: Cut, bound: float) -> float | None:
    """The lowest score of a retained genuine pair strictly above ``bound`` (None if there is none)."""
    gs = mv.sc.gen_sorted
    a = int(np.searchsorted(gs, bound, side="right"))
    step = SCAN
    while a < len(gs):
        hit = np.flatnonzero(cut.weights(mv.qg[a : a + step]) > 0)
        if len(hit):
            return float(gs[a + hit[0]])
        a += step
        step *= 2
    return None


def highest_retained_gen(mv: MethodView, cut: Cut) -> float | None:
    gs = mv.sc.gen_sorted
    b, step = len(gs), SCAN
    while b > 0:
        a = max(0, b - step)
        hit = np.flatnonzero(cut.weights(mv.qg[a:b]) > 0)
        if len(hit):
            return float(gs[a + hit[-1]])
        b, step = a, step * 2
    return None


@dataclass
class Choice:
    threshold: float
    accepted: int  # scaled
    tie: bool


# A plateau rule: (view, cut, groups, fmr) -> Choice, or None when more top groups are needed.
PlateauRule = Callable[[MethodView, Cut, TopGroups, float], Choice | None]


def _fmr_index(F: np.ndarray, w: int, f: float) -> int:
    """First j with F[j] / w >= f, computed with the same float quotients as the program."""
    p = int(np.searchsorted(F, f * w, side="left"))
    while p > 0 and F[p - 1] / w >= f:
        p -= 1
    while p < len(F) and F[p] / w < f:
        p += 1
    return p


def choose_crfiqa(mv: MethodView, cut: Cut, g: TopGroups, f: float) -> Choice | None:
    """CR-FIQA: plateaus of equal FMR = F_j / W; plateau 0 (FMR 0) holds the retained genuine scores
    above the top retained impostor, plateau j >= 1 the impostor group j and the retained genuine scores
    between it and group j + 1; nearest plateau, ties to the higher FMR; threshold = the lowest retained
    score of the plateau; FNM = retained genuine <= threshold."""
    w = cut.w_imp
    top = highest_retained_gen(mv, cut)
    has0 = top is not None and len(g.s) > 0 and top > g.s[0]
    vals = np.concatenate(([0], g.F)) if has0 else g.F  # plateau values; index shift 1 when has0
    p = _fmr_index(vals, w, f)
    if p + 1 >= (g.complete + (1 if has0 else 0)) and not g.whole:
        return None
    cand = []
    for j in (p - 1, p):
        if 0 <= j < len(vals):
            cand.append((abs(vals[j] / w - f), j))
    d_lo = cand[0][0] if len(cand) == 2 else None
    best = min(cand, key=lambda c: (c[0], -c[1]))  # nearest; equal distance -> the higher FMR
    tie = d_lo is not None and cand[0][0] == cand[1][0]
    j = best[1] - (1 if has0 else 0)  # group index; -1 = plateau 0
    if j == -1:
        t = lowest_retained_gen_above(mv, cut, float(g.s[0]))
        assert t is not None
        return Choice(t, 0, tie)
    upper = float(g.s[j])
    lower = float(g.s[j + 1]) if j + 1 < len(g.s) else -np.inf
    t = lowest_retained_gen_above(mv, cut, lower)
    thr = t if t is not None and t < upper else upper
    return Choice(thr, int(g.F[j]), tie)


def choose_strict(mv: MethodView, cut: Cut, g: TopGroups, f: float) -> Choice | None:
    """Strict: candidates are the retained impostor groups; threshold s_j accepts F_{j-1} (strictly
    above); nearest to f x W, exact ties to the lower count."""
    c = np.concatenate(([0], g.F[:-1]))  # accepted at each group's score
    x = f * cut.w_imp
    p_hi = int(np.searchsorted(c, x, side="left"))
    if p_hi + 1 >= g.complete and not g.whole:
        return None
    p_lo = max(int(np.searchsorted(c, x, side="right")) - 1, 0)
    has_hi = p_hi < len(c)
    c_hi = c[min(p_hi, len(c) - 1)]
    c_lo = c[p_lo]
    use_hi = has_hi and (c_hi - x) < (x - c_lo)
    tie = has_hi and (c_hi - x) == (x - c_lo) and c_hi != c_lo
    j = min(p_hi, len(c) - 1) if use_hi else p_lo
    return Choice(float(g.s[j]), int(c[j]), bool(tie))


def choose_magface(mv: MethodView, cut: Cut, g: TopGroups, f: float) -> Choice | None:
    """MagFace: k = floor((W - 1) / 10^m) (weighted), threshold = the group holding weighted position k."""
    m = int(magface_decades(np.array([f]))[0])
    s = cut.scale
    k = max((cut.w_imp - s) // (s * 10**m), 0)
    j = int(np.searchsorted(g.F, k * s, side="right"))
    if j + 1 >= g.complete and not g.whole:
        return None
    j = min(j, len(g.F) - 1)
    return Choice(float(g.s[j]), int(g.F[j - 1]) if j > 0 else 0, False)


def erc_prefix(
    sc: Scores, q: np.ndarray, fmrs: np.ndarray, schedule: ErcSchedule, choose: PlateauRule
) -> ErcResult:
    """ERC of one quality method: ``choose`` applied to the weighted counts at every reject fraction
    (tie rule: ``erc_rules``). FNMR = weighted false non-matches / weighted retained genuine pairs; where
    no genuine pair or no impostor is retained FNMR is taken as 0 (noted). AUC = trapezoid over
    ``schedule.auc_x``. Equal to the plain engine in benchmarks/erc_plain.py (tested)."""
    ks = schedule.counts(sc.n)
    plan = cut_plan(q, ks)
    gen = sc.genuine
    qi = q[sc.imp_desc]
    qg = q[sc.gen_asc]
    mv = MethodView(sc, qi, qg, np.sort(qi), np.sort(qg))
    n_f, n_t = len(ks), len(fmrs)
    fnmr = np.zeros((n_t, n_f))
    n_imp = np.zeros(n_f)
    n_gen = np.zeros(n_f)
    ties = np.zeros((n_t, n_f), dtype=bool)
    thr0 = np.full(n_t, np.nan)
    acc0 = np.full(n_t, np.nan)
    m0 = int(np.ceil(float(np.max(fmrs)) * sc.n_imp)) * 2 + 64
    del gen
    for i in range(n_f):
        cut = Cut(float(plan.value[i]), bool(plan.split[i]), int(plan.scale[i]), int(plan.kept[i]), 0, 0)
        cut.w_imp, cut.w_gen = cut.total(mv.qi_sorted), cut.total(mv.qg_sorted)
        n_imp[i], n_gen[i] = cut.w_imp / cut.scale, cut.w_gen / cut.scale
        if cut.w_imp == 0 or cut.w_gen == 0:
            continue
        m = m0
        while True:
            g = top_groups(mv, cut, m)
            choices = [choose(mv, cut, g, float(f)) for f in fmrs]
            if all(c is not None for c in choices):
                break
            m *= 2
        for t, c in enumerate(choices):
            assert c is not None
            fnmr[t, i] = gen_weight_le(mv, cut, c.threshold) / cut.w_gen
            ties[t, i] = c.tie
            if i == 0:
                thr0[t], acc0[t] = c.threshold, c.accepted / cut.w_imp
    auc = np.trapezoid(fnmr, schedule.auc_x, axis=1) if n_f > 1 else np.zeros(n_t)
    out = ErcResult(
        schedule.fractions, fnmr, auc, thr0, acc0, n_imp, n_gen, ties.sum(axis=1), plan.split_share
    )
    no_gen_above = not bool(np.any(sc.gen_sorted[-1:] > -sc.imp_neg[:1]))
    out.notes = [erc_notes(float(f), out, t, no_gen_above) for t, f in enumerate(fmrs)]
    return out
