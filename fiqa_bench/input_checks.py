"""Bad input in user files, handled one way everywhere: one line naming the file (and line, offset or
index) and the fix, or - with ``--skip-bad`` - a counted skip listed in the report.

One mechanism per kind of fault, used by every reader:

- images: :func:`decode_checked` (decode, or say why not: empty, not an image file, corrupt) and
  :func:`sniff_image_file` (the same verdict from a file's size and first bytes, without decoding);
- the policy: :class:`BadInputs` raises :class:`DataFormatError` or records a :class:`Skipped`;
- text files: :func:`read_text` (UTF-8, with or without BOM, or UTF-16 with BOM; anything else is read
  as Latin-1, which maps every byte, with a warning that says to save the file as UTF-8);
- tables: :func:`read_table` (delimiter sniffed from the header line: tab, comma, semicolon, pipe, else
  whitespace; optional header; every error names its 1-based line, a short row included);
- labels: :func:`parse_labels` (genuine/impostor words and numbers: ``1``, ``1.0``, ``0``, ``-1``);
- pair lists: :func:`check_pair_list` (an image paired with itself, a pair listed twice - also as
  ``(b, a)`` - and a pair labelled both genuine and impostor).

Pair-list decisions (``pairs:`` CSVs and ``evaluate`` comparison files): each of the four is an error
naming the lines, because each silently changes every AUC (a repeated row weighs a comparison twice;
cosine similarity is symmetric, so ``(b, a)`` repeats ``(a, b)``; a self-comparison is not a recognition
attempt; a pair labelled both ways cannot be resolved by us). Where ``--skip-bad`` exists it makes them
counted, reported decisions: repeats keep their first line, self pairs and every line of a pair with
conflicting labels are left out.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFormatError
from .faces import decode_rgb
from .types import Skipped

log = logging.getLogger("fiqa_bench.inputs")

SKIP_HINT = "pass --skip-bad (skip_bad=True) to leave its pairs out (counted and reported)"

# First bytes of the image files OpenCV decodes here (JPEG, PNG, BMP, WebP, TIFF, GIF is refused by
# OpenCV but named correctly).
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"BM", "BMP"),
    (b"RIFF", "WebP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


# -- images ---------------------------------------------------------------------------------------


def image_problem(head: bytes, size: int) -> str | None:
    """Why a file of ``size`` bytes starting with ``head`` (>= 8 bytes when that long) cannot be an
    image, or None when it may be one. Cheap: nothing is decoded."""
    if size == 0:
        return "is empty (0 bytes)"
    if not any(head.startswith(m) for m, _ in _MAGIC):
        return (
            f"is not an image file ({size} bytes starting {head[:8]!r}; a JPEG starts with FF D8 FF, "
            "a PNG with 89 50 4E 47)"
        )
    return None


def decode_checked(data: bytes) -> tuple[np.ndarray | None, str]:
    """Encoded bytes -> (RGB uint8 H x W x 3, "") or (None, why it cannot be used)."""
    rgb = decode_rgb(data)
    if rgb is not None:
        return rgb, ""
    return None, image_problem(
        bytes(data[:16]), len(data)
    ) or "cannot be decoded (corrupt or truncated image data)"


def read_image_file(path: str | Path) -> tuple[np.ndarray | None, str]:
    """An image file -> (RGB, "") or (None, why): unreadable, empty, not an image or corrupt."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    return decode_checked(data)


def sniff_image_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be an image judged from its size and first 16 bytes (no decoding), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = f.seek(0, 2)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return image_problem(head, size)


# -- the policy -----------------------------------------------------------------------------------


@dataclass
class BadInputs:
    """What one load does with bad input: raise one :class:`DataFormatError` (``skip_bad`` False) or
    record a counted :class:`Skipped` (``skip_bad`` True). ``hint`` ends every fix when not skipping
    (how to skip instead); empty where no skip option exists."""

    skip_bad: bool = False
    skipped: list[Skipped] = field(default_factory=list)
    hint: str = SKIP_HINT

    def bad(
        self,
        what: str,
        path: str | Path,
        why: str,
        fix: str,
        line: int | None = None,
        where: str | None = None,
    ) -> None:
        """One bad item: raise (``path[:line]: why. Fix: fix or hint``) or record it as skipped."""
        if not self.skip_bad:
            raise DataFormatError(path, why, f"{fix} or {self.hint}" if self.hint else fix, line)
        self.skipped.append(
            Skipped(what, where or (f"{path}:{line}" if line is not None else str(path)), why)
        )


