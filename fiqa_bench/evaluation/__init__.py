"""Evaluation engine: protocols (ERC, EDC, verification accuracy) in a registry, areas, bootstrap CIs.

API (for the pipeline, ``fiqa-bench evaluate`` and reports). ``evaluate(similarity, genuine, qualities,
fmrs, *, protocols=None, discard_limits=None, starting_error=None, fractions=None, normalised=False,
folds=None, bootstrap=0, seed=0, n_folds=10, threads=None, progress=False) -> (rows, CurvePoints)``:
``similarity`` float (N,) higher = more alike, ``genuine`` bool (N,), ``qualities`` {method: pair quality
(N,), higher = better}, ``fmrs`` FMR targets. ``protocols`` = registry names (comma string or list;
``protocol_names()`` lists them, ``protocol_cards()`` gives each frozen ``ProtocolCard``: name, kind
erc/edc/verification, title, source program with repository + commit, rule in words, parameters with
defaults, tie rule, edge cases); default ``DEFAULT_PROTOCOLS`` = ("erc", "edc"); unknown names raise
``EvaluationError`` (one line, lists the known names; ``parse_protocols`` validates a CLI value). Names:
``erc`` (CR-FIQA reference rule, the default ERC), ``erc_strict`` (fiqa-bench's earlier rule),
``erc_magface`` (MagFace; FMR targets must be powers of ten), ``edc`` (Schlett FNM-EDC), ``edc_fm``
(FM-EDC), ``verification_exact``, ``verification_insightface``, ``verification_xqlfw``. Every row is a dict
with the keys ``ROW_COLUMNS``: method, protocol (registry name), kind, the protocol's parameters fmr,
starting_error, discard_limit, reject_max (NaN where they do not apply), auc (ERC AUC / EDC pAUC; lower =
better), pauc_minus_best, pauc_normalised (EDC), accuracy, accuracy_std, n_folds (verification rows,
method "(all pairs)"), ci_low, ci_high, counts, achieved_fmr, threshold, fnmr_at_0, error_at_0,
split_tie_share (ERC: share of pairs in tied-quality blocks split by a reject cut), note. One ERC row per method x FMR; one EDC
row per method x (FMR target, or starting error when given) x discard limit. Curve points
(``CurvePoints.to_frame()``): method, protocol, kind, fmr, starting_error, fraction, fnmr (+ fnmr_lo,
fnmr_hi with bootstrap). ``scale_qualities(q, "minmax"|"rank")`` maps image qualities to integers 0..100
(``--quality-scale``) before pair qualities are formed. CLI values: ``options.parse_protocol_option``,
``parse_discard_limits`` ("0.2,0.3"), ``parse_starting_errors``, ``parse_quality_scale`` (one-line
``EvaluationError`` naming the flag, exit 2). ``protocols_markdown()``: the registry as a table.
``bootstrap_auc`` / ``paired_bootstrap`` take any registry name (any case). Nothing depends on row order
(tie rule: see ``erc_rules``; only the verification protocols' KFold follows file order, by their
definition), thread count or cache history.

Pure NumPy (+ scikit-learn's KFold for insightface-style accuracy): nothing here imports torch, a
dataset or a model. Memory is proportional to the number of pairs.
"""

from . import edc_rules, erc_rules, verification  # noqa: F401  (registers the protocols)
from ._core import DEFAULT_DISCARD_LIMIT, DEFAULT_REJECT_FRACTIONS, EvaluationError, reject_counts
from .evaluate import ROW_COLUMNS, cosine_similarity_pairs, evaluate, pair_quality
from .points import CurvePoints
from .protocols import Curve, edc_fixed, erc_recomputed, stepwise_area
from .registry import (
    DEFAULT_PROTOCOLS,
    ProtocolCard,
    get_protocol,
    parse_protocols,
    protocol_cards,
    protocol_names,
    protocols_markdown,
)
from .scale import QUALITY_SCALES, scale_qualities
from .stats import bootstrap_auc, paired_bootstrap, resamples
from .verification import fold_accuracy, insightface_accuracy, xqlfw_accuracy

__all__ = [
    "DEFAULT_DISCARD_LIMIT",
    "DEFAULT_PROTOCOLS",
    "DEFAULT_REJECT_FRACTIONS",
    "QUALITY_SCALES",
    "ROW_COLUMNS",
    "Curve",
    "CurvePoints",
    "EvaluationError",
    "ProtocolCard",
    "bootstrap_auc",
    "cosine_similarity_pairs",
    "edc_fixed",
    "erc_recomputed",
    "evaluate",
    "fold_accuracy",
    "get_protocol",
    "insightface_accuracy",
    "pair_quality",
    "paired_bootstrap",
    "parse_protocols",
    "protocol_cards",
    "protocol_names",
    "protocols_markdown",
    "reject_counts",
    "resamples",
    "scale_qualities",
    "stepwise_area",
    "xqlfw_accuracy",
]
