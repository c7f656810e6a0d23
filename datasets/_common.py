"""Helpers shared by the pair datasets: image store, decoding and validation, aligned/unaligned handling,
folds, fingerprints and the load-time report.

Every dataset keeps its unique images as encoded bytes (JPEG/PNG, as read from the file) and decodes
them to RGB when the pipeline asks (``FaceSet.loader``); all images are decoded once at load time to
check them, so an undecodable image is found before any scoring starts. Unaligned images are aligned
once (YuNet or MTCNN) into a memory-mapped ``.npy`` cache under the cache folder, keyed by content.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fiqa_bench.errors import DataFormatError, FiqaError
from fiqa_bench.faces import decode_rgb
from fiqa_bench.input_checks import SKIP_HINT, BadInputs, decode_checked
from fiqa_bench.registry import Option
from fiqa_bench.types import ALIGNED_SIZE, FaceSet, LoadedDataset, Pairs, Skipped

log = logging.getLogger("fiqa_bench.datasets")

N_FOLDS = 10


# -- small helpers ---------------------------------------------------------------------------------


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def equal_folds(n: int, k: int = N_FOLDS) -> np.ndarray:
    """Fold of each of ``n`` items in file order: ``k`` contiguous folds of equal size (the first
    ``n % k`` folds one larger, as scikit-learn's unshuffled KFold, which the published protocols use)."""
    k = max(1, min(k, n)) if n else 1
    sizes = np.full(k, n // k, np.int64)
    sizes[: n % k] += 1
    return np.repeat(np.arange(k, dtype=np.int16), sizes)


def parse_aligned(value: Any, where: str) -> bool | str:
    """The aligned flag from an option: True, False or "auto"."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "aligned"):
        return True
    if text in ("0", "false", "no", "n", "unaligned"):
        return False
    if text == "auto":
        return "auto"
    raise FiqaError(f"{where}: option aligned={value!r} is not true, false or auto.")


def _workers(value: Any) -> int:
    n = int(value)
    if n < 0:
        raise ValueError("needs an integer >= 0")
    return n


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


# Options shared by the dataset cards (declared on each card; fiqa_bench.registry.Option).
WORKERS_OPTION = Option(
    "workers", 2, "image-decoding threads at load time (speed only)", parse=_workers, fingerprint=False
)
DETECTOR_OPTION = Option(
    "detector", "yunet", "face detector for on-the-fly alignment", choices=("yunet", "mtcnn")
)
NO_FACE_OPTION = Option(
    "no_face",
    "mean_landmarks",
    "photos without a face: mean_landmarks (warp with the set's mean landmarks) | drop (leave their pairs out)",
    choices=("mean_landmarks", "drop"),
)


def aligned_option(default: bool | str) -> Option:
    return Option(
        "aligned",
        default,
        "true: images are 112x112 aligned faces | false: align on the fly | auto",
        parse=lambda v: parse_aligned(v, "aligned"),
    )


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


@dataclass
class PairImages:
    """Pairs of a pairs file resolved to the unique images they name (``gather_pair_images``)."""

    table: ImageTable
    a: np.ndarray  # int64 table index of each kept pair's first image
    b: np.ndarray
    genuine: np.ndarray  # bool
    fold: np.ndarray  # int16
    where: list[str]  # "pairs_file:line" of each kept pair


def gather_pair_images(
    rows: Iterable[tuple[str, str, bool, int, int]],
    images: Path,
    pairs_path: Path,
    policy: Any,
    *,
    id_prefix: str = "",
    fix: str = "restore the image",
) -> PairImages:
    """Read every image a pairs file names once. ``rows``: (image_a, image_b, genuine, fold, line) with
    image paths relative to ``images`` (absolute ones are taken as they are); image ids are
    ``id_prefix + path``. A file that is missing or unreadable is one ``policy.bad`` call naming the
    pairs file and line (an error, or a counted skip of the pair with --skip-bad)."""
    table = ImageTable()
    index: dict[str, int] = {}
    a, b, gen, fold, where = [], [], [], [], []
    for ra, rb, g, f, lineno in rows:
        refs: list[int] = []
        for rel in (ra, rb):
            p = Path(rel)
            key = p.as_posix()
            j = index.get(key)
            if j is None:
                full = p if p.is_absolute() else images / p
                blob = read_bytes(full)
                if blob is None:
                    policy.bad(
                        "pair", pairs_path, f"image {full} does not exist or cannot be read", fix, lineno
                    )
                    break
                j = index[key] = table.add(id_prefix + key, blob, str(full))
            refs.append(j)
        if len(refs) != 2:
            continue
        a.append(refs[0])
        b.append(refs[1])
        gen.append(g)
        fold.append(f)
        where.append(f"{pairs_path}:{lineno}")
    return PairImages(
        table,
        np.array(a, np.int64),
        np.array(b, np.int64),
        np.array(gen, bool),
        np.array(fold, np.int16),
        where,
    )


# -- image store -------------------------------------------------------------------------------------


class BlobLoader:
    """index -> RGB 112x112 face decoded from in-memory encoded bytes (a plain, picklable object)."""

    def __init__(self, blobs: Sequence[bytes], where: Sequence[str]) -> None:
        self.blobs = blobs
        self.where = where

    def __call__(self, index: int) -> np.ndarray:
        rgb = decode_rgb(self.blobs[index])
        if rgb is None or rgb.shape[:2] != (ALIGNED_SIZE, ALIGNED_SIZE):  # checked at load; defensive
            raise DataFormatError(
                self.where[index], "image is no longer a decodable 112x112 face", "reload the dataset"
            )
        return rgb


class ArrayLoader:
    """index -> row of a (memory-mapped) N x 112 x 112 x 3 array of aligned crops."""

    def __init__(self, crops: np.ndarray, index: np.ndarray | None = None) -> None:
        self.crops = crops
        self.index = index

    def __call__(self, i: int) -> np.ndarray:
        j = int(self.index[i]) if self.index is not None else i
        return np.array(self.crops[j])


class SubsetLoader:
    """A loader restricted to some of another loader's images."""

    def __init__(self, loader: Any, keep: np.ndarray) -> None:
        self.loader = loader
        self.keep = keep

    def __call__(self, i: int) -> np.ndarray:
        return self.loader(int(self.keep[i]))


@dataclass
class ImageTable:
    """The unique images of a dataset before validation: stable id, encoded bytes and a location for
    messages (a file path, or ``file#index`` inside a container)."""

    ids: list[str] = field(default_factory=list)
    blobs: list[bytes] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    unreadable: dict[int, str] = field(default_factory=dict)  # row -> why its file could not be read

    def add(self, image_id: str, blob: bytes | None, where: str, why: str = "cannot be read") -> int:
        """Add one image; ``blob`` None = its file could not be read (``why``): judged like an
        undecodable image by prepare_faces (an error, or a counted skip with skip_bad)."""
        if blob is None:
            self.unreadable[len(self.ids)] = why
        self.ids.append(image_id)
        self.blobs.append(blob or b"")
        self.where.append(where)
        return len(self.ids) - 1

    def __len__(self) -> int:
        return len(self.ids)

    def content_digest(self) -> str:
        h = hashlib.sha256()
        for i, b in zip(self.ids, self.blobs, strict=True):
            h.update(i.encode())
            h.update(digest(b))
        return h.hexdigest()[:16]


@dataclass
class PreparedFaces:
    """Validated (and, if needed, aligned) images: the FaceSet plus which table rows it keeps."""

    faces: FaceSet
    keep: np.ndarray  # table index -> FaceSet index, -1 where the image was left out
    skipped: list[Skipped]
    aligned: bool  # were the source images already aligned
    info: dict[str, Any]
    fingerprint: str  # content + alignment
    table_ids: list[str] = field(default_factory=list)  # ids of every table row (kept or not)


def _shapes(blobs: Sequence[bytes], workers: int, progress: bool, desc: str) -> list[tuple[int, int] | str]:
    """Decode every image once (to check it); H, W per image, or why it cannot be used (empty, not an
    image file, corrupt: fiqa_bench.input_checks.decode_checked)."""

    def shape(b: bytes) -> tuple[int, int] | str:
        rgb, why = decode_checked(b)
        return why if rgb is None else (int(rgb.shape[0]), int(rgb.shape[1]))

    bar = tqdm(total=len(blobs), desc=desc, unit="img", disable=not progress)
    out: list[tuple[int, int] | str] = []
    try:
        if workers > 1 and len(blobs) > 64:
            with ThreadPoolExecutor(workers) as pool:
                for s in pool.map(shape, blobs, chunksize=64):
                    out.append(s)
                    bar.update()
        else:
            for b in blobs:
                out.append(shape(b))
                bar.update()
    finally:
        bar.close()
    return out


def check_alignment(
    name: str, table: ImageTable, shapes: Sequence[tuple[int, int] | None], auto: bool
) -> dict[str, Any]:
    """Are 112x112 images really aligned to the ArcFace template? YuNet on an evenly spaced sample
    (``faces.ALIGNMENT_SAMPLE``) measures the median landmark offset; above ``faces.MISALIGNED_MEDIAN_PX``
    the set is flagged (photos merely resized to 112x112 would otherwise be embedded as if aligned) and
    a one-line warning says what happens: with aligned=auto the set is aligned on the fly instead."""
    from fiqa_bench.faces import ALIGNMENT_SAMPLE, MISALIGNED_MEDIAN_PX, alignment_offset

    ok = [i for i, s in enumerate(shapes) if s == (ALIGNED_SIZE, ALIGNED_SIZE)]
    if not ok:
        return {}
    pick = [
        ok[int(k)] for k in np.linspace(0, len(ok) - 1, min(ALIGNMENT_SAMPLE, len(ok))).round().astype(int)
    ]
    offset, measured = alignment_offset(np.stack([decode_rgb(table.blobs[i]) for i in pick]))
    misaligned = bool(measured and offset > MISALIGNED_MEDIAN_PX)
    if misaligned:
        log.warning(
            "%s: the 112x112 images are not aligned to the ArcFace template (median landmark offset %.1f px over "
            "%d sampled faces; aligned crops measure about 2 px): %s",
            name, offset, measured,
            "aligning them on the fly (pass aligned=true to use them as they are)" if auto
            else "results will be poor; pass aligned=false to align them on the fly",
        )  # fmt: skip
    return {
        "alignment_offset_px": round(offset, 2),
        "alignment_faces_measured": measured,
        "misaligned": misaligned,
    }


def prepare_faces(
    name: str,
    table: ImageTable,
    *,
    aligned: bool | str = True,
    skip_bad: bool = False,
    progress: bool = True,
    workers: int = 2,
    detector: str = "yunet",
    no_face: str = "mean_landmarks",
    cache_dir: str | Path | None = None,
    fix: str = "",
) -> PreparedFaces:
    """Check every image; align unaligned sets; one clear error per bad image, or counted skips.

    ``aligned``: True (images must be 112x112 faces), False (align every image on the fly) or "auto"
    (aligned when every image is 112x112, else align them all). ``no_face`` (unaligned only):
    "mean_landmarks" keeps images with no detected face, warped with the set's mean landmarks, or
    "drop" leaves their pairs out; both are reported as Skipped("face") records.
    """
    if no_face not in ("mean_landmarks", "drop"):
        raise FiqaError(f"{name}: option no_face={no_face!r} must be 'mean_landmarks' or 'drop'.")
    decoded = _shapes(table.blobs, workers, progress, f"{name}: check images")
    for i, why in table.unreadable.items():
        decoded[i] = why
    policy = BadInputs(skip_bad, hint="" if fix else SKIP_HINT)
    bad: set[int] = set()
    for i, s in enumerate(decoded):
        if isinstance(s, str):
            policy.bad(
                "image",
                table.where[i],
                s + ("; its pairs are left out" if skip_bad else ""),
                fix or "replace the image",
            )
            bad.add(i)
    skipped = policy.skipped
    shapes = [None if isinstance(s, str) else s for s in decoded]
    good_shapes = [s for s in shapes if s is not None]
    auto = aligned == "auto"
    if auto:
        aligned = all(s == (ALIGNED_SIZE, ALIGNED_SIZE) for s in good_shapes)
        log.info(
            "%s: images are %s (aligned=auto)",
            name,
            "112x112, used as aligned" if aligned else "not all 112x112, aligning them",
        )
    check = check_alignment(name, table, shapes, auto) if aligned else {}
    if check.get("misaligned") and auto:
        aligned = False
    if aligned:
        for i, s in enumerate(shapes):
            if s is not None and s != (ALIGNED_SIZE, ALIGNED_SIZE):
                why = f"is {s[1]}x{s[0]} pixels, not an aligned 112x112 face"
                if not skip_bad:
                    raise DataFormatError(
                        table.where[i],
                        why,
                        "use the aligned release, pass aligned=false to align the images on the fly, or "
                        + SKIP_HINT,
                    )
                skipped.append(Skipped("image", table.where[i], why + "; its pairs are left out"))
                bad.add(i)
        keep_idx = np.array([i for i in range(len(table)) if i not in bad], np.int64)
        loader: Any = SubsetLoader(BlobLoader(table.blobs, table.where), keep_idx)
        meta: dict[str, np.ndarray] = {}
        fingerprint = table.content_digest()
        info: dict[str, Any] = {}
    else:
        from fiqa_bench.align import ALIGNER_VERSIONS

        if detector not in ALIGNER_VERSIONS:
            raise FiqaError(
                f"{name}: option detector={detector!r} must be one of {', '.join(ALIGNER_VERSIONS)}."
            )
        fingerprint = hashlib.sha256(
            (table.content_digest() + ALIGNER_VERSIONS[detector]).encode()
        ).hexdigest()[:16]
        crops, status, det_score, landmarks = _aligned_crops(
            name, table, fingerprint, detector, workers, progress, cache_dir
        )
        n_no_face = 0
        for i in np.flatnonzero(status == 1):
            if i in bad:
                continue
            n_no_face += 1
            if no_face == "drop":
                bad.add(int(i))
                skipped.append(
                    Skipped(
                        "face",
                        table.ids[i],
                        f"no face found by {detector}; its pairs are left out (no_face=drop)",
                    )
                )
            else:
                skipped.append(
                    Skipped(
                        "face",
                        table.ids[i],
                        f"no face found by {detector}; aligned with the set's mean landmarks",
                    )
                )
        keep_idx = np.array([i for i in range(len(table)) if i not in bad], np.int64)
        loader = ArrayLoader(crops, keep_idx)
        # Measured landmarks only: a faceless image's stand-in landmarks placed its crop, but landmark-based
        # methods must see "no face" (NaN), not a plausible face.
        measured = np.where(
            (np.asarray(status) == 0)[:, None, None], np.asarray(landmarks, np.float32), np.nan
        )
        meta = {"det_score": np.asarray(det_score)[keep_idx], "landmarks": measured[keep_idx]}
        n_checked = len(table) - sum(1 for s in shapes if s is None)
        info = {
            "detector": detector,
            "no_face": n_no_face,
            "alignment_failure_rate": float(n_no_face / max(n_checked, 1)),
        }
        fingerprint = hashlib.sha256((fingerprint + no_face).encode()).hexdigest()[:16]
    info.update({k: v for k, v in check.items() if k != "misaligned"})
    keep = np.full(len(table), -1, np.int64)
    keep[keep_idx] = np.arange(len(keep_idx))
    faces = FaceSet(ids=[table.ids[i] for i in keep_idx], loader=loader, meta=meta)
    return PreparedFaces(faces, keep, skipped, bool(aligned), info, fingerprint, list(table.ids))


def _aligned_crops(
    name: str,
    table: ImageTable,
    fingerprint: str,
    detector: str,
    workers: int,
    progress: bool,
    cache_dir: str | Path | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Aligned crops (memory-mapped from the cache when present) + status/score/landmarks per image."""
    from fiqa_bench.align import align_sources
    from fiqa_bench.cache import cached_crops, default_cache_dir

    folder = Path(cache_dir or default_cache_dir()) / "v1" / "aligned"
    stem = f"{name.replace(':', '_').replace('/', '_')}-{fingerprint}"

    def compute(out: np.ndarray) -> dict[str, np.ndarray]:
        res = align_sources(
            table.blobs,
            detector,
            workers=workers,
            progress=progress,
            desc=f"{name}: align ({detector})",
            out=out,
        )
        return {"status": res.status, "det_score": res.det_score, "landmarks": res.landmarks}

    # Verified on every read (shape, dtype, checksums), rebuilt when damaged, safe under concurrent runs.
    crops, meta = cached_crops(folder / stem, (len(table), ALIGNED_SIZE, ALIGNED_SIZE, 3), compute)
    return crops, meta["status"], meta["det_score"], meta["landmarks"]


# -- assembling the loaded dataset ------------------------------------------------------------------


def assemble(
    name: str,
    prepared: PreparedFaces,
    a: np.ndarray,
    b: np.ndarray,
    genuine: np.ndarray,
    fold: np.ndarray,
    pair_where: Sequence[str],
    *,
    source: str,
    fingerprint: str,
    skipped: list[Skipped],
    info: dict[str, Any],
    progress: bool,
) -> LoadedDataset:
    """Pairs over table indices -> LoadedDataset over the FaceSet; pairs whose image was left out are
    dropped with a Skipped record each; images no kept pair uses are removed."""
    a_new, b_new = prepared.keep[np.asarray(a, np.int64)], prepared.keep[np.asarray(b, np.int64)]
    ok = (a_new >= 0) & (b_new >= 0)
    ids = prepared.faces.ids
    all_skipped = list(skipped) + prepared.skipped
    for k in np.flatnonzero(~ok):
        gone = [prepared.table_ids[int(x)] for x, y in ((a[k], a_new[k]), (b[k], b_new[k])) if y < 0]
        all_skipped.append(Skipped("pair", pair_where[k], f"left out: image {', '.join(gone)} is unusable"))
    if len(ok) and not ok.any() or not len(ok) and all_skipped:
        counts: dict[str, int] = {}
        for s in all_skipped:
            counts[s.what] = counts.get(s.what, 0) + 1
        first = next((s for s in all_skipped if s.what != "face"), all_skipped[0] if all_skipped else None)
        raise DataFormatError(
            source,
            f"every pair was left out ({', '.join(f'{v} {k}(s) skipped' for k, v in sorted(counts.items()))}"
            + (f"; first: {first.where}: {first.why}" if first else "")
            + ")",
            "fix the listed inputs: nothing is left to evaluate",
        )
    a_new, b_new = a_new[ok], b_new[ok]
    genuine, fold = np.asarray(genuine, bool)[ok], np.asarray(fold, np.int16)[ok]
    faces = prepared.faces
    used = np.unique(np.concatenate([a_new, b_new])) if len(a_new) else np.zeros(0, np.int64)
    if len(used) < len(ids):  # compact: only images a kept pair uses are scored
        remap = np.full(len(ids), -1, np.int64)
        remap[used] = np.arange(len(used))
        faces = FaceSet(
            ids=[ids[i] for i in used],
            loader=SubsetLoader(faces.loader, used),
            meta={k: v[used] for k, v in faces.meta.items()},
        )
        a_new, b_new = remap[a_new], remap[b_new]
    # The fingerprint covers what is evaluated: image content/alignment, ids and the final pairs.
    h = hashlib.sha256(fingerprint.encode())
    for part in (a_new, b_new, genuine, fold):
        h.update(np.ascontiguousarray(part).tobytes())
    h.update("\0".join(faces.ids).encode())
    data = LoadedDataset(
        name=name,
        faces=faces,
        pairs=Pairs(a_new, b_new, genuine, fold),
        source=source,
        fingerprint=h.hexdigest()[:16],
        aligned=prepared.aligned,
        skipped=all_skipped,
        info={**info, **prepared.info, "n_pairs_dropped": int((~ok).sum())},
    )
    report_loaded(data, progress)
    return data


def report_loaded(data: LoadedDataset, progress: bool) -> None:
    """Log pair count and genuine/impostor balance (and any skips); warn on a lopsided set."""
    p = data.pairs
    n = len(p)
    log.info("%s", data.summary())
    if n == 0:
        log.warning("%s: no pairs left to evaluate", data.name)
    elif not 0.2 <= p.n_genuine / n <= 0.8:
        log.warning("%s: unbalanced pairs: %d genuine / %d impostor", data.name, p.n_genuine, p.n_impostor)
    if data.skipped:
        counts: dict[str, int] = {}
        for s in data.skipped:
            counts[s.what] = counts.get(s.what, 0) + 1
        text = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        msg = f"{data.name}: skipped/flagged {text} (listed in the report)"
        if progress:
            tqdm.write(msg)
        else:
            log.warning(msg)
