"""``fiqa-bench evaluate``: precomputed comparison and quality files -> results folder, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiqa_bench.errors import DataFormatError
from fiqa_bench.evaluation import evaluate
from fiqa_bench.precomputed import evaluate_files, parse_quality_spec

IMAGES = [f"person{i // 2}/img{i % 2}.jpg" for i in range(40)]


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, object]:
    rng = np.random.default_rng(2)
    a, b, sim, gen = [], [], [], []
    for i in range(0, 40, 2):  # 20 genuine pairs (the two images of a person)
        a.append(i), b.append(i + 1), gen.append(True), sim.append(round(float(rng.normal(0.6, 0.15)), 4))
    for _ in range(40):  # 40 impostor pairs
        i, j = rng.choice(40, 2, replace=False)
        while i // 2 == j // 2:
            i, j = rng.choice(40, 2, replace=False)
        a.append(int(i)), b.append(int(j)), gen.append(False), sim.append(round(float(rng.normal(0.05, 0.1)), 4))
    words = {True: ["1", "yes", "True"], False: ["0", "no", "false"]}
    cmp_rows = [f"{IMAGES[x]},{IMAGES[y]},{s},{words[g][k % 3]},{k % 2}" for k, (x, y, s, g) in enumerate(zip(a, b, sim, gen, strict=True))]
    cmp = _write(tmp_path / "comparisons.csv", "image_a,image_b,similarity,genuine,fold", cmp_rows)
    q1 = np.round(rng.random(40), 3)
    q2 = np.round(rng.random(40), 3)
    f1 = _write(tmp_path / "sharp.csv", "image,quality", [f"{im},{v}" for im, v in zip(IMAGES, q1, strict=True)])
    f2 = _write(tmp_path / "blur.tsv", "image\tquality", [f"{im}\t{v}" for im, v in zip(IMAGES, q2, strict=True)])
    return {
        "cmp": cmp, "f1": f1, "f2": f2, "a": np.array(a), "b": np.array(b), "sim": np.array(sim),
        "gen": np.array(gen), "fold": np.arange(len(a)) % 2, "q1": q1, "q2": q2, "dir": tmp_path,
    }


def test_evaluate_files_matches_evaluate_and_writes_the_results_folder(files):
    from fiqa_bench.protocol_set import CORE_LABEL

    out = files["dir"] / "res"
    df = evaluate_files(files["cmp"], [files["f1"], f"{files['f2']}:lower"], fmr="1e-2,1e-1", out=out, report=False)
    a, b = files["a"], files["b"]
    pq = {"sharp": np.minimum(files["q1"][a], files["q1"][b]), "blur": np.minimum(-files["q2"][a], -files["q2"][b])}
    rows, _ = evaluate(files["sim"], files["gen"], pq, [1e-2, 1e-1])
    assert len(df) == len(rows) == 8
    assert set(df["dataset"]) == {"precomputed"} and set(df["fr_model"]) == {"precomputed"}
    for r in rows:
        got = df[(df["method"] == r["method"]) & (df["protocol"] == CORE_LABEL[r["protocol"]]) & (df["fmr"] == r["fmr"])]
        assert got["auc"].item() == r["auc"] and got["threshold"].item() == r["threshold"]
    assert (out / "results.csv").is_file() and (out / "curves.csv").is_file() and (out / "run.json").is_file()
    with np.load(out / "pairs" / "precomputed__precomputed.npz") as z:
        assert {"similarity", "genuine", "fold", "q__sharp", "q__blur"} <= set(z.files)
        np.testing.assert_array_equal(z["q__blur"], pq["blur"])
        np.testing.assert_array_equal(z["fold"], files["fold"])


def test_named_specs_mapping_and_lower_keyword(files):
    assert parse_quality_spec("mine:/x/y.csv:lower") == ("mine", Path("/x/y.csv"), True)
    assert parse_quality_spec("/x/y.csv") == ("y", Path("/x/y.csv"), False)
    assert parse_quality_spec("/x/y.csv:higher") == ("y", Path("/x/y.csv"), False)
    by_spec = evaluate_files(files["cmp"], [f"B:{files['f2']}:lower"], fmr=[0.1], report=False)
    by_kw = evaluate_files(files["cmp"], {"B": files["f2"]}, fmr=[0.1], lower_is_better=["B"], report=False)
    assert by_spec["auc"].tolist() == by_kw["auc"].tolist() and set(by_spec["method"]) == {"B"}
    flipped = evaluate_files(files["cmp"], {"B": files["f2"]}, fmr=[0.1], report=False)
    assert flipped["auc"].tolist() != by_kw["auc"].tolist()


def _bad(files, name: str, text: str) -> Path:
    p = files["dir"] / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("image_a,image_b,similarity,genuine\nx,y,0.5,1\nx,z,0.2,maybe\n", 3, "genuine 'maybe' is not a label"),
        ("image_a,image_b,similarity,genuine\nx,y,high,1\n", 2, "similarity 'high' is not a finite number"),
        ("image_a,image_b,score,genuine\nx,y,0.5,1\n", 1, "missing column"),
        ("image_a,image_b,similarity,genuine\nx,y,0.5,1\nx,y,0.5,1,extra\n", 3, "cannot be parsed"),
        ("image_a,image_b,similarity,genuine\nx,y,0.5,1\n\n,z,0.1,0\n", 4, "empty image_a"),
    ],
)
def test_bad_comparisons_name_file_and_line(files, text, line, match):
    p = _bad(files, "bad.csv", text)
    with pytest.raises(DataFormatError, match=match) as exc:
        evaluate_files(p, [files["f1"]], report=False)
    assert exc.value.line == line and exc.value.path == str(p)
    assert str(exc.value).startswith(f"{p}:{line}:")


def test_bad_quality_files(files):
    dup = _bad(files, "dup.csv", "image,quality\n" + "".join(f"{im},0.5\n" for im in IMAGES) + f"{IMAGES[3]},0.7\n")
    with pytest.raises(DataFormatError, match="listed twice") as exc:
        evaluate_files(files["cmp"], [dup], report=False)
    assert exc.value.line == 42
    nan = _bad(files, "nan.csv", "image,quality\n" + f"{IMAGES[0]},nan\n")
    with pytest.raises(DataFormatError, match="not a finite number") as exc:
        evaluate_files(files["cmp"], [nan], report=False)
    assert exc.value.line == 2


def test_missing_image_is_an_error_unless_skipped(files):
    short = _bad(files, "short.csv", "image,quality\n" + "".join(f"{im},{i / 40}\n" for i, im in enumerate(IMAGES[:-2])))
    with pytest.raises(DataFormatError, match=r"no quality for image 'person19/img\d\.jpg'.*--skip-missing"):
        evaluate_files(files["cmp"], [files["f1"], short], report=False)
    df = evaluate_files(files["cmp"], [files["f1"], short], fmr=[0.1], skip_missing=True, report=False)
    a, b = files["a"], files["b"]
    lost = int(np.count_nonzero((a >= 38) | (b >= 38)))
    assert lost > 0
    assert set(df["n_dropped"]) == {lost} and set(df["n_pairs"]) == {60 - lost}
    assert all(f"{lost} of 60 pairs dropped" in n for n in df["note"])


def test_cli_subcommand(files, capsys):
    from fiqa_bench.cli import main

    out = files["dir"] / "cli"
    rc = main(["evaluate", str(files["cmp"]), str(files["f1"]), f"{files['f2']}:lower", "--fmr", "1e-1", "--out", str(out), "--no-report", "--bootstrap", "20", "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "sharp" in text and "blur" in text and "ci_low" in text
    assert (out / "results.csv").is_file()


def test_pair_cosine_torch_backend_equals_numpy():
    # The torch path is what runs on a GPU (matrix products there); on CPU it must agree with NumPy.
    pytest.importorskip("torch")
    from fiqa_bench.evaluation import EvaluationError
    from fiqa_bench.similarity import pair_cosine

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 128)).astype(np.float32)
    a, b = rng.integers(0, 300, 5000), rng.integers(0, 300, 5000)
    ref = pair_cosine(emb, a, b)
    got = pair_cosine(emb, a, b, backend="torch", chunk=777)  # several chunks
    assert got.dtype == np.float64 and np.allclose(got, ref, atol=1e-6)
    emb[7] = 0
    with pytest.raises(EvaluationError, match="zero or non-finite norm"):
        pair_cosine(emb, a, b, backend="torch")
