"""``pairs``: your own verification pairs - a folder of face images plus a CSV/TSV of pairs.

Use it as ``pairs:/path/to/pairs.csv`` (images are looked up relative to the CSV's folder) or as
``pairs`` with ``root=FOLDER`` and ``pairs_file=NAME`` (default ``pairs.csv``, then ``pairs.tsv``, in the
folder; images relative to the folder). Option ``images=DIR`` sets the image folder (relative to the
CSV's folder, or to ``root``).

The pairs file: one pair per row with columns ``image_a``, ``image_b`` and ``genuine`` (names set by
``column_a``, ``column_b``, ``column_label``); an optional fold column (``column_fold``; a column named
``fold`` is used automatically). Without a header row the columns are positional: image_a, image_b,
label[, fold]. The delimiter is sniffed from the first line (the one of tab, comma, semicolon and pipe
that splits it into the most fields, else whitespace) or set with ``delimiter``. Any text encoding
reads (not UTF-8: read as Latin-1, with a warning). Blank lines and lines starting with ``#`` are
ignored; a short row is an error naming its line. Labels (case-insensitive; numbers by value, so
``1.0`` = ``1``): genuine = 1/true/yes/y/t/same/genuine/mated/match/positive, impostor = 0/-1/false/no/n/
f/different/diff/impostor/non-mated/nonmated/non-match/nonmatch/mismatch/negative; replace either list
with ``genuine_values`` / ``impostor_values`` (a list or a comma-separated string). Folds: the fold
column's distinct values in sorted order become folds 0..F-1; without one, every pair is in fold 0.

Checked like every pair list (``fiqa_bench.input_checks``): an image paired with itself, a pair listed
twice (also as ``image_b, image_a``) and a pair labelled both genuine and impostor are errors naming
the lines; with ``--skip-bad`` they are counted skips (repeats keep their first line). Unreadable,
empty or undecodable images: an error naming the file and the CSV line, or counted skips.

``aligned``: ``auto`` (default: aligned when every image is 112x112, else every image is aligned on the
fly), ``true`` (images must be aligned 112x112 faces) or ``false`` (align them all; ``detector=yunet``
or ``mtcnn``; ``no_face=mean_landmarks`` keeps faceless images warped with the set's mean landmarks,
``drop`` leaves their pairs out - counted and reported either way).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import DataFormatError, FiqaError, MissingDataError
from fiqa_bench.input_checks import (
    GENUINE_WORDS,
    IMPOSTOR_WORDS,
    BadInputs,
    check_pair_list,
    label_set,
    parse_labels,
    read_table,
)
from fiqa_bench.registry import Card, Option, register_dataset
from fiqa_bench.types import BuildContext, Dataset, DatasetStatus, LoadedDataset, Skipped

from ._common import (
    DETECTOR_OPTION,
    NO_FACE_OPTION,
    WORKERS_OPTION,
    _optional_str,
    aligned_option,
    assemble,
    gather_pair_images,
    prepare_faces,
)

DEFAULT_FILES = ("pairs.csv", "pairs.tsv")

PAIRS_CARD = Card(
    name="pairs",
    kind="dataset",
    summary="your own pairs: a folder of face images + a CSV/TSV of image_a, image_b, genuine",
    normalisation="aligned=auto: 112x112 images used as aligned, others aligned on the fly (YuNet or MTCNN)",
    takes_argument=True,
    options=(
        Option(
            "pairs_file",
            None,
            "the pairs file, relative to the root (default pairs.csv / pairs.tsv)",
            parse=_optional_str,
        ),
        Option(
            "images",
            None,
            "folder of the images, relative to the pairs file's folder (default: that folder)",
            parse=_optional_str,
        ),
        Option(
            "column_a",
            None,
            "header of the first image column (default image_a; else columns by position)",
            parse=_optional_str,
        ),
        Option("column_b", None, "header of the second image column (default image_b)", parse=_optional_str),
        Option("column_label", "genuine", "header of the genuine/impostor column"),
        Option(
            "column_fold",
            None,
            "header of the fold column (default: 'fold' when present)",
            parse=_optional_str,
        ),
        Option("delimiter", None, "field separator (default: detected)", parse=_optional_str),
        Option(
            "genuine_values",
            None,
            "label values meaning genuine (a list or comma string; default: 1, true, same, ...)",
        ),
        Option(
            "impostor_values",
            None,
            "label values meaning impostor (a list or comma string; default: 0, false, diff, ...)",
        ),
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
                self.csv = next(
                    (self.root / f for f in DEFAULT_FILES if (self.root / f).is_file()),
                    self.root / DEFAULT_FILES[0],
                )
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
        """(line, image_a, image_b, genuine, fold value) per usable row, and the skipped rows. Read by the
        shared table reader (line-accurate errors, any text encoding) and checked by the shared pair-list
        validator (self pairs, repeats, (b, a), conflicting labels; see fiqa_bench.input_checks)."""
        path = self.csv
        o = self.options
        col_a, col_b = o["column_a"] or "image_a", o["column_b"] or "image_b"
        col_l, col_f = str(o.get("column_label", "genuine")), o.get("column_fold")
        fold_name = str(col_f if col_f else "fold").lower()
        named = o["column_a"] is not None or o["column_b"] is not None

        def positional(head: list[str]) -> list[str] | None:
            if named or len(head) < 3 or {col_a.lower(), col_b.lower()} <= {h.lower() for h in head}:
                return None  # a header naming the images but not the label: reported as missing columns
            return [col_a.lower(), col_b.lower(), col_l.lower(), fold_name][: len(head)]

        delimiter = o.get("delimiter")
        if delimiter:
            delimiter = {"tab": "\t", "\\t": "\t", "space": "whitespace", " ": "whitespace"}.get(
                delimiter, delimiter
            )
        table = read_table(
            path,
            required=(col_a, col_b, col_l),
            optional=(fold_name,),
            positional=positional,
            delimiter=delimiter,
            comments=True,
            fix=f"name the columns {col_a}, {col_b}, {col_l} in the first line (or set column_a, column_b, column_label)",
        )
        if col_f and fold_name not in table.columns:
            raise DataFormatError(
                path,
                f"has no fold column {col_f!r} (columns: {', '.join(table.columns)})",
                "fix column_fold",
                1,
            )
        if not len(table):
            raise DataFormatError(
                path, "has a header but no pairs", f"add one row per pair: {col_a}, {col_b}, {col_l}"
            )
        genuine_set = label_set(o.get("genuine_values"), GENUINE_WORDS)
        impostor_set = label_set(o.get("impostor_values"), IMPOSTOR_WORDS)
        if genuine_set & impostor_set:
            raise FiqaError(
                f"pairs: values {sorted(genuine_set & impostor_set)} are both genuine and impostor labels."
            )
        a, b = table.columns[col_a.lower()], table.columns[col_b.lower()]
        labels = table.columns[col_l.lower()]
        folds = table.columns.get(fold_name)
        genuine, unknown = parse_labels(labels, genuine_set, impostor_set)
        policy = BadInputs(skip_bad)
        hint = "fix the row, set genuine_values/impostor_values or column names"
        keep = np.ones(len(table), bool)
        for i in np.flatnonzero(unknown | (a == "") | (b == "")):
            if unknown[i]:
                why = (
                    f"label {labels[i]!r} is neither genuine ({', '.join(sorted(genuine_set))}) nor impostor "
                    f"({', '.join(sorted(impostor_set))})"
                )
            else:
                why = "has an empty image name"
            policy.bad("pair", path, why, hint, int(table.lines[i]))
            keep[i] = False
        rows = np.flatnonzero(keep)
        # Compare images as the loader finds them: 'x/./a.jpg' and 'x/a.jpg' are one image.
        norm = np.vectorize(lambda x: Path(x).as_posix(), otypes=[object])
        ok = check_pair_list(norm(a[rows]), norm(b[rows]), genuine[rows], table.lines[rows], path, policy)
        rows = rows[ok]
        out = [
            (
                int(table.lines[i]),
                str(a[i]),
                str(b[i]),
                bool(genuine[i]),
                str(folds[i]) if folds is not None else None,
            )
            for i in rows
        ]
        return out, policy.skipped

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        if not self.csv.is_file():
            raise MissingDataError(
                "pairs",
                self.csv,
                "Pass the pairs file: pairs:/path/pairs.csv, or root=FOLDER with pairs_file=NAME.",
            )
        if not self.images.is_dir():
            raise MissingDataError("pairs", self.images, "Point images=DIR at the folder holding the images.")
        aligned = self.options["aligned"]
        rows, skipped = self._rows(skip_bad)
        policy = BadInputs(skip_bad, skipped)
        folds = _fold_index(self.csv, rows)
        got = gather_pair_images(
            ((ra, rb, g, f, lineno) for (lineno, ra, rb, g, _), f in zip(rows, folds, strict=True)),
            self.images, self.csv, policy, fix=f"fix the path (images are looked up in {self.images})",
        )  # fmt: skip
        try:
            workers = int(self.options.get("workers", 2))
        except (TypeError, ValueError):
            raise FiqaError("pairs: option workers must be an integer.") from None
        prepared = prepare_faces(
            "pairs",
            got.table,
            aligned=aligned,
            skip_bad=skip_bad,
            progress=progress,
            workers=workers,
            detector=str(self.options.get("detector", "yunet")),
            no_face=str(self.options.get("no_face", "mean_landmarks")),
            cache_dir=self.cache_dir,
        )
        state = "aligned" if prepared.aligned else f"aligned on the fly with {prepared.info.get('detector')}"
        n_folds = len(set(folds)) if folds else 0
        return assemble(
            "pairs",
            prepared,
            got.a,
            got.b,
            got.genuine,
            got.fold,
            got.where,
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
        raise DataFormatError(
            path, f"the fold column has {len(order)} distinct values", "check column_fold", bad
        )
    rank = {v: i for i, v in enumerate(order)}
    return [rank[v] for v in values]


@register_dataset(PAIRS_CARD)
def pairs(ctx: BuildContext) -> PairsFile:
    return PairsFile(ctx.root, ctx.argument, **ctx.options)