# -- text -----------------------------------------------------------------------------------------

_warned: set[tuple[str, int]] = set()


def read_text(path: str | Path) -> str:
    """A text file's content. UTF-8 (a BOM is dropped) or UTF-16 with BOM; any other bytes are read
    as Latin-1 (every byte is a character, so names written by Windows tools in Latin-1/CP1252 still
    match the files on disk) with one warning naming the file, the line and what to do.

    Raises DataFormatError when the file cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataFormatError(
            path, f"cannot be read ({exc.strerror or exc})", "check the path and its permissions"
        ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        key = (str(path.resolve()), len(data))
        if key not in _warned:
            _warned.add(key)
            log.warning(
                "%s:%d: not UTF-8 (byte 0x%02x); read as Latin-1. If names look wrong, save the file as UTF-8.",
                path,
                line,
                data[exc.start],
            )
        return data.decode("latin-1")


# -- labels ---------------------------------------------------------------------------------------

GENUINE_WORDS = ("1", "true", "yes", "y", "t", "same", "genuine", "mated", "match", "positive")
IMPOSTOR_WORDS = (
    "0",
    "-1",
    "false",
    "no",
    "n",
    "f",
    "different",
    "diff",
    "impostor",
    "non-mated",
    "nonmated",
    "non-match",
    "nonmatch",
    "mismatch",
    "negative",
)


def label_set(option: Any, default: Sequence[str]) -> set[str]:
    """Label words from an option (a list or a comma-separated string), lower-case; ``default`` if None."""
    if option is None:
        return {v.lower() for v in default}
    items = option.split(",") if isinstance(option, str) else list(option)
    return {str(v).strip().lower() for v in items if str(v).strip()}


def _numeric(words: set[str]) -> set[float]:
    out = set()
    for w in words:
        try:
            out.add(float(w))
        except ValueError:
            pass
    return out


def parse_labels(
    values: Sequence[str], genuine: set[str], impostor: set[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(genuine bool array, unrecognised bool array) for label strings, case-insensitive. A number
    matches a numeric word by value, so ``1.0`` is ``1`` (genuine) and ``-1.0``/``0.0`` are impostor
    with the default words."""
    import pandas as pd

    codes, uniques = pd.factorize(np.asarray(values, dtype=object))  # a handful of distinct labels
    s = pd.Series(uniques, dtype=object).astype(str).str.strip().str.lower()
    is_g, is_i = np.array(s.isin(genuine), dtype=bool), np.array(s.isin(impostor), dtype=bool)
    rest = ~(is_g | is_i)
    if rest.any():
        num = pd.to_numeric(s[rest], errors="coerce").to_numpy(dtype=np.float64)
        g_num, i_num = _numeric(genuine), _numeric(impostor)
        is_g[rest] = np.isin(num, list(g_num)) if g_num else False
        is_i[rest] = np.isin(num, list(i_num)) if i_num else False
    g, known = is_g[codes], (is_g | is_i)[codes]
    return g, ~known


# -- tables ---------------------------------------------------------------------------------------

DELIMITERS = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


def _fields(line: str, delimiter: str) -> list[str]:
    if delimiter == "whitespace":
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=delimiter), [])]


