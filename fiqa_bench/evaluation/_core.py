"""Shared machinery of ERC and EDC: input checks, the once-per-score-set sorts, threshold choice.

Everything here is vectorised and holds memory proportional to the number of pairs: no per-pair
Python objects and no pairs x reject-points matrices.

Decision rule used everywhere: a pair is *accepted* (a match) when its similarity is strictly
greater than the threshold. An impostor that is accepted is a false match; a genuine pair that is
not accepted (similarity <= threshold) is a false non-match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import FiqaError

DEFAULT_REJECT_FRACTIONS: np.ndarray = np.round(np.arange(20) * 0.05, 2)  # 0, 0.05, ..., 0.95
DEFAULT_DISCARD_LIMIT = 0.2


class EvaluationError(FiqaError, ValueError):
    """Inputs that the protocols cannot evaluate (wrong shapes, NaNs, no genuine or no impostor pairs)."""


def check_pairs(similarity: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (similarity as float, genuine as bool) arrays; float32 input stays float32."""
    sim = np.asarray(similarity)
    if sim.ndim != 1:
        raise EvaluationError(f"similarity must be a 1-D array of pair scores, got shape {sim.shape}")
    if sim.dtype not in (np.float32, np.float64):
        sim = sim.astype(np.float64)
    gen = np.asarray(genuine)
    if gen.shape != sim.shape:
        raise EvaluationError(f"genuine has shape {gen.shape} but similarity has {sim.shape}; give one label per pair")
    if gen.dtype != bool:
        if not np.isin(gen, (0, 1)).all():
            raise EvaluationError("genuine must be boolean or 0/1 (1 = same identity)")
        gen = gen.astype(bool)
    bad = ~np.isfinite(sim)
    if bad.any():
        raise EvaluationError(f"{int(bad.sum())} similarity score(s) are NaN or infinite (first at pair {int(np.argmax(bad))})")
    n_gen = int(np.count_nonzero(gen))
    if n_gen == 0 or n_gen == len(gen):
        kind = "genuine" if n_gen == 0 else "impostor"
        raise EvaluationError(
            f"no {kind} pairs among {len(gen)}: ERC/EDC need both genuine pairs (for FNMR) and impostor "
            "pairs (for the FMR threshold)"
        )
    return sim, gen


def check_quality(quality: np.ndarray, n: int, name: str = "pair_quality") -> np.ndarray:
    q = np.asarray(quality)
    if q.shape != (n,):
        raise EvaluationError(f"{name}: expected {n} pair qualities (one per pair), got shape {q.shape}")
    if q.dtype not in (np.float32, np.float64):
        q = q.astype(np.float64)
    bad = ~np.isfinite(q)
    if bad.any():
        raise EvaluationError(f"{name}: {int(bad.sum())} pair quality value(s) are NaN or infinite (first at pair {int(np.argmax(bad))})")
    return q


def check_fmrs(fmrs: float | np.ndarray | list[float]) -> np.ndarray:
    f = np.atleast_1d(np.asarray(fmrs, dtype=np.float64))
    if f.ndim != 1 or len(f) == 0:
        raise EvaluationError("give at least one FMR target")
    if not np.all((f >= 0) & (f <= 1)):
        raise EvaluationError(f"FMR targets must lie in [0, 1], got {f.tolist()}")
    return f


def check_fractions(fractions: np.ndarray) -> np.ndarray:
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or len(fr) == 0:
        raise EvaluationError("reject fractions must be a non-empty 1-D array")
    if not (np.all((fr >= 0) & (fr < 1)) and np.all(np.diff(fr) > 0)):
        raise EvaluationError(f"reject fractions must increase strictly within [0, 1), got {fr.tolist()}")
    return fr


def reject_counts(fractions: np.ndarray, n: int) -> np.ndarray:
    """floor(r * n) per fraction. r * n is rounded to 6 decimals first, so that binary floating point
    does not turn 0.15 * 100 = 15.000000000000002 or 0.29 * 100 = 28.999999999999996 into the wrong count."""
    return np.floor(np.round(np.asarray(fractions, dtype=np.float64) * n, 6)).astype(np.int64)


