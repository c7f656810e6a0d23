"""Face alignment: 5-landmark detection (YuNet or MTCNN) + similarity warp to the 112x112 ArcFace template.

``fiqa-bench align SRC DST [--detector yunet|mtcnn] [--workers N] [--no-face mean|skip]`` walks SRC,
writes each aligned face to DST under the same relative path (RGB-correct files: OpenCV writes BGR,
so channels are swapped back exactly once, here) and writes a CSV log of every image with no face or
that could not be decoded. Reusable pieces: :func:`make_detector`, :func:`align_sources` (in-memory,
used by datasets that align on the fly) and :func:`align_folder`.

Images with no face: by default they are still aligned, with the mean landmarks of the images where a
face was found (insightface's tools fall back to a centred crop for the same reason), and listed in the
log; ``--no-face skip`` leaves them out. Either way they are counted. An empty or undecodable image
stops the run with one error naming it, or with ``--skip-bad`` is counted and listed in the log.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
from tqdm.auto import tqdm

from .errors import DataFormatError, FiqaError
from .faces import (
    ARCFACE_TEMPLATE,
    Detection,
    YuNetDetector,
    decode_rgb,
    pick_face,
    read_rgb,
    warp_to_template,
)
from .input_checks import read_image_file, sniff_image_file

DETECTORS = ("yunet", "mtcnn")
# Part of every cache key of on-the-fly crops: bump when detection or warping changes.
ALIGNER_VERSIONS = {
    "yunet": "yunet-2023mar/arcface-template/v1",
    "mtcnn": "mtcnn-facenet-pytorch-2.6/arcface-template/v1",
}
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})

# Per-image outcome codes.
OK, NO_FACE, UNDECODABLE = 0, 1, 2

NoFacePolicy = Literal["mean", "skip"]


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


def make_detector(name: str = "yunet", device: str = "cpu") -> Detector:
    """A detector by name: ``yunet`` (OpenCV, default) or ``mtcnn`` (facenet-pytorch)."""
    key = (name or "yunet").lower()
    if key == "yunet":
        return YuNetDetector()
    if key == "mtcnn":
        from .mtcnn import MTCNNDetector

        return MTCNNDetector(device=device)
    raise FiqaError(f"Unknown face detector {name!r}. Known detectors: {', '.join(DETECTORS)}.")


def fallback_landmarks(shape: tuple[int, ...], mean_relative: np.ndarray | None) -> np.ndarray:
    """Landmarks for an image with no detected face: the set's mean (relative to image size) or,
    with no successful detection at all, the template centred in the image (a centre crop)."""
    h, w = shape[:2]
    if mean_relative is not None:
        return (mean_relative * np.array([w, h], np.float32)).astype(np.float32)
    side = min(h, w)
    return (
        ARCFACE_TEMPLATE * (side / 112.0) + np.array([(w - side) / 2, (h - side) / 2], np.float32)
    ).astype(np.float32)


@dataclass
class AlignResult:
    """Outcome of aligning a list of images (index-aligned with the input)."""

    crops: np.ndarray  # N x size x size x 3 uint8 (fallback crops for NO_FACE; zeros for UNDECODABLE)
    status: np.ndarray  # int8 per image: OK, NO_FACE or UNDECODABLE
    det_score: np.ndarray  # float32, 0 where no face
    landmarks: np.ndarray  # N x 5 x 2 float32 in source pixels (fallback landmarks for NO_FACE)
    n_faces: np.ndarray  # int16: detections found per image (>1: the largest/most central was used)

    @property
    def n_no_face(self) -> int:
        return int((self.status == NO_FACE).sum())

    @property
    def n_undecodable(self) -> int:
        return int((self.status == UNDECODABLE).sum())


ImageSource = bytes | str | os.PathLike[str]


def _read(source: ImageSource) -> np.ndarray | None:
    return decode_rgb(source) if isinstance(source, bytes | bytearray) else read_rgb(source)


def align_sources(
    sources: Sequence[ImageSource],
    detector: Detector | str = "yunet",
    *,
    size: int = 112,
    workers: int = 2,
    progress: bool = True,
    desc: str = "align",
    out: np.ndarray | None = None,
) -> AlignResult:
    """Align encoded images (bytes) or image files. Images with no face get fallback crops (set mean
    landmarks); the caller decides whether to keep them. ``out`` may be a preallocated (memory-mapped)
    N x size x size x 3 array to write the crops into."""
    det = make_detector(detector) if isinstance(detector, str) else detector
    n = len(sources)
    crops = out if out is not None else np.zeros((n, size, size, 3), np.uint8)
    status = np.zeros(n, np.int8)
    det_score = np.zeros(n, np.float32)
    landmarks = np.zeros((n, 5, 2), np.float32)
    relative = np.full((n, 5, 2), np.nan, np.float32)
    n_faces = np.zeros(n, np.int16)

    def work(i: int) -> None:
        rgb = _read(sources[i])
        if rgb is None:
            status[i] = UNDECODABLE
            crops[i] = 0
            return
        found = det.detect(rgb)
        n_faces[i] = len(found)
        best = pick_face(found, rgb.shape)
        if best is None:
            status[i] = NO_FACE
            return
        crops[i] = warp_to_template(rgb, best.landmarks, size)
        det_score[i], landmarks[i] = best.score, best.landmarks
        h, w = rgb.shape[:2]
        relative[i] = best.landmarks / np.array([w, h], np.float32)

    _run(work, n, workers, progress, desc)
    missing = np.flatnonzero(status == NO_FACE)
    if len(missing):
        ok = status == OK
        mean_rel = relative[ok].mean(axis=0) if ok.any() else None
        for i in missing:
            rgb = _read(sources[i])
            if rgb is None:  # vanished or changed between the passes
                status[i] = UNDECODABLE
                crops[i] = 0
                continue
            landmarks[i] = fallback_landmarks(rgb.shape, mean_rel)
            crops[i] = warp_to_template(rgb, landmarks[i], size)
    return AlignResult(crops, status, det_score, landmarks, n_faces)


def _run(work: Callable[[int], Any], n: int, workers: int, progress: bool, desc: str) -> None:
    bar = tqdm(total=n, desc=desc, unit="img", disable=not progress)
    try:
        if workers <= 1:
            for i in range(n):
                work(i)
                bar.update()
        else:
            with ThreadPoolExecutor(workers) as pool:
                for _ in pool.map(work, range(n)):
                    bar.update()
    finally:
        bar.close()


# -- folders -------------------------------------------------------------------------------------


@dataclass
class FolderSummary:
    n_images: int
    n_written: int
    n_no_face: int
    n_undecodable: int
    n_several_faces: int
    log_path: Path
    no_face: list[str] = field(default_factory=list)

    @property
    def failure_rate(self) -> float:
        return self.n_no_face / self.n_images if self.n_images else 0.0

    def text(self) -> str:
        return (
            f"{self.n_images} images: {self.n_written} written, {self.n_no_face} with no face "
            f"({100 * self.failure_rate:.2f}%), {self.n_undecodable} undecodable, "
            f"{self.n_several_faces} with several faces (largest/most central used); log: {self.log_path}"
        )


def list_images(src: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under ``src`` (recursive, sorted), by extension; ``exclude`` is a subtree to skip."""
    out = []
    ex = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(src):
        d = Path(dirpath)
        if ex is not None:
            dirnames[:] = [n for n in dirnames if (d / n).resolve() != ex]
        out.extend(d / f for f in filenames if Path(f).suffix.lower() in IMAGE_EXTENSIONS)
    return sorted(out)


