"""Quality scores mapped to integers 0..100 (ISO/IEC 29794-1 reports quality as an integer in [0, 100]).

Applied to each method's IMAGE qualities over the evaluated set, before pair quality (the minimum of
the two images') is formed; the mapping is monotone, so it only coarsens the order: scores that land
on the same integer become ties, which every protocol then handles order-independently (ERC:
fractional retention, see ``erc_rules``; EDC: tie blocks discarded together).

- ``minmax`` (the default of ``--quality-scale``): round-half-up of 100 (q - min) / (max - min). Keeps
  the shape of the score distribution, like the fixed monotone mappings ISO/IEC 29794-1 components use
  (a native score stretched onto 0..100); because min and max are taken over the evaluated images it
  is the closest generic stand-in for a method without a published mapping. A constant quality maps
  to 0 everywhere.
- ``rank``: round-half-up of 100 (r - 1) / (n - 1) with r the average rank (ties share a rank). Uses
  all 101 levels evenly and ignores outliers, at the cost of the distribution's shape.
"""

from __future__ import annotations

import numpy as np

from ._core import EvaluationError

QUALITY_SCALES = ("none", "minmax", "rank")


def scale_qualities(q: np.ndarray, scale: str) -> np.ndarray:
    """Image qualities (N, float, higher = better) -> float64 integers 0..100 (``scale`` "none": unchanged)."""
    if scale not in QUALITY_SCALES:
        raise EvaluationError(f"quality scale must be one of {', '.join(QUALITY_SCALES)}, got {scale!r}")
    x = np.asarray(q, dtype=np.float64)
    if scale == "none" or len(x) == 0:
        return x
    if not np.isfinite(x).all():
        raise EvaluationError("quality scale: qualities must be finite")
    if scale == "minmax":
        lo, hi = x.min(), x.max()
        u = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    else:
        from scipy.stats import rankdata

        r = rankdata(x, method="average")
        u = (r - 1) / (len(x) - 1) if len(x) > 1 else np.zeros_like(x)
    return np.clip(np.floor(100 * u + 0.5), 0, 100)