def quality_order(q: np.ndarray, cuts: np.ndarray | None = None) -> np.ndarray:
    """Pair indices sorted by quality, lowest first; ties in original index order where it matters.

    The protocol's tie rule is a stable sort (quality, then original index). A full stable sort is
    ~4x slower than NumPy's SIMD quicksort, and the order inside a run of tied qualities only changes
    results where a reject count cuts through the run (ERC; EDC drops tied qualities together). So:
    unstable sort, then re-sort by index exactly those runs that a count in ``cuts`` splits.
    """
    order = np.argsort(q)
    n = len(q)
    for k in np.unique(cuts) if cuts is not None else ():
        k = int(k)
        if 0 < k < n and q[order[k - 1]] == q[order[k]]:
            v = q[order[k]]
            lo = int(np.count_nonzero(q < v))
            hi = lo + int(np.count_nonzero(q == v))
            order[lo:hi] = np.sort(order[lo:hi])
    return order


@dataclass
class Scores:
    """The similarity scores sorted once, shared by every quality method evaluated on them."""

    sim: np.ndarray
    genuine: np.ndarray
    imp_desc: np.ndarray  # pair indices of impostors, most similar first (ties in any order)
    imp_neg: np.ndarray  # -similarity of imp_desc: ascending, for tie-block lookup by searchsorted
    gen_asc: np.ndarray  # pair indices of genuine pairs, least similar first
    gen_sorted: np.ndarray  # their similarity, ascending
    gen_idx: np.ndarray  # pair indices of genuine pairs, ascending

    @property
    def n(self) -> int:
        return len(self.sim)

    @property
    def n_imp(self) -> int:
        return len(self.imp_desc)

    @property
    def n_gen(self) -> int:
        return len(self.gen_asc)

    @classmethod
    def build(cls, similarity: np.ndarray, genuine: np.ndarray, *, checked: bool = False) -> Scores:
        sim, gen = (similarity, genuine) if checked else check_pairs(similarity, genuine)
        imp = np.flatnonzero(~gen)
        neg = -sim[imp]
        o = np.argsort(neg)  # order inside tie blocks is irrelevant: ties are handled as blocks
        gidx = np.flatnonzero(gen)
        gs = sim[gidx]
        og = np.argsort(gs)
        return cls(sim, gen, imp[o], neg[o], gidx[og], gs[og], gidx)