def write_rgb(path: Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write an RGB image with the right channel order (OpenCV expects BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]), params):
        raise FiqaError(f"{path}: could not write the aligned image. Check that the folder is writable.")


def align_folder(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    detector: Detector | str = "yunet",
    workers: int = 2,
    no_face: NoFacePolicy = "mean",
    log_path: str | os.PathLike[str] | None = None,
    size: int = 112,
    jpeg_quality: int = 95,
    progress: bool = True,
    skip_bad: bool = False,
) -> FolderSummary:
    """Align every image under ``src`` into ``dst`` (same relative paths and formats).

    An empty, unreadable or undecodable image stops the run with one error naming it (empty and
    non-image files are found before any work, from their first bytes), unless ``skip_bad``: then it is
    counted and listed in the log. Raises FiqaError / DataFormatError."""
    src_p, dst_p = Path(src).expanduser(), Path(dst).expanduser()
    if not src_p.is_dir():
        raise FiqaError(f"{src_p}: source folder does not exist. Pass the folder holding the face images.")
    if src_p.resolve() == dst_p.resolve():
        raise FiqaError(
            f"{dst_p}: destination is the source folder; choose a new folder so the originals are kept."
        )
    if no_face not in ("mean", "skip"):
        raise FiqaError(f"--no-face {no_face!r}: use 'mean' (align with the mean landmarks) or 'skip'.")
    det = make_detector(detector) if isinstance(detector, str) else detector
    paths = list_images(src_p, exclude=dst_p)
    if not paths:
        raise FiqaError(f"{src_p}: no images found ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
    log_p = Path(log_path) if log_path else dst_p / "align_log.csv"
    fix = (
        "replace or remove the file, or pass --skip-bad (skip_bad=True) to leave it out (counted and logged)"
    )
    if not skip_bad:
        for p in paths:
            why = sniff_image_file(p)
            if why:
                raise DataFormatError(p, why, fix)
    n = len(paths)
    status = np.zeros(n, np.int8)
    relative = np.full((n, 5, 2), np.nan, np.float32)
    n_faces = np.zeros(n, np.int16)

    def out_path(i: int) -> Path:
        return dst_p / paths[i].relative_to(src_p)

    def work(i: int) -> None:
        rgb = read_rgb(paths[i])
        if rgb is None:
            status[i] = UNDECODABLE
            return
        found = det.detect(rgb)
        n_faces[i] = len(found)
        best = pick_face(found, rgb.shape)
        if best is None:
            status[i] = NO_FACE
            return
        h, w = rgb.shape[:2]
        relative[i] = best.landmarks / np.array([w, h], np.float32)
        write_rgb(out_path(i), warp_to_template(rgb, best.landmarks, size), jpeg_quality)

    _run(work, n, workers, progress, f"align ({det.name})")
    if not skip_bad and (status == UNDECODABLE).any():
        first = paths[int(np.flatnonzero(status == UNDECODABLE)[0])]
        raise DataFormatError(first, read_image_file(first)[1], fix)
    ok = status == OK
    mean_rel = relative[ok].mean(axis=0) if ok.any() else None
    rows = []
    for i in np.flatnonzero(~ok):
        rel = paths[i].relative_to(src_p).as_posix()
        if status[i] == UNDECODABLE:
            rows.append((rel, "undecodable", "not written"))
            continue
        action = "not written (--no-face skip)"
        if no_face == "mean":
            rgb = read_rgb(paths[i])
            if rgb is not None:
                write_rgb(
                    out_path(i),
                    warp_to_template(rgb, fallback_landmarks(rgb.shape, mean_rel), size),
                    jpeg_quality,
                )
                action = "written, aligned with the mean landmarks of the detected faces"
        rows.append((rel, "no_face", action))
    log_p.parent.mkdir(parents=True, exist_ok=True)
    with open(log_p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "problem", "action"])
        w.writerows(rows)
    n_no = int((status == NO_FACE).sum())
    n_bad = int((status == UNDECODABLE).sum())
    written = int(ok.sum()) + (n_no if no_face == "mean" else 0)
    return FolderSummary(
        n_images=n,
        n_written=written,
        n_no_face=n_no,
        n_undecodable=n_bad,
        n_several_faces=int((n_faces > 1).sum()),
        log_path=log_p,
        no_face=[r[0] for r in rows if r[1] == "no_face"],
    )


