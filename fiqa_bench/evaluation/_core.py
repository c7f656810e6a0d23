"""Shared machinery of ERC and EDC: input checks, the once-per-score-set sorts, threshold choice.

Everything here is vectorised and holds memory proportional to the number of pairs: no per-pair
Python objects and no pairs x reject-points matrices.

Decision rule used everywhere: a pair is *accepted* (a match) when its similarity is strictly
greater than the threshold. An impostor that is accepted is a false match; a genuine pair that is
not accepted (similarity <= threshold) is a false non-match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FiqaError

DEFAULT_REJECT_FRACTIONS: np.ndarray = np.round(np.arange(20) * 0.05, 2)  # 0, 0.05, ..., 0.95
DEFAULT_DISCARD_LIMIT = 0.2


class EvaluationError(FiqaError, ValueError):
    """Inputs that the protocols cannot evaluate (wrong shapes, NaNs, no genuine or no impostor pairs)."""


def all_finite(a: np.ndarray) -> bool:
    """No NaN or infinity in ``a``: min and max propagate NaN and expose infinities, in two fast passes."""
    return len(a) == 0 or bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def check_pairs(similarity: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (similarity as float, genuine as bool) arrays; float32 input stays float32."""
    sim = np.asarray(similarity)
    if sim.ndim != 1:
        raise EvaluationError(f"similarity must be a 1-D array of pair scores, got shape {sim.shape}")
    if sim.dtype not in (np.float32, np.float64):
        sim = sim.astype(np.float64)
    gen = np.asarray(genuine)
    if gen.shape != sim.shape:
        raise EvaluationError(
            f"genuine has shape {gen.shape} but similarity has {sim.shape}; give one label per pair"
        )
    if gen.dtype != bool:
        if not np.isin(gen, (0, 1)).all():
            raise EvaluationError("genuine must be boolean or 0/1 (1 = same identity)")
        gen = gen.astype(bool)
    if not all_finite(sim):
        bad = ~np.isfinite(sim)
        raise EvaluationError(
            f"{int(bad.sum())} similarity score(s) are NaN or infinite (first at pair {int(np.argmax(bad))})"
        )
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
    if not all_finite(q):
        bad = ~np.isfinite(q)
        raise EvaluationError(
            f"{name}: {int(bad.sum())} pair quality value(s) are NaN or infinite (first at pair {int(np.argmax(bad))})"
        )
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


def quality_buckets(q: np.ndarray, ks: np.ndarray, srt: np.ndarray | None = None) -> np.ndarray:
    """bucket[p] = how many reject counts k in ``ks`` leave pair p kept, i.e. have p at a position >= k
    of the protocol's order (quality ascending, ties in original pair index order: a stable sort).
    So pair p remains at reject fraction i  <=>  bucket[p] > i. One byte per pair (two beyond 254 counts).

    No argsort: one value sort gives the quality at each cut; a pair is at or past cut k exactly when
    its quality is >= that value, except inside a run of tied qualities that the cut splits, where the
    run's first pairs by index stay below it. One vectorised comparison per cut is ~4x faster than
    the stable argsort it replaces. ``srt``: ``np.sort(q)`` when the caller has it already.
    """
    srt = np.sort(q) if srt is None else srt
    bucket = np.zeros(len(q), dtype=np.uint8 if len(ks) < 255 else np.uint16)
    passed = np.empty(len(q), dtype=bool)
    passed_int = passed.view(np.uint8)  # adding the bytes skips a bool -> integer cast per element
    for k in np.asarray(ks, dtype=np.int64).tolist():
        v = srt[k]
        np.greater_equal(q, v, out=passed)
        bucket += passed_int
        if k > 0 and srt[k - 1] == v:  # the cut splits a tie run: its first k - lo pairs by index stay below
            lo = int(np.searchsorted(srt, v, side="left"))
            bucket[np.flatnonzero(q == v)[: k - lo]] -= 1
    return bucket


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
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # orders other protocols build once

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


