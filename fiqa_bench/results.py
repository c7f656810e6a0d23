"""The results folder: ONE writer and ONE reader, with a schema version.

A results folder holds::

    results.csv      one row per (dataset, FR model, method, protocol, FMR target [, protocol parameters])
    curves.csv       the curve points of those rows (fraction, fnmr [, fnmr_lo, fnmr_hi])
    pairs/*.npz      per (dataset, FR model): similarity, genuine, fold, q__<method> (pair qualities)
    run.json         schema_version, the evaluation parameters, the protocol cards, provenance

``fiqa-bench run`` (pipeline), ``fiqa-bench evaluate`` (precomputed files) and the synthetic test folders
write through :func:`write_pairs` and :func:`write_results`; ``fiqa-bench report`` and ``compare`` read
through :func:`read_results`. Nothing else touches these files.

Every file is written atomically (a uniquely named temporary file in the same folder, then
``os.replace``), and run.json is written last: a folder whose run.json carries the current
``schema_version`` is complete. Folders written before this schema (no ``schema_version``) are refused
with one line that says to re-run ``fiqa-bench run`` / ``evaluate``; nothing is guessed from them.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataFormatError, MissingDataError
from .naming import pairs_file_name

SCHEMA_VERSION = 2  # 1: the unversioned folders of fiqa-bench <= 0.1 (three writers, no protocol parameters)
RESULT_COLUMNS = ("dataset", "fr_model", "method", "protocol", "fmr", "auc")
CURVE_COLUMNS = ("dataset", "fr_model", "method", "protocol", "fmr", "fraction", "fnmr")
# Row-level protocol parameters: a row's variant (its table, its figure) is the protocol plus these.
PARAMETER_COLUMNS = ("starting_error", "discard_limit", "quality_scale", "normalised")
# ...of which those that change the curve itself (the rest only change the area read from it).
CURVE_PARAMETER_COLUMNS = ("starting_error", "quality_scale")
NUMERIC_COLUMNS = (
    "auc",
    "ci_low",
    "ci_high",
    "achieved_fmr",
    "threshold",
    "fnmr_at_0",
    "reject_max",
    "discard_limit",
    "starting_error",
    "n_pairs",
    "n_genuine",
    "n_impostor",
)
RERUN = "re-run `fiqa-bench run` (or `fiqa-bench evaluate`) to rewrite it"


@dataclass(frozen=True)
class ProtocolCard:
    """What a reader needs to know about one evaluation protocol, recorded in run.json.

    ``name``: registry name (the ``protocol`` column); ``kind``: "erc" (threshold recomputed per reject
    fraction), "edc" (threshold fixed, pairs discarded) or "verification" (accuracy, no curve);
    ``title``: one-line description; ``source``: the program (and version/commit) whose rule it is;
    ``rule``: the rule in words; ``parameters``: its settings in this run (the registry's defaults
    overridden by the run's values); ``needs``: inputs beyond the pair similarities.
    """

    name: str
    kind: str
    title: str
    source: str = ""
    rule: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()  # inputs beyond the pair similarities: "flip_sum" (flip-summed embeddings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "title": self.title,
            "source": self.source,
            "rule": self.rule,
            "parameters": _jsonable(dict(self.parameters)),
            "needs": list(self.needs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProtocolCard:
        return cls(
            name=str(d["name"]),
            kind=str(d.get("kind", "")),
            title=str(d.get("title", "")),
            source=str(d.get("source", "")),
            rule=str(d.get("rule", "")),
            parameters=dict(d.get("parameters") or {}),
            needs=tuple(d.get("needs") or ()),
        )

    def label(self) -> str:
        """e.g. 'ERC (erc: CR-FIQA reference rule)': the kind, then the protocol and its title."""
        kind = "Verification" if self.kind == "verification" else self.kind.upper()
        return f"{kind} ({self.name}: {self.title})" if kind else f"{self.name}: {self.title}"


@dataclass(frozen=True)
class EvaluationSettings:
    """The evaluation parameters of a run, recorded in run.json["evaluation"].

    ``reject_fractions``: the ERC reject fractions (the report reads them, never guesses them);
    ``fmrs``: FMR targets; ``discard_limits``: EDC pAUC limits; ``starting_errors``: EDC starting errors
    (empty: the thresholds come from the FMR targets); ``quality_scale``: the quality normalisation
    applied to image qualities before evaluation ("none": raw); ``protocols``: the cards of the protocols
    evaluated, in run order.
    """

    protocols: Sequence[ProtocolCard]
    fmrs: Sequence[float]
    reject_fractions: Sequence[float]
    discard_limits: Sequence[float] = ()
    starting_errors: Sequence[float] = ()
    quality_scale: str = "none"
    bootstrap: int = 0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocols": [p.to_dict() for p in self.protocols],
            "protocol_names": [p.name for p in self.protocols],
            "fmrs": [float(f) for f in self.fmrs],
            "reject_fractions": [float(r) for r in self.reject_fractions],
            "discard_limits": [float(d) for d in self.discard_limits],
            "starting_errors": [float(e) for e in self.starting_errors],
            "quality_scale": self.quality_scale,
            "bootstrap": int(self.bootstrap),
            "seed": int(self.seed),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationSettings:
        return cls(
            protocols=[ProtocolCard.from_dict(p) for p in d.get("protocols") or []],
            fmrs=[float(f) for f in d.get("fmrs") or []],
            reject_fractions=[float(r) for r in d.get("reject_fractions") or []],
            discard_limits=[float(x) for x in d.get("discard_limits") or []],
            starting_errors=[float(e) for e in d.get("starting_errors") or []],
            quality_scale=str(d.get("quality_scale") or "none"),
            bootstrap=int(d.get("bootstrap") or 0),
            seed=int(d.get("seed") or 0),
        )


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_jsonable(x) for x in list(v)]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    return v


# ---------------------------------------------------------------------------------------------- writing


def atomic_write_bytes(path: Path, data: bytes, option: str = "--out") -> None:
    """Write ``data`` to ``path`` through a uniquely named temporary file in the same folder and one
    rename (fiqa_bench.cache.atomic_write_bytes): readers see the old file or the new one, never a part;
    concurrent writers never share a temporary file; a disk error is one line naming ``option``."""
    from .cache import atomic_write_bytes as write

    write(Path(path), data, option=option)


def atomic_write_text(path: Path, text: str, option: str = "--out") -> None:
    atomic_write_bytes(path, text.encode("utf-8"), option)


def write_pairs(
    folder: Path,
    dataset: str,
    fr_model: str,
    *,
    similarity: np.ndarray,
    genuine: np.ndarray,
    fold: np.ndarray | None,
    qualities: Mapping[str, np.ndarray],
    extra: Mapping[str, np.ndarray] | None = None,
    option: str = "--out",
) -> Path:
    """pairs/<dataset>__<fr_model>.npz: ``similarity`` (float64, higher = more alike), ``genuine`` (bool),
    ``fold`` (int64; zeros when the dataset has none), ``q__<method>`` (pair quality, higher = better) and
    ``extra`` arrays (e.g. ``similarity_flip_sum``: similarities of flip-summed embeddings). The exact
    labels are stored inside. Returns the path."""
    from .cache import writing

    folder = Path(folder)
    with writing(folder / "pairs", None, option):
        (folder / "pairs").mkdir(parents=True, exist_ok=True)
    sim = np.asarray(similarity, dtype=np.float64)
    arrays: dict[str, np.ndarray] = {
        "dataset": np.array(dataset),
        "fr_model": np.array(fr_model),
        "similarity": sim,
        "genuine": np.asarray(genuine, dtype=bool),
        "fold": np.zeros(len(sim), np.int64) if fold is None else np.asarray(fold, dtype=np.int64),
    }
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v)
    for k, v in qualities.items():
        arrays[f"q__{k}"] = np.asarray(v, dtype=np.float64)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = folder / "pairs" / pairs_file_name(dataset, fr_model)
    atomic_write_bytes(path, buf.getvalue(), option)
    return path


def write_results(
    folder: Path,
    results: pd.DataFrame,
    curves: pd.DataFrame,
    *,
    settings: EvaluationSettings,
    run: Mapping[str, Any] | None = None,
    option: str = "--out",
) -> Path:
    """results.csv, curves.csv and run.json (last) of a results folder. Returns the folder.

    ``results`` needs the columns ``RESULT_COLUMNS``; every ``protocol`` in it must have a card in
    ``settings.protocols`` (so every row can be named with its protocol and parameters). ``run``:
    provenance (versions, command, datasets, models, timings), stored beside the schema version and the
    evaluation settings. Raises ValueError on a programming error (missing column or card).
    """
    from .cache import writing

    folder = Path(folder)
    with writing(folder, None, option):
        folder.mkdir(parents=True, exist_ok=True)
    missing = [c for c in RESULT_COLUMNS if c not in results.columns] if len(results) else []
    if missing:
        raise ValueError(f"write_results: results lack column(s) {missing}")
    known = {p.name for p in settings.protocols}
    unnamed = sorted(set(results["protocol"].astype(str)) - known) if len(results) else []
    if unnamed:
        raise ValueError(f"write_results: no protocol card for {unnamed}")
    if len(results):
        results = results[list(RESULT_COLUMNS) + [c for c in results.columns if c not in RESULT_COLUMNS]]
    if len(curves):
        lead = [c for c in ("dataset", "fr_model") if c in curves.columns]
        curves = curves[lead + [c for c in curves.columns if c not in lead]]
    atomic_write_text(folder / "results.csv", results.to_csv(index=False), option)
    atomic_write_text(folder / "curves.csv", curves.to_csv(index=False), option)
    doc = {**_jsonable(dict(run or {})), "schema_version": SCHEMA_VERSION, "evaluation": settings.to_dict()}
    atomic_write_text(
        folder / "run.json", json.dumps(doc, indent=1, sort_keys=True, allow_nan=False, default=str), option
    )
    return folder


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class Results:
    """A results folder read back: sorted tables, provenance and the evaluation settings.

    ``results`` holds the rows of curve protocols (ERC, EDC) and gains a ``variant`` column: the protocol
    name plus its row-level parameters (e.g. ``edc, discard limit 0.3``), the unit of a table and of a
    figure. ``verification`` holds the accuracy rows (kind "verification"; method empty).
    """

    folder: Path
    results: pd.DataFrame
    curves: pd.DataFrame
    run: dict[str, Any]
    settings: EvaluationSettings
    pairs: dict[tuple[str, str], Path] = field(default_factory=dict)
    verification: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def datasets(self) -> list[str]:
        return sorted(set(self.results["dataset"]) | set(self.verification.get("dataset", [])))

    @property
    def fr_models(self) -> list[str]:
        return sorted(set(self.results["fr_model"]) | set(self.verification.get("fr_model", [])))

    @property
    def fmrs(self) -> list[float]:
        """FMR targets, largest first (1e-3 before 1e-4, as in papers); NaN last when EDC rows have their
        threshold from a starting error instead of an FMR target."""
        values = [float(f) for f in self.results["fmr"].unique()]
        finite = sorted((f for f in values if not math.isnan(f)), reverse=True)
        return finite + ([math.nan] if len(finite) < len(values) else [])

    @property
    def protocols(self) -> list[str]:
        """Protocol names present, in the run's order."""
        present = set(self.results["protocol"].unique()) | set(
            self.verification["protocol"].unique() if len(self.verification) else []
        )
        order = [p.name for p in self.settings.protocols]
        return [p for p in order if p in present] + sorted(present - set(order))

    @property
    def variants(self) -> list[str]:
        """Protocol variants present, in the run's protocol order, then by parameters."""
        r = self.results
        out: list[str] = []
        for p in self.protocols:
            out += sorted(r.loc[r["protocol"] == p, "variant"].unique().tolist())
        return out

    def variant_rows(self, variant: str) -> pd.DataFrame:
        return self.results[self.results["variant"] == variant]

    def variant_protocol(self, variant: str) -> str:
        return str(self.variant_rows(variant)["protocol"].iloc[0])

    def card(self, protocol: str) -> ProtocolCard:
        for p in self.settings.protocols:
            if p.name == protocol:
                return p
        return ProtocolCard(protocol, kind="", title=protocol)

    @property
    def reject_fractions(self) -> list[float]:
        return list(self.settings.reject_fractions)

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

    def only(self, protocols: Sequence[str] | None) -> Results:
        """The same results restricted to ``protocols`` (names in the protocol column); None: all.
        Raises FiqaError naming the saved protocols when one is not in this folder."""
        if not protocols:
            return self
        import difflib

        from .errors import FiqaError

        names = [p.strip().lower() for p in protocols if p.strip()]
        known = self.protocols
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
                hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
                raise FiqaError(
                    f"{self.folder}: no results for protocol {name!r}.{hint} Saved protocols: {', '.join(known)}."
                )
        keep = self.results["protocol"].isin(names)
        return Results(
            folder=self.folder,
            results=self.results[keep].reset_index(drop=True),
            curves=self.curves[self.curves["protocol"].isin(names)].reset_index(drop=True),
            run=self.run,
            settings=self.settings,
            pairs=self.pairs,
            verification=self.verification[self.verification["protocol"].isin(names)].reset_index(drop=True)
            if len(self.verification)
            else self.verification,
        )


def _as_bool(series: pd.Series) -> pd.Series:
    if series.dtype == bool:
        return series
    text = series.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "yes"])


