"""``fiqa-bench evaluate``: ERC/EDC tables from precomputed comparison and quality files.

Comparisons file (CSV, or TSV when the name ends in .tsv/.tab or the header has tabs), one header
line, then one pair per line::

    image_a,image_b,similarity,genuine[,fold]
    Aaron/1.jpg,Aaron/2.jpg,0.71,1

``similarity``: higher = more alike (e.g. cosine). ``genuine``: 1/0, true/false or yes/no. ``fold``:
optional label; bootstrap resampling stays within folds.

Quality files, one per method, header ``image,quality``; higher quality = better unless marked
``lower`` ("NAME:PATH:lower", "PATH:lower", or ``lower_is_better=``). The method name is NAME or the
file's stem. Pair quality = the lower of the two images' qualities.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFormatError, FiqaError, MissingDataError
from .protocol_set import ProtocolRequest, name_core_rows
from .results import EvaluationSettings, write_pairs, write_results
from .specs import parse_fmrs

log = logging.getLogger(__name__)

PathLike = str | Path
COMPARISON_COLUMNS = ("image_a", "image_b", "similarity", "genuine")
QUALITY_COLUMNS = ("image", "quality")
TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"0", "false", "no"})
DATASET = "precomputed"
FR_MODEL = "precomputed"


def parse_quality_spec(spec: PathLike) -> tuple[str, Path, bool]:
    """"NAME:PATH:lower", "NAME:PATH", "PATH:lower" or "PATH" -> (name, path, lower_is_better)."""
    if isinstance(spec, Path):
        return spec.stem, spec, False
    text, lower = str(spec), False
    head, sep, tail = text.rpartition(":")
    if sep and tail.strip().lower() in ("lower", "higher"):
        text, lower = head, tail.strip().lower() == "lower"
    path = Path(text)
    if not path.is_file() and ":" in text:
        name, _, rest = text.partition(":")
        if name and rest and not any(c in name for c in "/\\"):
            return name, Path(rest), lower
    return path.stem, path, lower


def _sep_for(path: Path) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    with path.open(encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return "\t" if "\t" in first else ","


def _read_table(path: Path, what: str, required: Sequence[str], optional: Sequence[str] = ()) -> tuple[Any, np.ndarray]:
    """All columns as stripped strings, plus each row's 1-based line number in the file."""
    import pandas as pd

    if not path.is_file():
        raise MissingDataError(what, path, "Check the path.")
    try:
        df = pd.read_csv(
            path, sep=_sep_for(path), dtype=str, keep_default_na=False, na_filter=False, skip_blank_lines=False,
            encoding="utf-8",
        )
    except pd.errors.EmptyDataError:
        raise DataFormatError(path, "is empty", f"write a header line ({','.join(required)}) and one row per line") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise DataFormatError(
            path, f"cannot be parsed ({str(exc).strip().splitlines()[-1]})", "give every line the same number of fields as the header",
            int(m.group(1)) if m else None,
        ) from None
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"is not UTF-8 text ({exc.reason})", "save it as UTF-8 CSV/TSV") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataFormatError(
            path, f"missing column(s) {', '.join(missing)} (header has: {', '.join(df.columns)})",
            f"the header line must name {', '.join(required)}" + (f" (optional: {', '.join(optional)})" if optional else ""),
            1,
        )
    keep = [c for c in (*required, *optional) if c in df.columns]
    df = df[keep].apply(lambda s: s.str.strip())
    lines = np.arange(len(df)) + 2  # header is line 1; blank lines are kept as rows, so this is exact
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df, lines = df[~blank].reset_index(drop=True), lines[~blank]
    if not len(df):
        raise DataFormatError(path, "has a header but no rows", "add one row per line")
    return df, lines


def _numbers(df: Any, col: str, path: Path, lines: np.ndarray) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, f"{col} {df[col].iloc[i]!r} is not a finite number", f"write a number in column {col}", int(lines[i]))
    return values


