"""LFW: the original folder form (``<root>/lfw/images/<name>/<name>_%04d.jpg`` + ``<root>/lfw/pairs.txt``,
unaligned photos, aligned on the fly with YuNet) or insightface's ``lfw.bin`` (``<root>/lfw.bin``,
``<root>/lfw/lfw.bin`` or ``<root>/<folder>/lfw.bin``), whichever the data root holds; the folder form wins when both exist.

pairs.txt: first line ``FOLDS<TAB>N``, then per fold N genuine lines ``name n1 n2`` followed by N
impostor lines ``name1 n1 name2 n2``; image numbers are 1-based.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fiqa_bench.cache import cached_crops, default_cache_dir
from fiqa_bench.errors import DataFormatError, MissingDataError
from fiqa_bench.faces import YuNetDetector, pick_face, read_rgb, warp_to_template
from fiqa_bench.registry import Card, register_dataset
from fiqa_bench.types import Dataset, DatasetStatus, FaceSet, LoadedDataset, Pairs, Skipped

ALIGNER_VERSION = "yunet-2023mar/arcface-template/v1"

LFW_CARD = Card(
    name="lfw",
    kind="dataset",
    summary="Labeled Faces in the Wild verification protocol (folder form or insightface lfw.bin)",
    paper="Huang et al., Labeled Faces in the Wild, UMass Amherst TR 07-49, 2007",
    licence="research benchmark without a formal licence (public figures, news photographs)",
    normalisation="unaligned photos aligned on the fly to the ArcFace 112x112 template (YuNet landmarks)",
    default_options={"no_face": "mean_landmarks", "workers": 2},
    notes=(
        "Sub-paths under the data root: lfw/images/<name>/<name>_NNNN.jpg + lfw/pairs.txt (folder form, "
        "unaligned), or lfw.bin / lfw/lfw.bin (insightface, aligned). Option no_face: 'mean_landmarks' "
        "(default: warp with the set's mean landmarks, counted and reported) or 'drop' (leave the "
        "image's pairs out, counted and reported)."
    ),
)


def parse_lfw_pairs(path: Path) -> tuple[list[tuple[str, int, str, int, bool, int]], int]:
    """Rows (name_a, n_a, name_b, n_b, genuine, fold) and the number of folds; errors name file:line."""
    lines = path.read_text().splitlines()
    if not lines:
        raise DataFormatError(path, "empty pairs file", "use the LFW pairs.txt (first line 'FOLDS<TAB>N')")
    head = lines[0].split()
    try:
        n_folds, per_class = int(head[0]), int(head[1])
        if len(head) != 2 or n_folds < 1 or per_class < 1:
            raise ValueError
    except (ValueError, IndexError):
        raise DataFormatError(path, f"header {lines[0]!r} is not 'FOLDS<TAB>N'", "restore the file's first line", 1) from None
    body = [(i + 2, ln) for i, ln in enumerate(lines[1:]) if ln.strip()]
    expected = n_folds * 2 * per_class
    if len(body) != expected:
        raise DataFormatError(
            path,
            f"header promises {n_folds} folds x 2 x {per_class} = {expected} pairs but the file has {len(body)} pair lines",
            "use an unmodified pairs.txt or fix the header",
        )
    rows = []
    for k, (lineno, line) in enumerate(body):
        fold, pos = divmod(k, 2 * per_class)
        genuine_expected = pos < per_class
        tok = line.split()
        try:
            if len(tok) == 3:
                row = (tok[0], int(tok[1]), tok[0], int(tok[2]), True, fold)
            elif len(tok) == 4:
                row = (tok[0], int(tok[1]), tok[2], int(tok[3]), False, fold)
            else:
                raise ValueError
        except ValueError:
            raise DataFormatError(
                path, f"cannot parse {line.strip()!r} (expected 'name n1 n2' or 'name1 n1 name2 n2')",
                "repair or remove the line and fix the header counts", lineno,
            ) from None
        if row[4] != genuine_expected:
            kind = "genuine" if genuine_expected else "impostor"
            raise DataFormatError(path, f"expected a {kind} pair line here, got {line.strip()!r}", "keep each fold's genuine lines before its impostor lines", lineno)
        if row[1] < 1 or row[3] < 1:
            raise DataFormatError(path, "image numbers are 1-based", "fix the image number", lineno)
        rows.append(row)
    return rows, n_folds


def _file_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"missing")
    return h.hexdigest()[:16]


class LFWFolder(Dataset):
    card = LFW_CARD

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        self.folder = self.root / "lfw"

    def _bin_path(self) -> Path | None:
        from fiqa_bench.datasets.insightface_bin import find_bin

        return find_bin(self.root, "lfw")

    def _has_folder(self) -> bool:
        return (self.folder / "pairs.txt").is_file() and (self.folder / "images").is_dir()

    def status(self) -> DatasetStatus:
        if self._has_folder():
            try:
                rows, _ = parse_lfw_pairs(self.folder / "pairs.txt")
            except DataFormatError as exc:
                return DatasetStatus(False, f"folder form at {self.folder} is broken: {exc}")
            return DatasetStatus(True, f"folder form: {self.folder}", len(rows))
        bin_path = self._bin_path()
        if bin_path is not None:
            from fiqa_bench.datasets.insightface_bin import bin_status

            return bin_status(bin_path)
        return DatasetStatus(False, f"put lfw/images/ + lfw/pairs.txt or lfw.bin under {self.root}")

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        if not self._has_folder():
            bin_path = self._bin_path()
            if bin_path is None:
                raise MissingDataError(
                    "lfw", self.folder / "pairs.txt",
                    f"Put the LFW folder (images/<name>/<name>_NNNN.jpg + pairs.txt) at {self.folder} or lfw.bin at "
                    f"{self.root / 'lfw.bin'}; set the data root with --data-root or FIQA_BENCH_DATA.",
                )
            from fiqa_bench.datasets.insightface_bin import load_insightface_bin

            return load_insightface_bin(bin_path, "lfw", skip_bad=skip_bad, progress=progress)
        return self._load_folder(skip_bad=skip_bad, progress=progress)

    def _load_folder(self, *, skip_bad: bool, progress: bool) -> LoadedDataset:
        pairs_path = self.folder / "pairs.txt"
        rows, n_folds = parse_lfw_pairs(pairs_path)
        skipped: list[Skipped] = []
        ids: list[str] = []
        index: dict[str, int] = {}
        keep_rows = []
        for lineno, (na, ia, nb, ib, gen, fold) in enumerate(rows, start=2):
            refs = []
            for name, num in ((na, ia), (nb, ib)):
                rel = f"{name}/{name}_{num:04d}.jpg"
                if rel not in index and not (self.folder / "images" / rel).is_file():
                    if not skip_bad:
                        raise DataFormatError(
                            pairs_path, f"image {self.folder / 'images' / rel} does not exist",
                            "restore the image or pass --skip-bad to leave its pairs out (counted)", lineno,
                        )
                    skipped.append(Skipped("pair", f"{pairs_path}:{lineno}", f"missing image {rel}"))
                    refs = None
                    break
                refs.append(rel)
            if refs is None:
                continue
            for rel in refs:
                if rel not in index:
                    index[rel] = len(ids)
                    ids.append(rel)
            keep_rows.append((index[refs[0]], index[refs[1]], gen, fold))
        paths = [self.folder / "images" / rel for rel in ids]
        fingerprint = hashlib.sha256(
            (_file_digest([pairs_path, *paths]) + ALIGNER_VERSION + str(self.options.get("no_face", "mean_landmarks"))).encode()
        ).hexdigest()[:16]
        crops, det_score, landmarks, failed = self._aligned(paths, fingerprint, progress)
        undecodable = [i for i, f in enumerate(failed) if f == 2]
        if undecodable and not skip_bad:
            raise DataFormatError(paths[undecodable[0]], "cannot be decoded as an image", "replace the file or pass --skip-bad")
        no_face = np.flatnonzero(failed == 1)
        drop = set(undecodable)
        policy = self.options.get("no_face", "mean_landmarks")
        for i in no_face:
            why = "no face found by YuNet; " + ("pairs left out (no_face=drop)" if policy == "drop" else "aligned with the set's mean landmarks")
            skipped.append(Skipped("face", ids[i], why))
            if policy == "drop":
                drop.add(int(i))
        for i in undecodable:
            skipped.append(Skipped("image", str(paths[i]), "undecodable image; its pairs are left out"))
        a, b, gen, fold = (np.array(x) for x in zip(*keep_rows, strict=True)) if keep_rows else (np.zeros(0),) * 4
        if drop:
            bad = np.isin(a, list(drop)) | np.isin(b, list(drop))
            for k in np.flatnonzero(bad):
                skipped.append(Skipped("pair", f"{ids[a[k]]} vs {ids[b[k]]}", "an image of the pair has no usable face"))
            a, b, gen, fold = a[~bad], b[~bad], gen[~bad], fold[~bad]
        faces = FaceSet(
            ids=[f"lfw/{i}" for i in ids],
            loader=lambda i: crops[i],
            # Measured landmarks only (NaN where no face was found; the crop used the set's mean landmarks).
            meta={"det_score": det_score, "landmarks": np.where((failed == 0)[:, None, None], landmarks, np.nan)},
        )
        return LoadedDataset(
            name="lfw",
            faces=faces,
            pairs=Pairs(a, b, gen, fold),
            source=f"LFW folder form ({self.folder}: images/ + pairs.txt, {n_folds} folds, aligned with YuNet)",
            fingerprint=fingerprint,
            aligned=False,
            skipped=skipped,
            info={"no_face": int(len(no_face)), "alignment_failure_rate": float(len(no_face) / max(len(ids), 1))},
        )

    def _aligned(self, paths: list[Path], fingerprint: str, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Aligned crops of every image (cached on disk per fingerprint): crops, det_score, landmarks, failed
        (0 = ok, 1 = no face, 2 = undecodable)."""
        cache_root = Path(self.options.get("cache_dir") or default_cache_dir())
        n = len(paths)

        def compute(crops: np.ndarray) -> dict[str, np.ndarray]:
            detector = YuNetDetector()
            det_score = np.zeros(n, np.float32)
            landmarks = np.zeros((n, 5, 2), np.float32)
            failed = np.zeros(n, np.int8)
            sources: dict[int, np.ndarray] = {}

            def work(i: int) -> None:
                rgb = read_rgb(paths[i])
                if rgb is None:
                    failed[i] = 2
                    return
                det = pick_face(detector.detect(rgb), rgb.shape)
                if det is None:
                    failed[i] = 1
                    sources[i] = rgb
                    return
                crops[i] = warp_to_template(rgb, det.landmarks)
                det_score[i], landmarks[i] = det.score, det.landmarks

            workers = int(self.options.get("workers", 2))
            with ThreadPoolExecutor(max(workers, 1)) as pool:
                list(tqdm(pool.map(work, range(n)), total=n, desc="lfw: align (YuNet)", unit="img", disable=not progress))
            ok = failed == 0
            if (~ok).any() and ok.any():
                mean_lm = landmarks[ok].mean(axis=0)
                for i, rgb in sources.items():
                    crops[i] = warp_to_template(rgb, mean_lm)
                    landmarks[i] = mean_lm
            return {"det_score": det_score, "landmarks": landmarks, "failed": failed}

        # Memory-mapped, verified on every read (shape, dtype, checksums), rebuilt when damaged, safe
        # under concurrent runs (built in a private folder, published by one rename).
        crops, meta = cached_crops(cache_root / "v1" / "aligned" / f"lfw-{fingerprint}", (n, 112, 112, 3), compute)
        return crops, meta["det_score"], meta["landmarks"], meta["failed"]


@register_dataset(LFW_CARD)
def lfw(card: Card, root: str | Path | None = None, **options: Any) -> LFWFolder:
    return LFWFolder(root, **options)
