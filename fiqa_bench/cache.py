"""Content-addressed, resumable on-disk cache of per-image arrays (embeddings, quality scores).

A *slot* holds the outputs of one producer (an FR model or a quality method, identified by its card,
weights hash and options) on one dataset (identified by its fingerprint). Rows are keyed by image id,
so the same slot can be filled by one process or by many (torchrun shards, concurrent runs) in any order.

Rules every read and write follows (one place for each):

- **Bounded loss.** A writer publishes one chunk file per batch it is given (no fsync: a killed process
  loses nothing the kernel already has), so a SIGKILL loses at most the batch in flight; ``consolidate``
  later merges the chunks into one durable (fsynced) file.
- **Verified reads.** Every chunk carries a BLAKE2b checksum of its ids and values next to the zip's own
  CRC-32; a read checks the members, shapes, dtype, row width, finiteness and checksum. A chunk that fails
  is quarantined (moved to ``<slot>/quarantine/``), reported in one log line and its rows are recomputed.
  Rows with non-finite values are never written, so a NaN in the cache can only come from damage.
- **Concurrent writers.** Temporary files have names unique per host, process and call; a finished file
  appears by one atomic rename (or, for folders, rename-or-accept-existing), so nothing is read before it
  is complete. ``consolidate`` deletes only files whose rows it has already published in a merged file,
  and a reader whose listed file vanished under a concurrent merge lists the folder again.
- **Disk faults.** A full disk, a read-only or missing folder, or a file where a folder belongs becomes a
  one-line ``DiskWriteError`` naming the path (and, for a full disk, the bytes needed and free); the
  temporary file is removed on every failure.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import socket
import time
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FiqaError

log = logging.getLogger("fiqa_bench.cache")

CACHE_ENV = "FIQA_BENCH_CACHE"
QUARANTINE = "quarantine"
_HOST = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())[:32] or "host"
STALE_TMP_SECONDS = 24 * 3600  # a temporary file this old is garbage whoever made it


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path("~/.cache/fiqa-bench").expanduser()


def key_of(parts: Iterable[Any]) -> str:
    blob = json.dumps(list(parts), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


# -- disk faults -------------------------------------------------------------------------------------


class DiskWriteError(FiqaError, OSError):
    """A file or folder could not be written (full disk, read-only, not a folder); one line, exit 2."""


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def disk_error(exc: OSError, path: Path, needed: int | None = None, option: str = "") -> DiskWriteError:
    """The one-line error for an OSError met while writing ``path`` (``option``: the flag choosing it)."""
    elsewhere = f" or choose another folder with {option}" if option else ""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        free = _free_bytes(path)
        need = f"{_size(needed)} needed" if needed is not None else "more space needed"
        have = f", {_size(free)} free" if free is not None else ""
        return DiskWriteError(
            f"{path}: no space left on the device ({need}{have}). Fix: free space{elsewhere}."
        )
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DiskWriteError(
            f"{path}: cannot write there (read-only or permission denied). Fix: make it writable{elsewhere}."
        )
    if code in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        return DiskWriteError(
            f"{path}: a file stands where a folder is needed (or the reverse). Fix: move it away{elsewhere}."
        )
    return DiskWriteError(f"{path}: cannot write ({exc.strerror or exc}). Fix: check the disk{elsewhere}.")


@contextlib.contextmanager
def writing(path: Path, needed: int | None = None, option: str = "") -> Iterator[None]:
    """Turn an OSError raised inside the block into a one-line DiskWriteError about ``path``."""
    try:
        yield
    except DiskWriteError:
        raise
    except OSError as exc:
        where = Path(exc.filename) if exc.filename else path
        if (where.name.startswith(".") and ".tmp" in where.name) or ".tmp/" in str(where):
            where = path  # name what the user asked for, not our temporary file
        raise disk_error(exc, where, needed, option) from None


def ensure_writable_dir(path: Path, option: str = "", keep: bool = True) -> Path:
    """Prove that ``path`` is (or can become) a folder that takes a file; a DiskWriteError otherwise.
    Run before any work so a read-only or mistaken folder fails in a second, not after hours. With
    ``keep=False`` the folders this check had to create are removed again (created for real once the
    first result is written, so a run that fails early leaves no empty folder)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DiskWriteError(
            f"{path}: is a file, not a folder. Fix: remove it or name a folder"
            + (f" with {option}." if option else ".")
        )
    created = [p for p in (path, *path.parents) if not p.exists()]
    with writing(path, 1, option):
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0")
        finally:
            probe.unlink(missing_ok=True)
            if not keep:
                for p in created:  # deepest first
                    with contextlib.suppress(OSError):
                        p.rmdir()
    return path


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True, option: str = "") -> None:
    """Write ``data`` to ``path`` through a uniquely named temporary file and one atomic rename; the
    temporary file is removed on any failure; OSError becomes a one-line DiskWriteError."""
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        with writing(path, len(data), option):
            with open(tmp, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def npz_bytes(compressed: bool = False, **arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def atomic_save_npz(
    path: Path, *, durable: bool = True, option: str = "", compressed: bool = False, **arrays: np.ndarray
) -> None:
    atomic_write_bytes(path, npz_bytes(compressed, **arrays), durable=durable, option=option)


def atomic_write_text(path: Path, text: str, *, option: str = "") -> None:
    atomic_write_bytes(path, text.encode(), option=option)


def publish_dir(tmp_dir: Path, final_dir: Path) -> bool:
    """Rename a finished temporary folder to ``final_dir``; if another process published it first, keep
    theirs (rename-or-accept-existing) and remove ours. True when ours was published."""
    try:
        os.rename(tmp_dir, final_dir)
        return True
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise disk_error(exc, final_dir, option="--cache-dir") from None
        shutil.rmtree(tmp_dir, ignore_errors=True)
        return False


def remove_stale_tmp(folder: Path) -> int:
    """Delete temporary files left in ``folder`` by processes that died (same host, pid gone) or long ago."""
    removed = 0
    try:
        entries = list(folder.glob(".*.tmp"))
    except OSError:
        return 0
    now = time.time()
    for p in entries:
        owner = p.name[: -len(".tmp")].rsplit(".", 1)[-1].rsplit("-", 2)
        dead = len(owner) == 3 and owner[0] == _HOST and owner[1].isdigit() and not _pid_alive(int(owner[1]))
        try:
            old = now - p.stat().st_mtime > STALE_TMP_SECONDS
        except OSError:
            continue
        if dead or old:
            with contextlib.suppress(OSError):
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def quarantine(path: Path, reason: str) -> Path | None:
    """Move a damaged cache file or folder aside (``quarantine/`` next to it) and say so in one line.
    Returns where it went, or None when another process moved it first or it cannot be moved."""
    dest_dir = path.parent / QUARANTINE
    dest = dest_dir / f"{path.name}.{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    try:
        dest_dir.mkdir(exist_ok=True)
        os.replace(path, dest)
    except FileNotFoundError:
        return None  # a concurrent reader quarantined it already
    except OSError as exc:
        log.warning(
            "cache: %s is damaged (%s) and cannot be moved aside (%s); ignoring it",
            path,
            reason,
            exc.strerror,
        )
        return None
    log.warning("cache: %s is damaged (%s); moved to %s, its values will be recomputed", path, reason, dest)
    return dest


# -- checksums ---------------------------------------------------------------------------------------


def array_digest(*arrays: np.ndarray) -> str:
    """BLAKE2b-128 over dtype, shape and bytes of each array (C order)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        view = a.reshape(-1).view(np.uint8) if a.size else np.zeros(0, np.uint8)
        step = 1 << 24
        for i in range(0, len(view), step):
            h.update(view[i : i + step].data)
    return h.hexdigest()


class DamagedCacheFile(Exception):
    """Internal: a cache file failed verification (the message says how)."""


_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, TypeError)


def read_verified_npz(
    path: Path, required: dict[str, Callable[[np.ndarray], str | None]]
) -> dict[str, np.ndarray]:
    """Every member of a checksummed npz, checked: each ``required`` member exists and passes its check
    (which returns a problem or None), and the stored ``checksum`` matches the members it covers.
    FileNotFoundError passes through (a concurrent merge removed it); any damage raises DamagedCacheFile."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except _READ_ERRORS as exc:
        raise DamagedCacheFile(f"unreadable: {type(exc).__name__}: {exc}".split("\n")[0][:160]) from None
    for name, check in required.items():
        if name not in arrays:
            raise DamagedCacheFile(f"member {name!r} missing")
        problem = check(arrays[name])
        if problem:
            raise DamagedCacheFile(f"{name}: {problem}")
    if "checksum" in arrays:
        covered = [k for k in sorted(arrays) if k != "checksum"]
        if str(arrays["checksum"]) != array_digest(*(arrays[k] for k in covered)):
            raise DamagedCacheFile("checksum mismatch")
    return arrays


def save_checksummed_npz(
    path: Path, *, durable: bool = True, option: str = "--cache-dir", **arrays: np.ndarray
) -> None:
    """``atomic_save_npz`` plus a ``checksum`` member covering every other member (read back by
    ``read_verified_npz``)."""
    covered = [k for k in sorted(arrays)]
    atomic_save_npz(
        path,
        durable=durable,
        option=option,
        checksum=np.array(array_digest(*(arrays[k] for k in covered))),
        **arrays,
    )


# -- slots ---------------------------------------------------------------------------------------------


class CacheSlot:
    """The chunk files of one producer on one dataset.

    ``row_shape``: shape of one row's value (``()`` for a quality score, ``(D,)`` for a D-wide
    embedding); a chunk of any other shape is damaged. When None it is taken from ``slot.json``
    (recorded by the first writer), else from the first readable chunk.
    """

    def __init__(
        self, directory: Path, description: dict[str, Any], row_shape: tuple[int, ...] | None = None
    ) -> None:
        self.dir = directory
        self.description = description
        self.row_shape = row_shape
        self.stats = {"quarantined": 0, "chunks_read": 0}

    def _chunks(self) -> list[Path]:
        try:
            if not self.dir.is_dir():
                return []
            return sorted(p for p in self.dir.glob("*.npz") if not p.name.startswith("."))
        except OSError:
            return []

    def _recorded(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.dir / "slot.json").read_text())
            return meta if isinstance(meta, dict) else {}
        except (OSError, ValueError):
            return {}

    def _expected(self) -> tuple[tuple[int, ...] | None, str | None]:
        rec = self._recorded()
        shape = self.row_shape
        if shape is None and isinstance(rec.get("row_shape"), list):
            shape = tuple(int(x) for x in rec["row_shape"])
        dtype = rec.get("dtype") if isinstance(rec.get("dtype"), str) else None
        return shape, dtype

    def _read(
        self, path: Path, shape: tuple[int, ...] | None, dtype: str | None
    ) -> tuple[np.ndarray, np.ndarray]:
        def check_ids(a: np.ndarray) -> str | None:
            return (
                None
                if a.ndim == 1 and a.dtype.kind == "U"
                else f"expected 1-D strings, got {a.dtype} {a.shape}"
            )

        arrays = read_verified_npz(path, {"ids": check_ids, "values": lambda a: None})
        ids, values = arrays["ids"], arrays["values"]
        if values.dtype.kind != "f":
            raise DamagedCacheFile(f"values have dtype {values.dtype}, not floating point")
        if dtype is not None and values.dtype.str != dtype:
            raise DamagedCacheFile(f"values have dtype {values.dtype.str}, the slot holds {dtype}")
        if len(values) != len(ids):
            raise DamagedCacheFile(f"{len(ids)} ids but {len(values)} value rows")
        if shape is not None and tuple(values.shape[1:]) != tuple(shape):
            raise DamagedCacheFile(
                f"rows of shape {tuple(values.shape[1:])}, expected {tuple(shape)} (wrong embedding width?)"
            )
        if values.size and not np.isfinite(values).all():
            raise DamagedCacheFile(f"{int((~np.isfinite(values)).sum())} non-finite value(s)")
        return ids, values

    def _read_all(self) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
        """Each good chunk once, in name order; damaged ones quarantined; relists after a concurrent merge."""
        shape, dtype = self._expected()
        seen: set[str] = set()
        for _attempt in range(5):
            vanished = False
            for path in self._chunks():
                if path.name in seen:
                    continue
                seen.add(path.name)
                try:
                    ids, values = self._read(path, shape, dtype)
                except FileNotFoundError:
                    vanished = True  # merged (or quarantined) by another process: list again
                    continue
                except DamagedCacheFile as exc:
                    if quarantine(path, str(exc)) is not None:
                        self.stats["quarantined"] += 1
                    continue
                if shape is None:
                    shape = tuple(values.shape[1:])
                self.stats["chunks_read"] += 1
                yield path, ids, values
            if not vanished:
                return

    def load(self, ids: list[str]) -> tuple[np.ndarray | None, np.ndarray]:
        """Cached values for ``ids`` (rows of missing ids are zero) and the boolean mask of missing ids.
        Every chunk is verified first; damaged ones are quarantined and their rows reported missing."""
        missing = np.ones(len(ids), dtype=bool)
        values: np.ndarray | None = None
        position = {id_: i for i, id_ in enumerate(ids)}
        for _path, chunk_ids, chunk_values in self._read_all():
            rows = np.array([position.get(str(i), -1) for i in chunk_ids], dtype=np.int64)
            keep = (rows >= 0) & missing[np.maximum(rows, 0)]  # first chunk (in name order) wins
            if not keep.any():
                continue
            if values is None:
                values = np.zeros((len(ids), *chunk_values.shape[1:]), dtype=chunk_values.dtype)
            values[rows[keep]] = chunk_values[keep]
            missing[rows[keep]] = False
        return values, missing

    def writer(self, flush_rows: int = 1, flush_seconds: float = 5.0, tag: str = "") -> SlotWriter:
        """A writer that publishes a chunk once ``flush_rows`` rows are buffered (default: every batch)
        or ``flush_seconds`` passed since the last one."""
        return SlotWriter(self, flush_rows, flush_seconds, tag)

    def consolidate(self) -> None:
        """Merge the good chunk files into one durable file (fewer files to read next time). Damaged
        chunks are quarantined; files merged meanwhile by another process are skipped."""
        remove_stale_tmp(self.dir)
        paths, all_ids, all_values = [], [], []
        for path, ids, values in self._read_all():
            paths.append(path)
            all_ids.append(ids)
            all_values.append(values)
        if len(paths) <= 1:
            return
        ids = np.concatenate(all_ids)
        _, first = np.unique(ids, return_index=True)
        first.sort()
        merged = self.dir / f"merged-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        save_checksummed_npz(merged, ids=ids[first], values=np.concatenate(all_values)[first])
        for path in paths:  # every row of these is in `merged` now
            with contextlib.suppress(OSError):
                path.unlink()


class SlotWriter:
    """Buffers rows and publishes them as checksummed chunk files; use as a context manager so the tail
    is flushed. Rows holding a non-finite value are not cached (counted in ``rows_not_cached``)."""

    def __init__(self, slot: CacheSlot, flush_rows: int, flush_seconds: float, tag: str) -> None:
        self.slot = slot
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.tag = tag
        self._ids: list[str] = []
        self._values: list[np.ndarray] = []
        self._last = time.monotonic()
        self.rows_written = 0
        self.rows_not_cached = 0
        self.chunks_written = 0
        self._meta_written = False

    def add(self, ids: list[str], values: np.ndarray) -> None:
        values = np.asarray(values)
        if len(values) != len(ids):
            raise ValueError(f"{len(ids)} ids but {len(values)} value rows")
        self._ids.extend(ids)
        self._values.append(values)
        if len(self._ids) >= self.flush_rows or time.monotonic() - self._last > self.flush_seconds:
            self.flush()

    def _write_meta(self, values: np.ndarray) -> None:
        if self._meta_written:
            return
        self._meta_written = True
        meta = self.slot.dir / "slot.json"
        rec = self.slot._recorded()
        if rec.get("row_shape") == list(values.shape[1:]) and rec.get("dtype") == values.dtype.str:
            return
        if rec:  # damaged or stale: the producer is the authority on what it produces
            log.warning(
                "cache: %s records rows %s %s, the producer writes %s %s; rewriting it",
                meta,
                rec.get("row_shape"),
                rec.get("dtype"),
                list(values.shape[1:]),
                values.dtype.str,
            )
        desc = {**self.slot.description, "row_shape": list(values.shape[1:]), "dtype": values.dtype.str}
        atomic_write_text(meta, json.dumps(desc, indent=1, sort_keys=True, default=str), option="--cache-dir")

    def flush(self) -> None:
        if not self._ids:
            return
        ids = np.array(self._ids, dtype=str)
        values = np.concatenate(self._values)
        self._ids, self._values = [], []
        self._last = time.monotonic()
        finite = (
            np.isfinite(values.reshape(len(values), -1)).all(axis=1)
            if values.dtype.kind == "f"
            else np.ones(len(values), bool)
        )
        if not finite.all():
            self.rows_not_cached += int((~finite).sum())
            ids, values = ids[finite], values[finite]
            if not len(ids):
                return
        with writing(self.slot.dir, None, "--cache-dir"):
            self.slot.dir.mkdir(parents=True, exist_ok=True)
        self._write_meta(values)
        name = f"chunk-{self.tag}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        save_checksummed_npz(self.slot.dir / name, durable=False, ids=ids, values=values)
        self.rows_written += len(ids)
        self.chunks_written += 1

    def __enter__(self) -> SlotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


class Cache:
    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()

    def slot(
        self,
        dataset: str,
        dataset_fingerprint: str,
        kind: str,
        producer: str,
        producer_fingerprint: str,
        row_shape: tuple[int, ...] | None = None,
    ) -> CacheSlot:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in producer)[:60]
        directory = (
            self.root / "v1" / f"{dataset}-{dataset_fingerprint}" / kind / f"{safe}-{producer_fingerprint}"
        )
        return CacheSlot(
            directory,
            {
                "dataset": dataset,
                "dataset_fingerprint": dataset_fingerprint,
                "kind": kind,
                "producer": producer,
                "producer_fingerprint": producer_fingerprint,
            },
            row_shape=row_shape if row_shape is not None else (() if kind == "quality" else None),
        )


