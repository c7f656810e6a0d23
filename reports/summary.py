"""Markdown and single-file HTML summaries (tables, warnings, provenance, embedded figures)."""

from __future__ import annotations

import base64
import html
import math
from typing import Any

from ._load import Results, below_resolution, fmt_fmr
from .latex import Table


def plain_label(t: Table, j: int) -> str:
    col = t.columns[j]
    if t.aggregate:
        return f"FMR {fmt_fmr(col.fmr)}"
    if t.compact:
        return (
            f"{col.fr_model}, " if len({c.fr_model for c in t.columns}) > 1 else ""
        ) + f"FMR {fmt_fmr(col.fmr)}"
    sub = f"FMR {fmt_fmr(col.fmr)}" if t.fmr is None else col.fr_model
    return f"{col.dataset} / {sub}" + (" †" if col.warn else "")


def table_title(t: Table) -> str:
    """'ERC (erc: CR-FIQA reference rule), FMR 1e-3' (+ 'Mean over datasets: ', + the scale)."""
    head = f"{'Mean over datasets: ' if t.compact else ''}{t.heading}"
    if t.scale_exp:
        head += f", values x 10^{t.scale_exp}"
    return head


def _cell_text(t: Table, m: str, j: int) -> tuple[str, int]:
    c = t.cells.get((m, j))
    if c is None:
        return "--", 0
    txt = c.text
    if math.isfinite(c.half_ci) and c.text != "--":
        from .latex import _format

        txt += f" ± {_format(c.half_ci, t.scale_exp)}"
    return txt, c.rank


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def warnings(res: Results) -> list[str]:
    out: list[str] = []
    r = res.results
    seen: set[tuple[str, str, float]] = set()
    for rec in r.to_dict("records"):
        key = (rec["dataset"], rec["fr_model"], float(rec["fmr"]))
        if key in seen:
            continue
        n_imp = _num(rec.get("n_impostor"))
        if below_resolution(key[2], n_imp) or not bool(rec.get("fmr_resolvable", True)):
            seen.add(key)
            n_txt = (
                f"{int(n_imp)} impostor pairs, 1/n = {1 / n_imp:.2g}"
                if math.isfinite(n_imp) and n_imp > 0
                else "too few impostor pairs"
            )
            ach = _num(rec.get("achieved_fmr"))
            ach_txt = f"; nearest achievable FMR {ach:.3g}" if math.isfinite(ach) else ""
            out.append(
                f"FMR target {fmt_fmr(key[2])} is below the resolution of {key[0]} with {key[1]} ({n_txt}){ach_txt}: "
                "the AUC is not measured at the stated FMR."
            )
    # Engine notes, grouped by text so a note shared by many methods is listed once with where it applies.
    where: dict[str, set[str]] = {}
    for rec in r.to_dict("records"):
        note = str(rec.get("note") or "").strip()
        if note and note.lower() != "nan":
            where.setdefault(note, set()).add(
                f"{rec['dataset']}/{rec['fr_model']} {rec['variant']} ({rec['method']})"
            )
    for note in sorted(where):
        places = sorted(where[note])
        shown = ", ".join(places[:4]) + (f" and {len(places) - 4} more" if len(places) > 4 else "")
        out.append(f"note: {note} [{shown}]")
    for name in res.datasets:
        skipped = res.dataset_info(name).get("skipped") or []
        if skipped:
            out.append(f"{name}: {len(skipped)} item(s) skipped (listed below).")
    for item in res.run.get("not_evaluated") or []:
        if isinstance(item, dict):
            out.append(
                f"not evaluated: {item.get('kind', '')} {item.get('name', '')}: {item.get('why', '')}".replace(
                    "  ", " "
                )
            )
    return out


