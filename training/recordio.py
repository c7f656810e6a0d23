"""Native MXNet RecordIO (``.rec`` + ``.idx``) reader and writer, insightface layout (REFERENCE.md 2).

Record at a byte offset: uint32 magic 0xCED7230A, uint32 lrec (top 3 bits continuation flag, low 29 bits
length), payload, zero padding to a multiple of 4. Payload: header ``<IfQQ`` (flag, label, id, id2), then
``flag`` float32 labels when flag > 0, then the encoded image. A payload that contains the magic word at a
4-aligned position is split there into parts (flags 1 = first, 2 = middle, 3 = last); the magic is
dropped when writing and put back between parts when reading (the dmlc-core convention).

Readers open their file lazily and reopen after ``fork``/unpickling (pid check), so one reader object can
be handed to any number of DataLoader workers without sharing a file position.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fiqa_bench.errors import DataFormatError, MissingDataError

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_HEADER = struct.Struct("<IfQQ")
_LEN_MASK = (1 << 29) - 1
_MAX_LEN = _LEN_MASK


@dataclass(frozen=True)
class IRHeader:
    flag: int
    label: float | np.ndarray  # a float when flag == 0, else ``flag`` float32 values
    id: int
    id2: int

    @property
    def first_label(self) -> float:
        return float(self.label if np.isscalar(self.label) else self.label[0])


def pack_payload(
    label: float | np.ndarray | list[float] | tuple[float, ...], data: bytes = b"", id: int = 0, id2: int = 0
) -> bytes:
    """Header + labels + data. A scalar label gives flag 0; a sequence gives flag = its length."""
    if np.isscalar(label):
        return _HEADER.pack(0, float(label), id, id2) + data
    labels = np.asarray(label, dtype="<f4").ravel()
    return _HEADER.pack(len(labels), 0.0, id, id2) + labels.tobytes() + data


def unpack_payload(payload: bytes, where: str = "record") -> tuple[IRHeader, bytes]:
    """Payload -> (header, image bytes). Raises ValueError with ``where`` on a short payload."""
    if len(payload) < _HEADER.size:
        raise ValueError(
            f"{where}: payload of {len(payload)} bytes is shorter than the {_HEADER.size}-byte header"
        )
    flag, label, id_, id2 = _HEADER.unpack_from(payload)
    rest = payload[_HEADER.size :]
    if flag > 0:
        need = 4 * flag
        if len(rest) < need:
            raise ValueError(f"{where}: header announces {flag} labels but only {len(rest)} bytes follow")
        labels = np.frombuffer(rest[:need], dtype="<f4").copy()
        return IRHeader(flag, labels, id_, id2), rest[need:]
    return IRHeader(flag, float(label), id_, id2), rest


def _split_on_magic(payload: bytes) -> list[bytes]:
    """Parts of the payload between 4-aligned magic words (the writer drops those words)."""
    parts, start, pos = [], 0, 0
    while True:
        pos = payload.find(_MAGIC_BYTES, pos)
        if pos < 0:
            break
        if pos % 4 == 0:
            parts.append(payload[start:pos])
            start = pos + 4
            pos = start
        else:
            pos += 1
    parts.append(payload[start:])
    return parts


def encode_record(payload: bytes) -> bytes:
    parts = _split_on_magic(payload)
    out = bytearray()
    for i, part in enumerate(parts):
        if len(part) > _MAX_LEN:
            raise ValueError(f"record part of {len(part)} bytes exceeds the RecordIO limit of {_MAX_LEN}")
        cflag = 0 if len(parts) == 1 else (1 if i == 0 else (3 if i == len(parts) - 1 else 2))
        out += struct.pack("<II", MAGIC, (cflag << 29) | len(part))
        out += part
        out += b"\0" * (-len(part) % 4)
    return bytes(out)


def read_idx(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``key<TAB>offset`` lines -> (keys, offsets) int64 arrays in file order."""
    try:
        tokens = path.read_bytes().split()
    except FileNotFoundError:
        raise MissingDataError(
            "RecordIO index", path, "pass the .idx file written beside the .rec (train.idx)"
        ) from None
    if len(tokens) % 2:
        raise DataFormatError(
            path, "odd number of fields (expected 'key<TAB>offset' per line)", "rebuild the .idx"
        )
    try:
        arr = np.array(tokens, dtype="S20").astype(np.int64).reshape(-1, 2)
    except ValueError:
        raise DataFormatError(
            path, "non-integer field (expected 'key<TAB>offset' per line)", "rebuild the .idx"
        ) from None
    return arr[:, 0].copy(), arr[:, 1].copy()


