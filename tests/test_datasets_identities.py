"""All-pairs datasets (``identities:PATH``, ``adience``) and the authors' CALFW / CPLFW pairs files, on
real LFW pixels: pair counts equal the combinatorial counts, labels equal identity equality, sampling is
seeded and stated, folds follow the documented rules, and bad files give one line naming file:line."""

from __future__ import annotations

import shutil
from itertools import combinations
from math import comb
from pathlib import Path

import cv2
import numpy as np
import pytest
from fiqa_bench.datasets.cross_lfw import parse_two_line_pairs
from fiqa_bench.datasets.identities import adience_identity, enumerate_pairs, identity_folds

import fiqa_bench
from fiqa_bench.align import align_sources
from fiqa_bench.errors import DataFormatError, FiqaError, MissingDataError

# -- the pair enumeration rule, against a brute-force definition ----------------------------------------


@pytest.mark.parametrize("sizes", [[3, 1, 4, 2], [1, 1], [5], [2, 7, 1, 1, 3]])
def test_all_pairs_equal_brute_force(sizes: list[int]) -> None:
    label = np.repeat(np.arange(len(sizes)), sizes)
    expected = [(i, j, bool(label[i] == label[j])) for i, j in combinations(range(len(label)), 2)]
    p = enumerate_pairs(np.array(sizes))
    assert list(zip(p.a.tolist(), p.b.tolist(), p.genuine.tolist(), strict=True)) == expected
    assert p.n_genuine_all == sum(comb(k, 2) for k in sizes)
    assert p.n_impostor_all == comb(sum(sizes), 2) - p.n_genuine_all


def test_impostor_sample_is_seeded_uniform_subset_and_keeps_every_genuine_pair() -> None:
    sizes = np.array([4, 3, 5, 2, 6])
    full = enumerate_pairs(sizes)
    all_imp = {
        (a, b)
        for a, b, g in zip(full.a.tolist(), full.b.tolist(), full.genuine.tolist(), strict=True)
        if not g
    }
    s1 = enumerate_pairs(sizes, max_impostors=20, seed=1)
    s1b = enumerate_pairs(sizes, max_impostors=20, seed=1)
    s2 = enumerate_pairs(sizes, max_impostors=20, seed=2)
    imp1 = {
        (a, b) for a, b, g in zip(s1.a.tolist(), s1.b.tolist(), s1.genuine.tolist(), strict=True) if not g
    }
    assert len(imp1) == 20 and imp1 <= all_imp
    assert int(s1.genuine.sum()) == full.n_genuine_all  # genuine pairs are never sampled away
    assert np.array_equal(s1.a, s1b.a) and np.array_equal(s1.b, s1b.b)
    assert not (np.array_equal(s1.a, s2.a) and np.array_equal(s1.b, s2.b))
    assert np.all(np.diff(s1.a * 1000 + s1.b) > 0)  # canonical order
    # Uniformity: over many seeds every impostor pair is drawn about equally often.
    counts = dict.fromkeys(all_imp, 0)
    for seed in range(400):
        s = enumerate_pairs(sizes, max_impostors=20, seed=seed)
        for a, b, g in zip(s.a.tolist(), s.b.tolist(), s.genuine.tolist(), strict=True):
            if not g:
                counts[(a, b)] += 1
    expected = 400 * 20 / len(all_imp)
    assert max(abs(c - expected) for c in counts.values()) < 0.5 * expected


def test_too_many_impostors_asks_for_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    import fiqa_bench.datasets.identities as ident

    monkeypatch.setattr(ident, "ALL_IMPOSTORS_LIMIT", 10)
    with pytest.raises(FiqaError, match="max_impostors=K"):
        enumerate_pairs(np.array([3, 3, 3]))
    assert len(enumerate_pairs(np.array([3, 3, 3]), max_impostors=5).a) == 9 + 5


def test_identity_folds_keep_an_identity_in_one_fold() -> None:
    sizes = np.array([2] * 25)
    p = enumerate_pairs(sizes)
    fold = identity_folds(sizes, p.a)
    assert set(np.unique(fold).tolist()) == set(range(10))
    ident = np.repeat(np.arange(25), 2)
    for k in range(25):
        assert len(np.unique(fold[p.genuine & (ident[p.a] == k)])) == 1


# -- identities:PATH on real trees -------------------------------------------------------------------------


@pytest.mark.realdata
def test_lfw_train_pair_counts_equal_combinatorial_counts(shared_data_dir: Path) -> None:
    tree = shared_data_dir / "lfw_train"
    sizes = [len(list(d.glob("*.jpg"))) for d in sorted(tree.iterdir()) if d.is_dir()]
    assert len(sizes) == 705
    ds = fiqa_bench.get_dataset(f"identities:{tree}")
    st = ds.status()
    n = sum(sizes)
    assert st.present and st.n_pairs == comb(n, 2)  # every genuine and every impostor pair
    genuine = sum(comb(k, 2) for k in sizes)
    sampled = fiqa_bench.get_dataset(f"identities:{tree}", max_impostors=100_000, seed=7).status()
    assert sampled.n_pairs == genuine + 100_000