def _dataset_rows(res: Results) -> list[list[str]]:
    rows = []
    r = res.results
    for ds in res.datasets:
        info = res.dataset_info(ds)
        d = r[r["dataset"] == ds]

        def first(col: str, d: Any = d, info: dict = info) -> str:
            v = d[col].dropna() if col in d.columns else []
            if len(v):
                return str(int(v.iloc[0]))
            return str(info.get(col, "?"))

        rows.append(
            [
                ds,
                str(info.get("source", "")),
                str(info.get("n_images", "?")),
                first("n_pairs"),
                first("n_genuine"),
                first("n_impostor"),
                str(len(info.get("skipped") or [])),
            ]
        )
    return rows


DATASET_HEAD = ["dataset", "source", "images", "pairs", "genuine", "impostor", "skipped"]
VERIFICATION_HEAD = [
    "dataset",
    "FR model",
    "pairs",
    "folds",
    "accuracy (mean ± std over folds)",
    "mean genuine cos",
    "mean impostor cos",
]
VERIFICATION_TEXT = (
    "Accuracy on each fold at the threshold that is best on the other folds (the LFW protocol; "
    "10 contiguous blocks where the dataset has no folds), before any rejection."
)


VERIFICATION_ROWS_HEAD = [
    "dataset",
    "FR model",
    "protocol",
    "scores from",
    "pairs",
    "folds",
    "accuracy (mean ± std over folds)",
    "note",
]


def verification_section(res: Results) -> tuple[str, list[str], list[list[str]]]:
    """(explanation, header, rows) of the verification table: the saved verification rows, each labelled
    with its protocol (e.g. insightface's printed accuracy on flip-summed embeddings beside the exact
    one); folders without such rows get the exact k-fold accuracy of the saved pair similarities."""
    v = res.verification
    if not len(v):
        return VERIFICATION_TEXT, VERIFICATION_HEAD, _verification_rows(res)
    rows = []
    for rec in v.to_dict("records"):
        card = res.card(rec["protocol"])
        folds = _num(rec.get("n_folds"))
        scores = str(rec.get("scores") or "embeddings")
        rows.append(
            [
                rec["dataset"],
                rec["fr_model"],
                card.label(),
                "embeddings" if scores == "nan" else scores,
                str(int(_num(rec.get("n_pairs")))),
                str(int(folds)) if math.isfinite(folds) else "?",
                f"{100 * _num(rec.get('accuracy')):.2f}% ± {100 * _num(rec.get('accuracy_std')):.2f}",
                str(rec.get("note") or ""),
            ]
        )
    # The exact k-fold accuracy beside every other verification number, read from the saved pairs where
    # the run did not save it as a row (labelled as such).
    have_exact = {(r[0], r[1]) for r, p in zip(rows, v["protocol"], strict=True) if p == "verification_exact"}
    for ds, model, n, folds, acc, _, _ in _verification_rows(res):
        if (ds, model) not in have_exact:
            rows.append(
                [
                    ds,
                    model,
                    "exact k-fold accuracy (from the saved pair similarities)",
                    "embeddings",
                    n,
                    folds,
                    acc,
                    "",
                ]
            )
    rows.sort(key=lambda r: (r[0], r[1]))
    text = (
        "Verification accuracy before any rejection, one row per saved verification protocol: "
        + "; ".join(f"{res.card(p).label()}: {res.card(p).rule}" for p in dict.fromkeys(v["protocol"]))
    )
    return text, VERIFICATION_ROWS_HEAD, rows


def _verification_rows(res: Results) -> list[list[str]]:
    """Verification accuracy per (dataset, FR model) from the saved pairs/*.npz (folders without saved
    verification rows)."""
    import numpy as np

    from fiqa_bench.evaluation import fold_accuracy

    rows = []
    for (ds, model), path in sorted(res.pairs.items()):
        with np.load(path) as z:
            sim, gen = z["similarity"], z["genuine"].astype(bool)
            fold = z["fold"] if "fold" in z.files else np.zeros(len(sim), dtype=np.int64)
        if not gen.any() or gen.all():
            continue
        n_folds = len(np.unique(fold))
        mean, std = fold_accuracy(sim, gen, fold if n_folds > 1 else 10)
        rows.append(
            [
                ds,
                model,
                str(len(sim)),
                str(n_folds if n_folds > 1 else 10),
                f"{100 * mean:.2f}% ± {100 * std:.2f}",
                f"{sim[gen].mean():.3f}",
                f"{sim[~gen].mean():.3f}",
            ]
        )
    return rows


