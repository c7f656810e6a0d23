"""Evaluation engine: ERC (recomputed threshold) and EDC (fixed threshold), areas, bootstrap CIs.

Pure NumPy: nothing here imports torch, a dataset or a model. Memory is proportional to the number
of pairs: one sort per quality method, then per reject fraction a running top list of impostor
scores (ERC thresholds), counts of false non-matches, and one sort of genuine qualities for EDC.
"""

from ._core import DEFAULT_DISCARD_LIMIT, DEFAULT_REJECT_FRACTIONS, EvaluationError, reject_counts
from .evaluate import cosine_similarity_pairs, evaluate, pair_quality
from .points import CurvePoints
from .protocols import Curve, edc_fixed, erc_recomputed, stepwise_area
from .stats import bootstrap_auc, paired_bootstrap, resamples
from .verification import fold_accuracy

__all__ = [
    "DEFAULT_DISCARD_LIMIT",
    "DEFAULT_REJECT_FRACTIONS",
    "Curve",
    "CurvePoints",
    "EvaluationError",
    "bootstrap_auc",
    "cosine_similarity_pairs",
    "edc_fixed",
    "erc_recomputed",
    "evaluate",
    "fold_accuracy",
    "pair_quality",
    "paired_bootstrap",
    "reject_counts",
    "resamples",
    "stepwise_area",
]