def variant_label(
    protocol: str, params: Mapping[str, Any], columns: Sequence[str] = PARAMETER_COLUMNS
) -> str:
    """'edc, starting error 0.05, discard limit 0.3': the protocol and its parameters among ``columns``
    (those set)."""
    parts = [protocol]
    for col in columns:
        v = params.get(col)
        if (
            v is None
            or (isinstance(v, float) and not math.isfinite(v))
            or v is False
            or str(v).strip().lower() in ("", "nan", "false", "none")
        ):
            continue
        parts.append(
            col.replace("_", " ")
            if v is True or str(v).lower() == "true"
            else f"{col.replace('_', ' ')} {_num_text(v)}"
        )
    return ", ".join(parts)


def variant_column(table: pd.DataFrame, columns: Sequence[str] = PARAMETER_COLUMNS) -> list[str]:
    """The variant label of every row (computed once per distinct protocol and parameters)."""
    if not len(table):
        return []
    cols = ["protocol", *(c for c in columns if c in table.columns)]
    keys = table["protocol"].map(str)
    for c in cols[1:]:
        keys = keys + "\x1f" + table[c].map(str)
    first = table[cols].assign(_key=keys).drop_duplicates("_key")
    labels = {
        rec["_key"]: variant_label(str(rec["protocol"]), rec, columns) for rec in first.to_dict("records")
    }
    return [labels[k] for k in keys]


