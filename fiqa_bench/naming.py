"""File names made from labels: dataset, FR-model and method labels may hold ':', '/', '.' or '@'
(``pairs:/data/my.csv``, ``onnx:/models/x.onnx``, ``serfiq@sface_torch``)."""

from __future__ import annotations

import hashlib

MAX_SLUG = 80


def slug(text: str) -> str:
    """File-name-safe form of a label: letters, digits, '-' and '_' only (no '.', which would read as a
    file suffix); long labels (paths) are cut and made unique with a short hash of the whole label."""
    out = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(text)).strip("-") or "x"
    if len(out) > MAX_SLUG:
        out = f"{out[: MAX_SLUG - 11]}-{hashlib.sha1(str(text).encode()).hexdigest()[:10]}"
    return out


def pairs_file_name(dataset: str, fr_model: str) -> str:
    """pairs/<dataset>__<fr_model>.npz; the exact labels are stored inside the file as well."""
    return f"{slug(dataset)}__{slug(fr_model)}.npz"
