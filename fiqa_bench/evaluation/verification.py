"""Verification accuracy with held-out thresholds (the LFW/insightface "k-fold accuracy")."""

from __future__ import annotations

import numpy as np

from ._core import EvaluationError
from .registry import Context, Entry, Parameter, ProtocolCard, register_protocol


def best_threshold(similarity: np.ndarray, genuine: np.ndarray) -> float:
    """The threshold t (a pair is a match when similarity > t) with the highest accuracy on these pairs;
    candidates: every score and one below the lowest; ties go to the lowest t."""
    sim, gen = np.asarray(similarity), np.asarray(genuine, dtype=bool)
    u = np.unique(sim)
    cand = np.concatenate(([np.nextafter(u[0], -np.inf)], u))
    imp_at_or_below = np.searchsorted(np.sort(sim[~gen]), cand, side="right")
    gen_above = int(gen.sum()) - np.searchsorted(np.sort(sim[gen]), cand, side="right")
    return float(cand[int(np.argmax(imp_at_or_below + gen_above))])


def fold_accuracy(
    similarity: np.ndarray, genuine: np.ndarray, folds: np.ndarray | int = 10
) -> tuple[float, float]:
    """(mean, std) over folds of the accuracy on each fold at the best threshold of the other folds.

    ``folds``: a fold id per pair (e.g. LFW's published 10 folds), or a count k: k contiguous
    blocks of pairs, as insightface's verification does on .bin files.
    """
    sim, gen = np.asarray(similarity, dtype=np.float64), np.asarray(genuine, dtype=bool)
    if sim.ndim != 1 or sim.shape != gen.shape or len(sim) < 2:
        raise EvaluationError(
            f"fold_accuracy: need equal-length 1-D arrays of at least 2 pairs, got {sim.shape} and {gen.shape}"
        )
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


# insightface's recognition/eval/verification.py (deepinsight/insightface, calculate_roc with pca=0):
# thresholds np.arange(0, 4, 0.01) on the squared L2 distance of L2-normalised (flip-summed)
# embeddings; predicted same iff distance < threshold; folds = sklearn KFold(10, shuffle=False) over
# the pairs in file order; per fold the first threshold with the best training accuracy is applied to
# the test fold; printed: mean and (population) std of the fold accuracies.
INSIGHTFACE_THRESHOLDS: np.ndarray = np.arange(0, 4, 0.01)
# XQLFW's code/evaluate.py (Martlgap/xqlfw), as restated in REFERENCE.md 5: cosine distance 1 - cos,
# thresholds 0 to 2 in steps of 0.001, same KFold and first-best rule.
XQLFW_THRESHOLDS: np.ndarray = np.arange(0, 2, 0.001)


