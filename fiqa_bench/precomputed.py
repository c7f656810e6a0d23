"""``fiqa-bench evaluate``: ERC/EDC tables from precomputed comparison and quality files.

Comparisons file (delimiter sniffed from the header line: tab, comma, semicolon, pipe, else
whitespace; any encoding - not UTF-8 is read as Latin-1 with a warning), one header line, then one
pair per line::

    image_a,image_b,similarity,genuine[,fold]
    Aaron/1.jpg,Aaron/2.jpg,0.71,1

``similarity``: higher = more alike (e.g. cosine). ``genuine``: 1/0/-1 (also 1.0, -1.0), true/false,
yes/no, genuine/impostor, same/different. ``fold``: optional label; bootstrap resampling stays within
folds. A pair listed twice (also as b, a), labelled both ways, or an image compared with itself is an
error naming the lines (each would change every AUC silently).

Quality files, one per method: header ``image,quality``, or headerless ``path score`` lines as
CR-FIQA's and SER-FIQ's scripts write them, or MagFace's ``path f1 ... fN`` feature lines (quality =
feature magnitude); higher quality = better unless marked ``lower`` ("NAME:PATH:lower", "PATH:lower",
or ``lower_is_better=``). The method name is NAME or the file's stem. Pair quality = the lower of the
two images' qualities.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFormatError, FiqaError, MissingDataError
from .input_checks import (
    GENUINE_WORDS,
    IMPOSTOR_WORDS,
    BadInputs,
    Table,
    check_pair_list,
    parse_labels,
    read_table,
)
from .protocol_set import ProtocolRequest
from .results import EvaluationSettings, write_pairs, write_results
from .specs import parse_fmrs
from .types import pair_quality_min

log = logging.getLogger(__name__)

PathLike = str | Path
COMPARISON_COLUMNS = ("image_a", "image_b", "similarity", "genuine")
QUALITY_COLUMNS = ("image", "quality")
DATASET = "precomputed"
FR_MODEL = "precomputed"


def parse_quality_spec(spec: PathLike) -> tuple[str, Path, bool]:
    """ "NAME:PATH:lower", "NAME:PATH", "PATH:lower" or "PATH" -> (name, path, lower_is_better)."""
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


def _read_table(
    path: Path, what: str, required: Sequence[str], optional: Sequence[str] = (), positional: Any = None
) -> Table:
    """The shared table reader (``fiqa_bench.input_checks.read_table``: any encoding, delimiter sniffed
    from the first line - tab, comma, semicolon, pipe or whitespace - and line-accurate errors)."""
    if not path.is_file():
        raise MissingDataError(what, path, "Check the path.")
    table = read_table(
        path,
        required=required,
        optional=optional,
        positional=positional,
        fix=(
            f"the header line must name {', '.join(required)}"
            + (f" (optional: {', '.join(optional)})" if optional else "")
            + (
                "; or write headerless 'path score' lines (as CR-FIQA's and SER-FIQ's scripts do) or MagFace "
                "feature lines 'path f1 ... fN'"
                if positional is not None
                else ""
            )
        ),
    )
    if not len(table):
        raise DataFormatError(path, "has a header but no rows", "add one row per line")
    return table


def _numbers(values: np.ndarray, col: str, path: Path, lines: np.ndarray) -> np.ndarray:
    import pandas as pd

    out = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(
            path,
            f"{col} {values[i]!r} is not a finite number",
            f"write a number in column {col}",
            int(lines[i]),
        )
    return out


def _no_empty(table: Table, cols: Sequence[str]) -> None:
    for c in cols:
        empty = table.columns[c] == ""
        if empty.any():
            i = int(np.argmax(empty))
            raise DataFormatError(table.path, f"empty {c}", f"give every row an {c}", int(table.lines[i]))


def read_comparisons(path: PathLike) -> dict[str, Any]:
    """Comparisons file -> {"a", "b" (image names), "similarity" (float64), "genuine" (bool), "fold"
    (int64 or None), "lines" (1-based file lines)}. Labels: the pairs-file words and numbers (1, 1.0,
    true, yes, genuine, ... / 0, -1, false, no, impostor, ...). The pair list is checked like every pair
    list (``fiqa_bench.input_checks.check_pair_list``): an image paired with itself, a pair listed twice
    (also as b, a) or labelled both genuine and impostor is an error naming the lines. Raises
    DataFormatError / MissingDataError."""
    path = Path(path)
    table = _read_table(path, "comparisons file", COMPARISON_COLUMNS, ("fold",))
    _no_empty(table, ("image_a", "image_b"))
    lines = table.lines
    sim = _numbers(table.columns["similarity"], "similarity", path, lines)
    labels = table.columns["genuine"]
    genuine, bad = parse_labels(labels, set(GENUINE_WORDS), set(IMPOSTOR_WORDS))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(
            path,
            f"genuine {labels[i]!r} is not a label",
            "write 1/0 (or -1), true/false, yes/no or genuine/impostor",
            int(lines[i]),
        )
    a, b = table.columns["image_a"], table.columns["image_b"]
    check_pair_list(a, b, genuine, lines, path, BadInputs(skip_bad=False, hint=""))
    folds = None
    if "fold" in table.columns:
        _no_empty(table, ("fold",))
        folds = (
            np.unique(table.columns["fold"].astype(str), return_inverse=True)[1].reshape(-1).astype(np.int64)
        )
    return {"a": a, "b": b, "similarity": sim, "genuine": genuine, "fold": folds, "lines": lines}


def _headerless_quality(head: list[str]) -> list[str] | None:
    """Column names of a headerless quality file from its first line: 'path score' (CR-FIQA's
    getQualityScore.py, SER-FIQ scripts) or 'path f1 ... fN' (MagFace's gen_feat.py feature list)."""
    if len(head) < 2:
        return None
    try:
        [float(x) for x in head[1:]]
    except ValueError:
        return None
    return ["image", "quality"] if len(head) == 2 else ["image", *(f"f{i}" for i in range(1, len(head)))]


def read_qualities(path: PathLike, lower_is_better: bool = False) -> Any:
    """A pandas Series image -> quality (higher = better after the optional flip).

    Accepted: a header naming ``image`` and ``quality`` (CSV, TSV, ';' or whitespace); headerless
    ``path score`` lines (what CR-FIQA's getQualityScore.py and SER-FIQ scripts write); headerless
    MagFace feature lines ``path f1 ... fN`` (MagFace's gen_feat.py), whose quality is the feature
    magnitude ||f|| as in MagFace's eval_quality.py. An image listed twice is an error naming both lines
    (CR-FIQA's script appends to its score file, so a rerun repeats every image)."""
    import pandas as pd

    path = Path(path)
    table = _read_table(path, "quality file", QUALITY_COLUMNS, positional=_headerless_quality)
    _no_empty(table, ("image",))
    lines = table.lines
    if "quality" in table.columns:
        q = _numbers(table.columns["quality"], "quality", path, lines)
    else:
        feats = np.stack(
            [_numbers(v, k, path, lines) for k, v in table.columns.items() if k != "image"], axis=1
        )
        q = np.linalg.norm(feats, axis=1)
        log.info(
            "%s: MagFace feature list (%d values per line): quality = feature magnitude", path, feats.shape[1]
        )
    images = pd.Series(table.columns["image"])
    dup = images.duplicated().to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        first = int(lines[int(np.argmax((images == images.iloc[i]).to_numpy()))])
        raise DataFormatError(
            path,
            f"image {images.iloc[i]!r} listed twice (first on line {first})",
            "keep one quality per image (a score file appended to by a second run repeats every image)",
            int(lines[i]),
        )
    return pd.Series(-q if lower_is_better else q, index=pd.Index(images.to_numpy()))


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
        raise FiqaError(
            f"lower_is_better names {', '.join(sorted(unknown))}, which is not among the methods {', '.join(s[0] for s in specs)}."
        )
    out, seen = [], {}
    for name, path, lower in specs:
        if name in seen:
            raise FiqaError(
                f"two quality files give method name {name!r} ({seen[name]} and {path}). Name them: NAME:PATH."
            )
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
    discard_limit: float | str | Sequence[float] = 0.2,
    normalised: bool = False,
    progress: bool = False,
    protocols: str | Sequence[str] | None = None,
    starting_error: float | str | Sequence[float] | None = None,
    quality_scale: str | None = None,
) -> Any:
    """Rows of every selected protocol (a pandas DataFrame) for precomputed comparisons and per-image
    qualities.

    ``protocols`` (default erc,edc), ``discard_limit`` (one or several EDC pAUC limits, e.g. "0.2,0.3"),
    ``starting_error`` (EDC thresholds from Schlett's quantile rule) and ``quality_scale`` (none, minmax,
    rank: image qualities mapped to integers 0..100 over the images of the evaluated pairs before pair
    qualities are formed) are validated first: a bad value is one ``FiqaError`` line. Every row names
    its protocol and parameters. Every method is evaluated on the same pairs. A comparison whose image has no quality in some
    file is an error naming it, unless ``skip_missing``: then such pairs are dropped from every
    method, counted per file, logged and noted in each row. With ``out``: results.csv, curves.csv,
    pairs/precomputed__precomputed.npz and run.json are written there (the pipeline's layout), and
    the report is built when ``report`` and the reports package is available.
    """
    import pandas as pd

    from .evaluation import evaluate, scale_qualities
    from .evaluation.options import (
        parse_discard_limits,
        parse_protocol_option,
        parse_quality_scale,
        parse_starting_errors,
    )

    fmrs = parse_fmrs(fmr)
    protocol_list = parse_protocol_option(protocols)
    limits = parse_discard_limits(discard_limit)
    starting = parse_starting_errors(starting_error)
    scale = parse_quality_scale(quality_scale)
    cmp_path = Path(comparisons)
    cmp = read_comparisons(cmp_path)
    specs = _quality_specs(qualities, lower_is_better)
    n_all = len(cmp["similarity"])
    keep = np.ones(n_all, dtype=bool)
    image_q: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
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
                    path,
                    f"no quality for image {image!r} (used on {cmp_path} line {int(cmp['lines'][i])}; "
                    f"{int(miss.sum())} pair(s) affected)",
                    "add the image, or pass --skip-missing (skip_missing=True) to drop such pairs (they are counted)",
                )
            dropped[name] = int(miss.sum())
            keep &= ~miss
        vals = series.to_numpy(dtype=np.float64)
        image_q[name] = (vals, np.maximum(ia, 0), np.maximum(ib, 0))
    n_dropped = int(n_all - keep.sum())
    if n_dropped:
        per = ", ".join(f"{k}: {v}" for k, v in dropped.items())
        log.warning(
            "dropped %d of %d pairs with an image missing from a quality file (%s)", n_dropped, n_all, per
        )
    if not keep.any():
        raise DataFormatError(
            cmp_path,
            "no pair left after dropping pairs with missing qualities",
            "check that the image names match",
        )
    sim, gen = cmp["similarity"][keep], cmp["genuine"][keep]
    folds = cmp["fold"][keep] if cmp["fold"] is not None else None
    pair_q = {}
    for name, (vals, ia, ib) in image_q.items():
        if scale != "none":  # over the distinct images of the evaluated pairs (a set: no row order)
            used = np.unique(np.concatenate((ia[keep], ib[keep])))
            vals = vals.copy()
            vals[used] = scale_qualities(vals[used], scale)
        pair_q[name] = pair_quality_min(vals[ia[keep]], vals[ib[keep]])
    if gen.all() or not gen.any():
        kind = "impostor" if gen.all() else "genuine"
        raise DataFormatError(
            cmp_path,
            f"has no {kind} pairs",
            "ERC/EDC need genuine and impostor pairs (genuine column 1 and 0)",
        )
    rows, points = evaluate(
        sim,
        gen,
        pair_q,
        fmrs,
        folds=folds,
        bootstrap=bootstrap,
        seed=seed,
        discard_limits=limits,
        normalised=normalised,
        progress=progress,
        protocols=protocol_list,
        starting_error=starting,
    )
    drop_note = f"{n_dropped} of {n_all} pairs dropped (image without quality)" if n_dropped else ""
    for r in rows:
        r.update(
            dataset=DATASET, fr_model=FR_MODEL, reference_line=False, n_dropped=n_dropped, quality_scale=scale
        )
        if drop_note:
            r["note"] = f"{r['note']}; {drop_note}" if r["note"] else drop_note
    front = ["dataset", "fr_model", "method", "protocol", "fmr", "auc"]
    results = pd.DataFrame(rows)
    results = results[front + [c for c in results.columns if c not in front]]
    curves = points.assign(dataset=DATASET, fr_model=FR_MODEL).to_frame()
    curves = curves[
        [c for c in ("dataset", "fr_model") if c in curves]
        + [c for c in curves.columns if c not in ("dataset", "fr_model")]
    ]
    if out is not None:
        request = ProtocolRequest(
            tuple(protocol_list), tuple(limits), tuple(starting) if starting else None, scale
        )
        _write_folder(
            Path(out),
            results,
            curves,
            sim,
            gen,
            folds,
            pair_q,
            cmp_path,
            specs,
            request.settings(fmrs, bootstrap, seed),
            dropped,
            n_all,
        )
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
    out: Path,
    results: Any,
    curves: Any,
    sim: np.ndarray,
    gen: np.ndarray,
    folds: np.ndarray | None,
    pair_q: dict[str, np.ndarray],
    cmp_path: Path,
    specs: list[tuple[str, Path, bool]],
    settings: EvaluationSettings,
    dropped: dict[str, int],
    n_all: int,
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
        "qualities",
        nargs="+",
        metavar="QUALITY_FILE",
        help="CSV/TSV image,quality per method: PATH, NAME:PATH, and ':lower' at the end if lower = better",
    )
    parser.add_argument("--fmr", help="comma list of FMR targets (default: 1e-3,1e-4)")
    parser.add_argument("--out", help="results folder: results.csv, curves.csv, pairs/, run.json (+ report)")
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        help="bootstrap resamples for AUC confidence intervals (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="drop pairs whose image has no quality (counted) instead of stopping",
    )
    parser.add_argument(
        "--lower",
        action="append",
        default=[],
        metavar="NAME",
        help="method whose quality is lower = better (repeatable)",
    )
    from .evaluation import protocol_names

    parser.add_argument(
        "--protocols",
        help=f"comma list of evaluation protocols: {', '.join(protocol_names())} or 'all' (default erc,edc)",
    )
    parser.add_argument("--discard-limit", default="0.2", help="EDC pAUC limit(s), comma list (default 0.2)")
    parser.add_argument(
        "--starting-error",
        help="EDC threshold from Schlett's starting error(s) (linear quantile) instead of --fmr",
    )
    parser.add_argument(
        "--quality-scale",
        default="none",
        help="map image qualities to integers 0..100 first: none, minmax or rank",
    )
    parser.add_argument("--normalised", action="store_true", help="EDC pAUC minus the ideal curve's area")
    parser.add_argument("--no-report", action="store_true", help="with --out: tables only, no plots/report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    results = evaluate_files(
        args.comparisons,
        args.qualities,
        fmr=args.fmr,
        out=args.out,
        report=not args.no_report,
        skip_missing=args.skip_missing,
        lower_is_better=args.lower,
        bootstrap=args.bootstrap,
        seed=args.seed,
        discard_limit=args.discard_limit,
        normalised=args.normalised,
        progress=not args.quiet,
        protocols=args.protocols,
        starting_error=args.starting_error,
        quality_scale=args.quality_scale,
    )
    cols = ["method", "protocol", "fmr", "starting_error", "discard_limit", "auc", "accuracy"]
    cols = [c for c in cols if c in results and results[c].notna().any()]
    cols += (["ci_low", "ci_high"] if args.bootstrap else []) + ["error_at_0", "achieved_fmr"]
    order = [c for c in ("protocol", "fmr", "starting_error", "discard_limit", "auc") if c in results]
    with pd.option_context(
        "display.width", 180, "display.max_rows", 500, "display.float_format", "{:.4g}".format
    ):
        print(results.sort_values(order, kind="mergesort")[cols].to_string(index=False))
    for note in dict.fromkeys(n for n in results["note"] if n):
        print(f"note: {note}")
    if args.out:
        print(f"results in {args.out}")
    return 0
