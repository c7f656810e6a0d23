"""Published dataset formats built from real LFW pixels: insightface .bin (agedb_30, cfp_fp, calfw, cplfw,
lfw.bin), the XQLFW folder and the generic pairs file; loaded through the registry and checked for pair
counts, labels, folds, ids and pixel equality (RGB order), plus every bad-input case and one end-to-end run.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from fiqa_bench.datasets.insightface_bin import (
    bin_status,
    load_insightface_bin,
    read_bin,
    save_insightface_bin,
)
from fiqa_bench.datasets.lfw import parse_lfw_pairs
from fiqa_bench.datasets.xqlfw import parse_pairs

import fiqa_bench
from fiqa_bench.align import align_sources
from fiqa_bench.errors import DataFormatError, FiqaError

N_PER_CLASS = 60  # genuine and impostor lines taken from fold 1 of the real pairs.txt


def _key(name: str, num: int) -> str:
    return f"{name}/{name}_{num:04d}.jpg"


def _bgr_decode(blob: bytes) -> np.ndarray:
    """Independent of fiqa_bench.faces: OpenCV decode (BGR) then reversed to RGB."""
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def _encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)  # OpenCV encodes BGR
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="session")
def lfw_subset(lfw_dir: Path) -> dict:
    """60 genuine + 60 impostor pairs of fold 1, every image aligned once with YuNet (RGB crops)."""
    rows, _ = parse_lfw_pairs(lfw_dir / "pairs.txt")
    sel = rows[:N_PER_CLASS] + rows[300 : 300 + N_PER_CLASS]
    keys = sorted({_key(r[0], r[1]) for r in sel} | {_key(r[2], r[3]) for r in sel})
    res = align_sources([lfw_dir / "images" / k for k in keys], "yunet", workers=2, progress=False)
    assert res.n_undecodable == 0
    crops = {k: res.crops[i] for i, k in enumerate(keys)}
    pairs = [(_key(r[0], r[1]), _key(r[2], r[3]), r[4]) for r in sel]
    return {"pairs": pairs, "crops": crops, "no_face": res.n_no_face}


def _bin_content(subset: dict, n_pairs: int, ext: str = ".jpg") -> tuple[list[bytes], list[bool]]:
    """The real pairs cycled to ``n_pairs`` in 10 folds of half genuine then half impostor pairs; each image
    encoded once and its bytes reused per pair, as insightface's packing script stores each pair's file."""
    blobs = {k: _encode(c, ext) for k, c in subset["crops"].items()}
    gen = [p for p in subset["pairs"] if p[2]]
    imp = [p for p in subset["pairs"] if not p[2]]
    half = n_pairs // 20
    bins, issame = [], []
    for f in range(10):
        for src in (gen, imp):
            for i in range(half):
                a, b, g = src[(f * half + i) % len(src)]
                bins += [blobs[a], blobs[b]]
                issame.append(g)
    return bins, issame


def _xqlfw_folder(subset: dict, folder: Path, per_fold: int) -> list[tuple[str, str, bool]]:
    """XQLFW layout: xqlfw_aligned_112/<Name>/<Name>_NNNN.jpg + xqlfw_pairs.txt with an LFW-style header."""
    img = folder / "xqlfw_aligned_112"
    for k, crop in subset["crops"].items():
        (img / k).parent.mkdir(parents=True, exist_ok=True)
        (img / k).write_bytes(_encode(crop))
    gen = [p for p in subset["pairs"] if p[2]]
    imp = [p for p in subset["pairs"] if not p[2]]
    n_folds = len(gen) // per_fold
    lines, order = [f"{n_folds}\t{per_fold}"], []
    for f in range(n_folds):
        for a, b, _ in gen[f * per_fold : (f + 1) * per_fold]:
            na, nb = Path(a).stem.rsplit("_", 1), Path(b).stem.rsplit("_", 1)
            lines.append(f"{na[0]}\t{int(na[1])}\t{int(nb[1])}")
            order.append((a, b, True))
        for a, b, _ in imp[f * per_fold : (f + 1) * per_fold]:
            na, nb = Path(a).stem.rsplit("_", 1), Path(b).stem.rsplit("_", 1)
            lines.append(f"{na[0]}\t{int(na[1])}\t{nb[0]}\t{int(nb[1])}")
            order.append((a, b, False))
    (folder / "xqlfw_pairs.txt").write_text("\n".join(lines) + "\n")
    return order


@pytest.fixture(scope="session")
def data_root(lfw_subset: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A data root holding every set in its published format, using each documented sub-path rule."""
    root = tmp_path_factory.mktemp("fiqa_data")
    made = {}
    specs = {
        "agedb_30": (root / "agedb_30.bin", 6000, ".jpg", "python2"),
        "cfp_fp": (root / "cfp_fp" / "cfp_fp.bin", 7000, ".jpg", "python3"),
        "calfw": (root / "faces_emore" / "calfw.bin", 6000, ".jpg", "protocol2"),
        "cplfw": (root / "cplfw.bin", 6000, ".png", "python2"),
        "lfw": (root / "lfw.bin", 6000, ".jpg", "python2"),
    }
    for name, (path, n, ext, style) in specs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        bins, issame = _bin_content(lfw_subset, n, ext)
        if style == "protocol2":  # Python 3 at protocol 2 writes bytes as _codecs.encode(text, "latin1")
            with open(path, "wb") as f:
                pickle.dump((bins, issame), f, protocol=2)
        else:
            save_insightface_bin(path, bins, issame, style=style)
        made[name] = (path, bins, issame)
    order = _xqlfw_folder(lfw_subset, root / "xqlfw", per_fold=10)
    return {"root": root, "bins": made, "xqlfw_order": order}


