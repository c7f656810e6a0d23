"""Reports rebuilt from a saved results folder: artefacts, byte-identical regeneration, LaTeX ranking,
pdflatex, style consistency, self-contained HTML, Markdown warnings, results.json provenance."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from fiqa_bench.reports import load_results, style_map, write_report
from fiqa_bench.reports._synthetic import make_results_folder

from fiqa_bench.errors import FiqaError

DATASETS = {"lfw": 900, "cfp_fp": 400}  # 450 / 200 impostor pairs: FMR 3e-3 resolvable on lfw, not on cfp_fp
FR_MODELS = ("sface", "arcface_r100")
FMRS = (3e-3,)
ERC, EDC = "erc", "edc_discard-limit-0-2"  # file-name slugs of the default protocols' variants
PROTOCOL_SLUGS = (ERC, EDC)


@pytest.fixture(scope="session")
def report_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A simulated results folder (real evaluation core, the one results writer) and its first report."""
    folder = make_results_folder(
        tmp_path_factory.mktemp("results"),
        datasets=DATASETS,
        fr_models=FR_MODELS,
        fmrs=FMRS,
        bootstrap=30,
        seed=1,
    )
    paths = write_report(folder)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    return {"folder": folder, "paths": paths, "digests": digests}


def _report_dir(report_run: dict) -> Path:
    return Path(report_run["folder"]) / "report"


def test_every_artefact_is_written(report_run: dict) -> None:
    names = {p.name for p in report_run["paths"]}
    out = _report_dir(report_run)
    expected = {"report_tables.tex", "summary.md", "summary.html", "results.json"}
    for protocol in PROTOCOL_SLUGS:
        expected |= {f"table_{protocol}_fmr3e-3.tex", f"table_compact_{protocol}.tex"}
        for ds in DATASETS:
            for fr in FR_MODELS:
                expected |= {f"{protocol}__{ds}__{fr}__fmr3e-3.{ext}" for ext in ("pdf", "png")}
        expected |= {f"grid_{protocol}__fmr3e-3.{ext}" for ext in ("pdf", "png")}
    for ds in DATASETS:
        for fr in FR_MODELS:
            expected |= {f"quality_{ds}__{fr}.{ext}" for ext in ("pdf", "png")}
    assert expected <= names, sorted(expected - names)
    for p in report_run["paths"]:
        assert p.parent == out and p.stat().st_size > 200, p
    assert (out / f"{ERC}__lfw__sface__fmr3e-3.pdf").read_bytes().startswith(b"%PDF")
    assert (out / f"{ERC}__lfw__sface__fmr3e-3.png").read_bytes().startswith(b"\x89PNG")


def test_regeneration_is_byte_identical(report_run: dict, tmp_path: Path) -> None:
    # A second run on a copy elsewhere: same bytes for every file (absolute paths must not leak either).
    copy = tmp_path / "copy"
    shutil.copytree(report_run["folder"], copy, ignore=shutil.ignore_patterns("report"))
    other = write_report(copy)
    assert sorted(p.name for p in other) == sorted(report_run["digests"])
    diff = [
        p.name
        for p in other
        if hashlib.sha256(p.read_bytes()).hexdigest() != report_run["digests"].get(p.name)
    ]
    assert diff == []