@pytest.mark.realdata
def test_identities_loads_a_real_tree_with_counts_in_info(shared_data_dir: Path, tmp_path: Path) -> None:
    src = shared_data_dir / "lfw_train"
    people = sorted(d for d in src.iterdir() if d.is_dir())[:5]
    tree = tmp_path / "tree"
    for d in people:
        shutil.copytree(d, tree / d.name)
    (tree / "notes.txt").write_text("not an identity")  # files at the top level are ignored
    (tree / people[0].name / "readme.txt").write_text("not an image")
    data = fiqa_bench.get_dataset(f"identities:{tree}", cache_dir=str(tmp_path / "cache")).load(
        progress=False
    )
    n = sum(len(list(d.glob("*.jpg"))) for d in people)
    assert len(data.faces) == n and len(data.pairs) == comb(n, 2)
    person = [i.split("/")[0] for i in data.faces.ids]
    same = np.array([person[a] == person[b] for a, b in zip(data.pairs.a, data.pairs.b, strict=True)])
    assert np.array_equal(same, data.pairs.genuine)
    assert data.info["n_identities"] == 5 and data.info["n_impostor_all"] == int((~same).sum())
    assert data.info["protocol"] == "all genuine pairs + all impostor pairs"
    assert not data.aligned  # 250x250 photos: aligned on the fly
    assert data.faces.loader(0).shape == (112, 112, 3)


