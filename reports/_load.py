"""Read a results folder (results.csv, curves.csv, pairs/*.npz, run.json) into plain, sorted tables.

Everything the reports show comes from these files; nothing is recomputed from images or models.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fiqa_bench.errors import DataFormatError, MissingDataError

RESULT_COLUMNS = ["dataset", "fr_model", "method", "protocol", "fmr", "auc"]
CURVE_COLUMNS = ["dataset", "fr_model", "method", "protocol", "fmr", "fraction", "fnmr"]
PROTOCOLS = ("ERC", "EDC")
PROTOCOL_TEXT = {
    "ERC": "ERC, threshold recomputed on the retained pairs (CR-FIQA/MagFace protocol)",
    "EDC": "EDC, threshold fixed on all pairs (Schlett et al.)",
}


@dataclass
class Results:
    folder: Path
    results: pd.DataFrame
    curves: pd.DataFrame
    run: dict[str, Any]
    pairs: dict[tuple[str, str], Path] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.results["dataset"].unique().tolist())

    @property
    def fr_models(self) -> list[str]:
        return sorted(self.results["fr_model"].unique().tolist())

    @property
    def fmrs(self) -> list[float]:
        return sorted((float(f) for f in self.results["fmr"].unique()), reverse=True)  # 1e-3 before 1e-4, as in papers

    @property
    def protocols(self) -> list[str]:
        present = set(self.results["protocol"].unique())
        return [p for p in PROTOCOLS if p in present] + sorted(present - set(PROTOCOLS))

    @property
    def methods(self) -> list[str]:
        """Every method label, reference lines included, sorted (the basis of the style map)."""
        return sorted(self.results["method"].unique().tolist())

    @property
    def reference_methods(self) -> set[str]:
        ref = self.results.loc[self.results["reference_line"], "method"]
        return set(ref.unique().tolist())

    def dataset_info(self, name: str) -> dict[str, Any]:
        info = (self.run.get("datasets") or {}).get(name)
        return info if isinstance(info, dict) else {}


def _as_bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "yes"])


def load_results(folder: Path) -> Results:
    folder = Path(folder)
    res_path = folder / "results.csv"
    if not res_path.is_file():
        raise MissingDataError("results table", res_path, "Run `fiqa-bench run --out FOLDER` first, then report on FOLDER.")
    try:
        results = pd.read_csv(res_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataFormatError(res_path, f"not a readable CSV ({exc})", "rerun `fiqa-bench run`") from exc
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise DataFormatError(res_path, f"missing column(s) {', '.join(missing)}", "rerun `fiqa-bench run` to rewrite it")
    if results.empty:
        raise DataFormatError(res_path, "has no result rows", "rerun `fiqa-bench run` with at least one method")
    results["dataset"] = results["dataset"].astype(str)
    results["fr_model"] = results["fr_model"].astype(str)
    results["method"] = results["method"].astype(str)
    results["protocol"] = results["protocol"].astype(str).str.upper()
    results["fmr"] = results["fmr"].astype(float)
    results["auc"] = pd.to_numeric(results["auc"], errors="coerce")
    for col in ("ci_low", "ci_high", "achieved_fmr", "threshold", "fnmr_at_0", "reject_max", "discard_limit"):
        results[col] = pd.to_numeric(results[col], errors="coerce") if col in results.columns else np.nan
    for col in ("n_pairs", "n_genuine", "n_impostor"):
        results[col] = pd.to_numeric(results[col], errors="coerce") if col in results.columns else np.nan
    results["reference_line"] = (
        _as_bool(results["reference_line"]) if "reference_line" in results.columns else results["method"].isin(["random", "oracle"])
    )
    if "fmr_resolvable" in results.columns:
        results["fmr_resolvable"] = _as_bool(results["fmr_resolvable"])
    else:
        results["fmr_resolvable"] = results["fmr"] * results["n_impostor"].fillna(0) >= 1
    if "note" not in results.columns:
        results["note"] = ""
    results["note"] = ["" if pd.isna(v) else str(v) for v in results["note"]]
    # Deterministic order, independent of the order the pipeline wrote the rows in.
    results = results.sort_values(["dataset", "fr_model", "protocol", "fmr", "method"], kind="mergesort").reset_index(drop=True)

    curves_path = folder / "curves.csv"
    if curves_path.is_file():
        try:
            curves = pd.read_csv(curves_path)
        except pd.errors.EmptyDataError:
            curves = pd.DataFrame(columns=CURVE_COLUMNS)
    else:
        curves = pd.DataFrame(columns=CURVE_COLUMNS)
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise DataFormatError(curves_path, f"missing column(s) {', '.join(missing)}", "rerun `fiqa-bench run` to rewrite it")
    for col in ("dataset", "fr_model", "method"):
        curves[col] = curves[col].astype(str)
    curves["protocol"] = curves["protocol"].astype(str).str.upper()
    for col in ("fmr", "fraction", "fnmr", "fnmr_lo", "fnmr_hi"):
        if col in curves.columns:
            curves[col] = pd.to_numeric(curves[col], errors="coerce")
    curves = curves.sort_values(["dataset", "fr_model", "protocol", "fmr", "method", "fraction"], kind="mergesort").reset_index(drop=True)

    run: dict[str, Any] = {}
    run_path = folder / "run.json"
    if run_path.is_file():
        try:
            loaded = json.loads(run_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataFormatError(run_path, f"not valid JSON ({exc.msg})", "rerun `fiqa-bench run` to rewrite it", exc.lineno) from exc
        run = loaded if isinstance(loaded, dict) else {}

    pairs: dict[tuple[str, str], Path] = {}
    pairs_dir = folder / "pairs"
    if pairs_dir.is_dir():
        for p in sorted(pairs_dir.glob("*.npz")):
            names = _pair_labels(p)
            if names is not None:
                pairs[names] = p
    return Results(folder=folder, results=results, curves=curves, run=run, pairs=pairs)


def _pair_labels(path: Path) -> tuple[str, str] | None:
    """(dataset, FR model) of a pairs file: the labels stored inside, else the file name's two parts."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "dataset" in z.files and "fr_model" in z.files:
                return str(z["dataset"]), str(z["fr_model"])
    except (OSError, ValueError):
        pass  # load_pairs reports an unreadable file when it is used
    if "__" in path.stem:
        ds, fr = path.stem.split("__", 1)
        return ds, fr
    return None


