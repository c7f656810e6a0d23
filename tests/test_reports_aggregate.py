"""Aggregates recent papers print: mean over datasets x FR models and Schlett's relative ranking
(min-max scaled per column, then averaged), hand-computed on 3 methods x 2 columns."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from fiqa_bench.reports.aggregate import aggregate_rows


def _rows() -> pd.DataFrame:
    # columns c1 = (lfw, sface), c2 = (agedb, sface); AUCs chosen so the hand computation is exact.
    auc = {
        ("a", "lfw"): 0.10,
        ("b", "lfw"): 0.20,
        ("c", "lfw"): 0.30,
        ("a", "agedb"): 0.60,
        ("b", "agedb"): 0.20,
        ("c", "agedb"): 0.40,
        ("random", "lfw"): 0.50,
        ("random", "agedb"): 0.90,
    }
    return pd.DataFrame(
        [
            {
                "dataset": ds,
                "fr_model": "sface",
                "method": m,
                "protocol": "edc",
                "variant": "edc",
                "fmr": 1e-3,
                "auc": v,
            }
            for (m, ds), v in auc.items()
        ]
    )


def test_mean_and_min_max_ranking_by_hand() -> None:
    agg = aggregate_rows(_rows(), {"random"}).set_index("method")
    # mean over the 2 columns
    assert agg.loc["a", "mean_auc"] == pytest.approx(0.35)
    assert agg.loc["b", "mean_auc"] == pytest.approx(0.20)
    assert agg.loc["c", "mean_auc"] == pytest.approx(0.35)
    assert agg.loc["random", "mean_auc"] == pytest.approx(0.70)
    # lfw: min 0.1, max 0.3 -> a 0, b 0.5, c 1; agedb: min 0.2, max 0.6 -> a 1, b 0, c 0.5
    assert agg.loc["a", "relative_rank"] == pytest.approx((0 + 1) / 2)
    assert agg.loc["b", "relative_rank"] == pytest.approx((0.5 + 0) / 2)
    assert agg.loc["c", "relative_rank"] == pytest.approx((1 + 0.5) / 2)
    # a and c tie on the mean but not on the ranking; the reference line is not ranked and sets no bound
    assert math.isnan(agg.loc["random", "relative_rank"])
    assert list(agg.index) == ["b", "a", "c", "random"]  # sorted by relative rank, reference last
    assert (agg["n_columns"] == 2).all()


def test_missing_value_gives_na_mean_and_leaves_the_column_out_of_the_ranking() -> None:
    rows = _rows()
    rows = rows[~((rows["method"] == "c") & (rows["dataset"] == "agedb"))]
    agg = aggregate_rows(rows, {"random"}).set_index("method")
    assert math.isnan(agg.loc["c", "mean_auc"])
    assert agg.loc["a", "n_ranked_columns"] == 1  # only lfw is complete
    assert agg.loc["a", "relative_rank"] == pytest.approx(0.0) and agg.loc[
        "c", "relative_rank"
    ] == pytest.approx(1.0)


def test_report_writes_aggregates_as_csv_latex_and_markdown(tmp_path: Path) -> None:
    from fiqa_bench.reports import write_report
    from fiqa_bench.reports._synthetic import make_results_folder

    folder = make_results_folder(
        tmp_path / "r", datasets={"lfw": 400, "agedb": 300}, fr_models=("sface",), fmrs=(1e-2,)
    )
    write_report(folder, formats=("png",))
    out = folder / "report"
    csv = pd.read_csv(out / "aggregates.csv")
    res = pd.read_csv(folder / "results.csv")
    expected = aggregate_rows(res.assign(variant=res["protocol"]), {"random", "oracle"})
    erc = csv[csv["variant"] == "erc"].set_index("method")
    for rec in expected[expected["protocol"] == "erc"].to_dict("records"):
        assert erc.loc[rec["method"], "mean_auc"] == pytest.approx(rec["mean_auc"])
    tex = (out / "table_rank_erc.tex").read_text()
    assert "Relative ranking over the 2 (dataset, FR model) columns" in tex and "\\min_{m'}" in tex
    assert "ERC (erc: CR-FIQA reference rule)" in tex
    assert "\\bar{A}_m" in (out / "table_mean_erc.tex").read_text()
    md = (out / "summary.md").read_text()
    assert "### Relative ranking (Schlett et al.): ERC (erc: CR-FIQA reference rule)" in md
    assert "### Mean over datasets x FR models: EDC (edc: Schlett FNM-EDC), discard limit 0.2" in md
