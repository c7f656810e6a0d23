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
    seen: set[frozenset[int]] = set()
    for _ in range(40):  # 40 distinct impostor pairs (a repeat, also as (b, a), is refused)
        i, j = rng.choice(40, 2, replace=False)
        while i // 2 == j // 2:
            i, j = rng.choice(40, 2, replace=False)
        while i // 2 == j // 2 or frozenset((int(i), int(j))) in seen:  # same random stream as before
            j = (j + 1) % 40
        seen.add(frozenset((int(i), int(j))))
        (
            a.append(int(i)),
            b.append(int(j)),
            gen.append(False),
            sim.append(round(float(rng.normal(0.05, 0.1)), 4)),
        )
    words = {True: ["1", "yes", "True"], False: ["0", "no", "false"]}
    cmp_rows = [
        f"{IMAGES[x]},{IMAGES[y]},{s},{words[g][k % 3]},{k % 2}"
        for k, (x, y, s, g) in enumerate(zip(a, b, sim, gen, strict=True))
    ]
    cmp = _write(tmp_path / "comparisons.csv", "image_a,image_b,similarity,genuine,fold", cmp_rows)
    q1 = np.round(rng.random(40), 3)
    q2 = np.round(rng.random(40), 3)
    f1 = _write(
        tmp_path / "sharp.csv", "image,quality", [f"{im},{v}" for im, v in zip(IMAGES, q1, strict=True)]
    )
    f2 = _write(
        tmp_path / "blur.tsv", "image\tquality", [f"{im}\t{v}" for im, v in zip(IMAGES, q2, strict=True)]
    )
    return {
        "cmp": cmp,
        "f1": f1,
        "f2": f2,
        "a": np.array(a),
        "b": np.array(b),
        "sim": np.array(sim),
        "gen": np.array(gen),
        "fold": np.arange(len(a)) % 2,
        "q1": q1,
        "q2": q2,
        "dir": tmp_path,
    }


def test_evaluate_files_matches_evaluate_and_writes_the_results_folder(files):
    out = files["dir"] / "res"
    df = evaluate_files(
        files["cmp"], [files["f1"], f"{files['f2']}:lower"], fmr="1e-2,1e-1", out=out, report=False
    )
    a, b = files["a"], files["b"]
    pq = {
        "sharp": np.minimum(files["q1"][a], files["q1"][b]),
        "blur": np.minimum(-files["q2"][a], -files["q2"][b]),
    }
    rows, _ = evaluate(files["sim"], files["gen"], pq, [1e-2, 1e-1])
    assert len(df) == len(rows) == 8
    assert set(df["dataset"]) == {"precomputed"} and set(df["fr_model"]) == {"precomputed"}
    for r in rows:
        got = df[(df["method"] == r["method"]) & (df["protocol"] == r["protocol"]) & (df["fmr"] == r["fmr"])]
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
        (
            "image_a,image_b,similarity,genuine\nx,y,0.5,1\nx,z,0.2,maybe\n",
            3,
            "genuine 'maybe' is not a label",
        ),
        ("image_a,image_b,similarity,genuine\nx,y,high,1\n", 2, "similarity 'high' is not a finite number"),
        ("image_a,image_b,score,genuine\nx,y,0.5,1\n", 1, "missing column"),
        (
            "image_a,image_b,similarity,genuine\nx,y,0.5,1\nx,y,0.5,1,extra\n",
            3,
            "has 5 fields where the header has 4",
        ),
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
    dup = _bad(
        files, "dup.csv", "image,quality\n" + "".join(f"{im},0.5\n" for im in IMAGES) + f"{IMAGES[3]},0.7\n"
    )
    with pytest.raises(DataFormatError, match="listed twice") as exc:
        evaluate_files(files["cmp"], [dup], report=False)
    assert exc.value.line == 42
    nan = _bad(files, "nan.csv", "image,quality\n" + f"{IMAGES[0]},nan\n")
    with pytest.raises(DataFormatError, match="not a finite number") as exc:
        evaluate_files(files["cmp"], [nan], report=False)
    assert exc.value.line == 2


def test_missing_image_is_an_error_unless_skipped(files):
    short = _bad(
        files,
        "short.csv",
        "image,quality\n" + "".join(f"{im},{i / 40}\n" for i, im in enumerate(IMAGES[:-2])),
    )
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
    rc = main(
        [
            "evaluate",
            str(files["cmp"]),
            str(files["f1"]),
            f"{files['f2']}:lower",
            "--fmr",
            "1e-1",
            "--out",
            str(out),
            "--no-report",
            "--bootstrap",
            "20",
            "--quiet",
        ]
    )
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