def _num_text(v: Any) -> str:
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return str(v)


def _read_run(folder: Path) -> dict[str, Any]:
    run_path = folder / "run.json"
    if not run_path.is_file():
        raise DataFormatError(
            run_path.parent, "has results.csv but no run.json (an older or interrupted results folder)", RERUN
        )
    try:
        loaded = json.loads(run_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(run_path, f"not valid JSON ({exc.msg})", RERUN, exc.lineno) from exc
    if not isinstance(loaded, dict):
        raise DataFormatError(run_path, "is not a JSON object", RERUN)
    version = loaded.get("schema_version")
    if version is None or (isinstance(version, int) and version < SCHEMA_VERSION):
        raise DataFormatError(
            folder,
            f"was written by an older fiqa-bench (results schema {version or 1}, this one reads "
            f"{SCHEMA_VERSION})",
            "re-run fiqa-bench run/evaluate",
        )
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise DataFormatError(
            run_path,
            f"results schema {version!r} is newer than this fiqa-bench reads ({SCHEMA_VERSION})",
            "upgrade fiqa-bench",
        )
    return loaded


def read_results(folder: Path) -> Results:
    """Read a results folder written by :func:`write_results` (and :func:`write_pairs`).

    Raises MissingDataError without results.csv, DataFormatError for an old-schema, unreadable or
    incomplete folder (one line naming the file and the fix). Rows are sorted (dataset, FR model,
    protocol, FMR, variant, method), so nothing downstream depends on the order they were written in.
    """
    folder = Path(folder)
    res_path = folder / "results.csv"
    if not res_path.is_file():
        raise MissingDataError(
            "results table", res_path, "Run `fiqa-bench run --out FOLDER` first, then report on FOLDER."
        )
    run = _read_run(folder)
    settings = EvaluationSettings.from_dict(run.get("evaluation") or {})
    try:
        results = pd.read_csv(res_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataFormatError(res_path, f"not a readable CSV ({exc})", RERUN) from exc
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise DataFormatError(res_path, f"missing column(s) {', '.join(missing)}", RERUN)
    if results.empty:
        raise DataFormatError(
            res_path, "has no result rows", "rerun `fiqa-bench run` with at least one method"
        )
    results["method"] = results["method"].fillna("")  # verification rows belong to no method
    for col in ("dataset", "fr_model", "method", "protocol"):
        results[col] = results[col].astype(str)
    results["fmr"] = results["fmr"].astype(float)
    kind = results["protocol"].map({p.name: p.kind for p in settings.protocols})
    if "kind" in results.columns:
        kind = kind.fillna(results["kind"])
    results["kind"] = kind.fillna("").astype(str)
    for col in NUMERIC_COLUMNS:
        results[col] = pd.to_numeric(results[col], errors="coerce") if col in results.columns else np.nan
    results["reference_line"] = (
        _as_bool(results["reference_line"]) if "reference_line" in results.columns else False
    )
    if "fmr_resolvable" in results.columns:
        results["fmr_resolvable"] = _as_bool(results["fmr_resolvable"])
    else:
        results["fmr_resolvable"] = results["fmr"] * results["n_impostor"].fillna(0) >= 1
    results["note"] = (
        ["" if pd.isna(v) else str(v) for v in results["note"]] if "note" in results.columns else ""
    )
    results["variant"] = variant_column(results)
    results["curve_variant"] = variant_column(
        results, CURVE_PARAMETER_COLUMNS
    )  # the curve the row's area is read from
    results = results.sort_values(
        ["dataset", "fr_model", "protocol", "fmr", "variant", "method"], kind="mergesort"
    ).reset_index(drop=True)
    is_accuracy = (results["kind"] == "verification").to_numpy()
    verification = results[is_accuracy].reset_index(drop=True)
    results = results[~is_accuracy].reset_index(drop=True)

    curves_path = folder / "curves.csv"
    try:
        curves = (
            pd.read_csv(curves_path) if curves_path.is_file() else pd.DataFrame(columns=list(CURVE_COLUMNS))
        )
    except pd.errors.EmptyDataError:
        curves = pd.DataFrame(columns=list(CURVE_COLUMNS))
    missing = [c for c in CURVE_COLUMNS if c not in curves.columns]
    if missing:
        raise DataFormatError(curves_path, f"missing column(s) {', '.join(missing)}", RERUN)
    for col in ("dataset", "fr_model", "method", "protocol"):
        curves[col] = curves[col].astype(str)
    for col in ("fmr", "fraction", "fnmr", "fnmr_lo", "fnmr_hi", "starting_error", "discard_limit"):
        if col in curves.columns:
            curves[col] = pd.to_numeric(curves[col], errors="coerce")
    curves["variant"] = variant_column(curves, CURVE_PARAMETER_COLUMNS)
    curves = curves.sort_values(
        ["dataset", "fr_model", "protocol", "fmr", "variant", "method", "fraction"], kind="mergesort"
    ).reset_index(drop=True)

    pairs: dict[tuple[str, str], Path] = {}
    pairs_dir = folder / "pairs"
    if pairs_dir.is_dir():
        for p in sorted(pairs_dir.glob("*.npz")):
            names = _pair_labels(p)
            if names is not None:
                pairs[names] = p
    return Results(
        folder=folder,
        results=results,
        curves=curves,
        run=run,
        settings=settings,
        pairs=pairs,
        verification=verification,
    )


def _pair_labels(path: Path) -> tuple[str, str] | None:
    """(dataset, FR model) of a pairs file: the labels stored inside."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "dataset" in z.files and "fr_model" in z.files:
                return str(z["dataset"]), str(z["fr_model"])
    except (OSError, ValueError):
        pass  # read_pairs reports an unreadable file when it is used
    return None


def read_pairs(path: Path) -> dict[str, np.ndarray]:
    """The arrays of one pairs/<dataset>__<fr_model>.npz (see :func:`write_pairs`)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataFormatError(path, f"not a readable .npz ({exc})", RERUN) from exc
    for key in ("similarity", "genuine"):
        if key not in arrays:
            raise DataFormatError(path, f"has no array {key!r}", RERUN)
    arrays["genuine"] = arrays["genuine"].astype(bool)
    return arrays


def pair_methods(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Method labels of the pair qualities in a pairs file, sorted."""
    return sorted(k[3:] for k in arrays if k.startswith("q__"))