def squared_l2_of_normalised(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """insightface's distance: rows L2-normalised (sklearn.preprocessing.normalize), then the sum of
    squared differences. Give the flip-summed embeddings to reproduce its printed numbers."""
    from sklearn.preprocessing import normalize

    a = normalize(np.asarray(emb1, dtype=np.float64))
    b = normalize(np.asarray(emb2, dtype=np.float64))
    return np.sum(np.square(a - b), axis=1)


def grid_kfold_accuracy(
    distance: np.ndarray, genuine: np.ndarray, thresholds: np.ndarray, n_folds: int = 10
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(mean, std, per-fold accuracy, per-fold threshold): KFold(n_folds, shuffle=False) over the pairs in
    the given order; predicted same iff distance < threshold; per fold the FIRST threshold of the grid
    with the best accuracy on the other folds is applied to the fold. Folds are sklearn's: with N pairs
    the first N % n_folds folds hold one pair more (e.g. 6,001 pairs: one fold of 601, nine of 600)."""
    from sklearn.model_selection import KFold

    d = np.asarray(distance, dtype=np.float64)
    gen = np.asarray(genuine, dtype=bool)
    if d.ndim != 1 or d.shape != gen.shape or len(d) < n_folds:
        raise EvaluationError(
            f"verification: need equal-length 1-D arrays of at least {n_folds} pairs, got {d.shape} and {gen.shape}"
        )
    if not np.isfinite(d).all():
        raise EvaluationError("verification: distances must be finite")
    accs, thrs = [], []
    for train, test in KFold(n_splits=n_folds, shuffle=False).split(np.arange(len(d))):
        dg = np.sort(d[train][gen[train]])
        di = np.sort(d[train][~gen[train]])
        correct = np.searchsorted(dg, thresholds, side="left") + (
            len(di) - np.searchsorted(di, thresholds, side="left")
        )
        t = thresholds[int(np.argmax(correct))]
        accs.append(float(np.mean((d[test] < t) == gen[test])))
        thrs.append(float(t))
    a = np.asarray(accs)
    return float(a.mean()), float(a.std()), a, np.asarray(thrs)


def insightface_accuracy(
    similarity: np.ndarray | None,
    genuine: np.ndarray,
    *,
    embeddings: tuple[np.ndarray, np.ndarray] | None = None,
    n_folds: int = 10,
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Verification accuracy as insightface prints it. From ``embeddings`` (the two flip-summed embedding
    arrays of the pairs, N x D each) the distance is computed exactly as insightface does; from cosine
    ``similarity`` of normalised embeddings it is 2 - 2 cos (equal up to float rounding, ~1e-16)."""
    if embeddings is not None:
        d = squared_l2_of_normalised(*embeddings)
    else:
        d = 2.0 - 2.0 * np.asarray(similarity, dtype=np.float64)
    return grid_kfold_accuracy(d, genuine, INSIGHTFACE_THRESHOLDS, n_folds)


def xqlfw_accuracy(
    similarity: np.ndarray, genuine: np.ndarray, n_folds: int = 10
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Verification accuracy as XQLFW's evaluation script computes it: cosine distance 1 - cos."""
    return grid_kfold_accuracy(
        1.0 - np.asarray(similarity, dtype=np.float64), genuine, XQLFW_THRESHOLDS, n_folds
    )


# ------------------------------------------------------------------------------------ registered protocols

_VERIFICATION_EDGES = "Needs at least n_folds pairs; quality is not used."
_FILE_ORDER = (
    " The folds are contiguous blocks of the pairs in file order, as the program defines them: the only "
    "number here that depends on row order, by the published protocol's definition (use verification_exact "
    "with the dataset's folds for an order-free number)."
)
EXACT_CARD = ProtocolCard(
    name="verification_exact",
    kind="verification",
    title="k-fold accuracy, every score a threshold",
    source="fiqa-bench (exact variant of the LFW/insightface k-fold protocol)",
    rule=(
        "Per fold (the dataset's folds, else 10 contiguous blocks of pairs): threshold = the score with the "
        "best accuracy on the other folds (every distinct score and one below the lowest are candidates, "
        "match iff similarity > threshold, ties to the lowest), applied to the fold; mean and std over folds."
    ),
    parameters=(Parameter("n_folds", 10, "folds when the dataset has none"),),
    edge_cases=_VERIFICATION_EDGES,
)
INSIGHTFACE_CARD = ProtocolCard(
    name="verification_insightface",
    kind="verification",
    title="insightface printed accuracy (0.01 grid, KFold)",
    source="insightface recognition/eval/verification.py calculate_roc (github.com/deepinsight/insightface), REFERENCE.md 5",
    rule=(
        "Distance = squared L2 of the L2-normalised flip-summed embeddings (2 - 2 cos from a cosine score); "
        "thresholds np.arange(0, 4, 0.01); same iff distance < threshold; sklearn KFold(10, shuffle=False) over "
        "the pairs in file order; per fold the first grid threshold with the best accuracy on the other 9 folds; "
        "mean and population std of the 10 fold accuracies."
    ),
    parameters=(Parameter("n_folds", 10, "KFold splits"),),
    edge_cases=_VERIFICATION_EDGES
    + _FILE_ORDER
    + " Flip-summed embeddings come from the FR model; from plain embeddings the number is labelled the same"
    " but is not insightface's.",
)
XQLFW_CARD = ProtocolCard(
    name="verification_xqlfw",
    kind="verification",
    title="XQLFW evaluate.py accuracy (cosine distance, 0.001 grid)",
    source="Martlgap/xqlfw code/evaluate.py, as restated in REFERENCE.md 5 (grid bounds not checked against the script)",
    rule="Distance 1 - cos; thresholds np.arange(0, 2, 0.001); same iff distance < threshold; KFold(10, no shuffle); first best threshold.",
    parameters=(Parameter("n_folds", 10, "KFold splits"),),
    edge_cases=_VERIFICATION_EDGES + _FILE_ORDER,
)


def _verification_entry(mean: float, std: float, n_folds: int, note: str = "") -> list[Entry]:
    nan = float("nan")
    fields = {"accuracy": mean, "accuracy_std": std, "n_folds": n_folds, "note": note}
    return [Entry({"fmr": nan, "starting_error": nan, "discard_limit": nan}, nan, fields)]


@register_protocol(EXACT_CARD)
def run_verification_exact(
    ctx: Context, q: np.ndarray | None = None, at: np.ndarray | None = None
) -> list[Entry]:
    folds = ctx.folds if ctx.folds is not None and len(np.unique(ctx.folds)) > 1 else ctx.n_folds
    mean, std = fold_accuracy(ctx.sc.sim, ctx.sc.genuine, folds)
    n = len(np.unique(ctx.folds)) if not isinstance(folds, int) else ctx.n_folds
    return _verification_entry(mean, std, int(n))


@register_protocol(INSIGHTFACE_CARD)
def run_verification_insightface(
    ctx: Context, q: np.ndarray | None = None, at: np.ndarray | None = None
) -> list[Entry]:
    mean, std, _, _ = insightface_accuracy(ctx.sc.sim, ctx.sc.genuine, n_folds=ctx.n_folds)
    return _verification_entry(mean, std, ctx.n_folds, "distance 2 - 2 cos of the given scores")


@register_protocol(XQLFW_CARD)
def run_verification_xqlfw(
    ctx: Context, q: np.ndarray | None = None, at: np.ndarray | None = None
) -> list[Entry]:
    mean, std, _, _ = xqlfw_accuracy(ctx.sc.sim, ctx.sc.genuine, n_folds=ctx.n_folds)
    return _verification_entry(mean, std, ctx.n_folds)
