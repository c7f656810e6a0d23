"""Cache faults (issue 15, sections 2-3): damaged chunks and crop caches are quarantined, reported in one
line and recomputed; every batch is its own chunk (bounded loss); concurrent writers, mergers and crop
builders never corrupt the cache; full/read-only disks become one-line errors with no temporary file left."""

from __future__ import annotations

import errno
import logging
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from fiqa_bench import cache as cache_mod
from fiqa_bench.cache import (
    Cache,
    CacheSlot,
    DiskWriteError,
    cached_crops,
    ensure_writable_dir,
    save_checksummed_npz,
)

IDS = [f"img{i:02d}" for i in range(12)]
EMB = np.arange(12 * 4, dtype=np.float32).reshape(12, 4) / 7.0


def _slot(root: Path, row_shape: tuple[int, ...] | None = (4,)) -> CacheSlot:
    return Cache(root).slot("set", "fp", "embedding", "model", "abc", row_shape=row_shape)


def _fill(slot: CacheSlot) -> list[Path]:
    """Three chunks of four rows (one per batch, as the pipeline writes them)."""
    with slot.writer() as w:
        for k in range(3):
            w.add(IDS[4 * k : 4 * k + 4], EMB[4 * k : 4 * k + 4])
    return sorted(slot.dir.glob("chunk-*.npz"))


def _flip_value_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    needle = EMB[4:8].tobytes()[8:16]  # inside the second chunk's values (stored, not compressed)
    at = data.find(needle)
    assert at > 0
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _damage(kind: str, path: Path) -> None:
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "emptied":
        path.write_bytes(b"")
    elif kind == "byte_flipped":
        _flip_value_byte(path)
    elif kind == "checksum_mismatch":  # a valid zip whose values no longer match their checksum
        with np.load(path) as z:
            arrays = dict(z)
        arrays["values"] = arrays["values"] + 1
        np.savez(path, **arrays)
    elif kind == "wrong_width":
        save_checksummed_npz(path, ids=np.array(IDS[4:8]), values=np.ones((4, 5), np.float32))
    elif kind == "nan":
        values = EMB[4:8].copy()
        values[1, 2] = np.nan
        save_checksummed_npz(path, ids=np.array(IDS[4:8]), values=values)
    else:
        raise AssertionError(kind)


