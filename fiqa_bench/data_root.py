"""Where datasets live: --data-root, else $FIQA_BENCH_DATA, else ~/.fiqa-bench/data."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "FIQA_BENCH_DATA"
DEFAULT_DATA_ROOT = Path("~/.fiqa-bench/data")


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    if root:
        return Path(root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return DEFAULT_DATA_ROOT.expanduser()
