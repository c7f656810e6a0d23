"""insightface verification ``.bin`` files: AgeDB-30, CFP-FP, CALFW, CPLFW (and ``lfw.bin`` for ``lfw``).

Format (REFERENCE.md 2): a pickle of ``(bins, issame_list)``; ``bins`` holds 2N encoded 112x112 aligned
faces (JPEG or PNG bytes), pair i is ``(bins[2i], bins[2i+1])`` and ``issame_list[i]`` is True for a
genuine pair. The published files were written by Python 2 (protocol 2, images as ``str``); files
re-saved by Python 3 hold ``bytes`` (protocol 3+) or ``_codecs.encode(text, "latin1")`` calls
(protocol 2). All three read the same.

Safety: a pickle can run code, so it is read by an unpickler that builds only built-in containers,
bytes, bools, numbers and strings: every global a file asks for is refused (one clear error, nothing
executed), except ``_codecs.encode`` / ``bytes`` which are swapped for harmless stand-ins that only turn
latin-1 text into bytes (the way Python 3 writes bytes at protocol 2). Images stored as numpy uint8
arrays (what insightface's own packers write: ``cv2.imencode`` buffers, 1-D or N x 1) are read through
stand-ins for numpy's unpickling helpers that accept only that and return the bytes (nothing from numpy
runs). Any other numpy object (another dtype, a structured or 2-D array, an ``issame_list`` saved as an
array) is refused: re-save it as plain lists.

Where the files live (data root = --data-root, $FIQA_BENCH_DATA or ~/.fiqa-bench/data); the first that
exists wins:

=========== ====================================================================================
dataset     looked up as (in this order)
=========== ====================================================================================
agedb_30    <root>/agedb_30.bin, <root>/agedb_30/agedb_30.bin, <root>/<any folder>/agedb_30.bin
cfp_fp      <root>/cfp_fp.bin,   <root>/cfp_fp/cfp_fp.bin,     <root>/<any folder>/cfp_fp.bin
calfw       <root>/calfw.bin,    <root>/calfw/calfw.bin,       <root>/<any folder>/calfw.bin
cplfw       <root>/cplfw.bin,    <root>/cplfw/cplfw.bin,       <root>/<any folder>/cplfw.bin
=========== ====================================================================================

"<any folder>" is one level deep, folders in sorted order, so the files can stay where insightface's
training-set archives put them (e.g. ``<root>/faces_emore/agedb_30.bin``). An explicit file is taken
with the option ``path=FILE``.

Validation on load: an odd number of images, ``issame_list`` not half the image count, a pair count
that differs from the published file (6000, CFP-FP 7000; option ``expected_pairs`` changes or, with 0,
disables the check), an undecodable image or one that is not 112x112 give one error naming the file
(and the image index). With ``skip_bad`` the bad images' pairs are left out and a wrong count or a
trailing unpaired image is accepted, each listed as a Skipped record. Ids are ``<file name>#<index>``
(``agedb_30.bin#00017``: the index in ``bins``); identical image bytes used in several pairs are
stored and scored once, under the id of their first occurrence. Folds: 10 of equal size in file order.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import DataFormatError, MissingDataError
from fiqa_bench.registry import Card, Option, register_dataset
from fiqa_bench.types import BuildContext, Dataset, DatasetStatus, LoadedDataset, Skipped

from ._common import (
    DETECTOR_OPTION,
    N_FOLDS,
    NO_FACE_OPTION,
    SKIP_HINT,
    WORKERS_OPTION,
    ImageTable,
    _optional_int,
    _optional_str,
    aligned_option,
    assemble,
    digest,
    equal_folds,
    prepare_faces,
)

log = logging.getLogger("fiqa_bench.datasets")

# Pair counts of the published files.
PUBLISHED_PAIRS = {"lfw": 6000, "agedb_30": 6000, "cfp_fp": 7000, "calfw": 6000, "cplfw": 6000}


# -- restricted unpickling ------------------------------------------------------------------------


class RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


def _latin1_bytes(text: Any = "", encoding: Any = "latin1", *rest: Any) -> bytes:
    """Stand-in for ``_codecs.encode`` as Python 3 pickles bytes at protocol <= 2: text -> bytes only."""
    if (
        rest
        or not isinstance(text, str)
        or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1")
    ):
        raise pickle.UnpicklingError("_codecs.encode used with arguments other than (text, 'latin1')")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes()`` as Python 3 pickles b"" at protocol <= 2 (no arguments: no size bomb)."""
    if args:
        raise pickle.UnpicklingError("bytes() called with arguments")
    return b""