def test_results_json_traces_provenance_and_hashes(report_run: dict) -> None:
    out = _report_dir(report_run)
    doc = json.loads((out / "results.json").read_text())
    run = json.loads((Path(report_run["folder"]) / "run.json").read_text())
    assert doc["provenance"] == run
    assert doc["provenance"]["seed"] == 1 and doc["provenance"]["command"][:2] == ["fiqa-bench", "run"]
    table = pd.read_csv(Path(report_run["folder"]) / "results.csv")
    assert len(doc["results"]) == len(table)
    for item in doc["artefacts"]:
        data = (out / item["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == item["sha256"] and len(data) == item["bytes"]
    assert "results.json" not in {a["file"] for a in doc["artefacts"]}
    rec = doc["results"][0]
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in rec.values())  # NaN -> null, strict JSON


ROW = re.compile(r"^([^&]+?) & (.*) \\\\$")


def _parse_table(tex: str) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    """(sub-column labels, ranked method rows, reference rows) of a fragment."""
    body = tex.split("\\begin{tabular}", 1)[1]
    lines = [ln.strip() for ln in body.splitlines()]
    header = next(ln for ln in lines if ln.startswith("Method &"))
    subs = [c.strip() for c in header[:-2].split("&")[1:]]
    methods: dict[str, list[str]] = {}
    refs: dict[str, list[str]] = {}
    target = methods
    started = False
    for ln in lines:
        if ln == "\\midrule":
            if started:
                target = refs
            started = True
            continue
        m = ROW.match(ln)
        if started and m and not ln.startswith("\\multicolumn"):
            target[m.group(1).replace("\\_", "_")] = [c.strip() for c in m.group(2).split(" & ")]
    return subs, methods, refs


def _value(cell: str) -> float:
    return float(re.search(r"-?\d+\.\d+", cell).group(0))


def test_latex_bold_best_and_underline_second_per_column(report_run: dict) -> None:
    out = _report_dir(report_run)
    res = load_results(Path(report_run["folder"]))
    for protocol, name in ((ERC, "erc"), (EDC, "edc")):
        tex = (out / f"table_{protocol}_fmr3e-3.tex").read_text()
        subs, methods, refs = _parse_table(tex)
        assert set(refs) == {"oracle", "random"} and set(methods) == {
            "crfiqa_l",
            "serfiq",
            "face_norm",
            "sharpness",
        }
        assert len(subs) == len(DATASETS) * len(FR_MODELS)
        assert "Reference lines" in tex and tex.count("\\midrule") == 2
        for j in range(len(subs)):
            cells = {m: row[j] for m, row in methods.items()}
            vals = {m: _value(c) for m, c in cells.items()}
            order = sorted(set(vals.values()))
            for m, c in cells.items():
                assert ("\\textbf{" in c) == (vals[m] == order[0]), (protocol, j, m, c)
                assert ("\\underline{" in c) == (vals[m] == order[1]), (protocol, j, m, c)
            for row in refs.values():  # reference lines are never ranked
                assert "\\textbf" not in row[j] and "\\underline" not in row[j]
        # The bold cell is the smallest AUC in results.csv for that column (datasets sorted, then FR models).
        r = res.results
        cols = [(ds, fr) for ds in sorted(DATASETS) for fr in sorted(FR_MODELS)]
        for j, (ds, fr) in enumerate(cols):
            sel = r[
                (r.dataset == ds)
                & (r.fr_model == fr)
                & (r.protocol == name)
                & (r.fmr == 3e-3)
                & ~r.reference_line
            ]
            best = sel.loc[sel["auc"].idxmin(), "method"]
            assert "\\textbf{" in methods[best][j]


def test_latex_caption_states_protocol_pairs_ci_and_resolution_warning(report_run: dict) -> None:
    out = _report_dir(report_run)
    erc = (out / f"table_{ERC}_fmr3e-3.tex").read_text()
    edc = (out / f"table_{EDC}_fmr3e-3.tex").read_text()
    # Protocol name, title, parameters and FMR in every caption; the reject fractions are the recorded ones.
    assert "AUC of ERC (erc: CR-FIQA reference rule), FMR $3\\cdot 10^{-3}$" in erc
    assert (
        "reject fractions 0 to 0.95 in steps of 0.05" in erc
        and "On the retained pairs" in erc
        and "trapezoid" in erc
    )
    assert "CR-FIQA reference code" in erc  # the source program
    assert "pAUC of EDC (edc: Schlett FNM-EDC), discard limit 0.2, FMR $3\\cdot 10^{-3}$" in edc
    assert "Threshold fixed once on all pairs" in edc and "stepwise" in edc
    assert "lfw 900 (450 genuine, 450 impostor)" in erc and "\\begin{tabular}" in erc and "\\toprule" in erc
    assert "$\\pm$" in erc and "bootstrap" in erc  # CIs present (bootstrap=30)
    # 3e-3 >= 1/450 (lfw) but < 1/200 (cfp_fp): only the cfp_fp sub-columns carry the marker.
    subs, _, _ = _parse_table(erc)
    assert [s.endswith("$^{\\dagger}$") for s in subs] == [True, True, False, False]  # cfp_fp, then lfw
    assert "below 1/(number of impostor pairs)" in erc and "1/200" in erc


def test_latex_compiles_with_pdflatex(report_run: dict, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                "pdflatex not found; CI must install texlive-latex-base and texlive-latex-recommended"
            )
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-latex-recommended)")
    work = tmp_path / "tex"
    shutil.copytree(_report_dir(report_run), work)
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report_tables.tex"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (work / "report_tables.pdf").read_bytes().startswith(b"%PDF")
    assert "Overfull \\hbox" not in proc.stdout


def test_style_map_is_deterministic_and_consistent_across_figures(report_run: dict) -> None:
    import matplotlib.pyplot as plt
    from fiqa_bench.reports import plots

    res = load_results(Path(report_run["folder"]))
    a = style_map(res.methods, res.reference_methods)
    b = style_map(list(reversed(res.methods)), sorted(res.reference_methods, reverse=True))
    assert a == b
    ranked = [s for m, s in a.items() if not s.reference]
    assert len({s.color for s in ranked}) == len(ranked) and len({s.marker for s in ranked}) == len(ranked)
    assert len({str(s.linestyle) for s in ranked}) == len(ranked)
    assert all(s.color.startswith("#") and s.marker is None for m, s in a.items() if s.reference)

    def props(fig: plt.Figure) -> dict[str, tuple]:
        out = {}
        for ax in fig.axes:
            for line, label in zip(*ax.get_legend_handles_labels(), strict=True):
                out[label] = (line.get_color(), line.get_marker(), str(line.get_linestyle()))
        for leg in fig.legends:
            for line, text in zip(leg.legend_handles, leg.get_texts(), strict=True):
                out[text.get_text().split(" (")[0]] = (
                    line.get_color(),
                    line.get_marker(),
                    str(line.get_linestyle()),
                )
        plt.close(fig)
        return out

    f1 = props(plots.curve_figure(res, a, "lfw", "sface", "erc", 3e-3))
    f2 = props(plots.curve_figure(res, a, "cfp_fp", "arcface_r100", "edc, discard limit 0.2", 3e-3))
    f3 = props(plots.grid_figure(res, a, "erc", 3e-3))
    assert set(f1) == set(res.methods)
    assert f1 == f2 == {k: f3[k] for k in f1}
    doc = json.loads((_report_dir(report_run) / "results.json").read_text())
    assert doc["style_map"]["crfiqa_l"]["color"] == a["crfiqa_l"].color