def _no_empty(df: Any, cols: Sequence[str], path: Path, lines: np.ndarray) -> None:
    for c in cols:
        empty = (df[c] == "").to_numpy()
        if empty.any():
            i = int(np.argmax(empty))
            raise DataFormatError(path, f"empty {c}", f"give every row an {c}", int(lines[i]))


def read_comparisons(path: PathLike) -> dict[str, Any]:
    path = Path(path)
    df, lines = _read_table(path, "comparisons file", COMPARISON_COLUMNS, ("fold",))
    _no_empty(df, ("image_a", "image_b"), path, lines)
    sim = _numbers(df, "similarity", path, lines)
    words = df["genuine"].str.lower()
    is_true, is_false = words.isin(TRUE_WORDS).to_numpy(), words.isin(FALSE_WORDS).to_numpy()
    bad = ~(is_true | is_false)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(path, f"genuine {df['genuine'].iloc[i]!r} is not a label", "write 1/0, true/false or yes/no", int(lines[i]))
    folds = None
    if "fold" in df.columns:
        _no_empty(df, ("fold",), path, lines)
        folds = np.unique(df["fold"].to_numpy(), return_inverse=True)[1].reshape(-1).astype(np.int64)
    return {
        "a": df["image_a"].to_numpy(),
        "b": df["image_b"].to_numpy(),
        "similarity": sim,
        "genuine": is_true,
        "fold": folds,
        "lines": lines,
    }


def read_qualities(path: PathLike, lower_is_better: bool = False) -> Any:
    """A pandas Series image -> quality (higher = better after the optional flip)."""
    import pandas as pd

    path = Path(path)
    df, lines = _read_table(path, "quality file", QUALITY_COLUMNS)
    _no_empty(df, ("image",), path, lines)
    q = _numbers(df, "quality", path, lines)
    dup = df["image"].duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        first = int(lines[int(np.argmax((df["image"] == df["image"].iloc[i]).to_numpy()))])
        raise DataFormatError(path, f"image {df['image'].iloc[i]!r} listed twice (first on line {first})", "keep one quality per image", int(lines[i]))
    return pd.Series(-q if lower_is_better else q, index=pd.Index(df["image"].to_numpy()))


def _quality_specs(
    qualities: Mapping[str, PathLike] | Sequence[PathLike] | PathLike, lower_is_better: bool | Iterable[str]
) -> list[tuple[str, Path, bool]]:
    if isinstance(qualities, str | Path):
        qualities = [qualities]
    if isinstance(qualities, Mapping):
        specs = []
        for name, p in qualities.items():
            _, path, lower = parse_quality_spec(p)
            specs.append((str(name), path, lower))
    else:
        specs = [parse_quality_spec(p) for p in qualities]
    if not specs:
        raise FiqaError("evaluate: no quality file given. Pass at least one image,quality file.")
    lower_names = set() if isinstance(lower_is_better, bool) else {str(n) for n in lower_is_better}
    unknown = lower_names - {s[0] for s in specs}
    if unknown:
        raise FiqaError(f"lower_is_better names {', '.join(sorted(unknown))}, which is not among the methods {', '.join(s[0] for s in specs)}.")
    out, seen = [], {}
    for name, path, lower in specs:
        if name in seen:
            raise FiqaError(f"two quality files give method name {name!r} ({seen[name]} and {path}). Name them: NAME:PATH.")
        seen[name] = path
        out.append((name, path, lower or lower_is_better is True or name in lower_names))
    return out


