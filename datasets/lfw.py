"""LFW: the original folder form (``<root>/lfw/images/<name>/<name>_%04d.jpg`` + ``<root>/lfw/pairs.txt``,
unaligned photos, aligned on the fly with YuNet) or insightface's ``lfw.bin`` (``<root>/lfw.bin``,
``<root>/lfw/lfw.bin`` or ``<root>/<folder>/lfw.bin``), whichever the data root holds; the folder form wins when both exist.

pairs.txt: first line ``FOLDS<TAB>N``, then per fold N genuine lines ``name n1 n2`` followed by N
impostor lines ``name1 n1 name2 n2``; image numbers are 1-based. View 1's ``pairsDevTrain.txt`` /
``pairsDevTest.txt`` (first line ``N``: one fold) are read too, as ``pairs.txt`` or with the option
``pairs_file=pairsDevTest.txt``.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from fiqa_bench.datasets._common import NO_FACE_OPTION, WORKERS_OPTION, _optional_str
from tqdm.auto import tqdm

from fiqa_bench.cache import cached_crops, default_cache_dir
from fiqa_bench.errors import DataFormatError, MissingDataError
from fiqa_bench.faces import YuNetDetector, pick_face, read_rgb, warp_to_template
from fiqa_bench.input_checks import SKIP_HINT, BadInputs, read_image_file, read_text
from fiqa_bench.registry import Card, Option, register_dataset
from fiqa_bench.types import BuildContext, Dataset, DatasetStatus, FaceSet, LoadedDataset, Pairs, Skipped

ALIGNER_VERSION = "yunet-2023mar/arcface-template/v1"

LFW_CARD = Card(
    name="lfw",
    kind="dataset",
    summary="Labeled Faces in the Wild verification protocol (folder form or insightface lfw.bin)",
    paper="Huang et al., Labeled Faces in the Wild, UMass Amherst TR 07-49, 2007",
    licence="research benchmark without a formal licence (public figures, news photographs)",
    normalisation="unaligned photos aligned on the fly to the ArcFace 112x112 template (YuNet landmarks)",
    options=(
        NO_FACE_OPTION,
        WORKERS_OPTION,
        Option(
            "pairs_file",
            None,
            "pairs file in lfw/ (default pairs.txt; e.g. pairsDevTest.txt)",
            parse=_optional_str,
        ),
    ),
    notes=(
        "Sub-paths under the data root: lfw/images/<name>/<name>_NNNN.jpg + lfw/pairs.txt (folder form, "
        "unaligned), or lfw.bin / lfw/lfw.bin (insightface, aligned). Option no_face: 'mean_landmarks' "
        "(default: warp with the set's mean landmarks, counted and reported) or 'drop' (leave the "
        "image's pairs out, counted and reported). Option pairs_file=NAME (in lfw/) reads another pairs "
        "list, e.g. View 1's pairsDevTest.txt (header 'N': one fold)."
    ),
)


def parse_lfw_pairs(path: Path) -> tuple[list[tuple[str, int, str, int, bool, int, int]], int]:
    """Rows (name_a, n_a, name_b, n_b, genuine, fold, line number) and the number of folds; errors name
    file:line (real line numbers: blank lines are skipped but counted).

    Accepted headers: ``FOLDS<TAB>N`` (View 2, ``pairs.txt``: FOLDS x (N genuine + N impostor) lines) and
    a single ``N`` (View 1, ``pairsDevTrain.txt``/``pairsDevTest.txt``: N genuine then N impostor lines,
    one fold). Any text encoding reads (not UTF-8: Latin-1, with a warning)."""
    numbered = [(i + 1, ln) for i, ln in enumerate(read_text(path).splitlines()) if ln.strip()]
    if not numbered:
        raise DataFormatError(path, "empty pairs file", "use the LFW pairs.txt (first line 'FOLDS<TAB>N')")
    head_no, head_line = numbered[0]
    head = head_line.split()
    try:
        if len(head) == 1:  # View 1
            n_folds, per_class = 1, int(head[0])
        elif len(head) == 2:
            n_folds, per_class = int(head[0]), int(head[1])
        else:
            raise ValueError
        if n_folds < 1 or per_class < 1:
            raise ValueError
    except ValueError:
        raise DataFormatError(
            path,
            f"header {head_line!r} is neither 'FOLDS<TAB>N' (View 2, pairs.txt) nor 'N' (View 1, pairsDevTest.txt)",
            "restore the file's first line",
            head_no,
        ) from None
    body = numbered[1:]
    expected = n_folds * 2 * per_class
    if len(body) != expected:
        raise DataFormatError(
            path,
            f"header promises {n_folds} folds x 2 x {per_class} = {expected} pairs but the file has {len(body)} pair lines",
            "use an unmodified pairs.txt or fix the header",
            head_no,
        )
    rows = []
    for k, (lineno, line) in enumerate(body):
        fold, pos = divmod(k, 2 * per_class)
        genuine_expected = pos < per_class
        tok = line.split()
        try:
            if len(tok) == 3:
                row = (tok[0], int(tok[1]), tok[0], int(tok[2]), True, fold, lineno)
            elif len(tok) == 4:
                row = (tok[0], int(tok[1]), tok[2], int(tok[3]), False, fold, lineno)
            else:
                raise ValueError
        except ValueError:
            raise DataFormatError(
                path,
                f"cannot parse {line.strip()!r} (expected 'name n1 n2' or 'name1 n1 name2 n2')",
                "repair or remove the line and fix the header counts",
                lineno,
            ) from None
        if row[4] != genuine_expected:
            kind = "genuine" if genuine_expected else "impostor"
            raise DataFormatError(
                path,
                f"expected a {kind} pair line here, got {line.strip()!r}",
                "keep each fold's genuine lines before its impostor lines",
                lineno,
            )
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
        self.pairs_path = self.folder / str(options.get("pairs_file") or "pairs.txt")

    def _bin_path(self) -> Path | None:
        from fiqa_bench.datasets.insightface_bin import find_bin

        return find_bin(self.root, "lfw")

    def _has_folder(self) -> bool:
        return self.pairs_path.is_file() and (self.folder / "images").is_dir()

    def status(self) -> DatasetStatus:
        if self._has_folder():
            try:
                rows, _ = parse_lfw_pairs(self.pairs_path)
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
                    "lfw",
                    self.pairs_path,
                    f"Put the LFW folder (images/<name>/<name>_NNNN.jpg + pairs.txt) at {self.folder} or lfw.bin at "
                    f"{self.root / 'lfw.bin'}; set the data root with --data-root or FIQA_BENCH_DATA.",
                )
            from fiqa_bench.datasets.insightface_bin import load_insightface_bin

            return load_insightface_bin(bin_path, "lfw", skip_bad=skip_bad, progress=progress)
        return self._load_folder(skip_bad=skip_bad, progress=progress)

    def _load_folder(self, *, skip_bad: bool, progress: bool) -> LoadedDataset:
        pairs_path = self.pairs_path
        rows, n_folds = parse_lfw_pairs(pairs_path)
        skipped: list[Skipped] = []
        ids: list[str] = []
        index: dict[str, int] = {}
        keep_rows = []
        policy = BadInputs(skip_bad, skipped)
        first_line: dict[str, int] = {}  # image -> first pairs.txt line using it (for messages)
        for na, ia, nb, ib, gen, fold, lineno in rows:
            refs: list[str] | None = []
            for name, num in ((na, ia), (nb, ib)):
                rel = f"{name}/{name}_{num:04d}.jpg"
                if rel not in index and not (self.folder / "images" / rel).is_file():
                    policy.bad(
                        "pair",
                        pairs_path,
                        f"image {self.folder / 'images' / rel} does not exist",
                        "restore the image",
                        lineno,
                    )
                    refs = None
                    break
                refs.append(rel)
            if refs is None:
                continue
            for rel in refs:
                if rel not in index:
                    index[rel] = len(ids)
                    ids.append(rel)
                    first_line[rel] = lineno
            keep_rows.append((index[refs[0]], index[refs[1]], gen, fold))
        if not keep_rows:
            raise DataFormatError(
                pairs_path,
                f"every pair was left out ({len(skipped)} skipped; first: {skipped[0].where}: {skipped[0].why})",
                "restore the images: nothing is left to evaluate",
            )
        paths = [self.folder / "images" / rel for rel in ids]
        fingerprint = hashlib.sha256(
            (
                _file_digest([pairs_path, *paths])
                + ALIGNER_VERSION
                + str(self.options.get("no_face", "mean_landmarks"))
            ).encode()
        ).hexdigest()[:16]
        crops, det_score, landmarks, failed = self._aligned(paths, fingerprint, progress)
        undecodable = [i for i, f in enumerate(failed) if f == 2]
        if undecodable and not skip_bad:
            i = undecodable[0]
            raise DataFormatError(
                paths[i],
                read_image_file(paths[i])[1] + f" (used on {pairs_path}:{first_line.get(ids[i], '?')})",
                f"replace the file or {SKIP_HINT}",
            )
        no_face = np.flatnonzero(failed == 1)
        drop = set(undecodable)
        policy = self.options.get("no_face", "mean_landmarks")
        for i in no_face:
            why = "no face found by YuNet; " + (
                "pairs left out (no_face=drop)"
                if policy == "drop"
                else "aligned with the set's mean landmarks"
            )
            skipped.append(Skipped("face", ids[i], why))
            if policy == "drop":
                drop.add(int(i))
        for i in undecodable:
            skipped.append(
                Skipped("image", str(paths[i]), read_image_file(paths[i])[1] + "; its pairs are left out")
            )
        a, b, gen, fold = (
            (np.array(x) for x in zip(*keep_rows, strict=True)) if keep_rows else (np.zeros(0),) * 4
        )
        if drop:
            bad = np.isin(a, list(drop)) | np.isin(b, list(drop))
            for k in np.flatnonzero(bad):
                skipped.append(
                    Skipped("pair", f"{ids[a[k]]} vs {ids[b[k]]}", "an image of the pair has no usable face")
                )
            a, b, gen, fold = a[~bad], b[~bad], gen[~bad], fold[~bad]
            if not len(a):
                raise DataFormatError(
                    pairs_path,
                    f"every pair was left out ({len(drop)} image(s) unusable: undecodable or no_face=drop)",
                    "restore the images: nothing is left to evaluate",
                )
        faces = FaceSet(
            ids=[f"lfw/{i}" for i in ids],
            loader=lambda i: crops[i],
            # Measured landmarks only (NaN where no face was found; the crop used the set's mean landmarks).
            meta={
                "det_score": det_score,
                "landmarks": np.where((failed == 0)[:, None, None], landmarks, np.nan),
            },
        )
        return LoadedDataset(
            name="lfw",
            faces=faces,
            pairs=Pairs(a, b, gen, fold),
            source=f"LFW folder form ({self.folder}: images/ + {pairs_path.name}, {n_folds} fold(s), aligned with YuNet)",
            fingerprint=fingerprint,
            aligned=False,
            skipped=skipped,
            info={
                "no_face": int(len(no_face)),
                "alignment_failure_rate": float(len(no_face) / max(len(ids), 1)),
            },
        )

    def _aligned(
        self, paths: list[Path], fingerprint: str, progress: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Aligned crops of every image (cached on disk per fingerprint): crops, det_score, landmarks, failed
        (0 = ok, 1 = no face, 2 = undecodable)."""
        cache_root = Path(self.cache_dir or default_cache_dir())
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
                list(
                    tqdm(
                        pool.map(work, range(n)),
                        total=n,
                        desc="lfw: align (YuNet)",
                        unit="img",
                        disable=not progress,
                    )
                )
            ok = failed == 0
            if (~ok).any() and ok.any():
                mean_lm = landmarks[ok].mean(axis=0)
                for i, rgb in sources.items():
                    crops[i] = warp_to_template(rgb, mean_lm)
                    landmarks[i] = mean_lm
            return {"det_score": det_score, "landmarks": landmarks, "failed": failed}

        # Memory-mapped, verified on every read (shape, dtype, checksums), rebuilt when damaged, safe
        # under concurrent runs (built in a private folder, published by one rename).
        crops, meta = cached_crops(
            cache_root / "v1" / "aligned" / f"lfw-{fingerprint}", (n, 112, 112, 3), compute
        )
        return crops, meta["det_score"], meta["landmarks"], meta["failed"]


@register_dataset(LFW_CARD)
def lfw(ctx: BuildContext) -> LFWFolder:
    return LFWFolder(ctx.root, **ctx.options)
