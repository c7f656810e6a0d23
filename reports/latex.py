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

from ._load import Results, below_resolution, fmt_fmr

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
    protocol: str
    fmr: float | None
    columns: list[Column]
    methods: list[str]
    references: list[str]
    cells: dict[tuple[str, int], Cell] = field(default_factory=dict)
    scale_exp: int = 0
    caption: str = ""
    compact: bool = False


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
        shown = {m: float(table.cells[(m, j)].text) for m in table.methods if (m, j) in table.cells and table.cells[(m, j)].text != "--"}
        distinct = sorted(set(shown.values()))
        for m, v in shown.items():
            table.cells[(m, j)].rank = 1 if v == distinct[0] else 2 if len(distinct) > 1 and v == distinct[1] else 0


def _lookup(results: pd.DataFrame) -> dict[tuple[str, str, str, float, str], dict[str, Any]]:
    out = {}
    for rec in results.to_dict("records"):
        out[(rec["dataset"], rec["fr_model"], rec["protocol"], round(float(rec["fmr"]), 15), rec["method"])] = rec
    return out


def _n_impostor(res: Results, dataset: str, fr_model: str) -> float:
    r = res.results
    v = r.loc[(r["dataset"] == dataset) & (r["fr_model"] == fr_model), "n_impostor"].dropna()
    if len(v):
        return float(v.iloc[0])
    return float(res.dataset_info(dataset).get("n_impostor", float("nan")))


def _column_warn(res: Results, rows: dict, col: Column, protocol: str) -> bool:
    recs = [v for k, v in rows.items() if k[:4] == (col.dataset, col.fr_model, protocol, round(col.fmr, 15))]
    unresolvable = any(not bool(r.get("fmr_resolvable", True)) for r in recs)
    return unresolvable or below_resolution(col.fmr, _n_impostor(res, col.dataset, col.fr_model))


def build_tables(res: Results) -> list[Table]:
    rows = _lookup(res.results)
    refs = sorted(res.reference_methods)
    methods = [m for m in res.methods if m not in refs]
    tables: list[Table] = []
    multi_model = len(res.fr_models) > 1
    for protocol in res.protocols:
        groups: list[tuple[float | None, list[Column]]] = []
        if multi_model:
            for fmr in res.fmrs:
                groups.append((fmr, [Column(ds, fr, fmr, tex_escape(fr), group=tex_escape(ds)) for ds in res.datasets for fr in res.fr_models]))
        else:
            fr = res.fr_models[0]
            groups.append((None, [Column(ds, fr, fmr, f"FMR {tex_fmr(fmr)}", group=tex_escape(ds)) for ds in res.datasets for fmr in res.fmrs]))
        for fmr, cols in groups:
            present = [c for c in cols if any(k[:4] == (c.dataset, c.fr_model, protocol, round(c.fmr, 15)) for k in rows)]
            if not present:
                continue
            suffix = f"_fmr{fmt_fmr(fmr)}" if fmr is not None else ""
            t = Table(name=f"table_{slug(protocol)}{suffix}", label=f"tab:fiqa-{slug(protocol).lower()}{suffix.replace('_', '-')}",
                      protocol=protocol, fmr=fmr, columns=present, methods=methods, references=refs)
            for j, col in enumerate(present):
                col.warn = _column_warn(res, rows, col, protocol)
                for m in methods + refs:
                    rec = rows.get((col.dataset, col.fr_model, protocol, round(col.fmr, 15), m))
                    if rec is None:
                        continue
                    lo, hi = rec.get("ci_low", float("nan")), rec.get("ci_high", float("nan"))
                    half = (hi - lo) / 2 if math.isfinite(lo) and math.isfinite(hi) else float("nan")
                    t.cells[(m, j)] = Cell(float(rec["auc"]), half)
            _finish(t)
            t.caption = _caption(res, t)
            tables.append(t)
    tables.extend(build_compact(res))
    return tables