# -- insightface .bin -------------------------------------------------------------------------------


def test_python2_writer_is_read_by_plain_pickle_as_bytes(data_root: dict) -> None:
    # The byte stream is what Python 2 wrote (BINSTRING images): plain pickle reads it the same way.
    path, bins, issame = data_root["bins"]["agedb_30"]
    raw = path.read_bytes()
    assert raw[:2] == b"\x80\x02" and raw[2:4] == b"]q" and b"T" in raw[:8]
    with open(path, "rb") as f:
        ref_bins, ref_same = pickle.load(f, encoding="bytes")
    got_bins, got_same = read_bin(path)
    assert got_bins == ref_bins == bins and got_same == ref_same == issame


@pytest.mark.parametrize(
    "name,n_pairs", [("agedb_30", 6000), ("cfp_fp", 7000), ("calfw", 6000), ("cplfw", 6000)]
)
def test_bin_loads_through_registry(data_root: dict, lfw_subset: dict, name: str, n_pairs: int) -> None:
    path, bins, issame = data_root["bins"][name]
    data = fiqa_bench.get_dataset(name, root=data_root["root"]).load(progress=False)
    p = data.pairs
    assert len(p) == n_pairs and p.n_genuine == n_pairs // 2 and p.n_impostor == n_pairs // 2
    assert data.aligned and not data.skipped and str(path) in data.source
    # 10 equal folds in file order.
    assert np.array_equal(p.fold, np.repeat(np.arange(10), n_pairs // 10))
    # Labels in file order.
    assert np.array_equal(p.genuine, np.array(issame))
    # Identical bytes are stored once, under the id of their first occurrence.
    assert len(data.faces) == len(lfw_subset["crops"])
    first = {}
    for i, blob in enumerate(bins):
        first.setdefault(blob, i)
    assert data.faces.ids[p.a[0]] == f"{path.name}#00000" and data.faces.ids[p.b[0]] == f"{path.name}#00001"
    for k in range(0, n_pairs, 37):
        assert data.faces.ids[p.a[k]] == f"{path.name}#{first[bins[2 * k]]:05d}"
        assert data.faces.ids[p.b[k]] == f"{path.name}#{first[bins[2 * k + 1]]:05d}"
    # Pixels: exactly what an independent decode of the stored bytes gives, in RGB.
    for k in range(0, n_pairs, 101):
        np.testing.assert_array_equal(data.faces.image(int(p.a[k])), _bgr_decode(bins[2 * k]))
        np.testing.assert_array_equal(data.faces.image(int(p.b[k])), _bgr_decode(bins[2 * k + 1]))


def test_bin_pixels_match_source_crops_in_rgb_order(data_root: dict, lfw_subset: dict) -> None:
    # cplfw holds PNG (lossless) bytes: every loaded face equals the YuNet crop it was made from.
    _, bins, _ = data_root["bins"]["cplfw"]
    data = fiqa_bench.get_dataset("cplfw", root=data_root["root"]).load(progress=False)
    by_bytes = {_encode(c, ".png"): c for c in lfw_subset["crops"].values()}
    faces = data.faces.batch(range(len(data.faces)))
    for i, face_id in enumerate(data.faces.ids):
        np.testing.assert_array_equal(faces[i], by_bytes[bins[int(face_id.split("#")[1])]])
    # Skin is redder than blue in RGB: a channel swap anywhere would flip this.
    centre = faces[:, 40:90, 30:80].astype(np.float64)
    assert centre[..., 0].mean() > centre[..., 2].mean() + 15


def test_lfw_reads_lfw_bin_and_says_so(data_root: dict) -> None:
    data = fiqa_bench.get_dataset("lfw", root=data_root["root"]).load(progress=False)
    assert len(data.pairs) == 6000 and "lfw.bin" in data.source
    assert data.faces.ids[0].startswith("lfw.bin#")


def test_status_and_listing_show_presence_and_counts(data_root: dict, tmp_path: Path) -> None:
    root = data_root["root"]
    for name, n in (("agedb_30", 6000), ("cfp_fp", 7000), ("calfw", 6000), ("cplfw", 6000), ("xqlfw", 120)):
        st = fiqa_bench.get_dataset(name, root=root).status()
        assert st.present and st.n_pairs == n, (name, st)
    st = fiqa_bench.get_dataset("agedb_30", root=tmp_path).status()
    assert not st.present and str(tmp_path / "agedb_30.bin") in st.detail
    from fiqa_bench.listing import list_entries

    text = list_entries("datasets", data_root=str(root))
    assert "present, 7000 pairs" in text and "present, 120 pairs" in text
    missing = list_entries("datasets", data_root=str(tmp_path))
    assert "missing" in missing and "xqlfw_pairs.txt" in missing


def _write_bin(path: Path, bins: list, issame: list) -> Path:
    save_insightface_bin(path, bins, issame)
    return path


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned.txt"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('code ran')",))

    for protocol in (0, 2, 5):
        path = tmp_path / f"agedb_30_p{protocol}.bin"
        path.write_bytes(pickle.dumps(([b"\xff\xd8", Evil()], [True]), protocol=protocol))
        with pytest.raises(DataFormatError) as exc:
            load_insightface_bin(path, "agedb_30", progress=False)
        msg = str(exc.value)
        assert str(path) in msg and "exec" in msg and "nothing from the file was executed" in msg
        assert not marker.exists()
        assert not bin_status(path).present and not marker.exists()
    # The payload is live: an unrestricted unpickler would have run it.
    pickle.loads(path.read_bytes())
    assert marker.read_text() == "code ran"


