"""Content-addressed, resumable on-disk cache of per-image arrays (embeddings, quality scores).

A *slot* holds the outputs of one producer (an FR model or a quality method, identified by its card,
weights hash and options) on one dataset (identified by its fingerprint). Rows are keyed by image id,
so the same slot can be filled by one process or by many (torchrun shards) in any order. Results are
written in chunk files with an atomic rename: an interrupted run keeps every chunk it finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "FIQA_BENCH_CACHE"


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/fiqa-bench").expanduser()


def key_of(parts: Iterable[Any]) -> str:
    blob = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CacheSlot:
    def __init__(self, directory: Path, description: dict[str, Any]) -> None:
        self.dir = directory
        self.description = description

    def _chunks(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.npz") if not p.name.startswith("."))

    def load(self, ids: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Cached values for ``ids`` (rows of missing ids are zero) and the boolean mask of missing ids."""
        missing = np.ones(len(ids), dtype=bool)
        values: np.ndarray | None = None
        chunks = self._chunks()
        if not chunks:
            return None, missing
        position = {id_: i for i, id_ in enumerate(ids)}
        for path in chunks:
            try:
                with np.load(path, allow_pickle=False) as z:
                    chunk_ids, chunk_values = z["ids"], z["values"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
                continue  # a damaged chunk is recomputed, never trusted
            rows = np.array([position.get(str(i), -1) for i in chunk_ids], dtype=np.int64)
            keep = rows >= 0
            if not keep.any():
                continue
            if values is None:
                values = np.zeros((len(ids), *chunk_values.shape[1:]), dtype=chunk_values.dtype)
            values[rows[keep]] = chunk_values[keep]
            missing[rows[keep]] = False
        return values, missing

    def writer(self, flush_rows: int = 2048, flush_seconds: float = 60.0, tag: str = "") -> SlotWriter:
        return SlotWriter(self, flush_rows, flush_seconds, tag)

    def consolidate(self) -> None:
        """Merge chunk files into one (fewer files to read next time)."""
        chunks = self._chunks()
        if len(chunks) <= 1:
            return
        all_ids, all_values = [], []
        for path in chunks:
            with np.load(path, allow_pickle=False) as z:
                all_ids.append(z["ids"])
                all_values.append(z["values"])
        ids = np.concatenate(all_ids)
        _, first = np.unique(ids, return_index=True)
        first.sort()
        merged = self.dir / f"merged-{uuid.uuid4().hex[:12]}.npz"
        atomic_save_npz(merged, ids=ids[first], values=np.concatenate(all_values)[first])
        for path in chunks:
            path.unlink(missing_ok=True)


class SlotWriter:
    """Buffers rows and writes them as chunk files; use as a context manager so the tail is flushed."""

    def __init__(self, slot: CacheSlot, flush_rows: int, flush_seconds: float, tag: str) -> None:
        self.slot = slot
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.tag = tag
        self._ids: list[str] = []
        self._values: list[np.ndarray] = []
        self._last = time.monotonic()
        self.rows_written = 0

    def add(self, ids: list[str], values: np.ndarray) -> None:
        self._ids.extend(ids)
        self._values.append(np.asarray(values))
        if len(self._ids) >= self.flush_rows or time.monotonic() - self._last > self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self._ids:
            return
        self.slot.dir.mkdir(parents=True, exist_ok=True)
        meta = self.slot.dir / "slot.json"
        if not meta.exists():
            tmp = meta.with_name(f".slot.{uuid.uuid4().hex}.tmp")
            tmp.write_text(json.dumps(self.slot.description, indent=1, sort_keys=True, default=str))
            os.replace(tmp, meta)
        name = f"chunk-{self.tag}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        atomic_save_npz(self.slot.dir / name, ids=np.array(self._ids, dtype=str), values=np.concatenate(self._values))
        self.rows_written += len(self._ids)
        self._ids, self._values = [], []
        self._last = time.monotonic()

    def __enter__(self) -> SlotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


class Cache:
    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()

    def slot(self, dataset: str, dataset_fingerprint: str, kind: str, producer: str, producer_fingerprint: str) -> CacheSlot:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in producer)[:60]
        directory = self.root / "v1" / f"{dataset}-{dataset_fingerprint}" / kind / f"{safe}-{producer_fingerprint}"
        return CacheSlot(
            directory,
            {
                "dataset": dataset,
                "dataset_fingerprint": dataset_fingerprint,
                "kind": kind,
                "producer": producer,
                "producer_fingerprint": producer_fingerprint,
            },
        )
