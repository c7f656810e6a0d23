"""RecordIO reader/writer and ``fiqa-bench pack`` on real aligned LFW faces (formats as REFERENCE.md 2)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from fiqa_bench.training.data import RecordIOFaceDataset
from fiqa_bench.training.pack import pack_folder
from fiqa_bench.training.recordio import (
    MAGIC,
    RecordIOReader,
    RecordIOWriter,
    encode_record,
    pack_payload,
    unpack_payload,
)

from fiqa_bench.errors import DataFormatError
from fiqa_bench.faces import decode_rgb

pytestmark = pytest.mark.realdata

N_IDENTITIES, MAX_PER_IDENTITY = 30, 6


def build_lfw_train_tree(lfw_dir: Path, base: Path) -> Path:
    """Real LFW identities with >= 4 images, aligned (YuNet) to 112x112 PNGs: base/lfw_tree/<name>/*.png.

    Built once per session (a marker file makes a second caller reuse it)."""
    import cv2

    from fiqa_bench.faces import YuNetDetector, align, read_rgb

    tree = base / "lfw_tree"
    if (tree / ".done").is_file():
        return tree
    det = YuNetDetector()
    people = [p for p in sorted((lfw_dir / "images").iterdir()) if len(list(p.glob("*.jpg"))) >= 4]
    for person in people[:N_IDENTITIES]:
        (tree / person.name).mkdir(parents=True, exist_ok=True)
        for path in sorted(person.glob("*.jpg"))[:MAX_PER_IDENTITY]:
            face, _ = align(read_rgb(path), det)
            if face is not None:
                cv2.imwrite(str(tree / person.name / (path.stem + ".png")), face[..., ::-1])
    (tree / ".done").write_text("ok")
    return tree


def build_lfw_rec(lfw_dir: Path, base: Path) -> Path:
    out = base / "lfw_rec"
    if not (out / "property").is_file():
        pack_folder(build_lfw_train_tree(lfw_dir, base), out, progress=False)  # JPEG, as insightface's sets
    return out


@pytest.fixture(scope="session")
def lfw_train_tree(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lfw_train_tree(lfw_dir, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def lfw_rec(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lfw_rec(lfw_dir, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def lfw_png_rec(lfw_train_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lfw_png_rec")
    pack_folder(lfw_train_tree, out, fmt="png", progress=False)
    return out


def test_meta_record_and_layout(lfw_rec: Path, lfw_train_tree: Path) -> None:
    identities = sorted(p for p in lfw_train_tree.iterdir() if p.is_dir())
    n = sum(len(list(p.glob("*.png"))) for p in identities)
    c = len(identities)
    r = RecordIOReader(lfw_rec / "train.rec", lfw_rec / "train.idx")
    head, rest = r.unpack(0)
    # insightface: record 0 labels = (one past last image key, one past last identity record key).
    assert head.flag == 2 and rest == b""
    assert list(head.label) == [n + 1, n + c + 1]
    # identity records hold [first, end) image keys; image labels agree with them
    first, end = r.header(n + 1).label
    assert first == 1 and all(r.header(k).first_label == 0 for k in range(int(first), int(end)))
    assert r.header(int(end)).first_label == 1
    assert (lfw_rec / "property").read_text() == f"{c},112,112"
    # the idx is key<TAB>offset text and every offset starts with the magic word
    lines = (lfw_rec / "train.idx").read_text().splitlines()
    assert len(lines) == n + c + 1 and lines[0] == "0\t0"
    raw = (lfw_rec / "train.rec").read_bytes()
    for line in lines[:20]:
        off = int(line.split("\t")[1])
        assert struct.unpack_from("<I", raw, off)[0] == MAGIC


def test_png_round_trip_pixels_equal(lfw_png_rec: Path, lfw_train_tree: Path) -> None:
    ds = RecordIOFaceDataset(lfw_png_rec)
    identities = sorted(p for p in lfw_train_tree.iterdir() if p.is_dir())
    files = [(label, f) for label, p in enumerate(identities) for f in sorted(p.glob("*.png"))]
    assert len(ds) == len(files) and ds.num_classes == len(identities)
    for i in (0, len(files) // 2, len(files) - 1):
        label, path = files[i]
        header, data = ds.reader.unpack(int(ds.keys[i]))
        assert int(header.first_label) == label
        np.testing.assert_array_equal(decode_rgb(data), decode_rgb(path.read_bytes()))
        x, y = ds[i]
        assert y == label
        expected = (decode_rgb(path.read_bytes()).astype(np.float32) / 255 - 0.5) / 0.5
        np.testing.assert_allclose(x.numpy(), expected.transpose(2, 0, 1), atol=1e-6)
        xf, _ = ds[(i, True)]
        np.testing.assert_allclose(xf.numpy(), expected[:, ::-1].transpose(2, 0, 1), atol=1e-6)


def test_magic_inside_payload_is_split_and_restored(tmp_path: Path) -> None:
    magic = struct.pack("<I", MAGIC)
    payloads = [b"abcd" + magic + b"efgh" + magic + magic + b"xy", b"a" + magic + b"bcd", magic, b"plain"]
    with RecordIOWriter(tmp_path / "m.rec") as w:
        for k, p in enumerate(payloads):
            w.write(k, p)
    r = RecordIOReader(tmp_path / "m.rec")
    assert [r.read(k) for k in range(len(payloads))] == payloads
    # the aligned magic splits the first record into 4 parts (flags 1, 2, 2, 3)
    enc = encode_record(payloads[0])
    flags = []
    pos = 0
    while pos < len(enc):
        m, lrec = struct.unpack_from("<II", enc, pos)
        assert m == MAGIC
        flags.append(lrec >> 29)
        n = lrec & ((1 << 29) - 1)
        pos += 8 + n + (-n % 4)
    assert flags == [1, 2, 2, 3]


def test_payload_header_struct() -> None:
    p = pack_payload(7.0, b"IMG", id=3, id2=9)
    assert p[:24] == struct.pack("<IfQQ", 0, 7.0, 3, 9) and p[24:] == b"IMG"
    h, rest = unpack_payload(pack_payload((5, 6.5), b"JPEG"))
    assert h.flag == 2 and list(h.label) == [5.0, 6.5] and rest == b"JPEG" and h.first_label == 5.0


def test_truncated_and_corrupt_files_name_the_offset(lfw_rec: Path, tmp_path: Path) -> None:
    raw = (lfw_rec / "train.rec").read_bytes()
    idx = (lfw_rec / "train.idx").read_text()
    offsets = [int(line.split("\t")[1]) for line in idx.splitlines()]
    last = max(offsets)
    # truncated: cut inside the last record's payload
    (tmp_path / "t.rec").write_bytes(raw[: last + 20])
    (tmp_path / "t.idx").write_text(idx)
    r = RecordIOReader(tmp_path / "t.rec")
    key = offsets.index(last)
    with pytest.raises(DataFormatError, match=rf"t\.rec: truncated record .* at byte offset {last}\b"):
        r.read(key)
    # corrupt: overwrite the magic of record 5
    off5 = offsets[5]
    bad = bytearray(raw)
    bad[off5 : off5 + 4] = b"\xde\xad\xbe\xef"
    (tmp_path / "c.rec").write_bytes(bytes(bad))
    (tmp_path / "c.idx").write_text(idx)
    r = RecordIOReader(tmp_path / "c.rec")
    with pytest.raises(DataFormatError, match=rf"c\.rec: bad magic 0xEFBEADDE .* at byte offset {off5}\b"):
        r.read(5)
    assert r.read(4) == RecordIOReader(lfw_rec / "train.rec").read(4)  # other records still readable
    # an index that points past the end of the file
    (tmp_path / "s.rec").write_bytes(raw[:100])
    (tmp_path / "s.idx").write_text(idx)
    with pytest.raises(DataFormatError, match=r"s\.idx: offset \d+ of key \d+ lies outside s\.rec"):
        RecordIOReader(tmp_path / "s.rec")


def test_reader_reopens_after_pickling_and_fork(lfw_rec: Path) -> None:
    r = RecordIOReader(lfw_rec / "train.rec")
    a = r.read(3)
    r2 = pickle.loads(pickle.dumps(r))
    assert r2._fh is None and r2.read(3) == a
    r._pid = -12345  # as if this object had been inherited by a forked worker
    old = r._fh
    assert r.read(3) == a and r._fh is not old


def test_pack_align_counts_failures(lfw_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    person = sorted(p for p in (lfw_dir / "images").iterdir() if len(list(p.glob("*.jpg"))) >= 2)[0]
    (src / person.name).mkdir(parents=True)
    for f in sorted(person.glob("*.jpg"))[:2]:
        (src / person.name / f.name).write_bytes(f.read_bytes())
    (src / person.name / "blank.png").write_bytes(b"not an image")
    with pytest.raises(DataFormatError, match=r"blank\.png: is not an image file.*--skip-bad"):
        pack_folder(src, tmp_path / "strict", align=True, progress=False)
    counts = pack_folder(src, tmp_path / "out", align=True, progress=False, skip_bad=True)
    assert counts == {"images": 2, "classes": 1, "skipped": 1}
    assert (
        "blank.png\tundecodable: is not an image file" in (tmp_path / "out" / "pack_skipped.txt").read_text()
    )
    (src / person.name / "blank.png").unlink()
    with pytest.raises(DataFormatError, match="not an aligned 112x112 face"):
        pack_folder(src, tmp_path / "out2", progress=False)