def load_pairs(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one pairs/<dataset>__<fr_model>.npz: similarity, genuine, fold, q__<method>."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataFormatError(path, f"not a readable .npz ({exc})", "rerun `fiqa-bench run` to rewrite it") from exc
    for key in ("similarity", "genuine"):
        if key not in arrays:
            raise DataFormatError(path, f"has no array {key!r}", "rerun `fiqa-bench run` to rewrite it")
    arrays["genuine"] = arrays["genuine"].astype(bool)
    return arrays


def pair_methods(arrays: dict[str, np.ndarray]) -> list[str]:
    return sorted(k[3:] for k in arrays if k.startswith("q__"))


def below_resolution(fmr: float, n_impostor: float) -> bool:
    """True when the FMR target cannot be resolved: fewer than one impostor pair would be a false match."""
    if n_impostor is None or not math.isfinite(float(n_impostor)) or n_impostor <= 0:
        return False
    return fmr < 1.0 / float(n_impostor)


def fmt_fmr(fmr: float) -> str:
    """1e-3 -> '1e-3', 0.0005 -> '5e-4', 0.01 -> '1e-2' (stable text for file names and headers)."""
    mant, exp = f"{fmr:.0e}".split("e")
    if abs(float(f"{mant}e{exp}") - fmr) > 1e-12 * max(fmr, 1e-300):
        mant, exp = f"{fmr:.2e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"