def nearest_counts(
    x: np.ndarray,
    n_rem: np.ndarray | int,
    value_at: Callable[[np.ndarray], np.ndarray],
    count_below: Callable[[np.ndarray], np.ndarray],
    count_through: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The protocol's threshold rule as counts: per wanted (fractional) number ``x`` of accepted
    impostors out of ``n_rem``, the achievable count c nearest x. Returns (c, c_hi, has_hi).

    Candidate thresholds are the remaining impostor scores. Threshold v accepts the impostors strictly
    above v, so with tied impostor scores only the FMRs #(score > v) / n at the start of each tie
    block are achievable (e.g. scores 0.9, 0.5, 0.5, 0.1 allow FMR 0, 1/4 and 3/4, never 2/4). The
    chosen threshold is the candidate whose FMR is nearest the target; an exact tie in distance goes to
    the lower FMR (the stricter, higher threshold). FMR 0 (threshold = the top impostor score) is always
    a candidate; the threshold is then the score of the c-th remaining impostor (0-based, most similar first).

    ``value_at(j)``: negated score of the j-th remaining impostor; ``count_below(v)`` / ``count_through(v)``:
    remaining impostors with negated score < v / <= v. ``c_hi``, ``has_hi``: the candidate above x, for
    callers that must check it was counted exactly.
    """
    j0 = np.minimum(np.floor(x).astype(np.int64), n_rem - 1)
    j1 = np.ceil(x).astype(np.int64)
    has_hi = j1 <= n_rem - 1
    j1c = np.minimum(j1, n_rem - 1)
    c_lo = count_below(value_at(j0))  # largest achievable count <= x
    v1 = value_at(j1c)
    c_hi = np.where(count_below(v1) == j1c, j1c, count_through(v1))  # smallest achievable count >= x
    use_hi = has_hi & (c_hi <= n_rem - 1) & ((c_hi - x) < (x - c_lo))
    return np.where(use_hi, c_hi, c_lo).astype(np.int64), c_hi, has_hi


def nearest_fmr_thresholds(neg: np.ndarray, fmrs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per FMR target: (c, threshold) on the impostors whose negated scores ``neg`` are given ascending
    (most similar first); c = impostors accepted. The rule: ``nearest_counts``."""
    c, _, _ = nearest_counts(
        fmrs * len(neg),
        len(neg),
        lambda j: neg[j],
        lambda v: np.searchsorted(neg, v, side="left"),
        lambda v: np.searchsorted(neg, v, side="right"),
    )
    return c, -neg[c]


ROW_BLOCK_ELEMENTS = 1 << 22  # fraction rows x m kept ranks answered at once (32 MB of int64)


def suffix_thresholds(
    sc: Scores, bucket: np.ndarray, n_imp: np.ndarray, fmrs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ERC thresholds for every reject fraction: (c, thr), each fractions x targets (c = -1, thr NaN
    where no impostor remains). Same rule (``nearest_counts``) on the remaining impostors.

    ``bucket[r]``: the ``quality_buckets`` value of the impostor of rank r (rank = position in
    ``sc.imp_desc``, most similar first): fraction i keeps the impostors with bucket > i, i.e. the layers
    i, i+1, ... (layer i = bucket i + 1); ``n_imp[i]``: impostors it keeps.
    Walking the fractions from the last, the m best-ranked kept impostors of fraction i are the m
    smallest of fraction i+1's list and layer i's m best (small sorted integer arrays; tie blocks of
    equal scores are resolved afterwards through rank bounds, not in the walk). Every target's query
    on every fraction is then one gather or one flat searchsorted over a block of rows. m starts at the
    largest wanted count + 2 and doubles when a tie block runs past a list. Memory O(pairs + rows x m).
    """
    n_frac, n_t = len(n_imp), len(fmrs)
    c = np.full((n_frac, n_t), -1, dtype=np.int64)
    thr = np.full((n_frac, n_t), np.nan)
    if not np.any(n_imp > 0):
        return c, thr
    per_bucket = np.bincount(bucket, minlength=n_frac + 1)
    by_layer = np.argsort(bucket, kind="stable")  # ranks grouped by bucket, ascending inside each
    per_layer = per_bucket[1:]
    first = (np.cumsum(per_bucket) - per_bucket)[1:]
    x_all = fmrs[None, :] * n_imp[:, None]  # wanted accepted impostors (fractional)
    m = int(np.ceil(x_all).max()) + 2
    while True:
        block = max(1, ROW_BLOCK_ELEMENTS // m)
        complete = True
        top = np.empty(0, dtype=by_layer.dtype)
        tops: list[np.ndarray] = []
        starts, takes = first.tolist(), np.minimum(per_layer, m).tolist()
        for i in range(n_frac - 1, -1, -1):
            if takes[i]:
                merged = np.concatenate((top, by_layer[starts[i] : starts[i] + takes[i]]))
                merged.sort()
                top = merged[:m]
            tops.append(top)
            if len(tops) == block or i == 0:  # rows i .. i + len(tops) - 1
                rows = np.arange(i, i + len(tops))
                keep = n_imp[rows] > 0
                if keep.any():
                    done = _thresholds_from_tops(
                        sc, tops[::-1], rows[keep], n_imp[rows[keep]], x_all[rows[keep]], m
                    )
                    if done is None:
                        complete = False
                        break
                    c[rows[keep]], thr[rows[keep]] = done
                tops = []
        if complete or m >= sc.n_imp:
            return c, thr
        m *= 2


def _thresholds_from_tops(
    sc: Scores, tops: list[np.ndarray], rows: np.ndarray, n_rem: np.ndarray, x: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``nearest_counts`` for a block of fractions (``tops[k]``: the m best kept ranks of
    fraction first_row + k, ascending), or None when a count reached m where the list may be cut short."""
    lists = np.full((len(tops), m), sc.n_imp, dtype=np.int64)  # padded with a rank past every impostor
    for k, t in enumerate(tops):
        lists[k, : len(t)] = t
    lists = lists[rows - rows[0]]
    width = sc.n_imp + 1
    offset = (np.arange(len(rows)) * width)[:, None]
    flat = (lists + offset).ravel()  # rows ascending and < width apart: one sorted array
    at = np.arange(len(rows))[:, None]

    def kept_above(r: np.ndarray) -> np.ndarray:  # kept impostors ranked before rank r (exact below m)
        return np.searchsorted(flat, r + offset, side="left") - at * m

    neg = sc.imp_neg
    c, c_hi, has_hi = nearest_counts(
        x,
        n_rem[:, None],
        lambda j: neg[lists[at, j]],
        lambda v: kept_above(np.searchsorted(neg, v, side="left")),
        lambda v: kept_above(np.searchsorted(neg, v, side="right")),
    )
    if np.any(has_hi & (c_hi >= m) & (n_rem[:, None] > m)):
        return None
    return c, -neg[lists[at, c]]


def fnm_counts_rows(sc: Scores, thr: np.ndarray, b_gen: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per row: remaining genuine pairs (``b_gen > rows[r]``, score order) with similarity <= thr[r, t].

    Only the ``top`` least similar genuine pairs can be false non-matches at any of the thresholds.
    Those are grouped by bucket (a stable sort of small integers), positions ascending inside each
    group, as one increasing key bucket * (top + 1) + position; then the count for (row, threshold)
    is, summed over the buckets above the row, the keys of that bucket below the threshold's position:
    one (sorted) searchsorted for every (row, threshold, bucket). Time O(top + rows x thresholds x buckets), memory O(top).
    """
    pos = np.searchsorted(sc.gen_sorted, thr, side="right")  # rows x targets: genuine pairs with score <= thr
    out = np.zeros(pos.shape, dtype=np.int64)
    top = int(pos.max()) if pos.size else 0
    if top == 0:
        return out
    b = b_gen[:top]
    grouped = np.argsort(b, kind="stable")  # a radix sort for one- and two-byte buckets
    keys = b[grouped].astype(np.int64) * (top + 1) + grouped  # ascending
    n_b = int(b[grouped[-1]]) + 1
    starts = np.searchsorted(keys, np.arange(n_b) * (top + 1))  # first key of each bucket value
    # Queries bucket-major with the positions sorted are one ascending array: sorted-key searchsorted
    # is several times faster than with the keys in (row, threshold) order.
    flat = pos.ravel()
    o = np.argsort(flat, kind="stable")
    below = np.searchsorted(keys, (np.arange(n_b)[:, None] * (top + 1) + flat[o][None, :]).ravel())
    below = below.reshape(n_b, len(flat)) - starts[:, None]  # buckets x queries
    row_of = np.repeat(np.asarray(rows), pos.shape[1])[o]
    out.ravel()[o] = np.where(np.arange(n_b)[:, None] > row_of[None, :], below, 0).sum(axis=0)
    return out


def fmt_fmr(f: float) -> str:
    """1e-04 for powers of ten (as papers write FMR targets), 0.25 otherwise."""
    short = f"{f:.0e}"
    return short if f > 0 and float(short) == f else f"{f:g}"
