"""Bad input files, each with its right outcome (issue 15, sections 4-6, input files): one line naming the
file (and line or index) and the fix, exit 2 - or with --skip-bad counted skips listed in the report.

Every case is a tiny file made here from real LFW images (centre 112x112 crops, so no alignment runs).
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from fiqa_bench.datasets.insightface_bin import load_insightface_bin, read_bin, save_insightface_bin
from fiqa_bench.datasets.lfw import parse_lfw_pairs

import fiqa_bench
from fiqa_bench.cli import main
from fiqa_bench.errors import DataFormatError
from fiqa_bench.input_checks import BadInputs, check_pair_list, decode_checked, parse_labels, read_text


@pytest.fixture(scope="module")
def faces(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """8 real LFW faces (4 people x 2) as 112x112 centre crops under images/<person>/<file>, and 8 pairs."""
    root = tmp_path_factory.mktemp("faces")
    people = sorted(d for d in (lfw_dir / "images").iterdir() if len(list(d.glob("*.jpg"))) >= 2)[:4]
    names = []
    for person in people:
        for f in sorted(person.glob("*.jpg"))[:2]:
            (root / person.name).mkdir(exist_ok=True)
            cv2.imwrite(str(root / person.name / f.name), cv2.imread(str(f))[69:181, 69:181])
            names.append(f"{person.name}/{f.name}")
    n = names
    pairs = [(n[0], n[1], 1), (n[2], n[3], 1), (n[4], n[5], 1), (n[6], n[7], 1),
             (n[0], n[2], 0), (n[1], n[4], 0), (n[3], n[6], 0), (n[5], n[7], 0)]  # fmt: skip
    return {"root": root, "names": names, "pairs": pairs, "people": [p.name for p in people]}


def _folder(faces: dict, tmp_path: Path) -> Path:
    dst = tmp_path / "img"
    shutil.copytree(faces["root"], dst)
    return dst


def _csv(
    folder: Path, rows: list, name: str = "pairs.csv", header: str = "image_a,image_b,genuine", sep: str = ","
) -> Path:
    path = folder / name
    path.write_text("\n".join([header.replace(",", sep)] + [sep.join(map(str, r)) for r in rows]) + "\n")
    return path


def _load(path: Path, skip_bad: bool = False, **options: object):
    return fiqa_bench.get_dataset("pairs", argument=str(path), **options).load(
        skip_bad=skip_bad, progress=False
    )


# -- images: one decode-or-skip rule for every loader ------------------------------------------------


def test_decode_checked_says_why() -> None:
    assert decode_checked(b"")[1] == "is empty (0 bytes)"
    assert "is not an image file" in decode_checked(b"hello, world")[1]
    assert "corrupt or truncated" in decode_checked(b"\xff\xd8\xff\xe0" + b"\0" * 50)[1]


@pytest.mark.parametrize("content", [b"", b"garbage, not a JPEG"], ids=["zero-byte", "garbage"])
def test_pairs_csv_bad_image_error_or_counted_skip(faces: dict, tmp_path: Path, content: bytes) -> None:
    img = _folder(faces, tmp_path)
    (img / "bad.jpg").write_bytes(content)
    path = _csv(img, faces["pairs"] + [("bad.jpg", faces["names"][0], 1)])
    with pytest.raises(DataFormatError, match=r"bad\.jpg: is (empty|not an image file).*--skip-bad"):
        _load(path)
    data = _load(path, skip_bad=True)
    assert len(data.pairs) == 8
    assert [s.what for s in data.skipped] == ["image", "pair"] and data.skipped[1].where == f"{path}:10"


@pytest.mark.slow
def test_run_on_pairs_csv_with_empty_image(faces: dict, tmp_path: Path) -> None:
    """The user's path: `fiqa-bench run` stops with one line (exit 2), or with --skip-bad evaluates the rest
    and lists the skips in run.json and the report."""
    import json
    import subprocess
    import sys

    img = _folder(faces, tmp_path)
    (img / "empty.jpg").write_bytes(b"")
    path = _csv(img, faces["pairs"] + [("empty.jpg", faces["names"][0], 1)])
    exe = str(Path(sys.executable).parent / "fiqa-bench")
    cmd = [
        exe,
        "run",
        "--datasets",
        f"pairs:{path}",
        "--methods",
        "sharpness",
        "--models",
        "sface",
        "--fmr",
        "0.1",
    ]
    r = subprocess.run([*cmd, "--out", str(tmp_path / "a")], capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr and "empty.jpg: is empty" in lines[-1]
    r = subprocess.run([*cmd, "--out", str(tmp_path / "b"), "--skip-bad"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    skipped = next(iter(json.loads((tmp_path / "b" / "run.json").read_text())["datasets"].values()))[
        "skipped"
    ]
    assert [s["what"] for s in skipped] == ["image", "pair"] and skipped[1]["where"] == f"{path}:10"
    assert "empty.jpg" in (tmp_path / "b" / "report" / "summary.md").read_text()


def test_skip_bad_leaving_no_pair_is_one_line(faces: dict, tmp_path: Path) -> None:
    img = _folder(faces, tmp_path)
    (img / "empty.jpg").write_bytes(b"")
    path = _csv(img, [("empty.jpg", faces["names"][0], 1), (faces["names"][1], "empty.jpg", 0)])
    with pytest.raises(DataFormatError, match="every pair was left out .*empty.jpg: is empty"):
        _load(path, skip_bad=True)


def test_xqlfw_zero_byte_image(faces: dict, tmp_path: Path) -> None:
    d = tmp_path / "xqlfw"
    shutil.copytree(faces["root"], d / "xqlfw_aligned_112")
    lines = []
    for a, b, g in faces["pairs"]:
        (pa, fa), (pb, fb) = a.split("/"), b.split("/")
        lines.append(
            f"{pa} {int(fa[-8:-4])} {int(fb[-8:-4])}" if g else f"{pa} {int(fa[-8:-4])} {pb} {int(fb[-8:-4])}"
        )
    (d / "xqlfw_pairs.txt").write_text("header\n" + "\n".join(lines) + "\n")
    (d / "xqlfw_aligned_112" / faces["names"][0]).write_bytes(b"")
    with pytest.raises(DataFormatError, match=rf"{faces['names'][0]}: is empty \(0 bytes\)"):
        fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(progress=False)
    data = fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(skip_bad=True, progress=False)
    assert len(data.pairs) == 6 and sum(s.what == "pair" for s in data.skipped) == 2


def test_bin_with_one_empty_image(faces: dict, tmp_path: Path) -> None:
    blobs = [(faces["root"] / n).read_bytes() for n in faces["names"]]
    blobs[3] = b""
    save_insightface_bin(tmp_path / "x.bin", blobs, [True, True, False, False])
    with pytest.raises(DataFormatError, match=r"x\.bin#00003: is empty \(0 bytes\)"):
        load_insightface_bin(tmp_path / "x.bin", "x", progress=False)
    data = load_insightface_bin(tmp_path / "x.bin", "x", skip_bad=True, progress=False)
    assert len(data.pairs) == 3 and [s.what for s in data.skipped] == ["image", "pair"]


@pytest.mark.parametrize("content", [b"", b"garbage"], ids=["zero-byte", "garbage"])
def test_pack_bad_image(
    faces: dict, tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = _folder(faces, tmp_path)
    bad = tree / faces["people"][0] / "bad.jpg"
    bad.write_bytes(content)
    assert main(["pack", str(tree), str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jpg: is" in err[0] and "--skip-bad" in err[0]
    assert main(["pack", str(tree), str(tmp_path / "out"), "--quiet", "--skip-bad"]) == 0
    assert "packed 8 images of 4 identities" in capsys.readouterr().out
    assert "bad.jpg\tundecodable: is" in (tmp_path / "out" / "pack_skipped.txt").read_text()


@pytest.mark.parametrize("content", [b"", b"garbage"], ids=["zero-byte", "garbage"])
def test_align_bad_image(
    faces: dict, tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    (src / "p").mkdir(parents=True)
    shutil.copy(faces["root"] / faces["names"][0], src / "p" / "a.jpg")
    (src / "p" / "bad.jpg").write_bytes(content)
    assert main(["align", str(src), str(tmp_path / "dst"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jpg: is" in err[0] and "--skip-bad" in err[0]
    assert not (tmp_path / "dst" / "p" / "a.jpg").exists()  # found before any work
    assert main(["align", str(src), str(tmp_path / "dst"), "--quiet", "--skip-bad"]) == 0
    assert "1 undecodable" in capsys.readouterr().out


# -- text, tables and labels --------------------------------------------------------------------------


def test_header_only_and_short_row_name_the_line(faces: dict, tmp_path: Path) -> None:
    img = _folder(faces, tmp_path)
    with pytest.raises(DataFormatError, match="has a header but no pairs"):
        _load(_csv(img, [], "header_only.csv"))
    rows = [",".join(map(str, r)) for r in faces["pairs"]]
    rows.insert(4, ",".join(faces["names"][:2]))  # line 6
    (img / "short.csv").write_text("image_a,image_b,genuine\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=r"short\.csv:6: has 2 field\(s\) where the header has 3"):
        _load(img / "short.csv")


def test_non_utf8_pairs_csv_is_read_as_latin1(
    faces: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    img = _folder(faces, tmp_path)
    (img / "José").mkdir()
    shutil.copy(img / faces["names"][0], img / "José" / "x.jpg")  # file name on disk: UTF-8
    rows = faces["pairs"] + [("José/x.jpg", faces["names"][1], 1)]
    text = "image_a,image_b,genuine\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n"
    (img / "latin1.csv").write_bytes(text.encode("latin-1"))
    data = _load(img / "latin1.csv")
    assert len(data.pairs) == 9 and "José/x.jpg" in data.faces.ids
    assert "latin1.csv:10: not UTF-8" in caplog.text and "read as Latin-1" in caplog.text


def test_labels_numbers_and_words() -> None:
    from fiqa_bench.input_checks import GENUINE_WORDS, IMPOSTOR_WORDS

    g, bad = parse_labels(
        ["1", "1.0", "True", "0", "-1", "-1.0", "0.0", "no", "2", "maybe"],
        set(GENUINE_WORDS),
        set(IMPOSTOR_WORDS),
    )
    assert g.tolist() == [True, True, True, False, False, False, False, False, False, False]
    assert bad.tolist() == [False] * 8 + [True, True]


def test_pairs_semicolon_and_float_labels(faces: dict, tmp_path: Path) -> None:
    img = _folder(faces, tmp_path)
    rows = [(a, b, "1.0" if g else "-1") for a, b, g in faces["pairs"]]
    data = _load(_csv(img, rows, "semi.csv", sep=";"))
    assert data.pairs.genuine.tolist() == [True] * 4 + [False] * 4


def test_read_text_utf16_and_bom(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes("\ufeffa,b\n".encode())
    (tmp_path / "b.txt").write_bytes("a,b\n".encode("utf-16"))
    assert read_text(tmp_path / "a.txt") == read_text(tmp_path / "b.txt") == "a,b\n"


# -- pair lists: one validator for pairs: CSVs and evaluate comparisons -------------------------------

PAIR_FAULTS = {
    "duplicate": (lambda p: p, r"repeats line 2\."),
    "reversed": (lambda p: (p[1], p[0], p[2]), r"repeats line 2 in reverse order \(b, a\)"),
    "conflict": (lambda p: (p[0], p[1], 0), r"labelled genuine on line 2 and impostor on line 10"),
    "self": (lambda p: (p[0], p[0], 1), r"is paired with itself"),
}


@pytest.mark.parametrize("fault", list(PAIR_FAULTS))
def test_pairs_csv_pair_faults(faces: dict, tmp_path: Path, fault: str) -> None:
    make, match = PAIR_FAULTS[fault]
    img = _folder(faces, tmp_path)
    path = _csv(img, faces["pairs"] + [make(faces["pairs"][0])])
    with pytest.raises(DataFormatError, match=rf"pairs\.csv:10: .*{match}"):
        _load(path)
    data = _load(path, skip_bad=True)
    # Repeats keep their first line; a self pair is dropped; a conflicting pair loses both lines.
    assert len(data.pairs) == {"duplicate": 8, "reversed": 8, "self": 8, "conflict": 7}[fault]
    assert len(data.skipped) == {"duplicate": 1, "reversed": 1, "self": 1, "conflict": 2}[fault]


def test_check_pair_list_vectorised_counts() -> None:
    a = np.array(["x", "y", "x", "z", "x", "w"], dtype=object)
    b = np.array(["y", "x", "y", "z", "v", "u"], dtype=object)
    g = np.array([1, 1, 1, 1, 0, 1], bool)
    policy = BadInputs(skip_bad=True)
    keep = check_pair_list(a, b, g, np.arange(6) + 2, "f.csv", policy)
    assert keep.tolist() == [True, False, False, False, True, True]
    assert [s.where for s in policy.skipped] == ["f.csv:5", "f.csv:3", "f.csv:4"]


# -- LFW pairs files ----------------------------------------------------------------------------------


def _lfw_root(lfw_dir: Path, tmp_path: Path, text: bytes, name: str = "pairs.txt") -> Path:
    (tmp_path / "lfw").mkdir()
    (tmp_path / "lfw" / "images").symlink_to(lfw_dir / "images")
    (tmp_path / "lfw" / name).write_bytes(text)
    return tmp_path


def _lfw_lines(lfw_dir: Path) -> tuple[list[str], list[str]]:
    real = (lfw_dir / "pairs.txt").read_text().splitlines()
    return real[1:3], real[301:303]


def test_lfw_view1_header_and_pairs_file_option(lfw_dir: Path, tmp_path: Path) -> None:
    gen, imp = _lfw_lines(lfw_dir)
    root = _lfw_root(lfw_dir, tmp_path, ("2\n" + "\n".join(gen + imp) + "\n").encode(), "pairsDevTest.txt")
    rows, n_folds = parse_lfw_pairs(root / "lfw" / "pairsDevTest.txt")
    assert (
        n_folds == 1
        and [r[4] for r in rows] == [True, True, False, False]
        and [r[6] for r in rows] == [2, 3, 4, 5]
    )
    status = fiqa_bench.get_dataset("lfw", root=root, pairs_file="pairsDevTest.txt").status()
    assert status.present and status.n_pairs == 4


def test_lfw_non_utf8_pairs_txt_and_listing(
    lfw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gen, imp = _lfw_lines(lfw_dir)
    text = "1\t2\n" + "\n".join([*gen, imp[0], "Jos\xe9_Nobody 1 Other_Nobody 2"]) + "\n"
    root = _lfw_root(lfw_dir, tmp_path, text.encode("latin-1"))
    assert fiqa_bench.get_dataset("lfw", root=root).status().n_pairs == 4
    assert main(["list", "datasets", "--data-root", str(root)]) == 0


def test_lfw_line_numbers_count_blank_lines(lfw_dir: Path, tmp_path: Path) -> None:
    gen, imp = _lfw_lines(lfw_dir)
    text = "1\t2\n\n" + "\n".join(gen + [imp[0], "Nobody_Here 1 Nobody_Else 2"]) + "\n"  # last pair on line 6
    root = _lfw_root(lfw_dir, tmp_path, text.encode())
    with pytest.raises(DataFormatError, match=r"pairs\.txt:6: image .*Nobody_Here_0001\.jpg does not exist"):
        fiqa_bench.get_dataset("lfw", root=root).load(progress=False)


# -- insightface .bin written by insightface's own packer (numpy arrays) ------------------------------


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("shape", ["1d", "column"])
def test_bin_with_numpy_uint8_arrays(faces: dict, tmp_path: Path, protocol: int, shape: str) -> None:
    blobs = [(faces["root"] / n).read_bytes() for n in faces["names"]]
    arrays = [np.frombuffer(b, np.uint8).copy() for b in blobs]
    if shape == "column":  # cv2.imencode's (N, 1) buffers
        arrays = [a.reshape(-1, 1) for a in arrays]
    with open(tmp_path / "np.bin", "wb") as f:
        pickle.dump((arrays, [True, True, False, False]), f, protocol=protocol)
    bins, issame = read_bin(tmp_path / "np.bin")
    assert bins == blobs and issame == [True, True, False, False]


@pytest.mark.parametrize(
    "obj",
    [np.zeros(4, np.float32), np.zeros((2, 2), np.uint8), np.array([object()], dtype=object)],
    ids=["float32", "2-d", "object"],
)
def test_bin_refuses_other_numpy_arrays(tmp_path: Path, obj: np.ndarray) -> None:
    with open(tmp_path / "bad.bin", "wb") as f:
        pickle.dump(([obj, obj], [True]), f, protocol=4)
    with pytest.raises(DataFormatError, match="bad.bin"):
        read_bin(tmp_path / "bad.bin")


def test_long_row_names_its_line(faces: dict, tmp_path: Path) -> None:
    img = _folder(faces, tmp_path)
    rows = [",".join(map(str, r)) for r in faces["pairs"]]
    rows.insert(2, "\n" + ",".join(map(str, faces["pairs"][0])) + ",x,y")  # a blank line, then line 5
    (img / "long.csv").write_text("image_a,image_b,genuine\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=r"long\.csv:5: has 5 fields where the header has 3"):
        _load(img / "long.csv")


# -- evaluate: comparison and quality files -----------------------------------------------------------


def _cmp_rows(faces: dict) -> list[str]:
    return [
        f"{a},{b},{0.8 - i / 50 if g else 0.1 + i / 50},{g}" for i, (a, b, g) in enumerate(faces["pairs"])
    ]


def _evaluate(cmp: Path, *qualities: Path) -> tuple[int, list[str]]:
    import subprocess
    import sys

    exe = Path(sys.executable).parent / "fiqa-bench"
    r = subprocess.run(
        [str(exe), "evaluate", str(cmp), *map(str, qualities), "--fmr", "0.25", "--quiet"],
        capture_output=True,
        text=True,
    )
    return r.returncode, (r.stdout + r.stderr).strip().splitlines()


@pytest.fixture()
def quality_csv(faces: dict, tmp_path: Path) -> Path:
    path = tmp_path / "q.csv"
    path.write_text("image,quality\n" + "".join(f"{n},{(i * 7) % 8}\n" for i, n in enumerate(faces["names"])))
    return path


@pytest.mark.parametrize("fault", list(PAIR_FAULTS))
def test_evaluate_comparison_pair_faults(faces: dict, tmp_path: Path, quality_csv: Path, fault: str) -> None:
    from fiqa_bench.precomputed import evaluate_files

    make, match = PAIR_FAULTS[fault]
    a, b, g = make(faces["pairs"][0])
    cmp = tmp_path / "cmp.csv"
    cmp.write_text(
        "image_a,image_b,similarity,genuine\n" + "\n".join([*_cmp_rows(faces), f"{a},{b},0.5,{g}"]) + "\n"
    )
    with pytest.raises(DataFormatError, match=rf"cmp\.csv:10: .*{match}"):
        evaluate_files(cmp, [quality_csv], fmr=[0.25], report=False)


def test_evaluate_cli_pair_fault_is_one_line_exit_2(faces: dict, tmp_path: Path, quality_csv: Path) -> None:
    cmp = tmp_path / "cmp.csv"
    cmp.write_text(
        "image_a,image_b,similarity,genuine\n" + "\n".join([*_cmp_rows(faces), _cmp_rows(faces)[0]]) + "\n"
    )
    rc, out = _evaluate(cmp, quality_csv)
    assert rc == 2 and len(out) == 1 and "cmp.csv:10: pair" in out[0] and "repeats line 2" in out[0]


def test_evaluate_formats_accepted(faces: dict, tmp_path: Path, quality_csv: Path) -> None:
    """';' separators, 1.0/-1 labels and whitespace quality files (CR-FIQA, SER-FIQ, MagFace) give the same
    table as the plain CSVs."""
    from fiqa_bench.precomputed import evaluate_files

    plain = tmp_path / "plain.csv"
    plain.write_text("image_a,image_b,similarity,genuine\n" + "\n".join(_cmp_rows(faces)) + "\n")
    semi = tmp_path / "semi.csv"
    rows = [r.rsplit(",", 1)[0] + ("," + ("1.0" if r.endswith(",1") else "-1")) for r in _cmp_rows(faces)]
    semi.write_text(
        "image_a;image_b;similarity;genuine\n" + "\n".join(r.replace(",", ";") for r in rows) + "\n"
    )
    q = {n: float((i * 7) % 8) for i, n in enumerate(faces["names"])}
    crfiqa = tmp_path / "crfiqa.txt"  # getQualityScore.py: "path score", no header
    crfiqa.write_text("".join(f"{n} {v}\n" for n, v in q.items()))
    magface = tmp_path / "magface.list"  # gen_feat.py: "path f1 ... f512", quality = ||f||
    magface.write_text(
        "".join(f"{n} " + " ".join([str(v / np.sqrt(512))] * 512) + "\n" for n, v in q.items())
    )
    want = evaluate_files(plain, {"q": quality_csv}, fmr=[0.25], report=False)["auc"].tolist()
    assert evaluate_files(semi, {"q": quality_csv}, fmr=[0.25], report=False)["auc"].tolist() == want
    assert evaluate_files(plain, {"q": crfiqa}, fmr=[0.25], report=False)["auc"].tolist() == want
    assert np.allclose(evaluate_files(plain, {"q": magface}, fmr=[0.25], report=False)["auc"], want)


def test_evaluate_short_row_header_only_and_latin1(faces: dict, tmp_path: Path, quality_csv: Path) -> None:
    from fiqa_bench.precomputed import evaluate_files

    rows = _cmp_rows(faces)
    rows.insert(3, f"{faces['names'][0]},{faces['names'][1]},0.5")  # line 5
    (tmp_path / "short.csv").write_text("image_a,image_b,similarity,genuine\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=r"short\.csv:5: has 3 field\(s\) where the header has 4"):
        evaluate_files(tmp_path / "short.csv", [quality_csv], report=False)
    (tmp_path / "empty.csv").write_text("image_a,image_b,similarity,genuine\n")
    with pytest.raises(DataFormatError, match=r"empty\.csv: has a header but no rows"):
        evaluate_files(tmp_path / "empty.csv", [quality_csv], report=False)
    text = "image_a,image_b,similarity,genuine\n" + "\n".join(_cmp_rows(faces)) + "\n"
    (tmp_path / "latin1.csv").write_bytes(text.encode() + "# café\n".encode("latin-1").replace(b"# ", b""))
    with pytest.raises(DataFormatError, match=r"latin1\.csv:10: has 1 field"):  # read (Latin-1), then judged
        evaluate_files(tmp_path / "latin1.csv", [quality_csv], report=False)
    (tmp_path / "latin1.csv").write_bytes(text.replace(faces["names"][7], "Jos\xe9/x.jpg").encode("latin-1"))
    q2 = tmp_path / "q2.csv"
    q2.write_text(quality_csv.read_text().replace(faces["names"][7], "José/x.jpg"))
    assert len(evaluate_files(tmp_path / "latin1.csv", [q2], fmr=[0.25], report=False))


def test_quality_file_appended_twice_names_both_lines(faces: dict, tmp_path: Path) -> None:
    from fiqa_bench.precomputed import read_qualities

    once = "".join(f"{n} 0.5\n" for n in faces["names"])
    (tmp_path / "twice.txt").write_text(once + once)  # CR-FIQA's script opens its score file with "a"
    with pytest.raises(DataFormatError, match=r"twice\.txt:9: image .* listed twice \(first on line 1\)"):
        read_qualities(tmp_path / "twice.txt")


def test_dataloader_worker_error_is_one_line() -> None:
    from fiqa_bench.training.data import worker_errors
    from torch.utils.data import DataLoader, Dataset

    from fiqa_bench.errors import FiqaError

    class Broken(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> int:
            raise DataFormatError(
                "/x/train.rec", f"record key {i} holds no decodable image", "pack the set again"
            )

    with pytest.raises(FiqaError) as exc:
        list(worker_errors(DataLoader(Broken(), num_workers=1)))
    assert str(exc.value) == "/x/train.rec: record key 0 holds no decodable image. Fix: pack the set again"


def test_pairs_csv_repeat_spelled_differently(faces: dict, tmp_path: Path) -> None:
    img = _folder(faces, tmp_path)
    a, b, g = faces["pairs"][0]
    path = _csv(img, [*faces["pairs"], (f"./{b}", a.replace("/", "//"), g)])
    with pytest.raises(DataFormatError, match=r"pairs\.csv:10: .*repeats line 2 in reverse order"):
        _load(path)


def test_bin_build_cannot_change_the_numpy_stand_ins(faces: dict, tmp_path: Path) -> None:
    """A crafted pickle that BUILDs onto the dtype stand-in (setattr of __setstate__) changes a fresh
    per-load copy only: the next file still reads, and other numpy globals stay refused."""
    import fiqa_bench.datasets.insightface_bin as ib

    attack = b"\x80\x02cnumpy\ndtype\nN}X\x0c\x00\x00\x00__setstate__Ns\x86b."
    (tmp_path / "attack.bin").write_bytes(attack)
    with pytest.raises(DataFormatError, match="attack.bin"):
        read_bin(tmp_path / "attack.bin")
    assert callable(ib._Uint8Dtype.__setstate__)
    for module, name in (("numpy", "frombuffer"), ("numpy.core.multiarray", "scalar"), ("numpy", "load")):
        (tmp_path / "g.bin").write_bytes(b"\x80\x02c" + f"{module}\n{name}\n.".encode())
        with pytest.raises(DataFormatError, match=f"refused to load: the pickle asks for {module}.{name}"):
            read_bin(tmp_path / "g.bin")
    arrays = [np.frombuffer((faces["root"] / n).read_bytes(), np.uint8).copy() for n in faces["names"][:2]]
    with open(tmp_path / "ok.bin", "wb") as f:
        pickle.dump((arrays, [True]), f, protocol=2)
    assert read_bin(tmp_path / "ok.bin")[1] == [True]


def test_unreadable_image_is_judged_like_an_undecodable_one(faces: dict) -> None:
    from fiqa_bench.datasets._common import ImageTable, prepare_faces

    table = ImageTable()
    table.add("a", (faces["root"] / faces["names"][0]).read_bytes(), "a.jpg")
    table.add("b", None, "/data/b.jpg", "cannot be read (check its permissions)")
    with pytest.raises(DataFormatError, match=r"/data/b\.jpg: cannot be read \(check its permissions\)"):
        prepare_faces("t", table, aligned=True, progress=False)
    prepared = prepare_faces("t", table, aligned=True, skip_bad=True, progress=False)
    assert prepared.keep.tolist() == [0, -1] and prepared.skipped[0].where == "/data/b.jpg"
