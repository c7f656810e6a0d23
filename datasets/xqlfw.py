"""XQLFW (cross-quality LFW) in its published aligned form.

Layout under the data root (the first that exists wins):

- ``<root>/xqlfw/xqlfw_aligned_112/<Name>/<Name>_<NNNN>.jpg`` + ``<root>/xqlfw/xqlfw_pairs.txt``
- ``<root>/xqlfw_aligned_112/...`` + ``<root>/xqlfw_pairs.txt`` (the archive unpacked into the root)

``xqlfw_pairs.txt``: a header line, then ``name n1 n2`` (genuine) or ``name1 n1 name2 n2`` (impostor);
image numbers are 1-based (``<Name>_%04d.jpg``). Names and numbers are also accepted with a ``.jpg``
extension (``Name_0001.jpg``), as the reference code writes them. Folds: when the header is
``FOLDS<TAB>N`` and the file holds FOLDS x 2N pair lines, fold k is lines k*2N .. (k+1)*2N-1 (the LFW
convention, 10 x 600 in the published file); otherwise 10 equal folds in file order.

Images are aligned 112x112 faces (``aligned=True``, the default); ``aligned=false`` aligns another
release on the fly (``detector=yunet|mtcnn``, ``no_face=mean_landmarks|drop``). Ids:
``xqlfw/<Name>/<Name>_NNNN.jpg``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from fiqa_bench.errors import DataFormatError, FiqaError, MissingDataError
from fiqa_bench.input_checks import BadInputs, read_text
from fiqa_bench.registry import Card, register_dataset
from fiqa_bench.types import BuildContext, Dataset, DatasetStatus, LoadedDataset, Skipped

from ._common import (
    DETECTOR_OPTION,
    N_FOLDS,
    NO_FACE_OPTION,
    SKIP_HINT,
    WORKERS_OPTION,
    aligned_option,
    assemble,
    equal_folds,
    gather_pair_images,
    parse_aligned,
    prepare_faces,
)

IMAGES = "xqlfw_aligned_112"
PAIRS = "xqlfw_pairs.txt"
_EXT = re.compile(r"\.(jpe?g|png)$", re.IGNORECASE)

XQLFW_CARD = Card(
    name="xqlfw",
    kind="dataset",
    summary="XQLFW: cross-quality LFW pairs (aligned 112x112 release + xqlfw_pairs.txt)",
    paper="Knoche et al., Cross-Quality LFW: A Database for Analyzing Cross-Resolution Image Face Recognition in Unconstrained Environments, FG 2021",
    licence="research use (LFW-derived, MIT-licensed pair lists); see the XQLFW project page",
    normalisation="aligned 112x112 faces (published release), decoded to RGB",
    options=(aligned_option(True), DETECTOR_OPTION, NO_FACE_OPTION, WORKERS_OPTION),
    notes=(
        "Sub-paths under the data root, first found wins: xqlfw/xqlfw_aligned_112/<Name>/<Name>_NNNN.jpg + "
        "xqlfw/xqlfw_pairs.txt, or xqlfw_aligned_112/ + xqlfw_pairs.txt directly in the root. Folds from a "
        "'FOLDS N' header (LFW style), else 10 equal folds in file order. aligned=true (default); aligned=false "
        "aligns on the fly (detector=yunet|mtcnn, no_face=mean_landmarks|drop)."
    ),
)


def _number(tok: str) -> int:
    """'1', '0001', '0001.jpg' or 'Name_0001.jpg' -> 1."""
    stem = _EXT.sub("", tok)
    digits = stem.rsplit("_", 1)[-1]
    if not digits.isdigit():
        raise ValueError(tok)
    return int(digits)


def _name(tok: str, num_tok: str) -> str:
    """Person name; a 'Name_0001.jpg'-style token gives 'Name' when the number token repeats it."""
    stem = _EXT.sub("", tok)
    m = re.fullmatch(r"(.+)_(\d{4})", stem)
    return m.group(1) if m and not num_tok.isdigit() else stem


Row = tuple[str, int, str, int, bool, int, int]


def _pair(tokens: list[str]) -> tuple[str, int, str, int, bool]:
    """One pair line's tokens -> (name_a, n_a, name_b, n_b, genuine); ValueError when it is not one."""
    if len(tokens) == 3:
        name = _name(tokens[0], tokens[1])
        row = (name, _number(tokens[1]), name, _number(tokens[2]), True)
    elif len(tokens) == 4:
        row = (
            _name(tokens[0], tokens[1]),
            _number(tokens[1]),
            _name(tokens[2], tokens[3]),
            _number(tokens[3]),
            False,
        )
    else:
        raise ValueError("token count")
    if row[1] < 1 or row[3] < 1:
        raise ValueError("image numbers are 1-based")
    return row


