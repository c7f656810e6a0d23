"""Training throughput (samples/s) of the CR-FIQA trainer's step: iresnet50/100 + qs, ArcFace/CR-FIQA head.

One step = forward under autocast (bf16/fp16) or fp32, CR-FIQA loss (head in fp32), backward, grad-norm
clip 5 on the backbone, SGD momentum step: exactly the trainer's inner loop, on synthetic tensors already
on the device (so it measures compute, not JPEG decoding). Classes default to CASIA-WebFace's 10,572.

    python benchmarks/bench_training.py                      # GPU: iresnet50/100 x fp32/bf16 at batch 128
    python benchmarks/bench_training.py --cpu-smoke          # CPU: tiny network, batch 8 (labelled as such)
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from fiqa_bench.training.config import load_config
from fiqa_bench.training.loss import CRFIQAHead
from fiqa_bench.training.train import build_backbone


def bench(
    network: str,
    precision: str,
    batch: int,
    classes: int,
    device: torch.device,
    steps: int,
    warmup: int,
    image_size: int = 112,
    embedding: int = 512,
) -> dict:
    cfg = load_config("crfiqa_s")
    cfg.update(network=network, image_size=image_size, embedding_size=embedding)
    torch.manual_seed(0)
    backbone = build_backbone(cfg).to(device)
    head = CRFIQAHead(embedding, classes).to(device)
    params = [p for p in backbone.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    x = torch.randn(batch, 3, image_size, image_size, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    backbone.train()

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=amp or torch.float32, enabled=amp is not None):
            emb, qs = backbone(x)
        loss = head(emb.float(), qs.float(), y).total
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    row = {
        "network": network,
        "precision": precision,
        "batch": batch,
        "classes": classes,
        "image_size": image_size,
        "steps": steps,
        "seconds": round(dt, 3),
        "samples_per_s": round(batch * steps / dt, 1),
    }
    if device.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", default="iresnet50,iresnet100")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--classes", type=int, default=10572)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument(
        "--cpu-smoke", action="store_true", help="CPU: iresnet:1,1,1,1 at 16x16, batch 8 (not a real figure)"
    )
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    rows = []
    if args.cpu_smoke or not torch.cuda.is_available():
        torch.set_num_threads(1)
        dev = torch.device("cpu")
        label = f"CPU smoke ({platform.processor() or platform.machine()}, 1 thread): iresnet:1,1,1,1 at 16x16, 64-d"
        for net, size, emb in [("iresnet:1,1,1,1", 16, 64)]:
            rows.append(bench(net, "fp32", 8, 30, dev, steps=10, warmup=2, image_size=size, embedding=emb))
    else:
        torch.backends.cudnn.benchmark = True
        dev = torch.device("cuda")
        label = torch.cuda.get_device_name(dev)
        for net in args.networks.split(","):
            for prec in args.precisions.split(","):
                rows.append(bench(net, prec, args.batch, args.classes, dev, args.steps, args.warmup))
                torch.cuda.empty_cache()
    print(f"device: {label}; torch {torch.__version__}")
    print(f"{'network':18s} {'prec':5s} {'batch':>5s} {'samples/s':>10s} {'peak GiB':>9s}")
    for r in rows:
        print(
            f"{r['network']:18s} {r['precision']:5s} {r['batch']:5d} {r['samples_per_s']:10.1f} {r.get('peak_mem_gib', '-'):>9}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": label, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
