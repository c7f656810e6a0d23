"""The one results writer and reader (fiqa_bench.results): round trip, schema version, old folders
refused in one line, atomic writes, protocol parameters recorded and read back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fiqa_bench.errors import DataFormatError
from fiqa_bench.protocol_set import ProtocolRequest, evaluate_protocols
from fiqa_bench.results import SCHEMA_VERSION, read_pairs, read_results, write_pairs, write_results


def _scores(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    gen = np.arange(n) % 2 == 0
    q = rng.random(n)
    sim = np.where(gen, 0.3 + 0.4 * q + rng.normal(0, 0.1, n), rng.normal(0, 0.1, n))
    fold = np.arange(n) * 3 // n
    return sim, gen, fold, {"good": q + rng.normal(0, 0.05, n), "noise": rng.random(n)}


def _write(
    folder: Path, request: ProtocolRequest, fmrs: tuple[float, ...] = (1e-2,)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim, gen, fold, qualities = _scores()
    rows, curves = evaluate_protocols(sim, gen, qualities, list(fmrs), request, folds=fold)
    for r in rows:
        r.update(dataset="lfw", fr_model="sface", reference_line=False)
    results = pd.DataFrame(rows)
    curves = curves.assign(dataset="lfw", fr_model="sface")
    write_pairs(
        folder,
        "lfw",
        "sface",
        similarity=sim,
        genuine=gen,
        fold=fold,
        qualities=qualities,
        extra={"similarity_flip_sum": sim * 0.5},
    )
    write_results(
        folder,
        results,
        curves,
        settings=request.settings(list(fmrs), 0, 7),
        run={"command": ["x"], "seed": 7},
    )
    return results, curves


def test_round_trip_keeps_rows_curves_pairs_and_protocol_parameters(tmp_path: Path) -> None:
    request = ProtocolRequest.from_user("erc_strict,edc", "0.2,0.3")
    results, curves = _write(tmp_path, request)
    res = read_results(tmp_path)
    assert res.run["schema_version"] == SCHEMA_VERSION and res.run["seed"] == 7
    # Every row, value for value (the reader sorts; compare on the written order's keys).
    key = ["dataset", "fr_model", "protocol", "fmr", "method", "discard_limit"]
    a = results.sort_values(key, kind="mergesort").reset_index(drop=True)
    b = res.results.sort_values(key, kind="mergesort").reset_index(drop=True)
    for col in ("method", "protocol", "dataset", "fr_model"):
        assert a[col].tolist() == b[col].tolist()
    for col in ("fmr", "auc", "threshold", "achieved_fmr", "discard_limit", "fnmr_at_0"):
        np.testing.assert_array_equal(
            a[col].to_numpy(float), b[col].to_numpy(float)
        )  # CSV keeps full precision
    assert len(res.curves) == len(curves)
    np.testing.assert_array_equal(np.sort(res.curves["fnmr"].to_numpy()), np.sort(curves["fnmr"].to_numpy()))
    # Two EDC discard limits are two variants, each its own table and figure.
    assert res.variants == ["erc_strict", "edc, discard limit 0.2", "edc, discard limit 0.3"]
    assert set(res.curves["variant"]) == {
        "erc_strict",
        "edc",
    }  # one EDC curve; each limit reads its area from it
    assert set(res.results["curve_variant"]) == {"erc_strict", "edc"}
    # The evaluation parameters come back as recorded: nothing is guessed by the reader.
    s = res.settings
    assert [p.name for p in s.protocols] == ["erc_strict", "edc"] and s.protocols[0].kind == "erc"
    assert s.reject_fractions == pytest.approx(np.arange(20) * 0.05) and s.discard_limits == [0.2, 0.3]
    assert s.fmrs == [1e-2] and list(s.starting_errors) == [] and s.seed == 7 and s.quality_scale == "none"
    assert res.card("edc").parameters["discard_limit"] == [0.2, 0.3]
    assert res.card("erc_strict").title == "fiqa-bench strict rule" and res.card("edc").kind == "edc"
    # Pairs: labels stored inside, arrays exact, extra arrays kept.
    arrays = read_pairs(res.pairs[("lfw", "sface")])
    sim, gen, fold, qualities = _scores()
    np.testing.assert_array_equal(arrays["similarity"], sim)
    np.testing.assert_array_equal(arrays["genuine"], gen)
    np.testing.assert_array_equal(arrays["fold"], fold)
    np.testing.assert_array_equal(arrays["q__good"], qualities["good"])
    np.testing.assert_array_equal(arrays["similarity_flip_sum"], sim * 0.5)


def test_every_row_names_its_protocol(tmp_path: Path) -> None:
    _write(tmp_path, ProtocolRequest.from_user(None, None))
    table = pd.read_csv(tmp_path / "results.csv")
    run = json.loads((tmp_path / "run.json").read_text())
    cards = {p["name"]: p for p in run["evaluation"]["protocols"]}
    assert table["protocol"].notna().all() and set(table["protocol"]) <= set(cards)
    assert all(
        cards[p]["rule"] and cards[p]["source"] and cards[p]["kind"] in ("erc", "edc")
        for p in table["protocol"]
    )
    edc = table[table["protocol"] == "edc"]
    assert (edc["discard_limit"] == 0.2).all()


def test_old_schema_folder_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fiqa_bench.cli import main

    _write(tmp_path, ProtocolRequest.from_user(None, None))
    run = json.loads((tmp_path / "run.json").read_text())
    del run["schema_version"]  # what fiqa-bench <= 0.1 wrote
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(
        DataFormatError, match=r"older fiqa-bench \(results schema 1.*re-run fiqa-bench run/evaluate"
    ):
        read_results(tmp_path)
    assert main(["report", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "re-run fiqa-bench run/evaluate" in err[0] and str(tmp_path) in err[0]
    (tmp_path / "run.json").unlink()
    with pytest.raises(DataFormatError, match="no run.json"):
        read_results(tmp_path)
    run["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / "run.json").write_text(json.dumps(run))
    with pytest.raises(DataFormatError, match="newer than this fiqa-bench reads"):
        read_results(tmp_path)


def test_writes_are_atomic_and_leave_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, ProtocolRequest.from_user(None, None))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    real_replace = os.replace

    def failing(src: str, dst: str) -> None:
        if str(dst).endswith("results.csv"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):  # a one-line DiskWriteError naming --out
        _write(tmp_path, ProtocolRequest.from_user(None, "0.3"))
    monkeypatch.undo()
    # The failed write changed nothing of the table it was writing and left no temporary file behind.
    assert (tmp_path / "results.csv").read_bytes() == before[tmp_path / "results.csv"]
    assert (tmp_path / "run.json").read_bytes() == before[tmp_path / "run.json"]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    read_results(tmp_path)  # still a complete, readable folder


def test_unknown_protocol_is_one_line_with_suggestion() -> None:
    from fiqa_bench.errors import FiqaError

    with pytest.raises(
        FiqaError, match=r"--protocols: unknown protocol 'erc_strik'.*Did you mean 'erc_strict'"
    ):
        ProtocolRequest.from_user("erc_strik")
    with pytest.raises(FiqaError, match="--discard-limit: 1.5 is outside"):
        ProtocolRequest.from_user(None, "0.2,1.5")


def test_report_protocols_selects_saved_protocols(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fiqa_bench.cli import main

    _write(tmp_path, ProtocolRequest.from_user("erc,edc", None))
    assert main(["report", str(tmp_path), "--protocols", "edc", "--formats", "png", "--quiet"]) == 0
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert any(n.startswith("table_edc") for n in names) and not any(n.startswith("table_erc") for n in names)
    assert main(["report", str(tmp_path), "--protocols", "edc_fm", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        "no results for protocol 'edc_fm'" in err
        and "Did you mean 'edc'" in err
        and "Saved protocols: erc, edc" in err
    )


def test_starting_error_rows_without_fmr_get_tables_and_figures(tmp_path: Path) -> None:
    from fiqa_bench.reports import write_report

    _write(tmp_path, ProtocolRequest.from_user("erc,edc", "0.2,0.3", "0.05", "minmax"))
    res = read_results(tmp_path)
    edc = res.results[res.results["protocol"] == "edc"]
    assert edc["fmr"].isna().all() and (edc["starting_error"] == 0.05).all()
    assert "edc, starting error 0.05, discard limit 0.3, quality scale minmax" in res.variants
    names = {p.name for p in write_report(tmp_path, formats=("png",))}
    stem = "edc_starting-error-0-05_discard-limit-0-3_quality-scale-minmax"
    assert f"{stem}__lfw__sface__fmrnone.png" in names and f"table_{stem}.tex" in names
    tex = (tmp_path / "report" / f"table_{stem}.tex").read_text()
    assert "EDC (edc: Schlett FNM-EDC), starting error 0.05, discard limit 0.3, quality scale minmax" in tex


def test_summary_shows_both_verification_numbers_labelled(tmp_path: Path) -> None:
    from fiqa_bench.reports.summary import verification_section

    from fiqa_bench.evaluation import fold_accuracy, insightface_accuracy

    _write(tmp_path, ProtocolRequest.from_user("erc,verification_insightface", None))
    res = read_results(tmp_path)
    assert set(res.verification["protocol"]) == {"verification_insightface"} and set(
        res.verification["kind"]
    ) == {"verification"}
    assert "verification_insightface" not in set(res.results["protocol"])  # not a curve row
    _, head, rows = verification_section(res)
    by_label = {r[2]: r for r in rows}
    sim, gen, fold, _ = _scores()
    insight = by_label[
        "Verification (verification_insightface: insightface printed accuracy (0.01 grid, KFold))"
    ]
    assert insight[head.index("accuracy (mean ± std over folds)")].startswith(
        f"{100 * insightface_accuracy(sim, gen)[0]:.2f}%"
    )
    exact = by_label["exact k-fold accuracy (from the saved pair similarities)"]  # added beside it, labelled
    assert exact[head.index("accuracy (mean ± std over folds)")].startswith(
        f"{100 * fold_accuracy(sim, gen, fold)[0]:.2f}%"
    )