def test_numpy_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "calfw.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b"], np.array([True])), protocol=4))
    with pytest.raises(DataFormatError, match="numpy"):
        read_bin(path)


def test_odd_image_count(data_root: dict, tmp_path: Path) -> None:
    _, bins, issame = data_root["bins"]["agedb_30"]
    path = _write_bin(tmp_path / "agedb_30.bin", bins + [bins[0]], issame)
    with pytest.raises(DataFormatError, match="odd number of images") as exc:
        load_insightface_bin(path, "agedb_30", progress=False)
    assert str(path) in str(exc.value)
    data = load_insightface_bin(path, "agedb_30", skip_bad=True, progress=False)
    assert len(data.pairs) == 6000 and [s.what for s in data.skipped] == ["image"]
    assert data.skipped[0].where == "agedb_30.bin#12000"


def test_label_count_mismatch(data_root: dict, tmp_path: Path) -> None:
    _, bins, issame = data_root["bins"]["agedb_30"]
    path = _write_bin(tmp_path / "agedb_30.bin", bins, issame[:-1])
    for skip in (False, True):
        with pytest.raises(DataFormatError, match="5999 labels for 12000 images"):
            load_insightface_bin(path, "agedb_30", skip_bad=skip, progress=False)


def test_truncated_file(data_root: dict, tmp_path: Path) -> None:
    src, _, _ = data_root["bins"]["agedb_30"]
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="truncated") as exc:
        fiqa_bench.get_dataset("agedb_30", root=tmp_path).load(progress=False)
    assert str(path) in str(exc.value)
    assert not fiqa_bench.get_dataset("agedb_30", root=tmp_path).status().present


