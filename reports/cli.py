"""``fiqa-bench report RESULTS_DIR`` and ``fiqa-bench compare A B`` (paired bootstrap on saved pairs)."""

from __future__ import annotations

import argparse
import difflib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fiqa_bench.errors import FiqaError, MissingDataError
from fiqa_bench.naming import slug

from ._load import load_pairs, load_results, pair_methods, same_fmr


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results_dir",
        metavar="RESULTS_DIR",
        help="folder written by `fiqa-bench run --out` (holds results.csv)",
    )
    parser.add_argument(
        "--formats", default="pdf,png", help="figure formats, comma list of pdf, png, svg (default: pdf,png)"
    )
    parser.add_argument(
        "--protocols", help="only these saved protocols, comma list (default: every protocol in the folder)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def report_main(args: argparse.Namespace) -> int:
    from ._write import write_report

    formats = [f.strip() for f in str(args.formats).split(",") if f.strip()]
    protocols = (
        [p.strip() for p in str(args.protocols).split(",") if p.strip()]
        if getattr(args, "protocols", None)
        else None
    )
    paths = write_report(
        Path(args.results_dir),
        formats=formats,
        progress=not getattr(args, "quiet", False),
        protocols=protocols,
    )
    folder = paths[0].parent if paths else Path(args.results_dir)
    print(
        f"report: {len(paths)} files in {folder} (summary.html, summary.md, report_tables.tex, results.json)"
    )
    return 0


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("method_a", metavar="A", help="first method (as labelled in results.csv)")
    parser.add_argument("method_b", metavar="B", help="second method")
    parser.add_argument("--results", default="fiqa-results", help="results folder (default: ./fiqa-results)")
    parser.add_argument("--dataset", help="only this dataset")
    parser.add_argument("--fr-model", help="only this FR model")
    parser.add_argument("--fmr", type=float, help="only this FMR target")
    parser.add_argument(
        "--protocol",
        type=str.lower,
        help="only this protocol (a name in the results' protocol column, e.g. edc)",
    )
    parser.add_argument("--n", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--seed", type=int, default=0)


def _check_method(name: str, known: list[str], where: Path) -> None:
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise FiqaError(
        f"{where}: no method {name!r} in the saved pairs.{hint} Known methods: {', '.join(known)}."
    )


def _protocol_kwargs(rows: pd.DataFrame, kind: str) -> dict[str, Any]:
    """The protocol parameters recorded in the rows (discard limit, starting error, normalised), so the
    test uses the same curve and area as the table. ERC protocols use their own reject schedule."""

    def first(col: str) -> Any:
        if col not in rows.columns:
            return None
        vals = rows[col].dropna()
        return vals.iloc[0] if len(vals) else None

    kw: dict[str, Any] = {}
    if kind == "edc":
        limit = first("discard_limit")
        if limit is not None:
            kw["discard_limit"] = float(limit)
        start = first("starting_error")
        if start is not None:
            kw["starting_error"] = float(start)
        norm = first("normalised")
        if norm is not None and str(norm).strip().lower() in ("true", "1"):
            kw["normalised"] = True
    return kw


def compare(
    results_dir: Path,
    method_a: str,
    method_b: str,
    *,
    dataset: str | None = None,
    fr_model: str | None = None,
    fmr: float | None = None,
    protocol: str | None = None,
    n: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired bootstrap (same resampled pairs for both methods) for every matching saved result."""
    from fiqa_bench.evaluation import paired_bootstrap

    if n < 1:
        raise FiqaError(f"--n must be at least 1 (got {n}).")
    res = load_results(Path(results_dir))
    if not res.pairs:
        raise MissingDataError(
            "saved pairs",
            res.folder / "pairs",
            "rerun `fiqa-bench run`; it writes pairs/<dataset>__<fr_model>.npz.",
        )
    keys = sorted(res.pairs)
    if dataset is not None:
        _check_name("dataset", dataset, sorted({k[0] for k in keys}), res.folder)
        keys = [k for k in keys if k[0] == dataset]
    if fr_model is not None:
        _check_name("FR model", fr_model, sorted({k[1] for k in keys}), res.folder)
        keys = [k for k in keys if k[1] == fr_model]
    if protocol is not None:
        _check_name("protocol", protocol.lower(), res.protocols, res.folder)
    variants = [v for v in res.variants if protocol is None or res.variant_protocol(v) == protocol.lower()]
    rows = []
    for ds, fr in keys:
        path = res.pairs[(ds, fr)]
        arrays = load_pairs(path)
        known = pair_methods(arrays)
        _check_method(method_a, known, path)
        _check_method(method_b, known, path)
        sel = res.results[(res.results["dataset"] == ds) & (res.results["fr_model"] == fr)]
        fmrs = sorted(
            {float(f) for f in sel["fmr"] if not math.isnan(float(f))} or set(res.run.get("fmrs") or []),
            reverse=True,
        )
        if fmr is not None:
            match = [f for f in fmrs if math.isclose(f, fmr, rel_tol=1e-9)]
            if not match:
                raise FiqaError(
                    f"{res.folder / 'results.csv'}: no results at FMR {fmr:g} for {ds}/{fr}; saved FMRs: "
                    f"{', '.join(f'{f:g}' for f in fmrs)}."
                )
            fmrs = match
        for target in fmrs:
            for variant in variants:
                proto = res.variant_protocol(variant)
                rows_v = sel[(sel["variant"] == variant) & same_fmr(sel["fmr"], target)]
                if rows_v.empty:
                    continue
                kw = _protocol_kwargs(rows_v, res.card(proto).kind)
                out = paired_bootstrap(
                    arrays["similarity"],
                    arrays["genuine"],
                    arrays[f"q__{method_a}"],
                    arrays[f"q__{method_b}"],
                    target,
                    proto,
                    folds=arrays.get("fold"),
                    n=n,
                    seed=seed,
                    **kw,
                )
                rows.append(
                    {
                        "dataset": ds,
                        "fr_model": fr,
                        "protocol": proto,
                        "variant": variant,
                        "fmr": target,
                        "method_a": method_a,
                        "method_b": method_b,
                        "auc_a": float(out["auc_a"]),
                        "auc_b": float(out["auc_b"]),
                        "diff": float(out["diff"]),
                        "ci_low": float(out["ci_low"]),
                        "ci_high": float(out["ci_high"]),
                        "p_value": float(out["p_value"]),
                        "n": int(out.get("n", n)),
                        "seed": seed,
                    }
                )
    return pd.DataFrame(rows)


def _check_name(kind: str, name: str, known: list[str], where: Path) -> None:
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise FiqaError(f"{where}: no saved pairs for {kind} {name!r}.{hint} Known: {', '.join(known)}.")


def _fmt(v: float, digits: int = 4) -> str:
    return "nan" if not np.isfinite(v) else f"{v:.{digits}f}"


def compare_main(args: argparse.Namespace) -> int:
    table = compare(
        Path(args.results),
        args.method_a,
        args.method_b,
        dataset=args.dataset,
        fr_model=args.fr_model,
        fmr=args.fmr,
        protocol=args.protocol,
        n=args.n,
        seed=args.seed,
    )
    if table.empty:
        raise FiqaError(f"{args.results}: nothing matches the filters (dataset/fr-model/fmr/protocol).")
    out = Path(args.results) / f"compare_{slug(args.method_a)}_vs_{slug(args.method_b)}.csv"
    table.to_csv(out, index=False, float_format="%.6g")
    print(
        f"Paired bootstrap ({int(table['n'].iloc[0])} resamples of the pairs within folds, seed {args.seed}); "
        f"diff = AUC({args.method_a}) - AUC({args.method_b}), lower AUC is better."
    )
    shown = pd.DataFrame(
        {
            "dataset": table["dataset"],
            "fr_model": table["fr_model"],
            "protocol": table["variant"],
            "fmr": [f"{f:g}" for f in table["fmr"]],
            f"AUC {args.method_a}": [_fmt(v) for v in table["auc_a"]],
            f"AUC {args.method_b}": [_fmt(v) for v in table["auc_b"]],
            "diff": [_fmt(v) for v in table["diff"]],
            "95% CI": [
                f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
            ],
            "p-value": [_fmt(v, 3) for v in table["p_value"]],
        }
    )
    print(shown.to_string(index=False))
    print(f"written: {out}")
    return 0