def nearest_fmr_thresholds(neg: np.ndarray, n_rem: int, fmrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per FMR target: (c, threshold) with c the number of remaining impostors accepted.

    ``neg``: the remaining impostors' negated scores, ascending (most similar first), either all of
    them or at least every one scoring >= the one that decides the answer (see ``layered_thresholds``);
    ``n_rem``: how many impostors remain in all.

    Candidate thresholds are the remaining impostor scores. Threshold v accepts the impostors strictly
    above v, so with tied impostor scores only the FMRs #(score > v) / n at the start of each tie
    block are achievable (e.g. scores 0.9, 0.5, 0.5, 0.1 allow FMR 0, 1/4 and 3/4, never 2/4). The
    chosen threshold is the candidate whose FMR is nearest the target; an exact tie in distance goes to
    the lower FMR (the stricter, higher threshold). FMR 0 (threshold = the top impostor score) is always
    a candidate. Returns c = -1 where ``neg`` is too short to decide (the caller widens it).
    """
    x = fmrs * n_rem  # wanted number of accepted impostors (fractional)
    j0 = np.minimum(np.floor(x).astype(np.int64), n_rem - 1)
    j1 = np.ceil(x).astype(np.int64)
    has_hi = j1 <= n_rem - 1
    j1c = np.minimum(j1, n_rem - 1)
    c_lo = np.searchsorted(neg, neg[j0], side="left")  # largest achievable count <= x
    starts = np.searchsorted(neg, neg[j1c], side="left")
    c_hi = np.where(starts == j1c, j1c, np.searchsorted(neg, neg[j1c], side="right"))  # smallest >= x
    use_hi = has_hi & (c_hi <= n_rem - 1) & ((c_hi - x) < (x - c_lo))
    c = np.where(use_hi, c_hi, c_lo).astype(np.int64)
    if np.any(c >= len(neg)):
        return np.full(len(fmrs), -1, dtype=np.int64), np.zeros(len(fmrs), dtype=neg.dtype)
    return c, -neg[c]


def _smallest_with_ties(a: np.ndarray, m: int) -> np.ndarray:
    """The m smallest values of a plus every value tied with the m-th (unsorted)."""
    if len(a) <= m:
        return a
    v = np.partition(a, m - 1)[m - 1]
    return a[a <= v]


def layered_thresholds(
    neg_imp: np.ndarray, layer_bounds: np.ndarray, n_imp: np.ndarray, fmrs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ERC thresholds for every reject fraction: (c, thr), each fractions x targets (c = -1, thr NaN
    where no impostor remains).

    ``neg_imp``: the impostors' negated scores in quality order; fraction i keeps the impostors from
    ``layer_bounds[i]`` on, i.e. the layers i, i+1, ... (layer l = [layer_bounds[l], layer_bounds[l+1])). Walking the
    layers from the last, a running list keeps the top m impostor scores of the kept pairs (with every
    score tied to the m-th): the answer for every target lies in that list when m exceeds the largest
    wanted count by 2. Cost: O(pairs) for the layers plus O(fractions x m log m); memory O(pairs).
    If a tie block straddles the list's end, m doubles and the walk is redone.
    """
    n_frac = len(n_imp)
    x = fmrs[None, :] * n_imp[:, None].astype(np.int64)
    need = int(np.ceil(x).max()) if len(x) else 0
    m = need + 2
    while True:
        c = np.full((n_frac, len(fmrs)), -1, dtype=np.int64)
        thr = np.full((n_frac, len(fmrs)), np.nan)
        top = np.empty(0, dtype=neg_imp.dtype)
        complete = True
        for i in range(n_frac - 1, -1, -1):
            layer = neg_imp[layer_bounds[i] : layer_bounds[i + 1]]
            top = _smallest_with_ties(np.concatenate((top, _smallest_with_ties(layer, m))), m)
            if n_imp[i] == 0:
                continue
            ci, ti = nearest_fmr_thresholds(np.sort(top), int(n_imp[i]), fmrs)
            if ci[0] < 0:
                complete = False
                break
            c[i], thr[i] = ci, ti
        if complete or m >= len(neg_imp):
            return c, thr
        m *= 2


def fnm_counts_rows(sc: Scores, thr: np.ndarray, b_gen: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row: remaining genuine pairs (``b_gen > rows[r]``, score order) with similarity <= thr[r, t].

    Only the ``top`` least similar genuine pairs can be false non-matches at any of the thresholds.
    Those are grouped by bucket (a stable sort of small integers), positions ascending inside each
    group, as one increasing key bucket * (top + 1) + position; then the count for (row, threshold)
    is, summed over the buckets above the row, the keys of that bucket below the threshold's position:
    one searchsorted for every (row, threshold, bucket). Time O(top + rows x thresholds x buckets), memory O(top).
    """
    pos = np.searchsorted(sc.gen_sorted, thr, side="right")  # rows x targets: genuine pairs with score <= thr
    out = np.zeros(pos.shape, dtype=np.int64)
    top = int(pos.max()) if pos.size else 0
    if top == 0:
        return out
    b = b_gen[:top].astype(np.int64)
    grouped = np.argsort(b, kind="stable")
    n_b = int(b.max()) + 1
    keys = b[grouped] * (top + 1) + grouped  # ascending
    starts = np.searchsorted(keys, np.arange(n_b) * (top + 1))  # first key of each bucket value
    v = np.arange(n_b)
    below = np.searchsorted(keys, v[None, None, :] * (top + 1) + pos[:, :, None]) - starts  # rows x targets x buckets
    out[:] = np.where(v[None, None, :] > np.asarray(rows)[:, None, None], below, 0).sum(axis=2)
    return out


def fmt_fmr(f: float) -> str:
    """1e-04 for powers of ten (as papers write FMR targets), 0.25 otherwise."""
    short = f"{f:.0e}"
    return short if f > 0 and float(short) == f else f"{f:g}"