def test_cli_protocol_options_name_every_row(files, capsys):
    from fiqa_bench.cli import main

    out = files["dir"] / "proto"
    rc = main(
        [
            "evaluate",
            str(files["cmp"]),
            str(files["f1"]),
            "--fmr",
            "1e-1",
            "--out",
            str(out),
            "--no-report",
            "--quiet",
            "--protocols",
            "erc,erc_strict,edc,verification_insightface",
            "--discard-limit",
            "0.2,0.3",
            "--quality-scale",
            "minmax",
        ]
    )
    assert rc == 0
    import json

    import pandas as pd

    res = pd.read_csv(out / "results.csv")
    assert list(res["protocol"]) == ["erc", "erc_strict", "edc", "edc", "verification_insightface"]
    assert list(res["discard_limit"].iloc[2:4]) == [0.2, 0.3] and res["fmr"].iloc[:4].eq(0.1).all()
    assert set(res["quality_scale"]) == {"minmax"}
    run = json.loads((out / "run.json").read_text())["evaluation"]  # fiqa_bench.results schema
    assert run["protocol_names"] == ["erc", "erc_strict", "edc", "verification_insightface"]
    assert run["discard_limits"] == [0.2, 0.3] and run["quality_scale"] == "minmax"
    assert [c["name"] for c in run["protocols"]] == run["protocol_names"]
    curves = pd.read_csv(out / "curves.csv")
    assert {"protocol", "kind", "fmr", "starting_error"} <= set(curves.columns)
    # starting error instead of FMR targets
    out2 = files["dir"] / "se"
    assert (
        main(
            [
                "evaluate",
                str(files["cmp"]),
                str(files["f1"]),
                "--out",
                str(out2),
                "--no-report",
                "--quiet",
                "--protocols",
                "edc",
                "--starting-error",
                "0.05",
            ]
        )
        == 0
    )
    res2 = pd.read_csv(out2 / "results.csv")
    assert res2["starting_error"].eq(0.05).all() and res2["fmr"].isna().all()


@pytest.mark.parametrize(
    ("flag", "value", "match"),
    [
        ("--protocols", "erc,nope", "--protocols: unknown protocol 'nope'"),
        ("--discard-limit", "0.2,1.5", "--discard-limit: 1.5 is outside"),
        ("--discard-limit", "x", "--discard-limit: 'x' is not a number"),
        ("--starting-error", "1", "--starting-error: 1 is outside"),
        ("--quality-scale", "iso", "--quality-scale: 'iso' is not one of"),
    ],
)
def test_cli_bad_protocol_options_exit_2_with_one_line(files, capsys, flag, value, match):
    from fiqa_bench.cli import main

    rc = main(["evaluate", str(files["cmp"]), str(files["f1"]), "--quiet", flag, value])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1


def test_results_csv_is_byte_identical_for_20_row_orders(tmp_path):
    """A tie-heavy comparisons file (similarities with 2 decimals, integer qualities 0..10 and a constant
    quality) in 20 row orders: results.csv is the same file every time, for every protocol."""
    rng = np.random.default_rng(4)
    n_img = 300
    images = [f"id{i // 3}/{i % 3}.jpg" for i in range(n_img)]
    rows = []
    for i in range(0, n_img, 3):
        rows += [(i, i + 1, 1), (i, i + 2, 1), (i + 1, i + 2, 1)]
    seen: set[tuple[int, int]] = set()
    for _ in range(900):
        i, j = rng.choice(n_img, 2, replace=False)
        if i // 3 != j // 3 and (min(i, j), max(i, j)) not in seen:  # each pair once: repeats are refused
            seen.add((min(i, j), max(i, j)))
            rows.append((int(i), int(j), 0))
    sims = [round(float(rng.normal(0.6 if g else 0.1, 0.15)), 2) for _, _, g in rows]
    lines = [f"{images[a]},{images[b]},{s},{g}" for (a, b, g), s in zip(rows, sims, strict=True)]
    qi = rng.integers(0, 11, n_img)
    _write(tmp_path / "int.csv", "image,quality", [f"{im},{v}" for im, v in zip(images, qi, strict=True)])
    _write(tmp_path / "const.csv", "image,quality", [f"{im},1" for im in images])
    _write(
        tmp_path / "real.csv",
        "image,quality",
        [f"{im},{v}" for im, v in zip(images, rng.random(n_img), strict=True)],
    )
    quals = [str(tmp_path / f) for f in ("int.csv", "const.csv", "real.csv")]
    ref = None
    for k in range(20):
        order = np.arange(len(lines)) if k == 0 else rng.permutation(len(lines))
        cmp = _write(
            tmp_path / f"cmp{k}.csv", "image_a,image_b,similarity,genuine", [lines[i] for i in order]
        )
        out = tmp_path / f"out{k}"
        evaluate_files(
            cmp,
            quals,
            fmr="1e-2,1e-1",
            out=out,
            report=False,
            protocols="erc,erc_strict,erc_magface,edc,edc_fm",
            discard_limit="0.2,0.3",
            quality_scale="rank",
        )
        data = (out / "results.csv").read_bytes()
        if ref is None:
            ref = data
            assert b"split by a reject cut" in data  # the ties really are split
        assert data == ref, f"row order {k} changed results.csv"
