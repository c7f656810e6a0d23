"""The report's view of a results folder: read through :mod:`fiqa_bench.results` (the one reader), plus
small text helpers shared by tables, figures and summaries.

Everything the reports show comes from the saved files; nothing is recomputed from images or models.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from fiqa_bench.results import Results, pair_methods, read_pairs, read_results

__all__ = [
    "Results",
    "below_resolution",
    "fmr_key",
    "fmt_fmr",
    "load_pairs",
    "load_results",
    "pair_methods",
    "protocol_heading",
    "same_fmr",
]


def load_results(folder: Path) -> Results:
    """A results folder read back (see :func:`fiqa_bench.results.read_results`)."""
    return read_results(Path(folder))


def load_pairs(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one pairs/<dataset>__<fr_model>.npz: similarity, genuine, fold, q__<method>."""
    return read_pairs(path)


def below_resolution(fmr: float, n_impostor: float) -> bool:
    """True when the FMR target cannot be resolved: fewer than one impostor pair would be a false match."""
    if n_impostor is None or not math.isfinite(float(n_impostor)) or n_impostor <= 0:
        return False
    return fmr < 1.0 / float(n_impostor)


def fmr_key(fmr: float) -> float | None:
    """A dictionary/equality key for an FMR target: rounded, and None for NaN (EDC rows whose threshold
    comes from a starting error have no FMR target)."""
    f = float(fmr)
    return None if math.isnan(f) else round(f, 15)


def same_fmr(values: object, fmr: float) -> np.ndarray:
    """Element-wise 'is this FMR target' that treats NaN (no target) as equal to NaN."""
    return np.isclose(np.asarray(values, dtype=np.float64), float(fmr), equal_nan=True)


def fmt_fmr(fmr: float) -> str:
    """1e-3 -> '1e-3', 0.0005 -> '5e-4', 0.01 -> '1e-2' (stable text for file names and headers); NaN
    (no FMR target: EDC from a starting error) -> 'none'."""
    if math.isnan(float(fmr)):
        return "none"
    mant, exp = f"{fmr:.0e}".split("e")
    if abs(float(f"{mant}e{exp}") - fmr) > 1e-12 * max(fmr, 1e-300):
        mant, exp = f"{fmr:.2e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def protocol_heading(res: Results, variant: str, fmr: float | None = None) -> str:
    """'ERC (erc: CR-FIQA reference rule), FMR 1e-3' or 'EDC (edc: ...), discard limit 0.3, FMR 1e-3': the
    curve family, the protocol's name and title, its row-level parameters and the FMR target."""
    protocol = res.variant_protocol(variant)
    head = res.card(protocol).label()
    params = variant[len(protocol) :].lstrip(", ")
    if params:
        head += f", {params}"
    if fmr is not None and not math.isnan(float(fmr)):
        head += f", FMR {fmt_fmr(fmr)}"
    return head
