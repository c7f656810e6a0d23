"""CALFW and CPLFW in their own published form: ``pairs_CALFW.txt`` / ``pairs_CPLFW.txt`` plus the
image folder, beside insightface's ``calfw.bin`` / ``cplfw.bin`` (``datasets/insightface_bin.py``).

Layout under the data root (the folder form wins when both it and a ``.bin`` exist, as for ``lfw``):

- ``<root>/calfw/pairs_CALFW.txt`` + ``<root>/calfw/aligned images/<Name>_<NNNN>.jpg``
- ``<root>/cplfw/pairs_CPLFW.txt`` + ``<root>/cplfw/aligned images/<Name>_<N>.jpg``

(``images/`` is accepted instead of ``aligned images/``; option ``images=DIR`` names another folder.)

The pairs file (the authors' release; no header): two lines per pair, each ``<image file> <token>``;
both lines of a pair carry the same token. Token 0 = impostor (non-mated) pair, any other = genuine
(mated). In CALFW's file the genuine tokens are the fold numbers 1..10 (300 genuine pairs each, all
genuine pairs first, then 3,000 impostors with token 0); in CPLFW's the genuine token is 1, with each
fold's 300 genuine lines before its 300 impostor lines as in LFW's pairs.txt.

Folds: when the genuine tokens take more than one value (CALFW), a genuine pair's fold is its token
and the impostor pairs, which carry no fold, are cut into as many equal contiguous blocks in file
order; otherwise (CPLFW) 10 equal contiguous blocks of pairs in file order, as insightface's ``.bin``
files and its verification code use. These rules were checked against descriptions of the published
files (the file structure, token values and counts), not against the files themselves, which are not
available here.

Images: the ``aligned images`` releases are used as aligned when every image is 112x112; otherwise
(``aligned=auto``, the default) every image is aligned on the fly with YuNet.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import DataFormatError, MissingDataError
from fiqa_bench.input_checks import BadInputs, read_text
from fiqa_bench.types import Dataset, DatasetStatus, LoadedDataset, Skipped

from ._common import (
    N_FOLDS,
    SKIP_HINT,
    assemble,
    equal_folds,
    gather_pair_images,
    parse_aligned,
    prepare_faces,
)

PAIRS_FILES = {"calfw": "pairs_CALFW.txt", "cplfw": "pairs_CPLFW.txt"}
IMAGE_FOLDERS = ("aligned images", "images")
FOLDER_OPTIONS = ("images", "aligned", "detector", "no_face", "workers")
Row = tuple[str, str, bool, int, int]  # image_a, image_b, genuine, token, line number of the first line


def parse_two_line_pairs(
    path: Path, *, skip_bad: bool = False
) -> tuple[list[Row], np.ndarray, str, list[Skipped]]:
    """Rows (image_a, image_b, genuine, token, line), the fold of each row, how folds were set, and the
    pairs skipped (``skip_bad`` only). Errors name ``path:line`` and the fix."""
    text = read_text(path)  # the shared rule: UTF-8, else Latin-1 (every byte decodes) with a warning
    lines = [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise DataFormatError(
            path, "holds no pairs", "use the published pairs file (two lines 'file token' per pair)"
        )
    if len(lines) % 2:
        raise DataFormatError(
            path,
            f"has {len(lines)} non-blank lines, not two per pair",
            "restore the file: every pair is two lines 'file token'",
            lines[-1][0],
        )
    rows: list[Row] = []
    skipped: list[Skipped] = []
    for (n1, t1), (n2, t2) in zip(lines[0::2], lines[1::2], strict=True):
        problem = None
        if len(t1) != 2 or len(t2) != 2:
            problem, at = "expected 'image_file token' on both lines of the pair", n1 if len(t1) != 2 else n2
        elif not (t1[1].isdigit() and t2[1].isdigit()) or t1[1] != t2[1]:
            problem, at = (
                f"the pair's tokens {t1[1]!r} and {t2[1]!r} must be the same non-negative integer",
                n2,
            )
        if problem is not None:
            if not skip_bad:
                raise DataFormatError(path, problem, f"restore the line or {SKIP_HINT}", at)
            skipped.append(Skipped("pair", f"{path}:{n1}", problem))
            continue
        token = int(t1[1])
        rows.append((t1[0], t2[0], token != 0, token, n1))
    if not rows:
        raise DataFormatError(path, "has no usable pair", "use the published pairs file")
    tokens = np.array([r[3] for r in rows], np.int64)
    gen = tokens != 0
    distinct = np.unique(tokens[gen])
    if len(distinct) > 1:
        fold = np.zeros(len(rows), np.int64)
        rank = {int(t): k for k, t in enumerate(distinct)}
        fold[gen] = [rank[int(t)] for t in tokens[gen]]
        fold[~gen] = equal_folds(int((~gen).sum()), len(distinct))
        how = f"{len(distinct)} folds: genuine pairs by their fold token, impostors in {len(distinct)} equal blocks in file order"
    else:
        fold = equal_folds(len(rows), N_FOLDS).astype(np.int64)
        how = f"{len(np.unique(fold))} equal folds in file order"
    return rows, fold, how, skipped


class CrossLFWFolder(Dataset):
    """``calfw`` / ``cplfw`` in the authors' folder form (pairs_*.txt + image folder)."""

    def __init__(self, name: str, card: Any, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        self.name = name
        self.card = card
        self.folder = self.root / name
        self.pairs_path = self.folder / PAIRS_FILES[name]

    def images_dir(self) -> Path:
        given = self.options.get("images")
        if given:
            p = Path(given).expanduser()
            return p if p.is_absolute() else self.folder / p
        return next(
            (self.folder / d for d in IMAGE_FOLDERS if (self.folder / d).is_dir()),
            self.folder / IMAGE_FOLDERS[0],
        )

    def present(self) -> bool:
        return self.pairs_path.is_file() and self.images_dir().is_dir()

    def status(self) -> DatasetStatus:
        try:
            rows, _, how, bad = parse_two_line_pairs(self.pairs_path, skip_bad=True)
        except DataFormatError as exc:
            return DatasetStatus(False, f"folder form at {self.folder} is broken: {exc}")
        extra = f", {len(bad)} unparseable pairs" if bad else ""
        return DatasetStatus(
            True, f"folder form: {self.pairs_path.name} + {self.images_dir()} ({how}{extra})", len(rows)
        )

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        images = self.images_dir()
        if not images.is_dir():
            raise MissingDataError(
                self.name, images, f"put the image folder ('aligned images/') beside {self.pairs_path}"
            )
        rows, folds, how, skipped = parse_two_line_pairs(self.pairs_path, skip_bad=skip_bad)
        got = gather_pair_images(
            ((fa, fb, g, f, lineno) for (fa, fb, g, _, lineno), f in zip(rows, folds.tolist(), strict=True)),
            images, self.pairs_path, BadInputs(skip_bad, skipped), id_prefix=f"{self.name}/",
        )  # fmt: skip
        o = self.options
        prepared = prepare_faces(
            self.name, got.table, aligned=parse_aligned(o.get("aligned", "auto"), self.name), skip_bad=skip_bad,
            progress=progress, workers=int(o.get("workers", 2)), detector=str(o.get("detector", "yunet")),
            no_face=str(o.get("no_face", "mean_landmarks")), cache_dir=self.cache_dir,
        )  # fmt: skip
        state = (
            "aligned release"
            if prepared.aligned
            else f"aligned on the fly with {prepared.info.get('detector')}"
        )
        digest = hashlib.sha256(self.pairs_path.read_bytes()).hexdigest()[:8]
        return assemble(
            self.name, prepared, got.a, got.b, got.genuine, got.fold, got.where,
            source=f"{self.name} folder form ({self.pairs_path.name} + {images}, {how}, {state})",
            fingerprint=f"{prepared.fingerprint}-{digest}",
            skipped=skipped,
            info={"folds": how, "form": "pairs file"},
            progress=progress,
        )  # fmt: skip


class FolderOrBin(Dataset):
    """``calfw`` / ``cplfw``: the folder form when ``<root>/<name>/pairs_*.txt`` and its image folder exist,
    else insightface's ``<name>.bin``. Options of either form are accepted; each form gets its own."""

    def __init__(self, card: Any, root: str | Path | None = None, **options: Any) -> None:
        from .insightface_bin import BIN_OPTIONS, InsightfaceBin

        self.card = card
        super().__init__(root, **card.resolve_options(options))
        self.folder_form = CrossLFWFolder(
            card.name, card, root, **{k: v for k, v in options.items() if k in FOLDER_OPTIONS}
        )
        self.bin_form = InsightfaceBin(card, root, **{k: v for k, v in options.items() if k in BIN_OPTIONS})

    def bind(self, ctx: Any) -> None:
        super().bind(ctx)
        self.folder_form.cache_dir = self.bin_form.cache_dir = ctx.cache_dir

    def chosen(self) -> Dataset:
        explicit_bin = self.options.get("path")
        return self.folder_form if self.folder_form.present() and not explicit_bin else self.bin_form

    def _both_missing(self) -> str:
        f = self.folder_form
        return f"put {f.pairs_path.name} + 'aligned images/' in {f.folder}, or {self.card.name}.bin at {self.root}"

    def status(self) -> DatasetStatus:
        st = self.chosen().status()
        if not st.present and self.chosen() is self.bin_form and not self.options.get("path"):
            return DatasetStatus(False, self._both_missing())
        return st

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        form = self.chosen()
        if form is self.bin_form and not self.options.get("path") and not form.status().present:
            raise MissingDataError(
                self.card.name,
                self.folder_form.pairs_path,
                self._both_missing() + "; set the data root with --data-root or FIQA_BENCH_DATA.",
            )
        return form.load(skip_bad=skip_bad, progress=progress)