def test_identities_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError):
        fiqa_bench.get_dataset(f"identities:{tmp_path / 'nope'}").load(progress=False)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "a" / "1.jpg"), np.zeros((112, 112, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b" / "1.jpg"), np.zeros((112, 112, 3), np.uint8))
    with pytest.raises(DataFormatError, match="no identity with two or more images"):
        fiqa_bench.get_dataset(f"identities:{tmp_path}").load(progress=False)
    bad = fiqa_bench.get_dataset(f"identities:{tmp_path}", max_impostors="lots")
    assert not bad.status().present and "max_impostors" in bad.status().detail
    with pytest.raises(FiqaError, match="max_impostors"):
        bad.load(progress=False)


# -- Adience ----------------------------------------------------------------------------------------------


def test_adience_identity_is_user_and_face_id() -> None:
    assert (
        adience_identity("30601258@N03", "landmark_aligned_face.1.10399646885_67c7d20df9_o.jpg")
        == "30601258@N03/1"
    )
    assert adience_identity("u", "coarse_tilt_aligned_face.12.x.jpg") == "u/12"
    assert adience_identity("u", "IMG_0001.jpg") is None


@pytest.mark.realdata
def test_adience_layout_counts(shared_data_dir: Path, tmp_path: Path) -> None:
    src = sorted((shared_data_dir / "lfw_train").iterdir())[:4]
    # Two users; user0 holds two people (face ids 1 and 2) as Adience albums do.
    layout = {("user0", 1): src[0], ("user0", 2): src[1], ("user1", 1): src[2], ("user1", 5): src[3]}
    sizes = []
    for (user, fid), person in layout.items():
        d = tmp_path / "adience" / "aligned" / user
        d.mkdir(parents=True, exist_ok=True)
        files = sorted(person.glob("*.jpg"))
        sizes.append(len(files))
        for f in files:
            shutil.copy(f, d / f"landmark_aligned_face.{fid}.{f.stem}_o.jpg")
    ds = fiqa_bench.get_dataset("adience", root=tmp_path)
    st = ds.status()
    assert st.present and st.n_pairs == comb(sum(sizes), 2)
    data = ds.load(progress=False)
    ident = ["/".join(i.split("/")[1:2]) + "/" + i.split("/")[2].split(".")[1] for i in data.faces.ids]
    same = np.array([ident[a] == ident[b] for a, b in zip(data.pairs.a, data.pairs.b, strict=True)])
    assert np.array_equal(same, data.pairs.genuine)
    assert int(same.sum()) == sum(comb(k, 2) for k in sizes)


# -- CALFW / CPLFW in the authors' pairs_*.txt form ----------------------------------------------------------


@pytest.fixture(scope="module")
def crops(lfw_dir: Path) -> dict[str, np.ndarray]:
    """Real faces of 4 LFW people with at least 2 images, aligned to 112x112 with YuNet."""
    people = [d for d in sorted((lfw_dir / "images").iterdir()) if len(list(d.glob("*.jpg"))) >= 2][:4]
    files = [f for d in people for f in sorted(d.glob("*.jpg"))[:2]]
    res = align_sources(files, "yunet", workers=1, progress=False)
    return {f.name: res.crops[i] for i, f in enumerate(files)}


def _write_folder(root: Path, name: str, crops: dict[str, np.ndarray], lines: list[str]) -> Path:
    folder = root / name
    (folder / "aligned images").mkdir(parents=True)
    for fname, c in crops.items():
        cv2.imwrite(str(folder / "aligned images" / fname), np.ascontiguousarray(c[..., ::-1]))
    (folder / f"pairs_{name.upper()}.txt").write_text("\n".join(lines) + "\n")
    return folder


def _pairs_lines(
    crops: dict[str, np.ndarray], tokens: list[int]
) -> tuple[list[str], list[tuple[str, str, bool]]]:
    names = sorted(crops)
    people = sorted({n.rsplit("_", 1)[0] for n in names})
    by = {p: [n for n in names if n.startswith(p + "_")] for p in people}
    gen = [(by[p][0], by[p][1]) for p in people]
    imp = [(by[people[i]][0], by[people[(i + 1) % len(people)]][1]) for i in range(len(people))]
    lines, order = [], []
    gi = ii = 0
    for t in tokens:
        a, b = gen[gi % len(gen)] if t else imp[ii % len(imp)]
        gi, ii = (gi + 1, ii) if t else (gi, ii + 1)
        lines += [f"{a} {t}", f"{b} {t}"]
        order.append((a, b, t != 0))
    return lines, order


@pytest.mark.realdata
def test_calfw_pairs_file_form_wins_and_uses_fold_tokens(
    crops: dict[str, np.ndarray], tmp_path: Path
) -> None:
    tokens = [1, 1, 2, 2, 0, 0, 0, 0]  # CALFW: genuine pairs carry their fold, then all impostors (token 0)
    lines, order = _pairs_lines(crops, tokens)
    _write_folder(tmp_path, "calfw", crops, lines)
    (tmp_path / "calfw.bin").write_bytes(b"not read: the folder form wins")
    ds = fiqa_bench.get_dataset("calfw", root=tmp_path)
    assert ds.status().present and ds.status().n_pairs == 8
    data = ds.load(progress=False)
    assert data.aligned and "folder form" in data.source
    got = [(data.faces.ids[a].split("/")[1], data.faces.ids[b].split("/")[1], bool(g))
           for a, b, g in zip(data.pairs.a, data.pairs.b, data.pairs.genuine, strict=True)]  # fmt: skip
    assert got == order
    assert data.pairs.fold.tolist() == [0, 0, 1, 1, 0, 0, 1, 1]  # impostors: 2 equal blocks in file order


@pytest.mark.realdata
def test_cplfw_pairs_file_form_uses_equal_blocks(crops: dict[str, np.ndarray], tmp_path: Path) -> None:
    tokens = [1, 0] * 10  # CPLFW: genuine token 1, impostor 0
    lines, _ = _pairs_lines(crops, tokens)
    _write_folder(tmp_path, "cplfw", crops, lines)
    data = fiqa_bench.get_dataset("cplfw", root=tmp_path).load(progress=False)
    assert len(data.pairs) == 20 and data.pairs.n_genuine == 10
    assert data.pairs.fold.tolist() == [f for f in range(10) for _ in range(2)]  # 10 blocks of 2 pairs


def test_two_line_pairs_errors_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "pairs_CALFW.txt"
    p.write_text("a_0001.jpg 1\na_0002.jpg 1\nb_0001.jpg 0\n")
    with pytest.raises(DataFormatError, match=r"pairs_CALFW\.txt:3: "):
        parse_two_line_pairs(p)
    p.write_text("a_0001.jpg 1\na_0002.jpg 2\n")
    with pytest.raises(DataFormatError, match="same non-negative integer"):
        parse_two_line_pairs(p)
    p.write_text("a_0001.jpg 1\na_0002.jpg 2\nb_0001.jpg 0\nc_0001.jpg 0\n")
    rows, _, _, skipped = parse_two_line_pairs(p, skip_bad=True)
    assert len(rows) == 1 and len(skipped) == 1
    p.write_bytes("Jos\xe9_0001.jpg 1\nJos\xe9_0002.jpg 1\n".encode("latin-1"))  # not UTF-8: read as latin-1
    rows, _, _, _ = parse_two_line_pairs(p)
    assert rows[0][0] == "Jos\xe9_0001.jpg"


def test_calfw_missing_names_both_forms(tmp_path: Path) -> None:
    ds = fiqa_bench.get_dataset("calfw", root=tmp_path)
    assert "pairs_CALFW.txt" in ds.status().detail and "calfw.bin" in ds.status().detail
    with pytest.raises(MissingDataError, match="pairs_CALFW.txt"):
        ds.load(progress=False)