def test_wrong_pair_count_errors_unless_allowed(lfw_subset: dict, tmp_path: Path) -> None:
    bins, issame = _bin_content(lfw_subset, 600)
    _write_bin(tmp_path / "agedb_30.bin", bins, issame)
    with pytest.raises(DataFormatError, match="holds 600 pairs, the published agedb_30 file has 6000") as exc:
        fiqa_bench.get_dataset("agedb_30", root=tmp_path).load(progress=False)
    assert "expected_pairs=600" in str(exc.value) and "--skip-bad" in str(exc.value)
    data = fiqa_bench.get_dataset("agedb_30", root=tmp_path).load(skip_bad=True, progress=False)
    assert len(data.pairs) == 600 and len(data.skipped) == 1 and "6000" in data.skipped[0].why
    data = fiqa_bench.get_dataset("agedb_30", root=tmp_path, expected_pairs=600).load(progress=False)
    assert len(data.pairs) == 600 and not data.skipped
    assert np.array_equal(np.bincount(data.pairs.fold), np.full(10, 60))


def test_undecodable_and_wrong_size_images(lfw_subset: dict, tmp_path: Path) -> None:
    bins, issame = _bin_content(lfw_subset, 600)
    bins = list(bins)
    bins[7] = b"\xff\xd8\xff\xe0 not a jpeg at all"
    bins[20] = _encode(np.zeros((100, 120, 3), np.uint8))
    path = _write_bin(tmp_path / "agedb_30.bin", bins, issame)
    with pytest.raises(DataFormatError, match="cannot be decoded") as exc:
        load_insightface_bin(path, "agedb_30", expected_pairs=600, progress=False)
    assert f"{path}#00007" in str(exc.value)
    bins[7] = bins[0]
    _write_bin(path, bins, issame)
    with pytest.raises(DataFormatError, match="120x100 pixels, not an aligned 112x112") as exc:
        load_insightface_bin(path, "agedb_30", expected_pairs=600, progress=False)
    assert f"{path}#00020" in str(exc.value)
    bins[7] = b"garbage"
    _write_bin(path, bins, issame)
    data = load_insightface_bin(path, "agedb_30", expected_pairs=600, skip_bad=True, progress=False)
    assert len(data.pairs) == 598  # pairs 3 and 10 left out, counted
    kinds = sorted((s.what, s.where) for s in data.skipped)
    assert kinds == [
        ("image", f"{path}#00007"),
        ("image", f"{path}#00020"),
        ("pair", "agedb_30.bin pair 10"),
        ("pair", "agedb_30.bin pair 3"),
    ]
    assert data.pairs.fold[3] == 0 and np.bincount(data.pairs.fold)[0] == 58  # folds keep file positions


# -- XQLFW ------------------------------------------------------------------------------------------------