def _provenance_items(res: Results) -> list[tuple[str, str]]:
    run = res.run
    items = []
    for key in (
        "fiqa_bench_version",
        "torch_version",
        "numpy_version",
        "python",
        "platform",
        "started",
        "finished",
        "seed",
        "bootstrap",
        "device",
    ):
        if key in run:
            items.append((key, str(run[key])))
    if "command" in run:
        cmd = run["command"]
        items.append(("command", " ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd)))
    for kind in ("fr_models", "methods"):
        for name, info in sorted((run.get(kind) or {}).items()):
            if isinstance(info, dict):
                sha = info.get("weights_sha256")
                weights = info.get("weights")
                desc = f"weights {weights} (sha256 {sha})" if weights else "no weight file"
                items.append((f"{kind[:-1].replace('_', ' ')} {name}", desc))
    return items


def protocol_lines(res: Results) -> list[str]:
    """One line per evaluated protocol, from the cards saved in run.json: name, title, rule, source."""
    lines = []
    for name in res.protocols:
        card = res.card(name)
        text = f"{card.label()}: {card.rule}" if card.rule else card.label()
        lines.append(text + (f" (source: {card.source})" if card.source else ""))
    return lines


def markdown(res: Results, tables: list[Table], figures: list[str]) -> str:
    run = res.run
    out = ["# fiqa-bench report", ""]
    out.append(
        "Built from the saved results in this folder (results.csv, curves.csv, pairs/, run.json) by "
        "`fiqa-bench report`; nothing was recomputed. Lower AUC/pAUC is better."
    )
    out += ["", "Protocols:", ""] + [f"- {line}" for line in protocol_lines(res)]
    out.append("")
    for name in res.datasets:
        note = res.dataset_info(name).get("demo_note")
        if note:
            out += [f"> **{name}**: {note}", ""]
    out += ["## Datasets", "", _md_table(DATASET_HEAD, _dataset_rows(res)), ""]
    v_text, v_head, verification = verification_section(res)
    if verification:
        out += ["## Verification", "", v_text, "", _md_table(v_head, verification), ""]
    warns = warnings(res)
    if warns:
        out += ["## Warnings", ""] + [f"- {w}" for w in warns] + [""]
    out += [
        "## Results",
        "",
        "Best per column in **bold**, second in _italics_; reference lines are not ranked. "
        "± is the half-width of the 95% bootstrap confidence interval when bootstrapping was run.",
        "",
    ]
    for t in tables:
        head = ["method"] + [plain_label(t, j) for j in range(len(t.columns))]
        rows = []
        for m in t.methods + t.references:
            cells = []
            for j in range(len(t.columns)):
                txt, rank = _cell_text(t, m, j)
                cells.append(f"**{txt}**" if rank == 1 else f"_{txt}_" if rank == 2 else txt)
            rows.append([f"{m} (reference)" if m in t.references else m, *cells])
        out += [f"### {table_title(t)}", "", _md_table(head, rows), ""]
    skipped = [
        (ds, s)
        for ds in res.datasets
        for s in (res.dataset_info(ds).get("skipped") or [])
        if isinstance(s, dict)
    ]
    if skipped:
        out += [
            "## Skipped items",
            "",
            _md_table(
                ["dataset", "what", "where", "why"],
                [
                    [ds, str(s.get("what", "")), str(s.get("where", "")), str(s.get("why", ""))]
                    for ds, s in skipped
                ],
            ),
            "",
        ]
    out += ["## Figures", ""] + [f"- [{f}]({f})" for f in figures] + [""]
    if run:
        out += [
            "## Provenance",
            "",
            _md_table(["item", "value"], [[k, v] for k, v in _provenance_items(res)]),
            "",
        ]
    return "\n".join(out)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{padding:.25em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{border-bottom:1px solid #444}
tbody tr.ref td{color:#666;font-style:italic}tbody tr.first-ref td{border-top:1px solid #999}
table{border-top:2px solid #222;border-bottom:2px solid #222}td.best{font-weight:bold}td.second{text-decoration:underline}
.warn{background:#fff4e0;border-left:4px solid #D55E00;padding:.5em 1em}.note{background:#eef5fb;padding:.5em 1em}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:.8em;color:#555}
img{max-width:100%}code{background:#f3f3f3}"""


def _h(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_table(
    head: list[str],
    rows: list[list[str]],
    classes: list[list[str]] | None = None,
    row_classes: list[str] | None = None,
) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        rc = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        tds = []
        for j, c in enumerate(r):
            cc = classes[i][j] if classes else ""
            tds.append(f'<td class="{cc}">{_h(c)}</td>' if cc else f"<td>{_h(c)}</td>")
        out.append(f"<tr{rc}>" + "".join(tds) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def html_page(res: Results, tables: list[Table], images: list[tuple[str, bytes]]) -> str:
    """One self-contained HTML file: tables as HTML, figures as base64 PNG, no external resources."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>fiqa-bench report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>fiqa-bench report</h1>",
    ]
    parts.append(
        "<p>Built from the saved results (results.csv, curves.csv, pairs/, run.json) without recomputing anything. "
        "Lower AUC/pAUC is better.</p>"
    )
    parts.append(
        "<p>Protocols:</p><ul>" + "".join(f"<li>{_h(line)}</li>" for line in protocol_lines(res)) + "</ul>"
    )
    for name in res.datasets:
        note = res.dataset_info(name).get("demo_note")
        if note:
            parts.append(f'<p class="note"><b>{_h(name)}</b>: {_h(note)}</p>')
    parts += ["<h2>Datasets</h2>", _html_table(DATASET_HEAD, _dataset_rows(res))]
    v_text, v_head, verification = verification_section(res)
    if verification:
        parts += ["<h2>Verification</h2>", f"<p>{_h(v_text)}</p>", _html_table(v_head, verification)]
    warns = warnings(res)
    if warns:
        parts.append(
            '<h2>Warnings</h2><div class="warn"><ul>'
            + "".join(f"<li>{_h(w)}</li>" for w in warns)
            + "</ul></div>"
        )
    parts.append(
        "<h2>Results</h2><p>Best per column in bold, second underlined; reference lines are not ranked. "
        "&plusmn; is the half-width of the 95% bootstrap confidence interval when bootstrapping was run.</p>"
    )
    for t in tables:
        head = ["method"] + [plain_label(t, j) for j in range(len(t.columns))]
        rows, classes, rclasses = [], [], []
        for m in t.methods + t.references:
            cells, cls = [m], [""]
            for j in range(len(t.columns)):
                txt, rank = _cell_text(t, m, j)
                cells.append(txt)
                cls.append("best" if rank == 1 else "second" if rank == 2 else "")
            rows.append(cells)
            classes.append(cls)
            ref = m in t.references
            rclasses.append(("ref first-ref" if m == t.references[0] else "ref") if ref else "")
        parts += [f"<h3>{_h(table_title(t))}</h3>", _html_table(head, rows, classes, rclasses)]
    parts.append("<h2>Figures</h2>")
    for name, data in images:
        b64 = base64.b64encode(data).decode("ascii")
        parts.append(
            f'<figure><img alt="{_h(name)}" src="data:image/png;base64,{b64}"><figcaption>{_h(name)}</figcaption></figure>'
        )
    skipped = [
        (ds, s)
        for ds in res.datasets
        for s in (res.dataset_info(ds).get("skipped") or [])
        if isinstance(s, dict)
    ]
    if skipped:
        parts += [
            "<h2>Skipped items</h2>",
            _html_table(
                ["dataset", "what", "where", "why"],
                [[ds, s.get("what", ""), s.get("where", ""), s.get("why", "")] for ds, s in skipped],
            ),
        ]
    if res.run:
        parts += [
            "<h2>Provenance</h2>",
            _html_table(["item", "value"], [[k, v] for k, v in _provenance_items(res)]),
        ]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