# -- interruption ----------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``kill`` send), raised like Ctrl-C so every writer flushes."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises ``Terminated`` (a KeyboardInterrupt) in the main thread, so the
    same ``finally`` blocks that flush on Ctrl-C flush on SIGTERM. No-op outside the main thread."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not the main thread, or no signals here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- aligned-crop caches -----------------------------------------------------------------------------


def _read_crops(final: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Verified crops (memory-mapped) and metadata of a published crop folder; DamagedCacheFile if not."""
    meta = read_verified_npz(
        final / "meta.npz", {"crops_digest": lambda a: None if a.ndim == 0 else "not a scalar"}
    )
    try:
        crops = np.load(final / "crops.npy", mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise
    except _READ_ERRORS as exc:
        raise DamagedCacheFile(
            f"crops.npy unreadable: {type(exc).__name__}: {exc}".split("\n")[0][:160]
        ) from None
    if crops.shape != shape or crops.dtype != np.uint8:
        raise DamagedCacheFile(f"crops.npy is {crops.dtype} {crops.shape}, expected uint8 {shape}")
    if array_digest(crops) != str(meta["crops_digest"]):
        raise DamagedCacheFile("crops.npy checksum mismatch")
    for k, v in meta.items():
        if len(v.shape) and v.shape[0] != shape[0]:
            raise DamagedCacheFile(f"meta {k} has {v.shape[0]} rows for {shape[0]} crops")
        if v.dtype.kind == "f" and not np.isfinite(v).all():
            raise DamagedCacheFile(f"meta {k} holds non-finite values")
    return crops, {k: v for k, v in meta.items() if k not in ("crops_digest", "checksum")}


def _reserve(path: Path) -> None:
    """Allocate a (sparse) file's blocks so later writes through a memory map cannot hit a full disk."""
    fd = os.open(path, os.O_RDWR)
    try:
        if hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
                # the file system cannot preallocate (EOPNOTSUPP, EINVAL): go on without it
    finally:
        os.close(fd)


def cached_crops(
    final: Path, shape: tuple[int, ...], compute: Callable[[np.ndarray], dict[str, np.ndarray]]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Aligned crops of a dataset (memory-mapped, ``uint8`` of ``shape``) and their per-image metadata,
    from the folder ``final`` (``crops.npy`` + checksummed ``meta.npz`` holding the crops' digest).

    A published folder is verified on every read (shape, dtype, checksum of crops and metadata); a
    damaged one is quarantined, reported in one line and rebuilt. ``compute(out)`` fills the
    memory-mapped ``out`` and returns the metadata arrays (one row per image). Building happens in a
    folder named uniquely for this process, published by one rename; when another process published
    first, its (verified) folder is used: concurrent runs never see a half-written cache.
    """
    for _attempt in range(3):
        if final.is_dir():
            try:
                return _read_crops(final, shape)
            except FileNotFoundError as exc:
                if final.is_dir():  # published folders are complete: a missing file is damage
                    quarantine(final, f"{Path(exc.filename or '').name or 'a file'} missing")
                # else: quarantined meanwhile by another reader
            except DamagedCacheFile as exc:
                quarantine(final, str(exc))
        with writing(final.parent, None, "--cache-dir"):
            final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(final.parent)
        tmp = _tmp_name(final)
        try:
            with writing(final, int(np.prod(shape)), "--cache-dir"):
                tmp.mkdir()
                out = np.lib.format.open_memmap(tmp / "crops.npy", mode="w+", dtype=np.uint8, shape=shape)
                _reserve(tmp / "crops.npy")  # a full disk is an error now, not a SIGBUS while filling
            meta = compute(out)  # (its own errors are not disk-write errors)
            with writing(final, int(np.prod(shape)), "--cache-dir"):
                out.flush()
            digest = array_digest(out)
            del out
            save_checksummed_npz(tmp / "meta.npz", crops_digest=np.array(digest), **meta)
            publish_dir(tmp, final)
            for ext in (".npy", ".meta.npz", ".npz"):  # the unverified single-file layout used before
                with contextlib.suppress(OSError):
                    (final.parent / f"{final.name}{ext}").unlink(missing_ok=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return _read_crops(final, shape)