def sniff_delimiter(line: str, suffix: str = "") -> str:
    """Delimiter of a table from its first line: tab for .tsv/.tab files, else the one of tab, comma,
    semicolon and pipe that splits the line into the most fields, else whitespace."""
    if suffix.lower() in (".tsv", ".tab"):
        return "\t"
    counts = {d: len(_fields(line, d)) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 1 else "whitespace"


def _padded(text: str, delimiter: str) -> bool:
    """Does any field start or end with a blank? (a few substring scans of the text, no regex)."""
    for b in (" ", "\t") if delimiter != "\t" else (" ",):
        if text.startswith(b) or any(
            x in text for x in (b + delimiter, delimiter + b, b + "\n", "\n" + b, b + "\r")
        ):
            return True
    return False


def delimiter_name(delimiter: str) -> str:
    return DELIMITERS.get(delimiter, delimiter)


@dataclass
class Table:
    """A text table as stripped strings: ``columns[name]`` (object arrays, one entry per row) and each
    row's 1-based line number in the file."""

    path: Path
    columns: dict[str, np.ndarray]
    lines: np.ndarray
    delimiter: str
    header: bool
    n_fields: int

    def __len__(self) -> int:
        return len(self.lines)


def read_table(
    path: str | Path,
    *,
    required: Sequence[str],
    optional: Sequence[str] = (),
    positional: Callable[[list[str]], Sequence[str] | None] | None = None,
    delimiter: str | None = None,
    comments: bool = False,
    fix: str = "",
) -> Table:
    """Read a CSV/TSV/whitespace table with pandas' C parser; every error names ``path:line``.

    The header is the first non-blank line (after ``#`` comment lines when ``comments``); column names
    are matched case-insensitively. When it does not name every ``required`` column, ``positional``
    (if given) is asked for column names for a headerless file from the first line's fields (None:
    not headerless either, the missing columns are reported). Blank lines (and, with ``comments``, lines
    starting with ``#``) are skipped; a row with fewer fields than the header is an error naming its
    line. Raises DataFormatError."""
    import re

    import pandas as pd

    path = Path(path)
    text = read_text(path)
    if comments:  # blank out comment lines (same line count): their fields must not be parsed
        text = re.sub(r"(?m)^[ \t]*#[^\r\n]*", "", text)
    all_lines = text.splitlines() if len(text) < (1 << 20) else None
    head_no, head_line = 0, ""
    for no, line in enumerate(io.StringIO(text), start=1):
        stripped = line.strip()
        if stripped and not (comments and stripped.startswith("#")):
            head_no, head_line = no, line.rstrip("\r\n")
            break
    needs = ", ".join(required)
    if not head_no:
        raise DataFormatError(path, "is empty", fix or f"write a header line ({needs}) and one row per line")
    delim = delimiter or sniff_delimiter(head_line, path.suffix)
    head = _fields(head_line, delim)
    lowered = [h.strip().lower() for h in head]
    names: list[str] | None = None
    header = all(c.lower() in lowered for c in required)
    if header:
        names = lowered
    elif positional is not None:
        pos = positional(head)
        if pos is not None:
            names = list(pos)
    if names is None:
        missing = [c for c in required if c.lower() not in lowered]
        raise DataFormatError(
            path,
            f"missing column(s) {', '.join(missing)} (the first line has: {', '.join(head)}; read as "
            f"{delimiter_name(delim)}-separated)",
            fix
            or f"the header line must name {needs}"
            + (f" (optional: {', '.join(optional)})" if optional else ""),
            head_no,
        )
    n_fields = len(names) if header else len(head)
    sep = r"\s+" if delim == "whitespace" else delim
    try:
        df = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=None,
            skiprows=head_no if header else head_no - 1,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            names=range(n_fields),
            quoting=csv.QUOTE_MINIMAL if delim != "whitespace" else csv.QUOTE_NONE,
        )
    except pd.errors.EmptyDataError:
        df = pd.DataFrame({i: pd.Series([], dtype=str) for i in range(n_fields)})
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+), saw (\d+)", str(exc))
        if m:
            no = int(m.group(1))  # pandas counts the skipped lines too: this is the file line
            raise DataFormatError(
                path,
                f"has {m.group(2)} fields where the {'header' if header else 'first line'} has {n_fields} "
                f"({delimiter_name(delim)}-separated)",
                "give every line the same number of fields",
                no,
            ) from None
        raise DataFormatError(
            path, f"cannot be parsed ({str(exc).strip()})", "give every line the same number of fields"
        ) from None
    first_row_line = head_no + 1 if header else head_no
    lines = np.arange(len(df), dtype=np.int64) + first_row_line
    # Stripping 20M strings costs seconds: only when some field is padded.
    if delim != "whitespace" and _padded(text, delim):
        df = df.apply(lambda s: s.str.strip())
    drop = np.array((df == "").all(axis=1), dtype=bool)
    if drop.any():
        df, lines = df[~drop].reset_index(drop=True), lines[~drop]
    # A short row reads as empty trailing fields: find the rows with an empty last field and count the
    # fields of those lines in the text (slow path, only for those rows).
    maybe_short = np.flatnonzero((df[n_fields - 1] == "").to_numpy()) if len(df) else np.zeros(0, np.int64)
    if len(maybe_short):
        wanted = {int(lines[i]) for i in maybe_short[:1000]}
        src = all_lines if all_lines is not None else text.splitlines()
        for no in sorted(wanted):
            got = len(_fields(src[no - 1], delim))
            if got < n_fields:
                raise DataFormatError(
                    path,
                    f"has {got} field(s) where the {'header' if header else 'first line'} has {n_fields} "
                    f"({delimiter_name(delim)}-separated)",
                    "complete or remove the line",
                    no,
                )
    columns = {}
    for i, name in enumerate(names[:n_fields]):
        if name not in columns:
            columns[name] = df[i].to_numpy(dtype=object)
    return Table(path, columns, lines, delim, header, n_fields)