# -- CLI ---------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="folder of face images (searched recursively)")
    parser.add_argument("dst", help="output folder: aligned 112x112 faces under the same relative paths")
    parser.add_argument(
        "--detector", default="yunet", choices=DETECTORS, help="landmark detector (default: yunet)"
    )
    parser.add_argument("--workers", type=int, default=2, help="threads (default: 2)")
    parser.add_argument(
        "--no-face",
        default="mean",
        choices=("mean", "skip"),
        help="images with no detected face: 'mean' aligns them with the mean landmarks (default), 'skip' leaves them out; both are logged",
    )
    parser.add_argument(
        "--log", help="CSV log of images with no face or undecodable (default: DST/align_log.csv)"
    )
    parser.add_argument("--jpeg-quality", type=int, default=95, help="quality of JPEG outputs (default: 95)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--skip-bad",
        action="store_true",
        help="leave out empty or undecodable images (counted and logged) instead of stopping at the first",
    )


def main(args: argparse.Namespace) -> int:
    summary = align_folder(
        args.src,
        args.dst,
        detector=args.detector,
        workers=args.workers,
        no_face=args.no_face,
        log_path=args.log,
        jpeg_quality=args.jpeg_quality,
        progress=not args.quiet,
        skip_bad=args.skip_bad,
    )
    print(f"fiqa-bench align ({args.detector}): {summary.text()}")
    return 0