def parse_pairs(path: Path, skip_bad: bool = False) -> tuple[list[Row], str, list[Skipped]]:
    """Rows (name_a, n_a, name_b, n_b, genuine, fold, line number), how the folds were set and the lines
    skipped (skip_bad only; folds keep every line's file position). Errors name file:line.

    The first line is a header unless it is a pair line; a ``FOLDS N`` header sets the folds."""
    lines = read_text(path).splitlines()  # any encoding: not UTF-8 is read as Latin-1, with a warning
    numbered = [(i + 1, ln.strip()) for i, ln in enumerate(lines) if ln.strip()]
    if not numbered:
        raise DataFormatError(path, "is empty", "use the published xqlfw_pairs.txt")
    folds_per: tuple[int, int] | None = None
    head_no, head = numbered[0]
    tok = head.split()
    try:
        _pair(tok)
        body = numbered  # no header: the first line is a pair
    except ValueError:
        body = numbered[1:]
        if len(tok) == 2 and tok[0].isdigit() and tok[1].isdigit() and int(tok[0]) > 0 and int(tok[1]) > 0:
            folds_per = (int(tok[0]), int(tok[1]))
    if folds_per is not None:
        nf, per = folds_per
        if len(body) != nf * 2 * per:
            raise DataFormatError(
                path,
                f"header promises {nf} folds x 2 x {per} = {nf * 2 * per} pairs but the file has {len(body)} pair lines",
                "use an unmodified pairs file or fix the header",
                head_no,
            )
        fold = np.arange(len(body)) // (2 * per)
        how = f"{nf} folds from the header"
    else:
        fold = equal_folds(len(body), N_FOLDS)
        how = f"{len(np.unique(fold))} equal folds in file order"
    rows: list[Row] = []
    skipped: list[Skipped] = []
    for (lineno, line), f in zip(body, fold, strict=True):
        try:
            rows.append((*_pair(line.split()), int(f), lineno))
        except ValueError as exc:
            why = f"cannot parse {line!r} (expected 'name n1 n2' or 'name1 n1 name2 n2' with 1-based numbers)"
            if not skip_bad:
                raise DataFormatError(
                    path, why, f"repair or remove the line, or {SKIP_HINT}", lineno
                ) from exc
            skipped.append(Skipped("pair", f"{path}:{lineno}", why))
    return rows, how, skipped


class XQLFW(Dataset):
    card = XQLFW_CARD

    def folder(self) -> Path:
        for d in (self.root / "xqlfw", self.root):
            if (d / PAIRS).is_file():
                return d
        return self.root / "xqlfw"

    def status(self) -> DatasetStatus:
        d = self.folder()
        if not (d / PAIRS).is_file() or not (d / IMAGES).is_dir():
            return DatasetStatus(False, f"put {IMAGES}/ and {PAIRS} in {self.root / 'xqlfw'}")
        try:
            rows, _, bad = parse_pairs(d / PAIRS, skip_bad=True)
        except DataFormatError as exc:
            return DatasetStatus(False, f"{d} is broken: {exc}")
        extra = f" ({len(bad)} unparseable lines)" if bad else ""
        return DatasetStatus(True, f"XQLFW folder: {d}{extra}", len(rows))

    def load(self, *, skip_bad: bool = False, progress: bool = True) -> LoadedDataset:
        d = self.folder()
        pairs_path, images = d / PAIRS, d / IMAGES
        for p in (pairs_path, images):
            if not p.exists():
                raise MissingDataError(
                    "xqlfw",
                    p,
                    f"Put {IMAGES}/<Name>/<Name>_NNNN.jpg and {PAIRS} in {self.root / 'xqlfw'} "
                    "(set the data root with --data-root or FIQA_BENCH_DATA).",
                )
        aligned = parse_aligned(self.options.get("aligned", True), "xqlfw")
        rows, how, skipped = parse_pairs(pairs_path, skip_bad)
        got = gather_pair_images(
            (((f"{na}/{na}_{ia:04d}.jpg", f"{nb}/{nb}_{ib:04d}.jpg", g, f, lineno) for na, ia, nb, ib, g, f, lineno in rows)),
            images, pairs_path, BadInputs(skip_bad, skipped), id_prefix="xqlfw/",
        )  # fmt: skip
        try:
            workers = int(self.options.get("workers", 2))
        except (TypeError, ValueError):
            raise FiqaError("xqlfw: option workers must be an integer.") from None
        cache_dir = self.cache_dir
        prepared = prepare_faces(
            "xqlfw",
            got.table,
            aligned=aligned,
            skip_bad=skip_bad,
            progress=progress,
            workers=workers,
            detector=str(self.options.get("detector", "yunet")),
            no_face=str(self.options.get("no_face", "mean_landmarks")),
            cache_dir=cache_dir,
        )
        state = (
            "aligned release"
            if prepared.aligned
            else f"aligned on the fly with {prepared.info.get('detector')}"
        )
        return assemble(
            "xqlfw",
            prepared,
            got.a,
            got.b,
            got.genuine,
            got.fold,
            got.where,
            source=f"XQLFW folder {d} ({IMAGES}/ + {PAIRS}, {how}, {state})",
            fingerprint=prepared.fingerprint + "-" + _text_digest(pairs_path),
            skipped=skipped,
            info={"folds": how},
            progress=progress,
        )


def _text_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]


@register_dataset(XQLFW_CARD)
def xqlfw(ctx: BuildContext) -> XQLFW:
    return XQLFW(ctx.root, **ctx.options)