def build_compact(res: Results) -> list[Table]:
    """Mean AUC over datasets: one table per protocol, columns = FMR (x FR model)."""
    r = res.results
    refs = sorted(res.reference_methods)
    methods = [m for m in res.methods if m not in refs]
    out = []
    for protocol in res.protocols:
        multi = len(res.fr_models) > 1
        cols = [
            Column("mean", fr, fmr, tex_escape(fr) if multi else f"FMR {tex_fmr(fmr)}", group=f"FMR {tex_fmr(fmr)}" if multi else "")
            for fmr in res.fmrs
            for fr in res.fr_models
        ]
        sub = r[r["protocol"] == protocol]
        cols = [c for c in cols if ((sub["fr_model"] == c.fr_model) & np.isclose(sub["fmr"], c.fmr)).any()]
        if not cols:
            continue
        t = Table(name=f"table_compact_{slug(protocol)}", label=f"tab:fiqa-compact-{slug(protocol).lower()}", protocol=protocol,
                  fmr=None, columns=cols, methods=methods, references=refs, compact=True)
        for j, col in enumerate(cols):
            sel = sub[(sub["fr_model"] == col.fr_model) & np.isclose(sub["fmr"], col.fmr)]
            col.warn = any(_column_warn(res, _lookup(sel), Column(ds, col.fr_model, col.fmr, ""), protocol) for ds in res.datasets)
            for m in methods + refs:
                vals = sel.loc[sel["method"] == m, "auc"].to_numpy(float)
                if len(vals):
                    # A mean over an incomplete set of datasets would not be comparable: n/a instead.
                    mean = float(np.mean(vals)) if len(vals) == len(res.datasets) and np.isfinite(vals).all() else float("nan")
                    t.cells[(m, j)] = Cell(mean)
        _finish(t)
        t.caption = _caption(res, t)
        out.append(t)
    return out


def _finish(t: Table) -> None:
    # Scale chosen from the ranked methods: a large reference value (random) must not hide their digits.
    ranked = [c.value for (m, _), c in t.cells.items() if m in t.methods]
    t.scale_exp = _scale_exponent(ranked or [c.value for c in t.cells.values()])
    for c in t.cells.values():
        c.text = _format(c.value, t.scale_exp)
    _rank(t)


def _caption(res: Results, t: Table) -> str:
    r = res.results[res.results["protocol"] == t.protocol]
    what = "AUC" if t.protocol == "ERC" else "pAUC"
    if t.protocol == "ERC":
        reject = r["reject_max"].dropna()
        rmax = float(reject.iloc[0]) if len(reject) else 0.95
        proto = (f"Area under the ERC with the threshold recomputed on the retained pairs at each reject fraction "
                 f"(CR-FIQA/MagFace protocol; reject fractions 0 to {rmax:g} in steps of 0.05; trapezoid AUC)")
    elif t.protocol == "EDC":
        lim = r["discard_limit"].dropna()
        dl = float(lim.iloc[0]) if len(lim) else float("nan")
        proto = (f"Partial area under the EDC with the threshold fixed once on all pairs (Schlett et al.; pairs discarded "
                 f"lowest quality first, ties together; stepwise pAUC up to a discard fraction of {dl:g})")
    else:
        proto = f"{tex_escape(t.protocol)} area"
    if t.compact:
        proto = f"Mean over datasets ({', '.join(tex_escape(d) for d in res.datasets)}) of the {what}: " + proto[0].lower() + proto[1:]
    fmr = f" at FMR {tex_fmr(t.fmr)}" if t.fmr is not None else (", FMR target per column" if len({c.fmr for c in t.columns}) > 1 else "")
    parts = [f"{proto}{fmr}."]
    parts.append("Lower is better; best per column in \\textbf{bold}, second \\underline{underlined}; reference lines are not ranked.")
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
        parts.append("$^{\\dagger}$FMR target below 1/(number of impostor pairs): the threshold cannot resolve it and "
                     "uses the nearest achievable FMR (column achieved\\_fmr of results.csv)" + (f" ({'; '.join(res_txt)})" if res_txt else "") + ".")
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