# insightface's own packers append ``cv2.imencode(".jpg", img)[1]``: numpy uint8 arrays (1-D, or N x 1
# from older OpenCV). NumPy pickles them through ``numpy.core.multiarray._reconstruct`` (protocols
# 0-4) or ``numpy.core.numeric._frombuffer`` (protocol 5), with a ``numpy.dtype`` built the same way.
# These names are answered by the stand-ins below, which import and run nothing from numpy: they accept
# exactly a plain, unstructured uint8 array of one dimension (or one column) and give its bytes.


class RefusedNumpy(pickle.UnpicklingError):
    """A numpy object other than a plain 1-D uint8 array (nothing was built or run)."""


class _UintArray:
    """What a pickled 1-D uint8 ndarray turns into here: its raw bytes (``data``)."""

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def __setstate__(self, state: Any) -> None:  # ndarray state: (version, shape, dtype, is_fortran, raw)
        if not isinstance(state, tuple) or len(state) != 5:
            raise RefusedNumpy("numpy array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, _, raw = state
        if not isinstance(dtype, _Uint8Dtype):
            raise RefusedNumpy("numpy array of a dtype other than uint8")
        if isinstance(raw, str):
            raw = raw.encode("latin-1")
        self.data = _checked_buffer(raw, shape)


class _Uint8Dtype:
    """Stand-in for ``numpy.dtype("u1", align, copy)``: only uint8 without fields or sub-arrays."""

    def __init__(self, code: Any = "u1", *rest: Any) -> None:
        code = code.decode("ascii", "replace") if isinstance(code, bytes) else str(code)
        if code.lstrip("|<>=") not in ("u1", "B", "uint8") or len(rest) > 2:
            raise RefusedNumpy(f"numpy dtype {code!r} is not uint8")

    def __setstate__(self, state: Any) -> None:  # (version, byte order, subarray, names, fields, ...)
        if not isinstance(state, tuple) or len(state) < 5 or any(x is not None for x in state[2:5]):
            raise RefusedNumpy("structured numpy dtype")


def _checked_buffer(raw: Any, shape: Any) -> bytes:
    if not isinstance(raw, bytes | bytearray):
        raise RefusedNumpy("numpy array data is not bytes")
    if not (isinstance(shape, tuple) and len(shape) in (1, 2) and all(isinstance(d, int) for d in shape)):
        raise RefusedNumpy(f"numpy array of shape {shape!r}: only 1-D (or one-column) arrays hold an image")
    if len(shape) == 2 and shape[1] != 1 or shape[0] != len(raw):
        raise RefusedNumpy(f"numpy array of shape {shape!r} with {len(raw)} bytes of data")
    return bytes(raw)


class _NdarrayMarker:
    """Stand-in for the ``numpy.ndarray`` class, only accepted as ``_reconstruct``'s first argument."""

    def __init__(self, *args: Any) -> None:
        raise RefusedNumpy("numpy.ndarray called directly")


def _reconstruct(subtype: Any, shape: Any = (0,), code: Any = b"b") -> _UintArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct(ndarray, (0,), b"b")``; the data come by BUILD."""
    if not (isinstance(subtype, type) and issubclass(subtype, _NdarrayMarker)):
        raise RefusedNumpy("numpy _reconstruct of something other than a plain ndarray")
    return _UintArray()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any = "C") -> _UintArray:
    """Stand-in for ``numpy.core.numeric._frombuffer`` (protocol 5): a uint8 buffer with its shape."""
    if not isinstance(dtype, _Uint8Dtype) or order not in ("C", "F"):
        raise RefusedNumpy("numpy array of a dtype other than uint8")
    return _UintArray(_checked_buffer(bytes(buf) if isinstance(buf, memoryview) else buf, shape))


_STAND_INS = {
    ("_codecs", "encode"): _latin1_bytes,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): _Uint8Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only containers, bytes, bools, numbers, strings and plain 1-D uint8 numpy arrays (as
    their bytes, through stand-ins: nothing from numpy runs); every other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        stand_in = _STAND_INS.get((module, name))
        if stand_in is None:
            raise RefusedGlobal(module, name)
        # A fresh object per lookup: a BUILD aimed at it (setattr) cannot change the module's stand-ins.
        if isinstance(stand_in, type):
            return type(stand_in.__name__, (stand_in,), {})
        return functools.partial(stand_in)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def read_bin(path: str | os.PathLike[str]) -> tuple[list[bytes], list[bool]]:
    """``(bins, issame_list)`` of an insightface .bin, read safely; structure checked, counts not."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, encoding="bytes").load()
    except RefusedGlobal as exc:
        raise DataFormatError(
            path,
            f"refused to load: the pickle asks for {exc.module}.{exc.name}, but an insightface .bin holds only "
            "encoded images (bytes, or 1-D uint8 numpy arrays as cv2.imencode gives) and a list of bools; "
            "nothing from the file was executed",
            "use the published .bin file (or re-save it as a plain (list of bytes, list of bools) tuple)",
        ) from None
    except RefusedNumpy as exc:
        raise DataFormatError(
            path,
            f"refused to load: it holds a numpy object that is not an encoded image ({exc}); only 1-D uint8 arrays "
            "(cv2.imencode buffers) are read, and nothing from the file was executed",
            "re-save it as (list of encoded image bytes, list of bools)",
        ) from None
    except OSError as exc:
        raise DataFormatError(
            path, f"cannot be read ({exc.strerror or exc})", "check the file and its permissions"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        MemoryError,
        RecursionError,
        UnicodeDecodeError,
        struct.error,
    ) as exc:
        raise DataFormatError(
            path,
            f"is not a readable insightface .bin pickle ({type(exc).__name__}: {exc}); the file may be truncated",
            "download the file again",
        ) from None
    return _check_structure(path, obj)


def _check_structure(path: Path, obj: Any) -> tuple[list[bytes], list[bool]]:
    fix = "use the published file: a pickle of (list of encoded images, list of bools)"
    if not isinstance(obj, tuple | list) or len(obj) != 2:
        raise DataFormatError(path, f"holds a {type(obj).__name__}, not the 2-tuple (bins, issame_list)", fix)
    bins, issame = obj
    if not isinstance(bins, list | tuple) or not isinstance(issame, list | tuple):
        raise DataFormatError(path, "(bins, issame_list) are not lists", fix)
    out_bins: list[bytes] = []
    for i, b in enumerate(bins):
        if isinstance(b, _UintArray):
            b = b.data
        if isinstance(b, bytearray | memoryview):
            b = bytes(b)
        if not isinstance(b, bytes):
            raise DataFormatError(path, f"image {i} is a {type(b).__name__}, not encoded image bytes", fix)
        out_bins.append(b)
    out_same: list[bool] = []
    for i, s in enumerate(issame):
        if isinstance(s, bool) or (isinstance(s, int) and s in (0, 1)):
            out_same.append(bool(s))
        else:
            raise DataFormatError(path, f"issame_list[{i}] is {s!r}, not a bool", fix)
    return out_bins, out_same


# -- writing (tests, benchmarks, packing your own aligned pairs) ------------------------------------


def save_insightface_bin(
    path: str | os.PathLike[str], bins: Sequence[bytes], issame: Sequence[bool], *, style: str = "python2"
) -> None:
    """Write ``(bins, issame_list)`` as insightface does. ``style="python2"``: the byte stream Python 2's
    pickle (protocol 2) produces for lists of ``str`` and ``bool`` - the published files; ``"python3"``:
    ``pickle.dump`` at the highest protocol (what a re-save under Python 3 gives)."""
    path = Path(path)
    if style == "python3":
        with open(path, "wb") as f:
            pickle.dump((list(bins), [bool(s) for s in issame]), f, protocol=pickle.HIGHEST_PROTOCOL)
        return
    if style != "python2":
        raise ValueError(f"style must be 'python2' or 'python3', not {style!r}")
    memo = 0
    out = bytearray(b"\x80\x02")  # PROTO 2

    def put() -> None:  # memoise the object just pushed (BINPUT / LONG_BINPUT), as Python 2 does
        nonlocal memo
        out.extend(b"q" + bytes([memo]) if memo < 256 else b"r" + struct.pack("<I", memo))
        memo += 1

    def save_list(items: Sequence[Any], save_item: Any) -> None:
        out.extend(b"]")  # EMPTY_LIST
        put()
        for s in range(0, len(items), 1000):  # Python 2 batches appends by 1000
            chunk = items[s : s + 1000]
            if len(chunk) == 1:
                save_item(chunk[0])
                out.extend(b"a")  # APPEND
            else:
                out.extend(b"(")  # MARK
                for it in chunk:
                    save_item(it)
                out.extend(b"e")  # APPENDS

    def save_str(b: bytes) -> None:
        out.extend(b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b)))
        out.extend(b)
        put()

    def save_bool(v: bool) -> None:
        out.extend(b"\x88" if v else b"\x89")  # NEWTRUE / NEWFALSE

    save_list(list(bins), save_str)
    save_list([bool(s) for s in issame], save_bool)
    out.extend(b"\x86")  # TUPLE2
    put()
    out.extend(b".")  # STOP
    path.write_bytes(bytes(out))


