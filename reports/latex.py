"""LaTeX tables in the layout of FIQA papers (booktabs), from the saved results table only.

Rows are methods (reference lines below a rule, not ranked), column groups are datasets, sub-columns
are FR models (one table per protocol and FMR) or, with a single FR model, FMR targets (one table per
protocol). Lower AUC is better: the best value per column is bold, the second underlined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fiqa_bench.naming import slug

from ._load import Results, below_resolution, fmr_key, fmt_fmr, protocol_heading, same_fmr

FRAGMENT_PREAMBLE = "% fiqa-bench table fragment; needs \\usepackage{booktabs} and \\usepackage{graphicx}.\n"
RESIZE_ABOVE = 6  # more data columns than this: scale the tabular to the line width


def tex_escape(text: object) -> str:
    out = []
    for ch in str(text):
        if ch in "&%$#_{}":
            out.append("\\" + ch)
        elif ch == "\\":
            out.append("\\textbackslash{}")
        elif ch == "~":
            out.append("\\textasciitilde{}")
        elif ch == "^":
            out.append("\\textasciicircum{}")
        else:
            out.append(ch)
    return "".join(out)


def tex_fmr(fmr: float) -> str:
    if math.isnan(float(fmr)):
        return "(no target)"
    mant, exp = fmt_fmr(fmr).split("e")
    return f"$10^{{{exp}}}$" if mant == "1" else f"${mant}\\cdot 10^{{{exp}}}$"


@dataclass
class Column:
    dataset: str
    fr_model: str
    fmr: float
    sub_label: str  # already TeX
    warn: bool = False
    group: str = ""  # TeX text of the column group above (dataset, or FMR in the compact table)


@dataclass
class Cell:
    value: float
    half_ci: float = float("nan")
    text: str = ""
    rank: int = 0  # 1 = best, 2 = second, 0 = neither / not ranked


@dataclass
class Table:
    name: str
    label: str
    protocol: str  # the variant: protocol name plus row-level parameters (fiqa_bench.results.variant_label)
    fmr: float | None
    columns: list[Column]
    methods: list[str]
    references: list[str]
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    scale_exp: int = 0
    caption: str = ""
    compact: bool = False
    aggregate: str = ""  # "mean" or "rank": a table of reports.aggregate (columns = FMR targets)
    heading: str = ""  # plain text: curve family, protocol name and title, parameters, FMR


def _scale_exponent(values: list[float]) -> int:
    """Values all below 0.01 would print with at most two significant digits at 4 decimals: scale them."""
    finite = [abs(v) for v in values if math.isfinite(v) and v != 0]
    if not finite:
        return 0
    top = max(finite)
    return 0 if top >= 0.01 else int(-math.floor(math.log10(top)))


def _format(value: float, exp: int) -> str:
    if not math.isfinite(value):
        return "--"
    return f"{value * 10**exp:.3f}" if exp else f"{value:.4f}"


def _rank(table: Table) -> None:
    """Rank per column on the printed numbers (equal print = equal rank); reference lines excluded."""
    for j in range(len(table.columns)):
        shown = {
            m: float(table.cells[(m, j)].text)
            for m in table.methods
            if (m, j) in table.cells and table.cells[(m, j)].text != "--"
        }
        distinct = sorted(set(shown.values()))
        for m, v in shown.items():
            table.cells[(m, j)].rank = (
                1 if v == distinct[0] else 2 if len(distinct) > 1 and v == distinct[1] else 0
            )


def _lookup(results: pd.DataFrame) -> dict[tuple[str, str, str, float, str], dict[str, Any]]:
    out = {}
    for rec in results.to_dict("records"):
        out[(rec["dataset"], rec["fr_model"], rec["variant"], fmr_key(rec["fmr"]), rec["method"])] = rec
    return out


def variant_slug(variant: str) -> str:
    """'edc, discard limit 0.3' -> 'edc_discard-limit-0-3' (file names and LaTeX labels)."""
    return "_".join(slug(part) for part in variant.split(", "))


def area_name(res: Results, variant: str) -> str:
    return {"erc": "AUC", "edc": "pAUC"}.get(res.card(res.variant_protocol(variant)).kind, "value")


def _n_impostor(res: Results, dataset: str, fr_model: str) -> float:
    r = res.results
    v = r.loc[(r["dataset"] == dataset) & (r["fr_model"] == fr_model), "n_impostor"].dropna()
    if len(v):
        return float(v.iloc[0])
    return float(res.dataset_info(dataset).get("n_impostor", float("nan")))


def _column_warn(res: Results, rows: dict, col: Column, protocol: str) -> bool:
    recs = [v for k, v in rows.items() if k[:4] == (col.dataset, col.fr_model, protocol, fmr_key(col.fmr))]
    unresolvable = any(not bool(r.get("fmr_resolvable", True)) for r in recs)
    return unresolvable or below_resolution(col.fmr, _n_impostor(res, col.dataset, col.fr_model))


def build_tables(res: Results) -> list[Table]:
    rows = _lookup(res.results)
    refs = sorted(res.reference_methods)
    methods = [m for m in res.methods if m not in refs]
    tables: list[Table] = []
    multi_model = len(res.fr_models) > 1
    for protocol in res.variants:
        groups: list[tuple[float | None, list[Column]]] = []
        if multi_model:
            for fmr in res.fmrs:
                groups.append(
                    (
                        fmr,
                        [
                            Column(ds, fr, fmr, tex_escape(fr), group=tex_escape(ds))
                            for ds in res.datasets
                            for fr in res.fr_models
                        ],
                    )
                )
        else:
            fr = res.fr_models[0]
            groups.append(
                (
                    None,
                    [
                        Column(ds, fr, fmr, f"FMR {tex_fmr(fmr)}", group=tex_escape(ds))
                        for ds in res.datasets
                        for fmr in res.fmrs
                    ],
                )
            )
        for fmr, cols in groups:
            present = [
                c
                for c in cols
                if any(k[:4] == (c.dataset, c.fr_model, protocol, fmr_key(c.fmr)) for k in rows)
            ]
            if not present:
                continue
            suffix = f"_fmr{fmt_fmr(fmr)}" if fmr is not None else ""
            t = Table(
                name=f"table_{variant_slug(protocol)}{suffix}",
                label=f"tab:fiqa-{variant_slug(protocol)}{suffix.replace('_', '-')}",
                protocol=protocol,
                fmr=fmr,
                columns=present,
                methods=methods,
                references=refs,
            )
            for j, col in enumerate(present):
                col.warn = _column_warn(res, rows, col, protocol)
                for m in methods + refs:
                    rec = rows.get((col.dataset, col.fr_model, protocol, fmr_key(col.fmr), m))
                    if rec is None:
                        continue
                    lo, hi = rec.get("ci_low", float("nan")), rec.get("ci_high", float("nan"))
                    half = (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else float("nan")
                    t.cells[(m, j)] = Cell(float(rec["auc"]), half)
            _finish(t)
            t.caption = _caption(res, t)
            t.heading = protocol_heading(res, protocol, fmr)
            tables.append(t)
    tables.extend(build_compact(res))
    tables.extend(build_aggregates(res))
    return tables


AGGREGATE_TITLE = {"mean": "Mean over datasets x FR models", "rank": "Relative ranking (Schlett et al.)"}


def build_aggregates(res: Results) -> list[Table]:
    """Per protocol variant: the mean over (dataset, FR model) columns and Schlett's relative ranking, as
    two tables whose columns are the FMR targets (values from reports.aggregate.aggregate_rows)."""
    from .aggregate import aggregate_rows

    if len(res.datasets) * len(res.fr_models) < 2:
        return []  # one column: the mean is the table itself and every rank is 0 (aggregates.csv still has them)
    agg = aggregate_rows(res.results, res.reference_methods)
    refs = sorted(res.reference_methods)
    methods = [m for m in res.methods if m not in refs]
    out = []
    for variant in res.variants:
        sub = agg[agg["variant"] == variant]
        fmrs = [f for f in res.fmrs if same_fmr(sub["fmr"], f).any()]
        if not fmrs:
            continue
        for kind, col_name in (("mean", "mean_auc"), ("rank", "relative_rank")):
            cols = [Column("all", "all", f, f"FMR {tex_fmr(f)}") for f in fmrs]
            t = Table(
                name=f"table_{kind}_{variant_slug(variant)}",
                label=f"tab:fiqa-{kind}-{variant_slug(variant)}",
                protocol=variant,
                fmr=None,
                columns=cols,
                methods=methods,
                references=refs if kind == "mean" else [],
                aggregate=kind,
            )
            for j, f in enumerate(fmrs):
                block = sub[same_fmr(sub["fmr"], f)]
                for rec in block.to_dict("records"):
                    if kind == "rank" and rec["reference_line"]:
                        continue
                    t.cells[(rec["method"], j)] = Cell(float(rec[col_name]))
            _finish(t)
            n_cols = int(sub["n_columns"].max())
            t.heading = f"{AGGREGATE_TITLE[kind]}: {protocol_heading(res, variant)}"
            t.caption = _aggregate_caption(res, t, n_cols)
            out.append(t)
    return out


def _aggregate_caption(res: Results, t: Table, n_cols: int) -> str:
    columns = ", ".join(f"{tex_escape(d)}/{tex_escape(m)}" for d in res.datasets for m in res.fr_models)
    what = "Mean" if t.aggregate == "mean" else "Relative ranking"
    formula = (
        "$\\bar{A}_m = \\frac{1}{|C|}\\sum_{c\\in C} A_{m,c}$"
        if t.aggregate == "mean"
        else "$R_m = \\frac{1}{|C|}\\sum_{c\\in C} \\frac{A_{m,c} - \\min_{m'} A_{m',c}}{\\max_{m'} A_{m',c} - \\min_{m'} A_{m',c}}$"
    )
    parts = [
        f"{what} over the {n_cols} (dataset, FR model) columns $C$ ({columns}) of the "
        f"{protocol_sentence(res, t.protocol, ', FMR target per column')}."
    ]
    extra = (
        (
            " ($\\min$ and $\\max$ over the ranked methods; 0 = best in every column, 1 = worst; a column where all "
            "ranked methods are equal scales to 0)"
        )
        if t.aggregate == "rank"
        else ""
    )
    parts.append(f"Formula: {formula}, with $A_{{m,c}}$ the area of method $m$ in column $c${extra}.")
    parts.append(
        "Lower is better; best per column in \\textbf{bold}, second \\underline{underlined}; reference lines are not ranked"
        + (" and do not set the column minimum or maximum." if t.aggregate == "rank" else ".")
    )
    parts.append("-- : a method without a value in every column.")
    if t.scale_exp:
        parts.append(f"Values $\\times 10^{{{t.scale_exp}}}$.")
    return " ".join(parts)


def build_compact(res: Results) -> list[Table]:
    """Mean AUC over datasets: one table per protocol, columns = FMR (x FR model); only with several datasets
    and several FR models (otherwise it repeats the per-column table or the mean over datasets x FR models)."""
    if len(res.datasets) < 2 or len(res.fr_models) < 2:
        return []
    r = res.results
    refs = sorted(res.reference_methods)
    methods = [m for m in res.methods if m not in refs]
    out = []
    for protocol in res.variants:
        multi = len(res.fr_models) > 1
        cols = [
            Column(
                "mean",
                fr,
                fmr,
                tex_escape(fr) if multi else f"FMR {tex_fmr(fmr)}",
                group=f"FMR {tex_fmr(fmr)}" if multi else "",
            )
            for fmr in res.fmrs
            for fr in res.fr_models
        ]
        sub = r[r["variant"] == protocol]
        cols = [c for c in cols if ((sub["fr_model"] == c.fr_model) & same_fmr(sub["fmr"], c.fmr)).any()]
        if not cols:
            continue
        t = Table(
            name=f"table_compact_{variant_slug(protocol)}",
            label=f"tab:fiqa-compact-{variant_slug(protocol)}",
            protocol=protocol,
            fmr=None,
            columns=cols,
            methods=methods,
            references=refs,
            compact=True,
        )
        for j, col in enumerate(cols):
            sel = sub[(sub["fr_model"] == col.fr_model) & same_fmr(sub["fmr"], col.fmr)]
            col.warn = any(
                _column_warn(res, _lookup(sel), Column(ds, col.fr_model, col.fmr, ""), protocol)
                for ds in res.datasets
            )
            for m in methods + refs:
                vals = sel.loc[sel["method"] == m, "auc"].to_numpy(float)
                if len(vals):
                    # A mean over an incomplete set of datasets would not be comparable: n/a instead.
                    mean = (
                        float(np.mean(vals))
                        if len(vals) == len(res.datasets) and np.isfinite(vals).all()
                        else float("nan")
                    )
                    t.cells[(m, j)] = Cell(mean)
        _finish(t)
        t.caption = _caption(res, t)
        t.heading = protocol_heading(res, protocol)
        out.append(t)
    return out


def _finish(t: Table) -> None:
    # Scale chosen from the ranked methods: a large reference value (random) must not hide their digits.
    ranked = [c.value for (m, _), c in t.cells.items() if m in t.methods]
    t.scale_exp = _scale_exponent(ranked or [c.value for c in t.cells.values()])
    for c in t.cells.values():
        c.text = _format(c.value, t.scale_exp)
    _rank(t)


def fractions_text(fractions: list[float]) -> str:
    """'0 to 0.95 in steps of 0.05' for an evenly spaced list, else the list."""
    if len(fractions) > 2:
        steps = np.diff(fractions)
        if np.allclose(steps, steps[0], rtol=0, atol=1e-9):
            return f"{fractions[0]:g} to {fractions[-1]:g} in steps of {steps[0]:g}"
    return ", ".join(f"{f:g}" for f in fractions)


def protocol_sentence(res: Results, variant: str, fmr_text: str = "", *, tex: bool = True) -> str:
    """What is measured, in words, from the saved protocol card and parameters (never guessed): area,
    curve family, protocol name and title, parameters, ``fmr_text``, reject fractions, rule and source."""
    esc = tex_escape if tex else str
    protocol = res.variant_protocol(variant)
    card = res.card(protocol)
    text = f"{area_name(res, variant)} of {esc(protocol_heading(res, variant))}{fmr_text}"
    if card.kind == "erc" and res.reject_fractions:
        text += f"; reject fractions {fractions_text(res.reject_fractions)}"
    if card.rule:
        text += f". Rule: {esc(card.rule)}"
    if card.source:
        text += f" (source: {esc(card.source)})"
    return text


def _caption(res: Results, t: Table) -> str:
    r = res.results[res.results["variant"] == t.protocol]
    fmr = (
        f", FMR {tex_fmr(t.fmr)}"
        if t.fmr is not None
        else (", FMR target per column" if len({c.fmr for c in t.columns}) > 1 else "")
    )
    proto = protocol_sentence(res, t.protocol, fmr)
    if t.compact:
        proto = f"Mean over datasets ({', '.join(tex_escape(d) for d in res.datasets)}) of the " + proto
    parts = [f"{proto}."]
    parts.append(
        "Lower is better; best per column in \\textbf{bold}, second \\underline{underlined}; reference lines are not ranked."
    )
    if t.scale_exp:
        parts.append(f"Values $\\times 10^{{{t.scale_exp}}}$.")
    if any(math.isfinite(c.half_ci) for c in t.cells.values()):
        n_boot = res.run.get("bootstrap")
        seed = res.run.get("seed")
        extra = f" ({n_boot} resamples of the pairs within folds, seed {seed})" if n_boot else ""
        parts.append(f"$\\pm$: half-width of the 95\\% bootstrap confidence interval{extra}.")
    pairs = []
    for ds in res.datasets:
        d = r[r["dataset"] == ds]
        info = res.dataset_info(ds)
        n = d["n_pairs"].dropna()
        n_pairs = int(n.iloc[0]) if len(n) else info.get("n_pairs")
        g = d["n_genuine"].dropna()
        n_gen = int(g.iloc[0]) if len(g) else info.get("n_genuine")
        i = d["n_impostor"].dropna()
        n_imp = int(i.iloc[0]) if len(i) else info.get("n_impostor")
        if n_pairs is not None:
            pairs.append(f"{tex_escape(ds)} {n_pairs} ({n_gen} genuine, {n_imp} impostor)")
    if pairs:
        parts.append("Pairs: " + "; ".join(pairs) + ".")
    if any(c.warn for c in t.columns):
        res_txt = []
        for ds in res.datasets:
            n_imp = _n_impostor(res, ds, res.fr_models[0])
            if math.isfinite(n_imp) and n_imp > 0:
                mant, exp = f"{1 / n_imp:.1e}".split("e")
                res_txt.append(f"{tex_escape(ds)}: $1/{int(n_imp)} \\approx {mant}\\cdot 10^{{{int(exp)}}}$")
        parts.append(
            "$^{\\dagger}$FMR target below 1/(number of impostor pairs): the threshold cannot resolve it and "
            "uses the nearest achievable FMR (column achieved\\_fmr of results.csv)"
            + (f" ({'; '.join(res_txt)})" if res_txt else "")
            + "."
        )
    return " ".join(parts)


def render_table(t: Table) -> str:
    ncol = len(t.columns)
    lines = [FRAGMENT_PREAMBLE, "\\begin{table}[!htbp]", "\\centering", "\\small"]
    lines.append(f"\\caption{{{t.caption}}}")
    lines.append(f"\\label{{{t.label}}}")
    if ncol > RESIZE_ABOVE:
        lines.append("\\resizebox{\\linewidth}{!}{%")
    lines.append("\\begin{tabular}{l" + "c" * ncol + "}")
    lines.append("\\toprule")
    # Header row 1: dataset groups (runs of equal dataset) with cmidrules under them.
    groups: list[tuple[str, int, int]] = []
    for j, col in enumerate(t.columns):
        if groups and groups[-1][0] == col.group:
            groups[-1] = (col.group, groups[-1][1], j)
        else:
            groups.append((col.group, j, j))
    if any(col.group for col in t.columns):
        head = [""] + [f"\\multicolumn{{{b - a + 1}}}{{c}}{{{g}}}" for g, a, b in groups]
        lines.append(" & ".join(head) + " \\\\")
        lines.append(" ".join(f"\\cmidrule(lr){{{a + 2}-{b + 2}}}" for _, a, b in groups))
    subs = ["Method"]
    for col in t.columns:
        subs.append(col.sub_label + ("$^{\\dagger}$" if col.warn else ""))
    lines.append(" & ".join(subs) + " \\\\")
    lines.append("\\midrule")
    for m in t.methods:
        cells = [_cell_tex_scaled(t, m, j) for j in range(ncol)]
        lines.append(" & ".join([tex_escape(m), *cells]) + " \\\\")
    if t.references:
        lines.append("\\midrule")
        lines.append(f"\\multicolumn{{{ncol + 1}}}{{l}}{{\\textit{{Reference lines (not ranked)}}}} \\\\")
        for m in t.references:
            cells = [_cell_tex_scaled(t, m, j) for j in range(ncol)]
            lines.append(" & ".join([tex_escape(m), *cells]) + " \\\\")
    lines.append("\\bottomrule")
    lines.append("\\end{tabular}" + ("}" if ncol > RESIZE_ABOVE else ""))
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def _cell_tex_scaled(t: Table, method: str, j: int) -> str:
    c = t.cells.get((method, j))
    if c is None:
        return "--"
    val = c.text
    if c.rank == 1:
        val = f"\\textbf{{{val}}}"
    elif c.rank == 2:
        val = f"\\underline{{{val}}}"
    if math.isfinite(c.half_ci) and c.text != "--":
        half = _format(c.half_ci, t.scale_exp)
        val += f"{{\\scriptsize$\\pm${half}}}"
    return val


def render_wrapper(tables: list[Table]) -> str:
    """A standalone document that \\input's every fragment (compile with pdflatex in the report folder)."""
    lines = [
        "% fiqa-bench: every table of this report; compile with `pdflatex report_tables.tex` in this folder.",
        "\\documentclass[10pt]{article}",
        "\\usepackage[a4paper,margin=2cm]{geometry}",
        "\\usepackage{booktabs}",
        "\\usepackage{graphicx}",
        "\\begin{document}",
    ]
    for k, t in enumerate(tables):
        lines.append(f"\\input{{{t.name}.tex}}")
        if k % 2 == 1:
            lines.append("\\clearpage")
    lines.append("\\end{document}")
    return "\n".join(lines) + "\n"
