"""`fiqa-bench compare A B`: paired bootstrap on the saved pairs, did-you-mean on unknown names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fiqa_bench.reports._synthetic import make_results_folder
from fiqa_bench.reports.cli import compare

from fiqa_bench.errors import FiqaError


@pytest.fixture(scope="session")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_results_folder(
        tmp_path_factory.mktemp("cmp"),
        datasets={"lfw": 600, "agedb": 400},
        fr_models=("sface",),
        fmrs=(1e-2,),
        seed=3,
    )


def test_unknown_method_names_get_did_you_mean(saved: Path) -> None:
    with pytest.raises(FiqaError, match=r"no method 'crfiqa_x'.*Did you mean 'crfiqa_l'"):
        compare(saved, "crfiqa_x", "serfiq")
    with pytest.raises(FiqaError, match=r"Did you mean 'serfiq'"):
        compare(saved, "crfiqa_l", "serfiqa")
    with pytest.raises(FiqaError, match=r"no saved pairs for dataset 'lfx'.*Did you mean 'lfw'"):
        compare(saved, "crfiqa_l", "serfiq", dataset="lfx")
    with pytest.raises(FiqaError, match="no results at FMR 0.001"):
        compare(saved, "crfiqa_l", "serfiq", fmr=1e-3)


def test_identical_methods_give_zero_difference_and_p_one(saved: Path) -> None:
    pytest.importorskip("fiqa_bench.evaluation", reason="paired bootstrap lives in the evaluation engine")
    table = compare(saved, "serfiq", "serfiq", n=40, seed=0)
    assert len(table) == 2 * 2  # 2 datasets x 1 FR model x 1 FMR x 2 protocols
    assert set(table["protocol"]) == {"erc", "edc"}
    assert (
        np.allclose(table["diff"], 0.0)
        and np.allclose(table["ci_low"], 0.0)
        and np.allclose(table["ci_high"], 0.0)
    )
    assert (table["p_value"] > 0.99).all()
    assert np.allclose(table["auc_a"], table["auc_b"])
    # The AUC being tested is the one in the table (same protocol settings).
    res = pd.read_csv(saved / "results.csv")
    for rec in table.to_dict("records"):
        row = res[
            (res.dataset == rec["dataset"])
            & (res.protocol.str.upper() == rec["protocol"].upper())
            & (res.method == "serfiq")
        ]
        assert rec["auc_a"] == pytest.approx(float(row["auc"].iloc[0]), rel=1e-9, abs=1e-12)


def test_compare_cli_prints_and_writes_csv(saved: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("fiqa_bench.evaluation", reason="paired bootstrap lives in the evaluation engine")
    from fiqa_bench.cli import main

    rc = main(
        [
            "compare",
            "crfiqa_l",
            "sharpness",
            "--results",
            str(saved),
            "--dataset",
            "lfw",
            "--protocol",
            "erc",
            "--n",
            "60",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "p-value" in out and "95% CI" in out and "AUC crfiqa_l" in out
    csv = pd.read_csv(saved / "compare_crfiqa_l_vs_sharpness.csv")
    assert list(csv["protocol"]) == ["erc"] and list(csv["dataset"]) == ["lfw"]
    rec = csv.iloc[0]
    assert rec["diff"] == pytest.approx(rec["auc_a"] - rec["auc_b"], abs=1e-5)
    assert rec["ci_low"] <= rec["diff"] <= rec["ci_high"] and 0.0 <= rec["p_value"] <= 1.0
    # crfiqa_l tracks the hidden quality far better than sharpness on the simulated pairs.
    assert rec["diff"] < 0
    assert main(["compare", "crfiqa_l", "nope", "--results", str(saved)]) == 2
    assert "Known methods" in capsys.readouterr().err
