"""`fiqa-bench run --protocols ...` end to end on a tiny real LFW subset (60 pairs of fold 1): every row,
caption and figure title names its protocol; the report rebuilt from disk equals the one the run wrote;
a report that fails loses no results."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

PROTOCOLS = "erc,erc_strict,edc,verification_exact,verification_insightface"
CURVE_PROTOCOLS = ["erc", "erc_strict", "edc"]
N_EACH = 30


@pytest.fixture(scope="module")
def tiny_lfw(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """pairs:<csv> over the first 30 genuine and 30 impostor pairs of LFW fold 1 (images read through links)."""
    root = tmp_path_factory.mktemp("tiny_lfw")
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()[1:]
    genuine = [ln.split() for ln in lines[:N_EACH]]
    impostor = [ln.split() for ln in lines[300 : 300 + N_EACH]]

    def image(name: str, k: str) -> str:
        if not (root / name).exists():
            (root / name).symlink_to(lfw_dir / "images" / name)
        return f"{name}/{name}_{int(k):04d}.jpg"

    rows = ["image_a,image_b,genuine"]
    rows += [f"{image(n, a)},{image(n, b)},1" for n, a, b in genuine]
    rows += [f"{image(n1, a)},{image(n2, b)},0" for n1, a, n2, b in impostor]
    csv = root / "pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    return f"pairs:{csv}"


def _run(dataset: str, out: Path, *extra: str) -> int:
    from fiqa_bench.cli import main

    return main(
        [
            "run",
            "--methods",
            "sharpness,random",
            "--models",
            "sface",
            "--datasets",
            dataset,
            "--fmr",
            "1e-1",
            "--protocols",
            PROTOCOLS,
            "--discard-limit",
            "0.2,0.3",
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def run_out(tiny_lfw: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert _run(tiny_lfw, out) == 0
    return out


def test_every_row_names_its_protocol_and_parameters(run_out: Path) -> None:
    from fiqa_bench.results import read_results

    table = pd.read_csv(run_out / "results.csv")
    assert set(table["protocol"]) == set(PROTOCOLS.split(","))
    assert sorted(table.loc[table["protocol"] == "edc", "discard_limit"].unique()) == [0.2, 0.3]
    assert table.loc[table["protocol"] == "erc_strict", "discard_limit"].isna().all()
    assert (table["n_pairs"] == 2 * N_EACH).all()
    assert table.loc[table["protocol"].isin(CURVE_PROTOCOLS), "method"].notna().all()
    res = read_results(run_out)
    assert [p.name for p in res.settings.protocols] == PROTOCOLS.split(",")
    assert res.protocols == PROTOCOLS.split(",") and set(res.results["protocol"]) == set(CURVE_PROTOCOLS)
    assert res.settings.discard_limits == [0.2, 0.3] and res.settings.fmrs == [0.1]
    assert len(res.settings.reject_fractions) == 20


def test_captions_and_figure_titles_name_the_protocol(run_out: Path) -> None:
    import matplotlib.pyplot as plt
    from fiqa_bench.reports import plots, style_map

    from fiqa_bench.results import read_results

    report = run_out / "report"
    erc = (report / "table_erc.tex").read_text()
    assert "AUC of ERC (erc: CR-FIQA reference rule)" in erc
    assert "ERC (erc\\_strict: fiqa-bench strict rule)" in (report / "table_erc_strict.tex").read_text()
    edc = (report / "table_edc_discard-limit-0-3.tex").read_text()
    assert "EDC (edc: Schlett FNM-EDC), discard limit 0.3" in edc
    res = read_results(run_out)
    styles = style_map(res.methods, res.reference_methods)
    for variant, head in (
        ("erc", "ERC (erc: CR-FIQA"),
        ("erc_strict", "ERC (erc_strict: "),
        ("edc, discard limit 0.3", "EDC (edc: "),
    ):
        fig = plots.curve_figure(res, styles, res.datasets[0], "sface", variant, 0.1)
        title = fig.axes[0].get_title()
        plt.close(fig)
        assert title.startswith(head) and "FMR 1e-1" in title, title
    assert "edc, discard limit 0.3" in res.variants


def test_verification_both_ways_labelled(run_out: Path) -> None:
    # insightface's number is computed on flip-summed embeddings (image + mirror), the exact one on plain ones.
    import numpy as np

    from fiqa_bench.evaluation import fold_accuracy, insightface_accuracy

    table = pd.read_csv(run_out / "results.csv")
    v = table[table["protocol"].str.startswith("verification")].set_index("protocol")
    assert v.loc["verification_insightface", "scores"] == "flip-summed embeddings"
    assert v.loc["verification_exact", "scores"] == "embeddings"
    with np.load(next((run_out / "pairs").glob("*.npz"))) as z:
        sim, fs, gen = z["similarity"], z["similarity_flip_sum"], z["genuine"]
    assert not np.allclose(sim, fs)
    assert v.loc["verification_insightface", "accuracy"] == pytest.approx(insightface_accuracy(fs, gen)[0])
    assert v.loc["verification_exact", "accuracy"] == pytest.approx(fold_accuracy(sim, gen, 10)[0])
    md = (run_out / "report" / "summary.md").read_text()
    assert (
        "Verification (verification_insightface: insightface printed accuracy" in md
        and "flip-summed embeddings" in md
    )


def test_report_rebuilt_from_disk_equals_the_one_the_run_wrote(run_out: Path, tmp_path: Path) -> None:
    from fiqa_bench.cli import main

    written = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run_out / "report").iterdir()}
    copy = tmp_path / "copy"
    shutil.copytree(run_out, copy, ignore=shutil.ignore_patterns("report"))
    assert main(["report", str(copy), "--quiet"]) == 0
    rebuilt = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (copy / "report").iterdir()}
    assert rebuilt == written


def test_a_failing_report_loses_no_results(
    tiny_lfw: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import fiqa_bench.reports as reports

    from fiqa_bench.errors import FiqaError
    from fiqa_bench.results import read_results

    def broken(*args: object, **kwargs: object) -> None:
        raise FiqaError("report: cannot write figures")

    monkeypatch.setattr(reports, "write_report", broken)
    out = tmp_path / "out"
    assert _run(tiny_lfw, out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the results are saved in" in err[0] and "fiqa-bench report" in err[0]
    res = read_results(out)  # complete: results.csv, curves.csv, pairs/, run.json
    assert set(res.protocols) == set(PROTOCOLS.split(",")) and len(res.pairs) == 1
