"""Verification accuracy with held-out thresholds (the LFW/insightface "k-fold accuracy")."""

from __future__ import annotations

import numpy as np

from ._core import EvaluationError


def best_threshold(similarity: np.ndarray, genuine: np.ndarray) -> float:
    """The threshold t (a pair is a match when similarity > t) with the highest accuracy on these pairs;
    candidates: every score and one below the lowest; ties go to the lowest t."""
    sim, gen = np.asarray(similarity), np.asarray(genuine, dtype=bool)
    u = np.unique(sim)
    cand = np.concatenate(([np.nextafter(u[0], -np.inf)], u))
    imp_at_or_below = np.searchsorted(np.sort(sim[~gen]), cand, side="right")
    gen_above = int(gen.sum()) - np.searchsorted(np.sort(sim[gen]), cand, side="right")
    return float(cand[int(np.argmax(imp_at_or_below + gen_above))])


def fold_accuracy(similarity: np.ndarray, genuine: np.ndarray, folds: np.ndarray | int = 10) -> tuple[float, float]:
    """(mean, std) over folds of the accuracy on each fold at the best threshold of the other folds.

    ``folds``: a fold id per pair (e.g. LFW's published 10 folds), or a count k: k contiguous
    blocks of pairs, as insightface's verification does on .bin files.
    """
    sim, gen = np.asarray(similarity, dtype=np.float64), np.asarray(genuine, dtype=bool)
    if sim.ndim != 1 or sim.shape != gen.shape or len(sim) < 2:
        raise EvaluationError(f"fold_accuracy: need equal-length 1-D arrays of at least 2 pairs, got {sim.shape} and {gen.shape}")
    if not np.isfinite(sim).all():
        raise EvaluationError("fold_accuracy: similarity scores must be finite")
    if np.ndim(folds) == 0:
        k = int(folds)  # type: ignore[arg-type]
        fold = np.arange(len(sim)) * k // len(sim)
    else:
        fold = np.asarray(folds)
    ids = np.unique(fold)
    if len(ids) < 2:
        fold = np.arange(len(sim)) * 10 // len(sim)  # one fold given: fall back to 10 blocks
        ids = np.unique(fold)
    accs = []
    for f in ids:
        test = fold == f
        t = best_threshold(sim[~test], gen[~test])
        accs.append(float(np.mean((sim[test] > t) == gen[test])))
    return float(np.mean(accs)), float(np.std(accs))