def test_xqlfw_loads_through_registry(data_root: dict, lfw_subset: dict) -> None:
    data = fiqa_bench.get_dataset("xqlfw", root=data_root["root"]).load(progress=False)
    order = data_root["xqlfw_order"]
    p = data.pairs
    assert len(p) == 120 and p.n_genuine == 60 and data.aligned and not data.skipped
    assert np.array_equal(p.fold, np.repeat(np.arange(6), 20))  # 6 folds from the "6<TAB>10" header
    assert np.array_equal(p.genuine, [g for _, _, g in order])
    assert len(data.faces) == len(lfw_subset["crops"])
    img = data_root["root"] / "xqlfw" / "xqlfw_aligned_112"
    for k in range(0, 120, 7):
        a, b, _ = order[k]
        assert data.faces.ids[p.a[k]] == f"xqlfw/{a}" and data.faces.ids[p.b[k]] == f"xqlfw/{b}"
        np.testing.assert_array_equal(data.faces.image(int(p.a[k])), _bgr_decode((img / a).read_bytes()))
        # Close to the aligned source crop (JPEG q95), far from its channel swap.
        src = lfw_subset["crops"][a].astype(np.int32)
        got = data.faces.image(int(p.a[k])).astype(np.int32)
        assert np.abs(got - src).mean() < 3 < np.abs(got - src[..., ::-1]).mean()


def test_xqlfw_pair_tokens_with_extension_and_default_folds(tmp_path: Path) -> None:
    path = tmp_path / "xqlfw_pairs.txt"
    lines = ["some header text"] + [
        "Abel_Pacheco 1 4",
        "Abel_Pacheco.jpg 0001.jpg 0004.jpg",
        "Ann Ann_0002.jpg Ann_0003.jpg",
        "Bob 1 Carl 2",
        "Bob.jpg Bob_0001.jpg Carl Carl_0002.jpg",
    ] * 4
    path.write_text("\n".join(lines) + "\n")
    rows, how, _ = parse_pairs(path)
    assert rows[0][:5] == ("Abel_Pacheco", 1, "Abel_Pacheco", 4, True) and rows[1][:5] == rows[0][:5]
    assert rows[2][:5] == ("Ann", 2, "Ann", 3, True)
    assert rows[3][:5] == ("Bob", 1, "Carl", 2, False) and rows[4][:5] == rows[3][:5]
    assert [r[5] for r in rows] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9]
    assert "10 equal folds" in how and rows[0][6] == 2


def _copy_xqlfw(data_root: dict, tmp_path: Path) -> Path:
    shutil.copytree(data_root["root"] / "xqlfw", tmp_path / "xqlfw")
    return tmp_path / "xqlfw"


def test_xqlfw_bad_pairs_line_names_file_and_line(data_root: dict, tmp_path: Path) -> None:
    folder = _copy_xqlfw(data_root, tmp_path)
    pf = folder / "xqlfw_pairs.txt"
    lines = pf.read_text().splitlines()
    lines[4] = "Only_Two tokens_here_x"
    pf.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as exc:
        fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(progress=False)
    assert f"{pf}:5" in str(exc.value) and "Only_Two" in str(exc.value)
    data = fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(skip_bad=True, progress=False)
    assert len(data.pairs) == 119 and [s.where for s in data.skipped] == [f"{pf}:5"]
    assert np.bincount(data.pairs.fold).tolist() == [19, 20, 20, 20, 20, 20]  # folds keep file positions


def test_xqlfw_missing_and_undecodable_images(data_root: dict, tmp_path: Path) -> None:
    folder = _copy_xqlfw(data_root, tmp_path)
    order = data_root["xqlfw_order"]
    missing = folder / "xqlfw_aligned_112" / order[0][1]  # second image of the pair on line 2
    missing.unlink()
    with pytest.raises(DataFormatError, match="does not exist") as exc:
        fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(progress=False)
    assert f"{folder / 'xqlfw_pairs.txt'}:2" in str(exc.value)
    broken_key = order[30][0]
    (folder / "xqlfw_aligned_112" / broken_key).write_bytes(b"\x89PNG broken")
    data = fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(skip_bad=True, progress=False)
    lost = [k for k, (a, b, _) in enumerate(order) if order[0][1] in (a, b) or broken_key in (a, b)]
    assert len(data.pairs) == 120 - len(lost)
    whats = [s.what for s in data.skipped]
    assert whats.count("image") == 1 and whats.count("pair") == len(lost)
    assert any(s.what == "image" and s.where.endswith(broken_key) for s in data.skipped)
    missing.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataFormatError, match="cannot be decoded") as exc:
        fiqa_bench.get_dataset("xqlfw", root=tmp_path).load(progress=False)
    assert str(folder / "xqlfw_aligned_112") in str(exc.value)