# -- pair lists -----------------------------------------------------------------------------------


def check_pair_list(
    a: Sequence[str],
    b: Sequence[str],
    genuine: np.ndarray,
    lines: np.ndarray,
    path: str | Path,
    policy: BadInputs,
) -> np.ndarray:
    """Rows to keep of a pair list (see the module docstring for the rules): an image paired with
    itself, a pair listed twice (also as (b, a)) and a pair labelled both genuine and impostor are
    errors naming the lines, or with ``policy.skip_bad`` counted skips (repeats keep their first line).
    Vectorised: one factorisation and one sort, fine for tens of millions of rows."""
    import pandas as pd

    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    genuine, lines = np.asarray(genuine, bool), np.asarray(lines, np.int64)
    n = len(a)
    keep = np.ones(n, bool)
    if n == 0:
        return keep
    codes, uniques = pd.factorize(np.concatenate([a, b]))
    ca, cb = codes[:n].astype(np.int64), codes[n:].astype(np.int64)
    for i in np.flatnonzero(ca == cb):
        policy.bad(
            "pair",
            path,
            f"image {a[i]!r} is paired with itself",
            "remove the line (a self-comparison is not a recognition attempt)",
            int(lines[i]),
        )
        keep[i] = False
    rows = np.flatnonzero(keep)
    key = np.minimum(ca, cb)[rows] * max(len(uniques), 1) + np.maximum(ca, cb)[rows]
    order = np.argsort(key, kind="stable")  # within a pair, file order
    rows, key = rows[order], key[order]
    start = np.r_[True, key[1:] != key[:-1]]
    group = np.cumsum(start) - 1
    size = np.bincount(group)
    multi = size[group] > 1
    if not multi.any():
        return keep
    g = genuine[rows].astype(np.int8)
    starts = np.flatnonzero(start)
    mixed = (np.maximum.reduceat(g, starts) != np.minimum.reduceat(g, starts))[group]
    for gi in np.unique(group[mixed]):
        members = rows[group == gi]
        first_g = int(lines[members[genuine[members]][0]])
        first_i = int(lines[members[~genuine[members]][0]])
        why = f"pair {a[members[0]]!r} / {b[members[0]]!r} is labelled genuine on line {first_g} and impostor on line {first_i}"
        if not policy.skip_bad:
            policy.bad("pair", path, why, "keep the line with the right label", max(first_g, first_i))
        for m in members:
            policy.bad("pair", path, why + "; every line of the pair left out", "", int(lines[m]))
            keep[m] = False
    repeat = multi & ~mixed & ~start
    for k in np.flatnonzero(repeat)[np.argsort(lines[rows[repeat]], kind="stable")]:
        m, first = rows[k], rows[starts[group[k]]]
        reversed_ = a[m] != a[first]
        why = f"pair {a[m]!r} / {b[m]!r} repeats line {int(lines[first])}" + (
            " in reverse order (b, a): cosine similarity is symmetric, so it is the same comparison"
            if reversed_
            else ""
        )
        policy.bad(
            "pair",
            path,
            why + ("; the first line is kept" if policy.skip_bad else ""),
            "keep one line per pair",
            int(lines[m]),
        )
        keep[m] = False
    return keep
