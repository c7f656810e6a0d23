"""write_report: every artefact of a results folder, rebuilt from the saved files, byte-identical each time."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import FiqaError
from fiqa_bench.naming import slug

from ._load import Results, fmr_key, fmt_fmr, load_pairs, load_results, pair_methods
from ._style import png_bytes, save_figure, style_map
from .latex import build_tables, render_table, render_wrapper, variant_slug
from .summary import html_page, markdown

REPORT_DIR = "report"
MANIFEST = "results.json"
AGGREGATES = (
    "aggregates.csv"  # mean over datasets x FR models and Schlett's relative ranking (reports.aggregate)
)
SUPPORTED_FORMATS = ("pdf", "png", "svg")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _remove_stale(out: Path) -> None:
    """Delete what the previous report wrote (listed in its manifest), so renamed methods leave no orphans."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return
    try:
        old = json.loads(manifest.read_text())
    except (json.JSONDecodeError, OSError):
        return
    for item in old.get("artefacts", []) if isinstance(old, dict) else []:
        rel = item.get("file") if isinstance(item, dict) else None
        if isinstance(rel, str) and "/" not in rel and "\\" not in rel and not rel.startswith("."):
            (out / rel).unlink(missing_ok=True)


def write_report(
    results_dir: Path,
    *,
    formats: Iterable[str] = ("pdf", "png"),
    progress: bool = False,
    protocols: Iterable[str] | None = None,
) -> list[Path]:
    """Rebuild every report artefact from ``results_dir`` into ``results_dir/report/``.

    Reads results.csv, curves.csv, pairs/*.npz and run.json through :func:`fiqa_bench.results.read_results`
    (no model, dataset or evaluator is touched) and writes:
    ``table_*.tex`` fragments plus ``report_tables.tex`` (standalone, pdflatex), ERC/EDC figures per
    (dataset, FR model, FMR), appendix grids per (protocol, FMR), pair-quality distributions per
    (dataset, FR model), ``summary.md``, a self-contained ``summary.html`` and ``results.json``
    (provenance + result records + sha256 of every artefact). Output is byte-identical when rerun on
    the same results. ``protocols``: only these saved protocols (default: every one in the folder).
    Returns the written paths, sorted.
    """
    from tqdm import tqdm

    formats = tuple(dict.fromkeys(f.lower().lstrip(".") for f in formats))
    bad = [f for f in formats if f not in SUPPORTED_FORMATS]
    if bad:
        raise FiqaError(
            f"report format(s) {', '.join(bad)} not supported; use {', '.join(SUPPORTED_FORMATS)}."
        )
    res = load_results(Path(results_dir)).only(list(protocols) if protocols is not None else None)
    out = res.folder / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    written: list[Path] = []

    from .aggregate import aggregate_rows

    p = out / AGGREGATES
    p.write_text(aggregate_rows(res.results, res.reference_methods).to_csv(index=False))
    written.append(p)
    tables = build_tables(res)
    for t in tables:
        p = out / f"{t.name}.tex"
        p.write_text(render_table(t))
        written.append(p)
    p = out / "report_tables.tex"
    p.write_text(render_wrapper(tables))
    written.append(p)

    from . import plots

    styles = style_map(res.methods, res.reference_methods)
    html_images: list[tuple[str, bytes]] = []
    figure_names: list[str] = []

    def emit(fig: Any, stem: str, embed: bool) -> None:
        data = png_bytes(fig, dpi=200) if embed and "png" not in formats else None
        paths = save_figure(fig, out / stem, formats)
        written.extend(paths)
        figure_names.extend(p.name for p in paths)
        if embed:
            html_images.append((stem, data if data is not None else (out / f"{stem}.png").read_bytes()))

    jobs: list[tuple[str, tuple]] = []
    # One figure per results variant (protocol + parameters) whose curve was saved: several EDC discard
    # limits read their areas from one curve, each figure marks its own limit.
    c = res.curves
    curve_keys = set(
        zip(c["dataset"], c["fr_model"], c["variant"], [fmr_key(f) for f in c["fmr"]], strict=True)
    )
    keys = res.results[["dataset", "fr_model", "variant", "curve_variant", "fmr"]].drop_duplicates()
    drawn_variants: set[str] = set()
    for ds, fr, variant, curve_variant, fmr in keys.itertuples(index=False):
        if (ds, fr, curve_variant, fmr_key(fmr)) in curve_keys:
            jobs.append(("curve", (ds, fr, variant, float(fmr))))
            drawn_variants.add(variant)
    jobs.sort(key=lambda j: (j[1][0], j[1][1], j[1][2], -1.0 if np.isnan(j[1][3]) else j[1][3]))
    if len(res.datasets) * len(res.fr_models) > 1:
        for protocol in [v for v in res.variants if v in drawn_variants]:
            for fmr in res.fmrs:
                jobs.append(("grid", (protocol, fmr)))
    for (ds, fr), path in sorted(res.pairs.items()):
        jobs.append(("dist", (ds, fr, path)))
    for kind, args in tqdm(jobs, desc="report figures", disable=not progress):
        if kind == "curve":
            ds, fr, protocol, fmr = args
            fig = plots.curve_figure(res, styles, ds, fr, protocol, fmr)
            emit(fig, f"{variant_slug(protocol)}__{slug(ds)}__{slug(fr)}__fmr{fmt_fmr(fmr)}", embed=True)
        elif kind == "grid":
            protocol, fmr = args
            fig = plots.grid_figure(res, styles, protocol, fmr)
            emit(fig, f"grid_{variant_slug(protocol)}__fmr{fmt_fmr(fmr)}", embed=False)
        else:
            ds, fr, path = args
            arrays = load_pairs(path)
            methods = [m for m in pair_methods(arrays) if m not in res.reference_methods]
            if methods:
                fig = plots.distribution_figure(arrays, methods, ds, fr)
                emit(fig, f"quality_{slug(ds)}__{slug(fr)}", embed=True)

    p = out / "summary.md"
    p.write_text(markdown(res, tables, figure_names))
    written.append(p)
    p = out / "summary.html"
    p.write_text(html_page(res, tables, html_images))
    written.append(p)

    written = sorted(set(written))
    manifest = {
        "generated_by": "fiqa-bench report",
        "report_dir": REPORT_DIR,
        "provenance": _jsonable(res.run),
        "results": _jsonable(res.results.to_dict("records")),
        "artefacts": [{"file": p.name, "bytes": p.stat().st_size, "sha256": _sha256(p)} for p in written],
        "style_map": {
            m: {"color": s.color, "marker": s.marker, "linestyle": str(s.linestyle), "reference": s.reference}
            for m, s in sorted(styles.items())
        },
    }
    p = out / MANIFEST
    p.write_text(json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False) + "\n")
    written.append(p)
    return sorted(written)


__all__ = ["write_report", "Results"]
