"""The on-disk cache: values keyed by image id, atomic chunks, resume after interruption."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fiqa_bench.cache import Cache


def test_roundtrip_partial_and_resume(tmp_path: Path) -> None:
    slot = Cache(tmp_path).slot("set", "fp1", "embedding", "model", "abc")
    ids = [f"img{i}" for i in range(10)]
    values, missing = slot.load(ids)
    assert values is None and missing.all()
    emb = np.arange(40, dtype=np.float32).reshape(10, 4)
    with slot.writer(flush_rows=3) as w:
        w.add(ids[:4], emb[:4])
        w.add(ids[4:6], emb[4:6])
    # An interrupted run: rows 0..5 were written, 6..9 never were.
    values, missing = slot.load(ids)
    assert missing.tolist() == [False] * 6 + [True] * 4
    np.testing.assert_array_equal(values[:6], emb[:6])
    with slot.writer() as w:
        w.add(ids[6:], emb[6:])
    slot.consolidate()
    assert len(list(slot.dir.glob("*.npz"))) == 1
    values, missing = slot.load(list(reversed(ids)))
    assert not missing.any()
    np.testing.assert_array_equal(values, emb[::-1])


def test_damaged_chunk_is_recomputed_not_trusted(tmp_path: Path) -> None:
    slot = Cache(tmp_path).slot("set", "fp1", "quality", "m", "abc")
    with slot.writer() as w:
        w.add(["a", "b"], np.array([1.0, 2.0]))
    chunk = next(slot.dir.glob("*.npz"))
    chunk.write_bytes(chunk.read_bytes()[:20])
    _, missing = slot.load(["a", "b"])
    assert missing.all()


def test_slots_are_separated_by_fingerprints(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    a = cache.slot("set", "fp1", "quality", "m", "abc")
    b = cache.slot("set", "fp2", "quality", "m", "abc")
    c = cache.slot("set", "fp1", "quality", "m", "xyz")
    with a.writer() as w:
        w.add(["x"], np.array([1.0]))
    assert not a.load(["x"])[1].any()
    assert b.load(["x"])[1].all() and c.load(["x"])[1].all()
