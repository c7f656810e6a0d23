"""FR-model throughput: iResNet50/100 forward-only vs end-to-end ``embed()`` on uint8 images.

Forward-only = the nn.Module alone on an already normalised float tensor (the floor). End-to-end =
``model.embed(uint8 N x 112 x 112 x 3)``: validation, conversion, normalisation, batching, forward,
copy back. Their ratio is the pipeline overhead (goal: end-to-end within 1.5x of forward-only).
CPU here (NCHW vs channels_last), GPU when available (fp32 vs bf16, channels_last on/off).
Random weights (``randomise_for_testing_``): speed does not depend on the values.

    python benchmarks/bench_fr_models.py [--n 16] [--batch 16] [--depths 50,100] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from fiqa_bench.fr_models._iresnet import iresnet, randomise_for_testing_
from fiqa_bench.fr_models._torch_model import TorchFRModel
from fiqa_bench.fr_models.iresnet_models import ARCFACE_INPUT

from fiqa_bench.registry import Card

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## FR models"


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """Best wall time and its CPU time over ``repeats`` runs (after one warm-up)."""
    if warmup:
        fn()
        sync(device)
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn()
        sync(device)
        t, c = time.perf_counter() - t0, cpu_seconds() - c0
        best = min(best, (t, c))
    return best


def bench_one(
    depth: int, device: str, n: int, batch: int, precision: str, channels_last: bool, repeats: int
) -> dict:
    card = Card(name=f"bench_r{depth}", kind="fr_model", summary="", embedding_size=512)
    module = randomise_for_testing_(iresnet(depth)).eval()
    model = TorchFRModel(
        card, module, ARCFACE_INPUT, device=device, precision=precision, channels_last=channels_last
    )
    model.batch_size = batch
    images = np.random.default_rng(0).integers(0, 256, size=(n, 112, 112, 3), dtype=np.uint8)
    pre = [model.preprocess(images[i : i + batch]) for i in range(0, n, batch)]  # outside the timed forward

    def forward_only() -> None:
        with torch.inference_mode(), model.autocast():
            for x in pre:
                model.torch_module(x)

    def end_to_end() -> None:
        model.embed(images)

    fw_t, fw_c = timed(forward_only, device, repeats)
    # Same batch shapes as the forward-only run, which already warmed the kernels up.
    e2e_t, e2e_c = timed(end_to_end, device, repeats, warmup=device.startswith("cuda"))
    return {
        "model": f"iresnet{depth}",
        "device": device,
        "precision": precision,
        "layout": "channels_last" if channels_last else "NCHW",
        "batch": batch,
        "n": n,
        "fw_ips": n / fw_t,
        "e2e_ips": n / e2e_t,
        "fw_cpu_ips": n / fw_c if fw_c > 0 else float("nan"),
        "e2e_cpu_ips": n / e2e_c if e2e_c > 0 else float("nan"),
        "ratio": e2e_t / fw_t,
        "cpu_ratio": e2e_c / fw_c if fw_c > 0 else float("nan"),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} threads{gpu}; "
        f"1-min load average at start {load:.1f} (machine shared with other jobs)"
    )


def table(rows: list[dict]) -> str:
    head = (
        "| model | device | precision | layout | batch | images | forward-only [img/s] | end-to-end embed() [img/s] "
        "| end-to-end / forward (wall) | forward [img per CPU-s] | end-to-end [img per CPU-s] | end-to-end / forward (CPU) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['model']} | {r['device']} | {r['precision']} | {r['layout']} | {r['batch']} | {r['n']} | "
        f"{r['fw_ips']:.2f} | {r['e2e_ips']:.2f} | {r['ratio']:.2f}x | {r['fw_cpu_ips']:.2f} | "
        f"{r['e2e_cpu_ips']:.2f} | {r['cpu_ratio']:.2f}x |\n"
        for r in rows
    )
    return head + body


def write_section(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[nxt + 1 :] if nxt >= 0 else "")
    RESULTS.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="images per CPU measurement (GPU: 64x more)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--depths", default="50,100")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    depths = [int(d) for d in args.depths.split(",")]
    info = machine()
    print(info, file=sys.stderr)
    rows = []
    for depth in depths:
        for cl in (False, True):
            rows.append(bench_one(depth, "cpu", args.n, args.batch, "fp32", cl, args.repeats))
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    if torch.cuda.is_available():
        for depth in depths:
            for precision in ("fp32", "bf16"):
                for cl in (False, True):
                    rows.append(bench_one(depth, "cuda", args.n * 64, 256, precision, cl, 3))
                    print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    out = table(rows)
    print(out)
    if not args.no_write:
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        text = (
            f"{SECTION}\n\n`python benchmarks/bench_fr_models.py --n {args.n} --batch {args.batch}` on {info}; {when}.\n\n"
            "Forward-only = the iResNet module on an already normalised float tensor; end-to-end = "
            "`TorchFRModel.embed()` on uint8 RGB N x 112 x 112 x 3 (checks, uint8 -> float, normalisation, "
            "layout, forward, copy back). Random weights; best of the timed runs after a warm-up. "
            "`forward [img per CPU-s]` divides by this process's CPU seconds, the fairer figure on a shared machine.\n\n"
            + out
            + "\n"
        )
        write_section(text)
        print(f"wrote section {SECTION!r} of {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
