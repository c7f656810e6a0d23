"""The aggregates recent FIQA papers print, from the saved results table only.

For every protocol variant and FMR target, with C = the (dataset, FR model) columns of the results:

- **mean**: mean_m = (1/|C|) * sum over c in C of AUC(m, c), the "average over datasets and FR models"
  of the DifFIQA / eDifFIQA / FROQ tables; undefined (n/a) when method m lacks a finite value in a column.
- **relative ranking** (Schlett et al., dasec/quality-assessment-evaluation; ISO/IEC 29794-1 style):
  each column's values are min-max scaled over the ranked methods,
  s(m, c) = (AUC(m, c) - min_m' AUC(m', c)) / (max_m' AUC(m', c) - min_m' AUC(m', c)),
  then averaged over the columns: rank_m = (1/|C|) * sum over c of s(m, c). 0 = best in every column,
  1 = worst in every column. A column where every ranked method has the same value scales to 0 for all.
  Reference lines (random, oracle) are not ranked and do not set the min or max; columns where some
  ranked method has no finite value are left out of the ranking (and counted in ``n_columns``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

COLUMNS = [
    "variant",
    "protocol",
    "fmr",
    "method",
    "reference_line",
    "n_columns",
    "mean_auc",
    "relative_rank",
    "n_ranked_columns",
]


def aggregate_rows(results: pd.DataFrame, reference: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """One row per (variant, FMR, method): ``mean_auc`` over the (dataset, FR model) columns and Schlett's
    ``relative_rank`` (see the module docstring). ``results`` needs the columns dataset, fr_model,
    method, protocol, fmr, auc (and variant; the protocol name is used where it is missing).
    Sorted by variant, FMR (descending), then relative rank and method."""
    r = results.copy()
    if "variant" not in r.columns:
        r["variant"] = r["protocol"]
    out: list[dict[str, object]] = []
    for (variant, fmr), block in r.groupby(["variant", "fmr"], sort=True, dropna=False):
        table = block.pivot_table(
            index="method", columns=["dataset", "fr_model"], values="auc", aggfunc="first"
        )
        protocol = str(block["protocol"].iloc[0])
        n_cols = table.shape[1]
        ranked = [m for m in table.index if m not in reference]
        values = table.to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        rank_cols = (
            [j for j in range(n_cols) if all(finite[table.index.get_loc(m), j] for m in ranked)]
            if ranked
            else []
        )
        scaled = np.full(values.shape, np.nan)
        for j in rank_cols:
            idx = [table.index.get_loc(m) for m in ranked]
            col = values[idx, j]
            lo, hi = float(col.min()), float(col.max())
            scaled[idx, j] = (col - lo) / (hi - lo) if hi > lo else 0.0
        for i, method in enumerate(table.index):
            row = values[i]
            mean = float(row.mean()) if n_cols and finite[i].all() else math.nan
            is_ref = method in reference
            rank = float(scaled[i, rank_cols].mean()) if rank_cols and not is_ref else math.nan
            out.append(
                {
                    "variant": variant,
                    "protocol": protocol,
                    "fmr": float(fmr),
                    "method": method,
                    "reference_line": is_ref,
                    "n_columns": n_cols,
                    "mean_auc": mean,
                    "relative_rank": rank,
                    "n_ranked_columns": len(rank_cols) if not is_ref else 0,
                }
            )
    frame = pd.DataFrame(out, columns=COLUMNS)
    if len(frame):
        frame = frame.assign(_f=-frame["fmr"], _r=frame["relative_rank"].fillna(np.inf))
        frame = frame.sort_values(["variant", "_f", "reference_line", "_r", "method"], kind="mergesort")
        frame = frame.drop(columns=["_f", "_r"]).reset_index(drop=True)
    return frame