# -- generic pairs --------------------------------------------------------------------------------------


def test_pairs_tsv_with_own_columns_labels_and_folds(lfw_subset: dict, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    for k, crop in lfw_subset["crops"].items():
        (folder / "faces" / k).with_suffix(".png").parent.mkdir(parents=True, exist_ok=True)
        (folder / "faces" / k).with_suffix(".png").write_bytes(_encode(crop, ".png"))
    rows = ["left\tright\tsame\tsplit"]
    for i, (a, b, g) in enumerate(lfw_subset["pairs"]):
        rows.append(
            f"faces/{Path(a).with_suffix('.png').as_posix()}\tfaces/{Path(b).with_suffix('.png').as_posix()}\t{'yes' if g else 'no'}\t{i % 3 + 1}"
        )
    (folder / "my_pairs.tsv").write_text("\n".join(rows) + "\n")
    ds = fiqa_bench.get_dataset(
        "pairs",
        root=folder,
        pairs_file="my_pairs.tsv",
        column_a="left",
        column_b="right",
        column_label="same",
        column_fold="split",
    )
    assert ds.status().present and ds.status().n_pairs == 120
    data = ds.load(progress=False)
    p = data.pairs
    assert len(p) == 120 and p.n_genuine == 60 and data.aligned  # aligned=auto: all 112x112
    assert np.array_equal(p.fold, np.arange(120) % 3)
    for k in range(0, 120, 9):
        a = lfw_subset["pairs"][k][0]
        assert data.faces.ids[p.a[k]] == f"faces/{Path(a).with_suffix('.png').as_posix()}"
        np.testing.assert_array_equal(data.faces.image(int(p.a[k])), lfw_subset["crops"][a])  # lossless, RGB


def test_pairs_csv_argument_unaligned_images_aligned_on_the_fly(
    lfw_subset: dict, lfw_dir: Path, tmp_path: Path
) -> None:
    sel = lfw_subset["pairs"][:8] + lfw_subset["pairs"][N_PER_CLASS : N_PER_CLASS + 8]
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text(
        "image_a,image_b,genuine\n" + "".join(f"{a},{b},{'1' if g else '0'}\n" for a, b, g in sel)
    )
    ds = fiqa_bench.get_dataset(
        f"pairs:{csv_path}", images=str(lfw_dir / "images"), cache_dir=str(tmp_path / "cache")
    )
    data = ds.load(progress=False)
    assert not data.aligned and "aligned on the fly with yunet" in data.source
    assert len(data.pairs) == 16 and data.pairs.n_genuine == 8
    assert data.info["alignment_failure_rate"] == 0.0 and np.all(data.pairs.fold == 0)
    for k, (a, b, _) in enumerate(sel):  # the same YuNet crops as aligning the files directly
        np.testing.assert_array_equal(data.faces.image(int(data.pairs.a[k])), lfw_subset["crops"][a])
        np.testing.assert_array_equal(data.faces.image(int(data.pairs.b[k])), lfw_subset["crops"][b])
    assert data.faces.meta["det_score"].min() > 0.5
    again = fiqa_bench.get_dataset(
        f"pairs:{csv_path}", images=str(lfw_dir / "images"), cache_dir=str(tmp_path / "cache")
    )
    assert again.load(progress=False).fingerprint == data.fingerprint  # crops reused from the cache


def test_pairs_positional_semicolon_and_bad_rows(lfw_subset: dict, tmp_path: Path) -> None:
    folder = tmp_path / "set"
    keys = list(lfw_subset["crops"])[:4]
    for k in keys:
        (folder / k).parent.mkdir(parents=True, exist_ok=True)
        (folder / k).write_bytes(_encode(lfw_subset["crops"][k]))
    good = [f"{keys[0]};{keys[1]};same", f"{keys[2]};{keys[3]};different", "# a comment", ""]
    (folder / "pairs.csv").write_text("\n".join(good) + "\n")
    data = fiqa_bench.get_dataset("pairs", root=folder).load(progress=False)
    assert list(data.pairs.genuine) == [True, False]
    # Bad label: file and line named.
    (folder / "pairs.csv").write_text(
        "\n".join([*good[:2], f"{keys[0]};{keys[2]};maybe", f"{keys[1]};nothere/x.jpg;0"]) + "\n"
    )
    with pytest.raises(DataFormatError, match="label 'maybe'") as exc:
        fiqa_bench.get_dataset("pairs", root=folder).load(progress=False)
    assert f"{folder / 'pairs.csv'}:3" in str(exc.value)
    # Missing image: file and line named.
    (folder / "pairs.csv").write_text("\n".join([*good[:2], f"{keys[1]};nothere/x.jpg;0"]) + "\n")
    with pytest.raises(DataFormatError, match="does not exist") as exc:
        fiqa_bench.get_dataset("pairs", root=folder).load(progress=False)
    assert f"{folder / 'pairs.csv'}:3" in str(exc.value)
    # skip_bad: both counted, nothing silent.
    (folder / "pairs.csv").write_text(
        "\n".join([*good[:2], f"{keys[0]};{keys[2]};maybe", f"{keys[1]};nothere/x.jpg;0"]) + "\n"
    )
    data = fiqa_bench.get_dataset("pairs", root=folder).load(skip_bad=True, progress=False)
    assert len(data.pairs) == 2 and sorted(s.where for s in data.skipped) == [
        f"{folder / 'pairs.csv'}:3",
        f"{folder / 'pairs.csv'}:4",
    ]
    # Unknown option: one clear error.
    with pytest.raises(FiqaError, match="unknown option"):
        fiqa_bench.get_dataset("pairs", root=folder, colum_a="x")


# -- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_run_on_all_six_published_formats(
    lfw_subset: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``fiqa-bench run --datasets lfw,agedb_30,cfp_fp,calfw,cplfw,xqlfw --data-root DIR`` on published-format
    files (5 + 5 real pairs each, cycled to the published pair counts; SFace + a cheap method)."""
    import pandas as pd

    from fiqa_bench.cli import main

    base = tmp_path_factory.mktemp("e2e")
    root = base / "data"
    root.mkdir()
    small = {
        "pairs": lfw_subset["pairs"][:5] + lfw_subset["pairs"][N_PER_CLASS : N_PER_CLASS + 5],
        "crops": lfw_subset["crops"],
    }
    small["crops"] = {
        k: v for k, v in lfw_subset["crops"].items() if any(k in (a, b) for a, b, _ in small["pairs"])
    }
    for name, n in (("lfw", 6000), ("agedb_30", 6000), ("cfp_fp", 7000), ("calfw", 6000), ("cplfw", 6000)):
        bins, issame = _bin_content({"pairs": small["pairs"], "crops": small["crops"]}, n)
        save_insightface_bin(root / f"{name}.bin", bins, issame)
    (root / "xqlfw").mkdir()
    _xqlfw_folder({"pairs": small["pairs"], "crops": small["crops"]}, root / "xqlfw", per_fold=1)
    out = base / "out"
    rc = main(
        [
            "run",
            "--datasets",
            "lfw,agedb_30,cfp_fp,calfw,cplfw,xqlfw",
            "--models",
            "sface",
            "--methods",
            "sharpness",
            "--data-root",
            str(root),
            "--out",
            str(out),
            "--cache-dir",
            str(base / "cache"),
            "--no-report",
            "--quiet",
        ]
    )
    assert rc == 0
    res = pd.read_csv(out / "results.csv")
    counts = res.groupby("dataset")["n_pairs"].first().to_dict()
    assert counts == {
        "lfw": 6000,
        "agedb_30": 6000,
        "cfp_fp": 7000,
        "calfw": 6000,
        "cplfw": 6000,
        "xqlfw": 10,
    }
    assert res["auc"].notna().all()
    with np.load(out / "pairs" / "agedb_30__sface.npz") as z:  # real faces, right colours: SFace separates
        sim, gen = z["similarity"], z["genuine"]
    assert sim[gen].mean() > sim[~gen].mean() + 0.3
