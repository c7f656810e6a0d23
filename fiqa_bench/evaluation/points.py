"""Curve points kept as columns: one block of arrays per (method, protocol, FMR target) curve.

``evaluate`` used to return one Python dict per point. At 60k pairs that was about a tenth of the
evaluation time (10 methods x 3 targets x (20 ERC + 501 EDC) points); blocks of arrays cost nothing
per point. ``to_frame`` gives the tidy table written to curves.csv; iterating still yields one dict per
point (method, protocol, fmr, fraction, fnmr, then fnmr_lo/fnmr_hi with bootstrap bands, then the
columns set by ``assign``), for code that reads a few points.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

BASE_COLUMNS = ("method", "protocol", "kind", "fmr", "starting_error", "fraction", "fnmr")


@dataclass
class CurveBlock:
    method: str
    protocol: str  # registry name (erc, erc_strict, edc, ...)
    fmr: float
    fraction: np.ndarray
    fnmr: np.ndarray  # the protocol's error (FMR for edc_fm)
    fnmr_lo: np.ndarray | None = None  # pointwise bootstrap band, when there is one
    fnmr_hi: np.ndarray | None = None
    kind: str = ""  # "erc" or "edc"
    starting_error: float = float("nan")  # EDC threshold from a starting error (else NaN)


class CurvePoints:
    """The points of every curve of one ``evaluate`` call, in curve order, as column blocks."""

    def __init__(self, blocks: list[CurveBlock] | None = None) -> None:
        self.blocks: list[CurveBlock] = blocks if blocks is not None else []
        self.constants: dict[str, Any] = {}  # columns with one value for every point (dataset, fr_model)

    def add(self, method: str, protocol: str, fmr: float, fraction: np.ndarray, fnmr: np.ndarray) -> None:
        self.blocks.append(
            CurveBlock(
                method,
                protocol,
                float(fmr),
                np.asarray(fraction, dtype=np.float64),
                np.asarray(fnmr, dtype=np.float64),
            )
        )

    def assign(self, **constants: Any) -> CurvePoints:
        """Set columns that have one value for every point; returns self."""
        self.constants.update(constants)
        return self

    def columns(self) -> dict[str, Any]:
        """Column name -> array (strings as object arrays), in the order curves.csv uses."""
        sizes = [len(b.fraction) for b in self.blocks]
        n = sum(sizes)

        def per_block(values: list[Any], dtype: Any) -> np.ndarray:
            return np.repeat(np.array(values, dtype=dtype), sizes) if n else np.empty(0, dtype=dtype)

        def joined(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(arrays) if arrays else np.empty(0)

        cols: dict[str, Any] = {
            "method": per_block([b.method for b in self.blocks], object),
            "protocol": per_block([b.protocol for b in self.blocks], object),
            "kind": per_block([b.kind for b in self.blocks], object),
            "fmr": per_block([b.fmr for b in self.blocks], np.float64),
            "starting_error": per_block([b.starting_error for b in self.blocks], np.float64),
            "fraction": joined([b.fraction for b in self.blocks]),
            "fnmr": joined([b.fnmr for b in self.blocks]),
        }
        if self.blocks and all(b.fnmr_lo is not None and b.fnmr_hi is not None for b in self.blocks):
            cols["fnmr_lo"] = joined([b.fnmr_lo for b in self.blocks])  # type: ignore[misc]
            cols["fnmr_hi"] = joined([b.fnmr_hi for b in self.blocks])  # type: ignore[misc]
        for name, value in self.constants.items():
            cols[name] = np.full(n, value, dtype=object)
        return cols

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns())

    def __len__(self) -> int:
        return sum(len(b.fraction) for b in self.blocks)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        cols = self.columns()
        names = list(cols)
        yield from (
            dict(zip(names, row, strict=True))
            for row in zip(*(np.asarray(cols[k]).tolist() for k in names), strict=True)
        )