DAMAGES = ["truncated", "emptied", "byte_flipped", "checksum_mismatch", "wrong_width", "nan"]


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_chunk_is_quarantined_reported_and_recomputed(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    slot = _slot(tmp_path)
    chunks = _fill(slot)
    _damage(damage, chunks[1])
    with caplog.at_level(logging.WARNING, logger="fiqa_bench.cache"):
        values, missing = slot.load(IDS)
    # Before: truncated/emptied/flipped were skipped by load but crashed consolidate; wrong width and
    # NaN rows were used. Now: the four rows of the damaged chunk are missing (recomputed) ...
    assert missing.tolist() == [False] * 4 + [True] * 4 + [False] * 4
    np.testing.assert_array_equal(values[~missing], EMB[~missing])
    # ... the file is moved aside, and one line says which and why.
    assert not chunks[1].exists()
    assert len(list((slot.dir / "quarantine").iterdir())) == 1
    lines = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(lines) == 1 and chunks[1].name in lines[0] and "\n" not in lines[0]
    assert slot.stats["quarantined"] == 1
    # A rerun fills the gap; the slot is whole again.
    with slot.writer() as w:
        w.add(IDS[4:8], EMB[4:8])
    slot.consolidate()
    values, missing = slot.load(IDS)
    assert not missing.any()
    np.testing.assert_array_equal(values, EMB)


@pytest.mark.parametrize("damage", DAMAGES)
def test_consolidate_quarantines_damaged_chunks_instead_of_crashing(tmp_path: Path, damage: str) -> None:
    slot = _slot(tmp_path)
    chunks = _fill(slot)
    _damage(damage, chunks[1])
    slot.consolidate()  # before: BadZipFile / EOFError for truncated, emptied, flipped
    files = list(slot.dir.glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("merged-")
    values, missing = slot.load(IDS)
    assert missing.tolist() == [False] * 4 + [True] * 4 + [False] * 4
    np.testing.assert_array_equal(values[~missing], EMB[~missing])


def test_width_is_checked_against_the_first_writer_when_the_model_does_not_say(tmp_path: Path) -> None:
    slot = _slot(tmp_path, row_shape=None)  # an onnx:PATH model with no declared embedding size
    chunks = _fill(slot)
    _damage("wrong_width", chunks[1])
    _, missing = _slot(tmp_path, row_shape=None).load(IDS)  # slot.json recorded width 4
    assert missing[4:8].all() and not missing[:4].any()


def test_legacy_chunk_without_checksum_is_still_read(tmp_path: Path) -> None:
    slot = _slot(tmp_path)
    slot.dir.mkdir(parents=True)
    np.savez(slot.dir / "chunk-old.npz", ids=np.array(IDS), values=EMB)  # zip CRC-32 still checked
    values, missing = slot.load(IDS)
    assert not missing.any()
    np.testing.assert_array_equal(values, EMB)


def test_every_batch_is_published_at_once_and_non_finite_rows_are_not_cached(tmp_path: Path) -> None:
    slot = Cache(tmp_path).slot("set", "fp", "quality", "m", "abc")
    w = slot.writer()
    w.add(["a", "b"], np.array([1.0, 2.0]))
    # No close, no flush: a SIGKILL now keeps this batch.
    assert not slot.load(["a", "b"])[1].any()
    w.add(["c", "d"], np.array([np.nan, 4.0]))
    assert w.rows_not_cached == 1
    values, missing = slot.load(["a", "b", "c", "d"])
    assert missing.tolist() == [False, False, True, False] and values[3] == 4.0


def _writer_process(root: str, worker: int, rounds: int) -> None:
    slot = _slot(Path(root))
    rng = np.random.default_rng(worker)
    for _ in range(rounds):
        pick = np.sort(rng.choice(len(IDS), 4, replace=False))
        with slot.writer() as w:
            w.add([IDS[i] for i in pick], EMB[pick])
        slot.consolidate()
        values, missing = slot.load(IDS)
        if values is not None:
            np.testing.assert_array_equal(values[~missing], EMB[~missing])


def test_concurrent_writers_and_mergers_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer_process, args=(str(tmp_path), k, 15)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    slot = _slot(tmp_path)
    values, missing = slot.load(IDS)
    written = ~missing
    assert written.sum() >= 4
    np.testing.assert_array_equal(values[written], EMB[written])
    assert not (slot.dir / "quarantine").exists()
    assert not list(slot.dir.glob(".*"))  # no temporary file left behind


# -- aligned-crop cache ---------------------------------------------------------------------------------

SHAPE = (6, 112, 112, 3)


def _compute(out: np.ndarray) -> dict[str, np.ndarray]:
    out[:] = (np.arange(np.prod(SHAPE)) % 251).reshape(SHAPE).astype(np.uint8)
    return {"status": np.zeros(SHAPE[0], np.int8), "landmarks": np.ones((SHAPE[0], 5, 2), np.float32)}


@pytest.mark.parametrize(
    "damage", ["truncated_npy", "flipped_npy", "emptied_meta", "flipped_meta", "meta_missing"]
)
def test_damaged_crop_cache_is_quarantined_and_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    final = tmp_path / "aligned" / "set-abc"
    crops, meta = cached_crops(final, SHAPE, _compute)
    expected = np.array(crops)
    npy, meta_file = final / "crops.npy", final / "meta.npz"
    del crops
    if damage == "truncated_npy":
        npy.write_bytes(npy.read_bytes()[:-1000])
    elif damage == "flipped_npy":  # before: silently changed similarities (up to 0.017 on LFW)
        data = bytearray(npy.read_bytes())
        data[len(data) // 2] ^= 0x01
        npy.write_bytes(bytes(data))
    elif damage == "emptied_meta":
        meta_file.write_bytes(b"")
    elif damage == "flipped_meta":
        data = bytearray(meta_file.read_bytes())
        data[data.find(np.ones(3, np.float32).tobytes())] ^= 0x40
        meta_file.write_bytes(bytes(data))
    else:
        meta_file.unlink()
    calls = []

    def compute(out: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(1)
        return _compute(out)

    with caplog.at_level(logging.WARNING, logger="fiqa_bench.cache"):
        crops, meta = cached_crops(final, SHAPE, compute)
    assert calls == [1]  # rebuilt once, not crashed
    np.testing.assert_array_equal(crops, expected)
    assert meta["landmarks"].shape == (6, 5, 2)
    assert len(list((final.parent / "quarantine").iterdir())) == 1
    assert sum("damaged" in r.getMessage() for r in caplog.records) == 1
    cached_crops(final, SHAPE, lambda out: pytest.fail("a good cache must not be rebuilt"))


def test_crop_cache_replaces_the_old_unverified_files(tmp_path: Path) -> None:
    final = tmp_path / "aligned" / "set-abc"
    final.parent.mkdir(parents=True)
    for ext in (".npy", ".meta.npz", ".npz"):
        (final.parent / f"set-abc{ext}").write_bytes(b"old layout")
    cached_crops(final, SHAPE, _compute)
    assert sorted(p.name for p in final.parent.iterdir()) == ["set-abc"]


def _crop_process(root: str, queue: mp.Queue) -> None:
    crops, meta = cached_crops(Path(root) / "aligned" / "set-abc", SHAPE, _compute)
    queue.put(int(np.asarray(crops, np.int64).sum()))


def test_concurrent_crop_builders_share_one_valid_cache(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_crop_process, args=(str(tmp_path), queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    sums = {queue.get(timeout=5) for _ in procs}
    expected = np.zeros(SHAPE, np.uint8)
    _compute(expected)
    assert sums == {int(expected.astype(np.int64).sum())}
    assert sorted(p.name for p in (tmp_path / "aligned").iterdir()) == ["set-abc"]  # no temp folder left


# -- disk faults ------------------------------------------------------------------------------------------


class _FullFile:
    def __init__(self, f: object) -> None:
        self.f = f

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()  # type: ignore[attr-defined]

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> object:
        return getattr(self.f, name)


def _full_disk(monkeypatch: pytest.MonkeyPatch, under: Path) -> None:
    """Writes of files under ``under`` fail with ENOSPC (after the file was created, as on a full disk)."""
    real_open = open

    def fake_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        f = real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]
        if "w" in mode and str(file).startswith(str(under)):
            return _FullFile(f)
        return f

    monkeypatch.setattr(cache_mod, "open", fake_open, raising=False)


def test_full_disk_is_one_line_with_sizes_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slot = _slot(tmp_path)
    _full_disk(monkeypatch, tmp_path)
    with pytest.raises(DiskWriteError) as info:
        with slot.writer() as w:
            w.add(IDS[:4], EMB[:4])
    msg = str(info.value)
    assert "no space left" in msg and "needed" in msg and "free" in msg and "--cache-dir" in msg
    assert "\n" not in msg and str(slot.dir) in msg and ".tmp" not in msg  # the file, not our temp
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_read_only_folder_and_file_in_the_way_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    with pytest.raises(DiskWriteError, match=r"results: is a file, not a folder.*--out"):
        ensure_writable_dir(a_file, "--out")
    real_open = open

    def read_only(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode:
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(cache_mod, "open", read_only, raising=False)
    with pytest.raises(DiskWriteError, match="read-only or permission denied.*--cache-dir") as info:
        ensure_writable_dir(tmp_path / "cache", "--cache-dir")
    assert "\n" not in str(info.value)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_out_check_leaves_no_empty_folder(tmp_path: Path) -> None:
    ensure_writable_dir(tmp_path / "a" / "b", "--out", keep=False)
    assert not (tmp_path / "a").exists()
    ensure_writable_dir(tmp_path / "c", "--cache-dir")
    assert (tmp_path / "c").is_dir() and not list((tmp_path / "c").iterdir())


def test_damaged_slot_record_is_rewritten_by_the_next_writer(tmp_path: Path) -> None:
    slot = _slot(tmp_path, row_shape=None)
    _fill(slot)
    (slot.dir / "slot.json").write_text('{"row_shape": [5], "dtype": "<f4"}')  # a flipped digit
    _, missing = slot.load(IDS)
    assert missing.all()  # every chunk disagrees with the record: recomputed ...
    _fill(slot)  # ... and the writer corrects the record, so the rows stay cached from now on
    _, missing = _slot(tmp_path, row_shape=None).load(IDS)
    assert not missing.any()
