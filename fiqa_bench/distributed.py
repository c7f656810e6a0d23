"""Multi-process scoring under ``torchrun``: images sharded across processes, one shared cache.

    torchrun --nproc_per_node N -m fiqa_bench.distributed --methods ... --models ... --datasets ... [run flags]

Every rank builds the same run configuration, models and methods (on ``cuda:LOCAL_RANK`` when the
device is CUDA; process group NCCL there, gloo on CPU), loads the dataset and computes the embeddings
and quality scores of ITS shard of the images into the ordinary on-disk cache (chunk files tagged with
the rank). After a barrier, rank 0 merges the chunk files and runs the normal single-process pipeline,
which finds every value cached and only evaluates and reports. Run without torchrun it is one rank.

Identical numbers: a single-process run cuts the images into batches [0, B), [B, 2B), ... and a model's
output can depend on what else is in its batch (different GEMM blocking, batch-size dependent kernels).
Shards are therefore made of WHOLE batches on those same boundaries (``shard_indices``), and each rank
computes its batches in order, so every image is computed in exactly the batch, at exactly the
position, it would have in a single-process run on an empty cache. Contiguous sharding gives each rank
one run of consecutive batches; strided sharding deals batches round-robin (better balance when image
cost varies through the dataset). Thread counts are the model's business: compare like with like.

``--loader torch`` (used when ``--workers`` > 0) decodes and aligns images in DataLoader worker
processes instead of threads: the batches arrive in the order the scoring loop asks for them, as
(pinned, on CUDA) uint8 buffers. Models that take ``precision``/``channels_last`` options get them from
``--precision bf16`` / ``--channels-last`` (their cache slots differ from fp32 ones, as the numbers do).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .cache import Cache, CacheSlot
from .errors import FiqaError
from .types import FaceSet, LoadedDataset

log = logging.getLogger("fiqa_bench")


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> DistEnv:
        def get(name: str, default: int) -> int:
            try:
                return int(os.environ.get(name, default))
            except ValueError:
                raise FiqaError(
                    f"${name}={os.environ[name]!r} is not an integer; launch with torchrun."
                ) from None

        return cls(get("RANK", 0), get("WORLD_SIZE", 1), get("LOCAL_RANK", 0))


def shard_indices(n: int, batch_size: int, rank: int, world: int, mode: str = "contiguous") -> np.ndarray:
    """Image indices of one rank: whole batches [kB, (k+1)B) of the single-process order, in order."""
    if batch_size < 1 or world < 1 or not 0 <= rank < world:
        raise FiqaError(f"bad shard request: batch_size={batch_size}, rank={rank}, world={world}")
    n_batches = -(-n // batch_size)
    if mode == "contiguous":
        # Balanced runs of consecutive batches: rank r gets batches [r*nb/W, (r+1)*nb/W).
        lo, hi = rank * n_batches // world, (rank + 1) * n_batches // world
        batches = range(lo, hi)
    elif mode == "strided":
        batches = range(rank, n_batches, world)
    else:
        raise FiqaError(f"--shard {mode!r}: expected contiguous or strided")
    parts = [np.arange(b * batch_size, min((b + 1) * batch_size, n)) for b in batches]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class _DeferredSlot(CacheSlot):
    """A slot whose merge of chunk files waits for rank 0 after the barrier: merging while another
    rank writes or reads would delete chunk files under its feet."""

    def consolidate(self) -> None:
        return None


class _DeferredCache(Cache):
    def slot(self, *args: Any, **kwargs: Any) -> CacheSlot:
        s = super().slot(*args, **kwargs)
        return _DeferredSlot(s.dir, s.description, s.row_shape)


def _missing_positions(
    data: LoadedDataset, producers: list[Any], cache: Cache, subset: np.ndarray
) -> np.ndarray:
    """Positions in ``subset`` that some producer still lacks: what fill_producers will compute, in order."""
    ids = [data.faces.ids[i] for i in subset]
    missing = np.zeros(len(ids), bool)
    for p in producers:
        _, m = cache.slot(data.name, data.fingerprint, p.kind, p.label, p.fingerprint).load(ids)
        missing |= m
    return np.flatnonzero(missing)


# ----------------------------------------------------------------------------------------------------
# DataLoader pipeline: decode/align in worker processes, batches delivered in the scoring loop's order.


class _IndexedFaces:
    """torch Dataset over FaceSet indices (a plain class: picklable when workers are spawned)."""

    def __init__(self, faces: FaceSet) -> None:
        self.faces = faces

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        return i, self.faces.image(i)


def _collate(items: list[tuple[int, np.ndarray]]) -> tuple[Any, Any]:
    import torch

    idx = torch.tensor([i for i, _ in items], dtype=torch.int64)
    return idx, torch.from_numpy(np.stack([im for _, im in items]))


class PrefetchedFaceSet(FaceSet):
    """A FaceSet whose ``batch()`` hands out batches decoded ahead by a DataLoader.

    The DataLoader is given the exact batch order the scoring loop will ask for; a request that does
    not match the next prefetched batch (it should not happen) is decoded directly, so the result is
    always right and only the speed depends on the prediction."""

    def __init__(self, base: FaceSet, batches: list[np.ndarray], workers: int, pin_memory: bool) -> None:
        super().__init__(ids=base.ids, loader=base.loader, meta=base.meta)
        self.base = base
        self.batches = batches
        self.workers = workers
        self.pin_memory = pin_memory
        self.mismatches = 0
        self._iter: Iterator[tuple[Any, Any]] | None = None
        self._pending: tuple[np.ndarray, np.ndarray] | None = None

    def _loader_iter(self) -> Iterator[tuple[Any, Any]]:
        from torch.utils.data import DataLoader

        dl = DataLoader(
            _IndexedFaces(self.base),
            batch_sampler=[b.tolist() for b in self.batches],
            num_workers=self.workers,
            collate_fn=_collate,
            pin_memory=self.pin_memory,
            persistent_workers=False,
            prefetch_factor=4 if self.workers > 0 else None,
        )
        return iter(dl)

    def batch(self, indices: Sequence[int]) -> np.ndarray:
        want = np.asarray(indices, dtype=np.int64)
        if self._pending is None:
            if self._iter is None:
                self._iter = self._loader_iter()
            try:
                idx, images = next(self._iter)
                # .numpy() shares the (pinned) buffer: no copy on the host.
                self._pending = (idx.numpy(), images.numpy())
            except StopIteration:
                self._pending = None
        if self._pending is not None and np.array_equal(self._pending[0], want):
            out = self._pending[1]
            self._pending = None
            return out
        self.mismatches += 1
        return self.base.batch(want)


# ----------------------------------------------------------------------------------------------------


def _device_for_rank(device: str, env: DistEnv) -> str:
    from .device import resolve_device

    dev = resolve_device(device)
    if dev.startswith("cuda"):
        import torch

        if env.world > 1 or dev == "cuda":
            dev = f"cuda:{env.local_rank}"
        torch.cuda.set_device(torch.device(dev))
    return dev


def _speed_options(config: Any, precision: str, channels_last: bool) -> list[str]:
    """Pass precision/channels_last to the FR models whose cards declare them; say which did."""
    from .registry import FR_MODELS

    applied = []
    for name in config.models:
        declared = {o.name for o in FR_MODELS.card(name).options}
        opts = config.options.setdefault(name, {})
        if precision != "fp32" and "precision" in declared:
            opts["precision"] = precision
            applied.append(f"{name}.precision={precision}")
        if channels_last and "channels_last" in declared:
            opts["channels_last"] = True
            applied.append(f"{name}.channels_last=True")
    return applied


def score_shard(
    config: Any,
    env: DistEnv,
    *,
    loader: str = "threads",
    shard: str = "contiguous",
) -> dict[str, Any]:
    """Fill this rank's shard of every dataset into the cache; returns per-dataset counts.

    Models, methods and datasets are built and loaded by the pipeline's own steps (build_plugins,
    load_dataset, score_dataset), so every rank - and rank 0's evaluation afterwards - uses the same
    options, fingerprints and cache slots as a single-process run."""
    from .pipeline import build_plugins, load_dataset, make_producers, score_dataset

    cache = _DeferredCache(config.cache_dir)
    plugins = build_plugins(config)
    report: dict[str, Any] = {}
    for ds_name in config.datasets:
        # Rank 0 loads first: datasets that align on the fly write their crop cache once, the rest reuse it.
        if env.rank != 0:
            _barrier(env)
        data = load_dataset(config, ds_name, cache, progress=False)
        if env.rank == 0:
            _barrier(env)
        producers = list(
            make_producers(plugins.models, plugins.methods, config.protocols.needs_flip_sum).values()
        )
        subset = shard_indices(len(data.faces), config.batch_size, env.rank, env.world, shard)
        todo = subset[_missing_positions(data, producers, cache, subset)]
        t0 = time.perf_counter()
        mismatches = 0
        fill: dict[str, Any] = {
            "indices": todo,
            "writer_tag": f"r{env.rank}-",
            "progress": config.progress and env.rank == 0,
        }
        if loader == "torch" and config.workers > 0 and len(todo):
            batches = [todo[s : s + config.batch_size] for s in range(0, len(todo), config.batch_size)]
            faces = PrefetchedFaceSet(
                data.faces, batches, config.workers, pin_memory=config.device.startswith("cuda")
            )
            score_dataset(config, dataclasses.replace(data, faces=faces), plugins, cache, workers=0, **fill)
            mismatches = faces.mismatches
        else:
            score_dataset(config, data, plugins, cache, **fill)
        report[ds_name] = {
            "rank": env.rank,
            "shard_images": int(len(subset)),
            "computed_images": int(len(todo)),
            "seconds": round(time.perf_counter() - t0, 3),
            "prefetch_mismatches": mismatches,
            "slots": [
                str(cache.slot(data.name, data.fingerprint, p.kind, p.label, p.fingerprint).dir)
                for p in producers
            ],
        }
    return report


def _barrier(env: DistEnv) -> None:
    if env.world > 1:
        import torch.distributed as dist

        dist.barrier()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .config import add_run_arguments

    add_run_arguments(parser)
    parser.add_argument(
        "--loader",
        choices=["threads", "torch"],
        default="threads",
        help="image decoding: threads (default) or torch DataLoader worker processes (with --workers > 0)",
    )
    parser.add_argument(
        "--shard",
        choices=["contiguous", "strided"],
        default="contiguous",
        help="how whole batches are dealt to ranks (default: contiguous runs)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="FR models that support it run in this precision (default fp32)",
    )
    parser.add_argument(
        "--channels-last", action="store_true", help="channels_last memory format for models that support it"
    )
    parser.add_argument(
        "--timeout-hours",
        type=float,
        default=24.0,
        help="how long ranks wait for each other at the barriers (default 24 h)",
    )
    parser.add_argument(
        "--score-only", action="store_true", help="fill the cache and stop (no evaluation on rank 0)"
    )


def _config_from_args(args: argparse.Namespace) -> Any:
    from .config import RunParams
    from .pipeline import RunConfig

    return RunConfig.from_params(RunParams.from_args(args))


def run_distributed(args: argparse.Namespace) -> int:
    env = DistEnv.from_env()
    config = _config_from_args(args)
    applied = _speed_options(config, args.precision, args.channels_last)
    config = config.with_params(device=_device_for_rank(config.device, env))
    if env.world > 1:
        from datetime import timedelta

        import torch.distributed as dist

        # Ranks that finish their shard early wait for the slowest one: allow long shards (hours on CPU).
        dist.init_process_group(
            backend="nccl" if config.device.startswith("cuda") else "gloo",
            timeout=timedelta(hours=args.timeout_hours),
        )
    try:
        t0 = time.perf_counter()
        report = score_shard(config, env, loader=args.loader, shard=args.shard)
        reports = [report]
        if env.world > 1:
            import torch.distributed as dist

            gathered: list[Any] = [None] * env.world
            dist.all_gather_object(gathered, report)  # also the barrier: every shard is on disk now
            reports = gathered
    finally:
        if env.world > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    if env.rank != 0:
        return 0
    seconds = time.perf_counter() - t0
    # Merge each slot's chunk files (every rank is done writing), then evaluate as usual.
    slot_dirs = sorted({d for r in reports for ds in r.values() for d in ds["slots"]})
    for d in slot_dirs:
        CacheSlot(Path(d), {}).consolidate()
    summary = {
        "world_size": env.world,
        "loader": args.loader,
        "shard": args.shard,
        "batch_size": config.batch_size,
        "speed_options": applied,
        "scoring_seconds": round(seconds, 3),
        "ranks": reports,
    }
    if args.score_only:
        print(json.dumps(summary, indent=1))
        return 0
    from .pipeline import run_pipeline

    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "distributed.json").write_text(json.dumps(summary, indent=1, default=str))
    run_pipeline(config)
    computed = json.loads((config.out / "run.json").read_text())["cache"]["computed"]
    if computed:
        log.warning(
            "rank 0 computed %d values the shards should have filled (producer keys differ?)", computed
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fiqa_bench.distributed",
        description="Score images on several processes (torchrun), then evaluate on rank 0.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from .cache import Terminated, terminate_as_interrupt

    try:
        with terminate_as_interrupt():  # torchrun stops workers with SIGTERM: flush like Ctrl-C
            return run_distributed(args)
    except FiqaError as exc:
        print(f"fiqa-bench distributed: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(
            f"fiqa-bench distributed: {what}; finished work is cached and a rerun resumes from it.",
            file=sys.stderr,
        )
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