# -- locating and status ----------------------------------------------------------------------------


def find_bin(root: Path, name: str) -> Path | None:
    """The .bin of ``name`` under ``root``: <root>/<name>.bin, <root>/<name>/<name>.bin, then
    <root>/<folder>/<name>.bin for the sub-folders in sorted order."""
    fname = f"{name}.bin"
    for p in (root / fname, root / name / fname):
        if p.is_file():
            return p
    if root.is_dir():
        try:
            folders = sorted(d for d in root.iterdir() if d.is_dir())
        except OSError:
            return None
        for d in folders:
            if (d / fname).is_file():
                return d / fname
    return None


_status_cache: dict[tuple[str, int, int], int] = {}


def bin_status(path: str | os.PathLike[str]) -> DatasetStatus:
    """Present (with its pair count, read safely; memoised per file version) or broken."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return DatasetStatus(False, f"{p} not found")
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _status_cache:
        try:
            bins, issame = read_bin(p)
        except DataFormatError as exc:
            return DatasetStatus(False, f"{p} is unreadable: {exc}")
        _status_cache[key] = len(issame)
        del bins
    return DatasetStatus(True, f"insightface .bin: {p}", _status_cache[key])


# -- loading ------------------------------------------------------------------------------------------


def load_insightface_bin(
    path: str | os.PathLike[str],
    name: str,
    *,
    skip_bad: bool = False,
    progress: bool = True,
    expected_pairs: int | None = None,
    workers: int = 2,
) -> LoadedDataset:
    """Load an insightface verification .bin as dataset ``name`` (see the module docstring).

    ``expected_pairs``: None = the published count for ``name`` (if known), 0 = no count check.
    """
    path = Path(path)
    fname = path.name
    bins, issame = read_bin(path)
    skipped: list[Skipped] = []
    if len(bins) % 2:
        why = f"holds an odd number of images ({len(bins)}); pairs are consecutive images"
        if not skip_bad or len(issame) != len(bins) // 2:
            raise DataFormatError(
                path,
                why,
                "download the file again" + ("" if len(issame) != len(bins) // 2 else f", or {SKIP_HINT}"),
            )
        skipped.append(
            Skipped(
                "image", f"{fname}#{len(bins) - 1:05d}", "unpaired last image of an odd-sized file; ignored"
            )
        )
        bins = bins[:-1]
    n = len(bins) // 2
    if len(issame) != n:
        raise DataFormatError(
            path,
            f"issame_list has {len(issame)} labels for {len(bins)} images ({n} pairs)",
            "download the file again",
        )
    expected = PUBLISHED_PAIRS.get(name) if expected_pairs is None else (int(expected_pairs) or None)
    if expected is not None and n != expected:
        why = f"holds {n} pairs, the published {name} file has {expected}"
        if not skip_bad:
            raise DataFormatError(
                path,
                why,
                f"use the published file; to use this variant anyway pass --skip-bad (reported) or the option expected_pairs={n}",
            )
        skipped.append(Skipped("pair", str(path), why + " (variant accepted because of --skip-bad)"))
        log.warning("%s: %s", path, why)

    # Unique images by content: the same bytes in several pairs are checked and scored once.
    table = ImageTable()
    by_digest: dict[bytes, int] = {}
    index = np.empty(len(bins), np.int64)
    h = hashlib.sha256(fname.encode())
    for i, blob in enumerate(bins):
        d = digest(blob)
        h.update(d)
        j = by_digest.get(d)
        if j is None:
            j = by_digest[d] = table.add(f"{fname}#{i:05d}", blob, f"{path}#{i:05d}")
        index[i] = j
    genuine = np.asarray(issame, bool)
    h.update(np.packbits(genuine).tobytes())
    del bins, by_digest
    prepared = prepare_faces(
        name,
        table,
        aligned=True,
        skip_bad=skip_bad,
        progress=progress,
        workers=workers,
        fix=f"download the file again or {SKIP_HINT}",
    )
    fold = equal_folds(n, N_FOLDS)
    pair_where = [f"{fname} pair {k}" for k in range(n)]
    return assemble(
        name,
        prepared,
        index[0::2],
        index[1::2],
        genuine,
        fold,
        pair_where,
        source=f"insightface .bin {path}",
        fingerprint=h.hexdigest()[:16],
        skipped=skipped,
        info={
            "path": str(path),
            "n_images_in_file": 2 * n,
            "n_unique_images": len(table),
            "format": "insightface .bin",
        },
        progress=progress,
    )


class InsightfaceBin(Dataset):
    """One of the insightface verification sets, found under the data root by :func:`find_bin`."""

    def __init__(self, card: Card, root: str | Path | None = None, **options: Any) -> None:
        self.card = card
        super().__init__(root, **card.resolve_options(options))

    def path(self) -> Path | None:
        explicit = self.options.get("path")
        if explicit:
            return Path(explicit).expanduser()
        return find_bin(self.root, self.card.name)

    def _expected_where(self) -> str:
        n = self.card.name
        return f"put {n}.bin at {self.root / (n + '.bin')} (or {self.root / n / (n + '.bin')}, or one folder below {self.root})"

    def status(self) -> DatasetStatus:
        p = self.path()
        if p is None or not p.is_file():
            return DatasetStatus(False, f"{p} not found" if p else self._expected_where())
        return bin_status(p)

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        p = self.path()
        if p is None or not p.is_file():
            raise MissingDataError(
                self.card.name,
                p or self.root / f"{self.card.name}.bin",
                self._expected_where() + "; set the data root with --data-root or FIQA_BENCH_DATA.",
            )
        workers, expected = self.options["workers"], self.options["expected_pairs"]
        return load_insightface_bin(
            p, self.card.name, skip_bad=skip_bad, progress=progress, expected_pairs=expected, workers=workers
        )


BIN_OPTIONS = ("path", "expected_pairs", "workers")
FOLDER_FORM_OPTIONS = (
    Option(
        "images",
        None,
        "folder form: the image folder (default: 'aligned images/' or images/)",
        parse=_optional_str,
    ),
    aligned_option("auto"),
    DETECTOR_OPTION,
    NO_FACE_OPTION,
)


def _card(name: str, summary: str, paper: str, licence: str, pairs: int, folder_form: str = "") -> Card:
    return Card(
        name=name,
        kind="dataset",
        summary=summary,
        paper=paper,
        licence=licence,
        normalisation="aligned 112x112 faces (insightface .bin, JPEG/PNG bytes), decoded to RGB",
        options=(
            Option(
                "path", None, "the .bin file (default: searched under the data root)", parse=_optional_str
            ),
            Option("expected_pairs", pairs, "pairs the file must hold (0: no check)", parse=_optional_int),
            WORKERS_OPTION,
            *(FOLDER_FORM_OPTIONS if folder_form else ()),
        ),
        notes=(
            f"insightface {name}.bin ({pairs} pairs, half genuine, 10 folds in file order), aligned. Sub-paths "
            f"under the data root, first found wins: {name}.bin, {name}/{name}.bin, <folder>/{name}.bin (e.g. "
            f"faces_emore/{name}.bin). Options: path=FILE, expected_pairs=N (0: no check), workers. Image ids: "
            f"{name}.bin#NNNNN (index in the file)."
            + (f" Folder form (wins when present): {folder_form}" if folder_form else "")
        ),
    )


AGEDB_CARD = _card(
    "agedb_30",
    "AgeDB-30: verification across a 30-year age gap (insightface agedb_30.bin)",
    "Moschoglou et al., AgeDB: the first manually collected, in-the-wild age database, CVPRW 2017",
    "AgeDB licence: non-commercial research use; obtain the data from its authors",
    6000,
)
CFP_FP_CARD = _card(
    "cfp_fp",
    "CFP-FP: frontal-to-profile verification (insightface cfp_fp.bin)",
    "Sengupta et al., Frontal to Profile Face Verification in the Wild, WACV 2016",
    "CFP: research use; obtain the data from its authors",
    7000,
)
CALFW_CARD = _card(
    "calfw",
    "CALFW: cross-age LFW (pairs_CALFW.txt + aligned images/, or insightface calfw.bin)",
    "Zheng et al., Cross-Age LFW: A Database for Studying Cross-Age Face Recognition in Unconstrained Environments, arXiv:1708.08197",
    "research use (LFW-derived); obtain the data from its authors",
    6000,
    "calfw/pairs_CALFW.txt + calfw/aligned images/ (options images, aligned=auto|true|false, detector, no_face).",
)
CPLFW_CARD = _card(
    "cplfw",
    "CPLFW: cross-pose LFW (pairs_CPLFW.txt + aligned images/, or insightface cplfw.bin)",
    "Zheng and Deng, Cross-Pose LFW: A Database for Studying Cross-Pose Face Recognition in Unconstrained Environments, BUPT TR 18-01, 2018",
    "research use (LFW-derived); obtain the data from its authors",
    6000,
    "cplfw/pairs_CPLFW.txt + cplfw/aligned images/ (options images, aligned=auto|true|false, detector, no_face).",
)


@register_dataset(AGEDB_CARD)
def agedb_30(ctx: BuildContext) -> InsightfaceBin:
    return InsightfaceBin(ctx.card, ctx.root, **ctx.options)


@register_dataset(CFP_FP_CARD)
def cfp_fp(ctx: BuildContext) -> InsightfaceBin:
    return InsightfaceBin(ctx.card, ctx.root, **ctx.options)


@register_dataset(CALFW_CARD)
def calfw(ctx: BuildContext) -> Dataset:
    from .cross_lfw import FolderOrBin  # the authors' pairs_CALFW.txt form, else calfw.bin

    return FolderOrBin(ctx.card, ctx.root, **ctx.options)


@register_dataset(CPLFW_CARD)
def cplfw(ctx: BuildContext) -> Dataset:
    from .cross_lfw import FolderOrBin  # the authors' pairs_CPLFW.txt form, else cplfw.bin

    return FolderOrBin(ctx.card, ctx.root, **ctx.options)