def test_html_is_self_contained(report_run: dict) -> None:
    page = (_report_dir(report_run) / "summary.html").read_text()
    assert page.count('<img alt="') >= 8 and page.count('src="data:image/png;base64,') == page.count("<img")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    assert '<td class="best">' in page and "Warnings" in page


def test_markdown_summary_has_datasets_tables_and_warnings(report_run: dict) -> None:
    md = (_report_dir(report_run) / "summary.md").read_text()
    assert "| lfw | simulated (900 pairs) | 900 | 900 | 450 | 450 | 1 |" in md
    assert (
        "FMR target 3e-3 is below the resolution of cfp_fp with sface (200 impostor pairs, 1/n = 0.005)" in md
    )
    assert "resolution of lfw" not in md
    assert "### ERC (erc: CR-FIQA reference rule), FMR 3e-3" in md and "(reference)" in md and "**" in md
    assert "no face detected" in md  # skipped items listed
    # verification accuracy per (dataset, FR model), recomputed from the saved pairs
    import numpy as np

    from fiqa_bench.evaluation import fold_accuracy

    with np.load(report_run["folder"] / "pairs" / "lfw__sface.npz") as z:
        mean, std = fold_accuracy(z["similarity"], z["genuine"], z["fold"])
    assert (
        "## Verification" in md and f"| lfw | sface | 900 | 3 | {100 * mean:.2f}% ± {100 * std:.2f} |" in md
    )


def test_report_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fiqa_bench.cli import main

    # A small folder of its own (one dataset, one FR model): the CLI path, not the figures, is under test.
    copy = make_results_folder(tmp_path / "r", datasets={"lfw": 300}, fr_models=("sface",), fmrs=(3e-3,))
    (copy / "report").mkdir()
    (copy / "report" / "erc_gone__x__fmr1e-2.png").write_bytes(b"old")  # not ours: must be kept
    assert main(["report", str(copy), "--formats", "png", "--quiet"]) == 0
    assert "report:" in capsys.readouterr().out
    assert (copy / "report" / f"{ERC}__lfw__sface__fmr3e-3.png").is_file()
    assert not (copy / "report" / f"{ERC}__lfw__sface__fmr3e-3.pdf").exists()
    assert (copy / "report" / "erc_gone__x__fmr1e-2.png").read_bytes() == b"old"
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "results.csv not found" in capsys.readouterr().err
    with pytest.raises(FiqaError, match="not supported"):
        write_report(copy, formats=("gif",))


def test_stale_artefacts_of_a_previous_report_are_removed(tmp_path: Path) -> None:
    folder = make_results_folder(tmp_path / "r", datasets={"lfw": 300}, fr_models=("sface",), fmrs=(1e-2,))
    write_report(folder, formats=("png",))
    old = folder / "report" / f"{ERC}__lfw__sface__fmr1e-2.png"
    assert old.is_file()
    table = pd.read_csv(folder / "results.csv")
    table["fr_model"] = "sface2"
    table.to_csv(folder / "results.csv", index=False)
    curves = pd.read_csv(folder / "curves.csv")
    curves["fr_model"] = "sface2"
    curves.to_csv(folder / "curves.csv", index=False)
    (folder / "pairs" / "lfw__sface.npz").rename(folder / "pairs" / "lfw__sface2.npz")
    written = write_report(folder, formats=("png",))
    assert not old.exists() and (folder / "report" / f"{ERC}__lfw__sface2__fmr1e-2.png") in written
    # One FR model: sub-columns are the FMR targets.
    assert "FMR $10^{-2}$" in (folder / "report" / f"table_{ERC}.tex").read_text()


def test_figure_names_with_dots_keep_their_stem(tmp_path):
    """An FMR of 0.25 makes stems like 'erc_fmr2.5e-1': the format is appended, never swapped in."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fiqa_bench.reports._style import save_figure

    fig, _ = plt.subplots()
    written = save_figure(fig, tmp_path / "erc_fmr2.5e-1", ["png", "pdf"])
    assert [p.name for p in written] == ["erc_fmr2.5e-1.png", "erc_fmr2.5e-1.pdf"]
    assert all(p.is_file() for p in written)
