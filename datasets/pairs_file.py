"""``pairs``: your own verification pairs - a folder of face images plus a CSV/TSV of pairs.

Use it as ``pairs:/path/to/pairs.csv`` (images are looked up relative to the CSV's folder) or as
``pairs`` with ``root=FOLDER`` and ``pairs_file=NAME`` (default ``pairs.csv``, then ``pairs.tsv``, in the
folder; images relative to the folder). Option ``images=DIR`` sets the image folder (relative to the
CSV's folder, or to ``root``).

The pairs file: one pair per row with columns ``image_a``, ``image_b`` and ``genuine`` (names set by
``column_a``, ``column_b``, ``column_label``); an optional fold column (``column_fold``; a column named
``fold`` is used automatically). Without a header row the columns are positional: image_a, image_b,
label[, fold]. The delimiter is sniffed (comma, tab, semicolon, pipe, else whitespace) or set with
``delimiter``. Blank lines and lines starting with ``#`` are ignored. Labels (case-insensitive):
genuine = 1/true/yes/y/t/same/genuine/mated/match/positive, impostor = 0/-1/false/no/n/f/different/
diff/impostor/non-mated/nonmated/non-match/nonmatch/mismatch/negative; replace either list with
``genuine_values`` / ``impostor_values`` (a list or a comma-separated string). Folds: the fold column's
distinct values in sorted order become folds 0..F-1; without one, every pair is in fold 0.

``aligned``: ``auto`` (default: aligned when every image is 112x112, else every image is aligned on the
fly), ``true`` (images must be aligned 112x112 faces) or ``false`` (align them all; ``detector=yunet``
or ``mtcnn``; ``no_face=mean_landmarks`` keeps faceless images warped with the set's mean landmarks,
``drop`` leaves their pairs out - counted and reported either way).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import DataFormatError, FiqaError, MissingDataError
from fiqa_bench.registry import Card, Option, register_dataset
from fiqa_bench.types import BuildContext, Dataset, DatasetStatus, LoadedDataset, Skipped

from ._common import (
    DETECTOR_OPTION,
    NO_FACE_OPTION,
    SKIP_HINT,
    WORKERS_OPTION,
    ImageTable,
    _optional_str,
    aligned_option,
    assemble,
    prepare_faces,
    read_bytes,
)

GENUINE = ("1", "true", "yes", "y", "t", "same", "genuine", "mated", "match", "positive")
IMPOSTOR = ("0", "-1", "false", "no", "n", "f", "different", "diff", "impostor", "non-mated", "nonmated",
            "non-match", "nonmatch", "mismatch", "negative")
DEFAULT_FILES = ("pairs.csv", "pairs.tsv")
DELIMITERS = (",", "\t", ";", "|")

PAIRS_CARD = Card(
    name="pairs",
    kind="dataset",
    summary="your own pairs: a folder of face images + a CSV/TSV of image_a, image_b, genuine",
    normalisation="aligned=auto: 112x112 images used as aligned, others aligned on the fly (YuNet or MTCNN)",
    takes_argument=True,
    options=(
        Option("pairs_file", None, "the pairs file, relative to the root (default pairs.csv / pairs.tsv)", parse=_optional_str),
        Option("images", None, "folder of the images, relative to the pairs file's folder (default: that folder)", parse=_optional_str),
        Option("column_a", None, "header of the first image column (default image_a; else columns by position)", parse=_optional_str),
        Option("column_b", None, "header of the second image column (default image_b)", parse=_optional_str),
        Option("column_label", "genuine", "header of the genuine/impostor column"),
        Option("column_fold", None, "header of the fold column (default: 'fold' when present)", parse=_optional_str),
        Option("delimiter", None, "field separator (default: detected among , tab ; |)", parse=_optional_str),
        Option("genuine_values", None, "label values meaning genuine (a list or comma string; default: 1, true, same, ...)"),
        Option("impostor_values", None, "label values meaning impostor (a list or comma string; default: 0, false, diff, ...)"),
        aligned_option("auto"),
        DETECTOR_OPTION,
        NO_FACE_OPTION,
        WORKERS_OPTION,
    ),
    notes=(
        "Use as pairs:/path/pairs.csv (images relative to the CSV's folder) or pairs with root=FOLDER and "
        "pairs_file=NAME (default pairs.csv / pairs.tsv in FOLDER). Options: images, column_a, column_b, "
        "column_label, column_fold, delimiter, genuine_values, impostor_values, aligned=auto|true|false, "
        "detector=yunet|mtcnn, no_face=mean_landmarks|drop, workers."
    ),
)


def _values(option: Any, default: Sequence[str]) -> set[str]:
    if option is None:
        return {v.lower() for v in default}
    items = option.split(",") if isinstance(option, str) else list(option)
    return {str(v).strip().lower() for v in items if str(v).strip()}


def _split(text: str, delimiter: str | None, path: Path) -> tuple[list[tuple[int, list[str]]], str]:
    """Rows (line number, fields) of the non-blank, non-comment lines, and the delimiter used."""
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise DataFormatError(path, "holds no pairs", "add rows 'image_a,image_b,genuine'")

    def parse(delim: str) -> list[tuple[int, list[str]]]:
        if delim == "whitespace":
            return [(n, ln.split()) for n, ln in lines]
        return [(n, [f.strip() for f in next(csv.reader(io.StringIO(ln), delimiter=delim))]) for n, ln in lines]

    if delimiter:
        delim = {"tab": "\t", "\\t": "\t", "space": "whitespace", " ": "whitespace"}.get(delimiter, delimiter)
        return parse(delim), delim
    if path.suffix.lower() == ".tsv":
        return parse("\t"), "\t"
    sample = lines[:20]
    for delim in DELIMITERS:
        counts = {len(next(csv.reader(io.StringIO(ln), delimiter=delim))) for _, ln in sample}
        if len(counts) == 1 and min(counts) >= 3:
            return parse(delim), delim
    return parse("whitespace"), "whitespace"


class PairsFile(Dataset):
    card = PAIRS_CARD

    def __init__(self, root: str | Path | None = None, argument: str | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        if argument:
            self.csv = Path(argument).expanduser()
            base = self.csv.parent
        else:
            base = self.root
            given = self.options["pairs_file"]
            if given:
                self.csv = Path(given).expanduser()
                if not self.csv.is_absolute():
                    self.csv = self.root / self.csv
            else:
                self.csv = next((self.root / f for f in DEFAULT_FILES if (self.root / f).is_file()), self.root / DEFAULT_FILES[0])
        images = self.options["images"]
        self.images = (base / Path(images).expanduser()) if images else base

    def status(self) -> DatasetStatus:
        if not self.csv.is_file():
            return DatasetStatus(False, f"{self.csv} not found (use pairs:/path/pairs.csv or pairs_file=...)")
        try:
            rows, _ = self._rows(skip_bad=True)
        except FiqaError as exc:
            return DatasetStatus(False, f"{self.csv} is broken: {exc}")
        return DatasetStatus(True, f"pairs file {self.csv}, images in {self.images}", len(rows))

    def _rows(self, skip_bad: bool) -> tuple[list[tuple[int, str, str, bool, str | None]], list[Skipped]]:
        """(line, image_a, image_b, genuine, fold value) per usable row, and the skipped rows."""
        path = self.csv
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFormatError(path, f"cannot be read as text ({exc})", "save it as UTF-8 CSV/TSV") from None
        rows, delim = _split(text, self.options.get("delimiter"), path)
        o = self.options
        col_a, col_b = o["column_a"] or "image_a", o["column_b"] or "image_b"
        col_l, col_f = str(o.get("column_label", "genuine")), o.get("column_fold")
        head_line, head = rows[0]
        lowered = [h.lower() for h in head]
        if col_a.lower() in lowered and col_b.lower() in lowered:
            if col_l.lower() not in lowered:
                raise DataFormatError(
                    path, f"has no label column {col_l!r} (columns: {', '.join(head)})", "name it with column_label=COLUMN", head_line
                )
            ia, ib, il = lowered.index(col_a.lower()), lowered.index(col_b.lower()), lowered.index(col_l.lower())
            fold_name = str(col_f if col_f else "fold").lower()
            if col_f and fold_name not in lowered:
                raise DataFormatError(path, f"has no fold column {col_f!r} (columns: {', '.join(head)})", "fix column_fold", head_line)
            i_f = lowered.index(fold_name) if fold_name in lowered else None
            body = rows[1:]
        else:
            if o["column_a"] is not None or o["column_b"] is not None:
                raise DataFormatError(
                    path, f"first row {head!r} does not name the columns {col_a!r} and {col_b!r}", "fix the header or the column options", head_line
                )
            ia, ib, il = 0, 1, 2
            i_f = 3 if len(head) > 3 else None
            body = rows
        genuine_set = _values(o.get("genuine_values"), GENUINE)
        impostor_set = _values(o.get("impostor_values"), IMPOSTOR)
        if genuine_set & impostor_set:
            raise FiqaError(f"pairs: values {sorted(genuine_set & impostor_set)} are both genuine and impostor labels.")
        need = max(ia, ib, il, i_f if i_f is not None else 0) + 1
        out: list[tuple[int, str, str, bool, str | None]] = []
        skipped: list[Skipped] = []
        shown = "tab" if delim == "\t" else delim
        for lineno, fields in body:
            problem = None
            if len(fields) < need:
                problem = f"has {len(fields)} field(s), needs {need} (delimiter: {shown!r})"
            else:
                label = fields[il].strip().lower()
                if label in genuine_set:
                    g = True
                elif label in impostor_set:
                    g = False
                else:
                    problem = (
                        f"label {fields[il]!r} is neither genuine ({', '.join(sorted(genuine_set))}) nor impostor "
                        f"({', '.join(sorted(impostor_set))})"
                    )
                if problem is None and (not fields[ia] or not fields[ib]):
                    problem = "has an empty image name"
            if problem is not None:
                hint = "fix the row, set genuine_values/impostor_values or column names, or " + SKIP_HINT
                if head_line == lineno or not skip_bad:
                    raise DataFormatError(path, problem, hint, lineno)
                skipped.append(Skipped("pair", f"{path}:{lineno}", problem))
                continue
            out.append((lineno, fields[ia], fields[ib], g, fields[i_f] if i_f is not None else None))
        return out, skipped

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        if not self.csv.is_file():
            raise MissingDataError("pairs", self.csv, "Pass the pairs file: pairs:/path/pairs.csv, or root=FOLDER with pairs_file=NAME.")
        if not self.images.is_dir():
            raise MissingDataError("pairs", self.images, "Point images=DIR at the folder holding the images.")
        aligned = self.options["aligned"]
        rows, skipped = self._rows(skip_bad)
        folds = _fold_index(self.csv, rows)
        table = ImageTable()
        index: dict[str, int] = {}
        a, b, gen, fold, where = [], [], [], [], []
        for (lineno, ra, rb, g, _), f in zip(rows, folds, strict=True):
            refs: list[int] = []
            for rel in (ra, rb):
                p = Path(rel)
                full = p if p.is_absolute() else self.images / p
                key = p.as_posix()
                j = index.get(key)
                if j is None:
                    blob = read_bytes(full)
                    if blob is None:
                        why = f"image {full} does not exist or cannot be read"
                        if not skip_bad:
                            raise DataFormatError(self.csv, why, f"fix the path (images are looked up in {self.images}) or {SKIP_HINT}", lineno)
                        skipped.append(Skipped("pair", f"{self.csv}:{lineno}", why))
                        break
                    j = index[key] = table.add(key, blob, str(full))
                refs.append(j)
            if len(refs) != 2:
                continue
            a.append(refs[0])
            b.append(refs[1])
            gen.append(g)
            fold.append(f)
            where.append(f"{self.csv}:{lineno}")
        workers = self.options["workers"]
        prepared = prepare_faces(
            "pairs", table, aligned=aligned, skip_bad=skip_bad, progress=progress, workers=workers,
            detector=str(self.options.get("detector", "yunet")), no_face=str(self.options.get("no_face", "mean_landmarks")),
            cache_dir=self.cache_dir,
        )
        state = "aligned" if prepared.aligned else f"aligned on the fly with {prepared.info.get('detector')}"
        n_folds = len(set(folds)) if folds else 0
        return assemble(
            "pairs", prepared, np.array(a, np.int64), np.array(b, np.int64), np.array(gen, bool), np.array(fold, np.int16), where,
            source=f"pairs file {self.csv} (images in {self.images}, {state}, {n_folds} fold(s))",
            fingerprint=hashlib.sha256((prepared.fingerprint + str(self.csv.name)).encode()).hexdigest()[:16],
            skipped=skipped,
            info={"pairs_file": str(self.csv), "images": str(self.images)},
            progress=progress,
        )


def _fold_index(path: Path, rows: list[tuple[int, str, str, bool, str | None]]) -> list[int]:
    """Fold values -> 0..F-1 in sorted order (numeric when all are integers); 0 without a fold column."""
    values = [r[4] for r in rows]
    if not values or values[0] is None:
        return [0] * len(rows)
    distinct = set(values)
    try:
        order = sorted(distinct, key=lambda v: int(str(v)))
    except ValueError:
        order = sorted(distinct, key=str)
    if len(order) > 1000:
        bad = rows[0][0]
        raise DataFormatError(path, f"the fold column has {len(order)} distinct values", "check column_fold", bad)
    rank = {v: i for i, v in enumerate(order)}
    return [rank[v] for v in values]


@register_dataset(PAIRS_CARD)
def pairs(ctx: BuildContext) -> PairsFile:
    return PairsFile(ctx.root, ctx.argument, **ctx.options)