class RecordIOReader:
    """Random access to an indexed RecordIO file. Safe to share across forked DataLoader workers."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        if not self.rec_path.is_file():
            raise MissingDataError(
                "RecordIO file", self.rec_path, "point --data at the folder holding train.rec/train.idx"
            )
        self.keys, self.offsets = read_idx(self.idx_path)
        self.size = self.rec_path.stat().st_size
        bad = np.nonzero((self.offsets < 0) | (self.offsets >= max(self.size, 1)))[0]
        if len(bad):
            raise DataFormatError(
                self.idx_path,
                f"offset {int(self.offsets[bad[0]])} of key {int(self.keys[bad[0]])} lies outside "
                f"{self.rec_path.name} ({self.size} bytes)",
                "the .idx does not belong to this .rec; rebuild it",
            )
        order = np.argsort(self.keys, kind="stable")
        self._sorted_keys, self._sorted_offsets = self.keys[order], self.offsets[order]
        # Contiguous keys 0..N-1 (the usual case) index directly.
        self._dense = bool(
            len(self.keys) and self._sorted_keys[0] == 0 and self._sorted_keys[-1] == len(self.keys) - 1
        )
        self._fh: BinaryIO | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: int) -> bool:
        i = np.searchsorted(self._sorted_keys, key)
        return bool(i < len(self._sorted_keys) and self._sorted_keys[i] == key)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fh"], state["_pid"] = None, -1  # a file handle never travels to another process
        return state

    def _file(self) -> BinaryIO:
        if self._fh is None or self._pid != os.getpid():
            # After fork the inherited handle shares its position with the parent: open our own.
            self._fh = open(self.rec_path, "rb")  # noqa: SIM115 - kept open for the reader's lifetime
            self._pid = os.getpid()
        return self._fh

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh, self._pid = None, -1

    def offset_of(self, key: int) -> int:
        if self._dense and 0 <= key < len(self.keys):
            return int(self._sorted_offsets[key])
        i = int(np.searchsorted(self._sorted_keys, key))
        if i >= len(self._sorted_keys) or self._sorted_keys[i] != key:
            raise KeyError(f"{self.idx_path}: key {key} not in the index")
        return int(self._sorted_offsets[i])

    def read(self, key: int) -> bytes:
        """The whole payload of the record with this key."""
        return self.read_at(self.offset_of(key))

    def read_at(self, offset: int) -> bytes:
        fh = self._file()
        chunks: list[bytes] = []
        pos = offset
        while True:
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                self._fail(pos, f"truncated record header ({len(head)} of 8 bytes before end of file)")
            magic, lrec = struct.unpack("<II", head)
            if magic != MAGIC:
                self._fail(pos, f"bad magic 0x{magic:08X} (expected 0x{MAGIC:08X})")
            cflag, length = lrec >> 29, lrec & _LEN_MASK
            data = fh.read(length)
            if len(data) < length:
                self._fail(
                    pos, f"truncated record (payload needs {length} bytes, {len(data)} left in the file)"
                )
            expected_first = not chunks
            if (
                cflag > 3
                or (expected_first and cflag not in (0, 1))
                or (not expected_first and cflag not in (2, 3))
            ):
                self._fail(pos, f"bad continuation flag {cflag}")
            chunks.append(data)
            if cflag in (0, 3):
                break
            pos += 8 + length + (-length % 4)
        return _MAGIC_BYTES.join(chunks)

    def _fail(self, offset: int, problem: str) -> None:
        raise DataFormatError(
            self.rec_path,
            f"{problem} at byte offset {offset}",
            "the file is truncated or corrupt; download or pack it again",
        )

    def header(self, key: int) -> IRHeader:
        return self.unpack(key)[0]

    def unpack(self, key: int) -> tuple[IRHeader, bytes]:
        offset = self.offset_of(key)
        payload = self.read_at(offset)
        try:
            return unpack_payload(payload)
        except ValueError as exc:
            self._fail(offset, str(exc).replace("record: ", "", 1))
            raise  # unreachable, keeps type checkers calm

    def __iter__(self) -> Iterator[int]:
        return iter(int(k) for k in self.keys)


class RecordIOWriter:
    """Sequential writer of ``.rec`` + ``.idx``. Use as a context manager; the index is written on close."""

    def __init__(self, rec_path: str | Path, idx_path: str | Path | None = None) -> None:
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        self._fh: BinaryIO = open(self.rec_path, "wb")  # noqa: SIM115
        self._idx: list[tuple[int, int]] = []

    def write(self, key: int, payload: bytes) -> int:
        offset = self._fh.tell()
        self._fh.write(encode_record(payload))
        self._idx.append((int(key), offset))
        return offset

    def close(self) -> None:
        if self._fh.closed:
            return
        self._fh.close()
        self.idx_path.write_text("".join(f"{k}\t{o}\n" for k, o in self._idx))

    def __enter__(self) -> RecordIOWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_insightface_rec(
    out_dir: str | Path,
    samples: list[tuple[int, bytes]],
    num_classes: int | None = None,
    image_size: int = 112,
) -> dict[str, int]:
    """Write ``train.rec``/``train.idx``/``property`` in the insightface layout.

    ``samples`` are (class label, encoded image) sorted by label. Layout: images at keys 1..N (flag 0,
    label = class); one identity record per class at keys N+1..N+C with labels (first key, one past last
    key) of its images; record 0 with labels (N+1, N+C+1): label[0] is one past the last image key.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    labels = [int(c) for c, _ in samples]
    if labels != sorted(labels):
        raise ValueError("samples must be sorted by class label")
    n = len(samples)
    c = num_classes if num_classes is not None else (max(labels) + 1 if labels else 0)
    ranges: dict[int, list[int]] = {}
    for key, cls in enumerate(labels, start=1):
        r = ranges.setdefault(cls, [key, key + 1])
        r[1] = key + 1
    with RecordIOWriter(out / "train.rec", out / "train.idx") as w:
        w.write(0, pack_payload((n + 1, n + c + 1)))
        for key, (cls, data) in enumerate(samples, start=1):
            w.write(key, pack_payload(float(cls), data, id=key))
        for cls in range(c):
            a, b = ranges.get(cls, (0, 0))
            w.write(n + 1 + cls, pack_payload((a, b), id=n + 1 + cls))
    (out / "property").write_text(f"{c},{image_size},{image_size}")
    return {"images": n, "classes": c}
