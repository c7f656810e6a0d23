"""Shared fixtures. Real data lives in ../shared/data beside the checkout (or $FIQA_BENCH_TEST_DATA).

When CI=true the real-data tests must run: a missing folder fails them loudly instead of skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    env = os.environ.get("FIQA_BENCH_TEST_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def require_shared_data() -> Path:
    path = shared_data_path()
    if not (path / "lfw" / "pairs.txt").is_file():
        msg = f"real test data not found at {path} (expected lfw/pairs.txt; set FIQA_BENCH_TEST_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """../shared/data (holds lfw/images and lfw/pairs.txt)."""
    return require_shared_data()


@pytest.fixture(scope="session")
def lfw_dir(shared_data_dir: Path) -> Path:
    return shared_data_dir / "lfw"


@pytest.fixture(scope="session")
def aligned_lfw_sample(lfw_dir: Path) -> dict[str, object]:
    """A few dozen real LFW faces aligned with YuNet: {"ids": [...], "images": N x 112 x 112 x 3 uint8}."""
    import numpy as np

    from fiqa_bench.faces import YuNetDetector, align, read_rgb

    det = YuNetDetector()
    ids, images = [], []
    for person in sorted((lfw_dir / "images").iterdir())[:48]:
        path = sorted(person.glob("*.jpg"))[0]
        face, _ = align(read_rgb(path), det)
        if face is not None:
            ids.append(f"{person.name}/{path.name}")
            images.append(face)
    return {"ids": ids, "images": np.stack(images)}


@pytest.fixture(scope="session", autouse=True)
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fiqa-bench cache for the whole test session (also seen by subprocesses through the
    environment): LFW crops and SFace embeddings are computed once, not once per test module."""
    path = tmp_path_factory.mktemp("fiqa_cache")
    previous = os.environ.get("FIQA_BENCH_CACHE")
    os.environ["FIQA_BENCH_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("FIQA_BENCH_CACHE", None)
    else:
        os.environ["FIQA_BENCH_CACHE"] = previous