def evaluate_files(
    comparisons: PathLike,
    qualities: Mapping[str, PathLike] | Sequence[PathLike] | PathLike,
    *,
    fmr: str | Sequence[float] | None = None,
    out: PathLike | None = None,
    report: bool = True,
    skip_missing: bool = False,
    lower_is_better: bool | Iterable[str] = False,
    bootstrap: int = 0,
    seed: int = 0,
    discard_limit: float = 0.2,
    normalised: bool = False,
    progress: bool = False,
) -> Any:
    """ERC/EDC rows (a pandas DataFrame) for precomputed comparisons and per-image qualities.

    Every method is evaluated on the same pairs. A comparison whose image has no quality in some
    file is an error naming it, unless ``skip_missing``: then such pairs are dropped from every
    method, counted per file, logged and noted in each row. With ``out``: results.csv, curves.csv,
    pairs/precomputed__precomputed.npz and run.json are written there (the pipeline's layout), and
    the report is built when ``report`` and the reports package is available.
    """
    import pandas as pd

    from .evaluation import evaluate

    fmrs = parse_fmrs(fmr)
    cmp_path = Path(comparisons)
    cmp = read_comparisons(cmp_path)
    specs = _quality_specs(qualities, lower_is_better)
    n_all = len(cmp["similarity"])
    keep = np.ones(n_all, dtype=bool)
    image_q: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    dropped: dict[str, int] = {}
    for name, path, lower in specs:
        series = read_qualities(path, lower)
        ia, ib = series.index.get_indexer(cmp["a"]), series.index.get_indexer(cmp["b"])
        miss = (ia < 0) | (ib < 0)
        if miss.any():
            i = int(np.argmax(miss))
            image = cmp["a"][i] if ia[i] < 0 else cmp["b"][i]
            if not skip_missing:
                raise DataFormatError(
                    path, f"no quality for image {image!r} (used on {cmp_path} line {int(cmp['lines'][i])}; "
                    f"{int(miss.sum())} pair(s) affected)",
                    "add the image, or pass --skip-missing (skip_missing=True) to drop such pairs (they are counted)",
                )
            dropped[name] = int(miss.sum())
            keep &= ~miss
        vals = series.to_numpy(dtype=np.float64)
        image_q[name] = (vals[np.maximum(ia, 0)], vals[np.maximum(ib, 0)])
    n_dropped = int(n_all - keep.sum())
    if n_dropped:
        per = ", ".join(f"{k}: {v}" for k, v in dropped.items())
        log.warning("dropped %d of %d pairs with an image missing from a quality file (%s)", n_dropped, n_all, per)
    if not keep.any():
        raise DataFormatError(cmp_path, "no pair left after dropping pairs with missing qualities", "check that the image names match")
    sim, gen = cmp["similarity"][keep], cmp["genuine"][keep]
    folds = cmp["fold"][keep] if cmp["fold"] is not None else None
    pair_q = {name: np.minimum(qa[keep], qb[keep]) for name, (qa, qb) in image_q.items()}
    if gen.all() or not gen.any():
        kind = "impostor" if gen.all() else "genuine"
        raise DataFormatError(cmp_path, f"has no {kind} pairs", "ERC/EDC need genuine and impostor pairs (genuine column 1 and 0)")
    rows, points = evaluate(
        sim, gen, pair_q, fmrs, folds=folds, bootstrap=bootstrap, seed=seed, discard_limit=discard_limit,
        normalised=normalised, progress=progress,
    )
    drop_note = f"{n_dropped} of {n_all} pairs dropped (image without quality)" if n_dropped else ""
    for r in rows:
        r.update(dataset=DATASET, fr_model=FR_MODEL, reference_line=False, n_dropped=n_dropped)
        if drop_note:
            r["note"] = f"{r['note']}; {drop_note}" if r["note"] else drop_note
    front = ["dataset", "fr_model", "method", "protocol", "fmr", "auc"]
    results = pd.DataFrame(rows)
    results = results[front + [c for c in results.columns if c not in front]]
    curves = points.assign(dataset=DATASET, fr_model=FR_MODEL).to_frame()
    curves = curves[[c for c in ("dataset", "fr_model") if c in curves] + [c for c in curves.columns if c not in ("dataset", "fr_model")]]
    results, curves = name_core_rows(results, curves)  # the core's ERC/EDC labels -> protocol registry names
    if out is not None:
        settings = ProtocolRequest(discard_limits=(float(discard_limit),)).settings(fmrs, bootstrap, seed)
        _write_folder(Path(out), results, curves, sim, gen, folds, pair_q, cmp_path, specs, settings, dropped, n_all)
        if report:
            try:
                from .reports import write_report  # type: ignore[attr-defined]
            except ImportError:
                log.info("reports package not available: wrote tables only")
            else:
                write_report(Path(out))
    return results


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_folder(
    out: Path, results: Any, curves: Any, sim: np.ndarray, gen: np.ndarray, folds: np.ndarray | None,
    pair_q: dict[str, np.ndarray], cmp_path: Path, specs: list[tuple[str, Path, bool]], settings: EvaluationSettings,
    dropped: dict[str, int], n_all: int,
) -> None:
    from . import __version__

    write_pairs(out, DATASET, FR_MODEL, similarity=sim, genuine=gen, fold=folds, qualities=pair_q)
    run = {
        "fiqa_bench_version": __version__,
        "numpy_version": np.__version__,
        "command": list(sys.argv),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": "precomputed",
        "comparisons": {"path": str(cmp_path), "sha256": _sha256(cmp_path), "n_pairs": n_all},
        "qualities": {n: {"path": str(p), "sha256": _sha256(p), "lower_is_better": lo} for n, p, lo in specs},
        "fmrs": list(settings.fmrs),
        "bootstrap": settings.bootstrap,
        "seed": settings.seed,
        "dropped_pairs": dropped,
        "datasets": {
            DATASET: {
                "source": str(cmp_path),
                "n_pairs": int(len(sim)),
                "n_genuine": int(gen.sum()),
                "n_impostor": int((~gen).sum()),
                "folds": int(len(np.unique(folds))) if folds is not None else 1,
            }
        },
    }
    write_results(out, results, curves, settings=settings, run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.add_argument("comparisons", help="CSV/TSV: image_a,image_b,similarity,genuine[,fold]")
    parser.add_argument(
        "qualities", nargs="+", metavar="QUALITY_FILE",
        help="CSV/TSV image,quality per method: PATH, NAME:PATH, and ':lower' at the end if lower = better",
    )
    parser.add_argument("--fmr", help="comma list of FMR targets (default: 1e-3,1e-4)")
    parser.add_argument("--out", help="results folder: results.csv, curves.csv, pairs/, run.json (+ report)")
    parser.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for AUC confidence intervals (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-missing", action="store_true", help="drop pairs whose image has no quality (counted) instead of stopping")
    parser.add_argument("--lower", action="append", default=[], metavar="NAME", help="method whose quality is lower = better (repeatable)")
    parser.add_argument("--discard-limit", type=float, default=0.2, help="EDC pAUC limit (default 0.2)")
    parser.add_argument("--normalised", action="store_true", help="EDC pAUC minus the ideal curve's area")
    parser.add_argument("--no-report", action="store_true", help="with --out: tables only, no plots/report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    results = evaluate_files(
        args.comparisons, args.qualities, fmr=args.fmr, out=args.out, report=not args.no_report,
        skip_missing=args.skip_missing, lower_is_better=args.lower, bootstrap=args.bootstrap, seed=args.seed,
        discard_limit=args.discard_limit, normalised=args.normalised, progress=not args.quiet,
    )
    cols = ["method", "protocol", "fmr", "auc"] + (["ci_low", "ci_high"] if args.bootstrap else []) + ["fnmr_at_0", "achieved_fmr"]
    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.float_format", "{:.4g}".format):
        print(results.sort_values(["protocol", "fmr", "auc"], kind="mergesort")[cols].to_string(index=False))
    for note in dict.fromkeys(n for n in results["note"] if n):
        print(f"note: {note}")
    if args.out:
        print(f"results in {args.out}")
    return 0
