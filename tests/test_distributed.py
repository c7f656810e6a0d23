"""Multi-process scoring: a 2-process gloo torchrun run fills exactly the cache a single-process run does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fiqa_bench.distributed import PrefetchedFaceSet, shard_indices
from fiqa_bench.types import FaceSet

# A test-only FR model (fixed random weights, torch conv net) registered inside the subprocesses, so
# the test needs no downloaded weights; sface is used too when its card is present. Its output depends
# on the other images of its batch, so the test fails if ranks do not reproduce the batches exactly.
RUNNER = textwrap.dedent(
    """
    import sys

    import numpy as np
    import torch

    from fiqa_bench.registry import Card, register_fr_model
    from fiqa_bench.types import FRModel

    CARD = Card(name="tinynet", kind="fr_model", summary="test-only conv net, fixed random weights", embedding_size=32)


    class TinyNet(FRModel):
        card = CARD

        def __init__(self, ctx=None) -> None:
            super().__init__(ctx)
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.PReLU(8),
                torch.nn.Conv2d(8, 16, 3, stride=2), torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                torch.nn.Linear(256, 32),
            ).eval()

        def _embed_batch(self, images: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
                # Deliberately batch-dependent (stands for kernels whose rounding depends on the batch):
                # a shard that cut the single-process batches differently would change these numbers.
                return (self.net(x) + 1e-3 * x.mean()).numpy()


    @register_fr_model(CARD)
    def tinynet(ctx):
        return TinyNet(ctx)


    if __name__ == "__main__":
        torch.set_num_threads(1)
        if sys.argv[1] == "single":
            from fiqa_bench.cli import main

            sys.exit(main(["run", *sys.argv[2:]]))
        from fiqa_bench.distributed import main

        sys.exit(main(sys.argv[2:]))
    """
)


def test_shards_are_whole_batches_and_cover_everything() -> None:
    for n, bs, world in [(100, 16, 2), (100, 16, 3), (5, 16, 2), (96, 16, 4), (0, 8, 2)]:
        for mode in ("contiguous", "strided"):
            parts = [shard_indices(n, bs, r, world, mode) for r in range(world)]
            np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))
            for p in (p for p in parts if len(p)):
                assert (np.diff(p) > 0).all()  # in the single-process order
                starts = p[np.r_[True, np.diff(p) != 1]]
                assert (starts % bs == 0).all()  # every run begins on a batch boundary
                # Chunking a rank's indices by bs reproduces the single-process batches exactly.
                for s in range(0, len(p), bs):
                    chunk = p[s : s + bs]
                    assert chunk[0] % bs == 0 and (chunk == np.arange(chunk[0], min(chunk[0] + bs, n))).all()
    assert [len(shard_indices(100, 16, r, 2, "contiguous")) for r in range(2)] == [48, 52]
    assert shard_indices(100, 16, 1, 2, "strided")[:17].tolist() == [*range(16, 32), 48]


def test_prefetched_faceset_serves_loader_batches_and_falls_back() -> None:
    images = np.arange(10 * 112 * 112 * 3, dtype=np.uint64).astype(np.uint8).reshape(10, 112, 112, 3)
    calls: list[int] = []

    def loader(i: int) -> np.ndarray:
        calls.append(i)
        return images[i]

    base = FaceSet(ids=[str(i) for i in range(10)], loader=loader)
    pf = PrefetchedFaceSet(base, [np.array([0, 1, 2]), np.array([5, 6])], workers=0, pin_memory=False)
    np.testing.assert_array_equal(pf.batch([0, 1, 2]), images[[0, 1, 2]])
    np.testing.assert_array_equal(pf.batch([7]), images[[7]])  # unexpected request: decoded directly
    np.testing.assert_array_equal(pf.batch([5, 6]), images[[5, 6]])  # the prefetched one is still served
    assert pf.mismatches == 1 and sorted(calls) == [0, 1, 2, 5, 6, 7]


@pytest.fixture(scope="module")
def mini_lfw(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LFW folder with one fold of 14 genuine + 14 impostor pairs of the real pairs.txt (symlinked images)."""
    root = tmp_path_factory.mktemp("mini_lfw")
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()
    per = int(lines[0].split()[1])
    body = lines[1 : 1 + 14] + lines[1 + per : 1 + per + 14]
    (root / "lfw" / "images").mkdir(parents=True)
    (root / "lfw" / "pairs.txt").write_text("1\t14\n" + "\n".join(body) + "\n")
    people = {t for ln in body for t in ln.split() if not t.isdigit()}
    for person in people:
        (root / "lfw" / "images" / person).symlink_to(lfw_dir / "images" / person)
    return root


def _slot_values(cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every cache slot -> (ids, values) sorted by id, read from its chunk files."""
    out = {}
    for slot in sorted(cache.glob("v1/*/*/*")):
        if slot.parent.parent.name == "aligned" or not slot.is_dir():
            continue
        ids, values = [], []
        for chunk in sorted(slot.glob("*.npz")):
            with np.load(chunk) as z:
                ids.append(z["ids"])
                values.append(z["values"])
        i, v = np.concatenate(ids), np.concatenate(values)
        order = np.argsort(i, kind="stable")
        out[str(slot.relative_to(cache))] = (i[order], v[order])
    return out


def _evaluation_ready() -> bool:
    try:
        from fiqa_bench.evaluation import cosine_similarity_pairs, evaluate  # noqa: F401
    except ImportError:
        return False
    return True


def test_torchrun_two_processes_gloo_fill_exactly_the_single_process_cache(
    mini_lfw: Path, tmp_path: Path
) -> None:
    from fiqa_bench.registry import FR_MODELS

    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    models = "tinynet" + (",sface" if "sface" in FR_MODELS else "")
    evaluate = _evaluation_ready()
    common = [
        "--methods",
        "sharpness",
        "--models",
        models,
        "--datasets",
        "lfw",
        "--data-root",
        str(mini_lfw),
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--no-report",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    ref_cache, ref_out = tmp_path / "cache_single", tmp_path / "out_single"
    if evaluate:
        cmd = [
            sys.executable,
            str(runner),
            "single",
            *common,
            "--cache-dir",
            str(ref_cache),
            "--out",
            str(ref_out),
        ]
    else:  # evaluation engine not written yet: the same fill, one process, scoring only
        cmd = [sys.executable, str(runner), "dist", *common, "--cache-dir", str(ref_cache), "--score-only"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # Reuse the aligned crops (YuNet) so that only the scoring differs between the two runs.
    dist_cache, dist_out = tmp_path / "cache_dist", tmp_path / "out_dist"
    (dist_cache / "v1").mkdir(parents=True)
    subprocess.run(
        ["cp", "-r", str(ref_cache / "v1" / "aligned"), str(dist_cache / "v1" / "aligned")], check=True
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(runner),
        "dist",
        *common,
        "--cache-dir",
        str(dist_cache),
        "--out",
        str(dist_out),
        "--shard",
        "strided",
        "--loader",
        "torch",
        "--workers",
        "1",
        *([] if evaluate else ["--score-only"]),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]

    ref, dist = _slot_values(ref_cache), _slot_values(dist_cache)
    assert set(ref) == set(dist) and len(ref) == len(models.split(",")) + 1
    for key in ref:
        np.testing.assert_array_equal(ref[key][0], dist[key][0])
        assert np.array_equal(ref[key][1], dist[key][1]), f"{key}: values differ"
        assert len(list((dist_cache / key).glob("*.npz"))) == 1  # rank 0 merged the ranks' chunks
    if evaluate:
        summary = json.loads((dist_out / "distributed.json").read_text())
        ranks = [r["lfw"] for r in summary["ranks"]]
        assert [x["rank"] for x in ranks] == [0, 1] and all(x["computed_images"] > 0 for x in ranks)
        assert sum(x["computed_images"] for x in ranks) == len(ref[next(iter(ref))][0])
        assert all(x["prefetch_mismatches"] == 0 for x in ranks)
        run = json.loads((dist_out / "run.json").read_text())
        assert run["cache"]["computed"] == 0
        pd.testing.assert_frame_equal(
            pd.read_csv(ref_out / "results.csv"), pd.read_csv(dist_out / "results.csv")
        )
    else:
        summary = json.loads(r.stdout[r.stdout.index("{") :])
        ranks = [r["lfw"] for r in summary["ranks"]]
        assert all(x["computed_images"] > 0 for x in ranks) and all(
            x["prefetch_mismatches"] == 0 for x in ranks
        )
