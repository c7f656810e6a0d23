"""Training throughput (samples/s) of the CR-FIQA trainer's step: iresnet50/100 + qs, ArcFace/CR-FIQA head.

One step = forward under autocast (bf16/fp16) or fp32, CR-FIQA loss (head in fp32), backward, grad-norm
clip 5 on the backbone, SGD momentum step: exactly the trainer's inner loop, on synthetic tensors already
on the device (so it measures compute, not JPEG decoding). Classes default to CASIA-WebFace's 10,572.

    python benchmarks/bench_training.py                      # GPU: iresnet50/100 x fp32/bf16 at batch 128
    python benchmarks/bench_training.py --cpu-smoke          # CPU: tiny network, batch 8 (labelled as such)
    python benchmarks/bench_training.py --finetune           # sface_torch + qs: frozen and full fine-tuning

``--finetune`` measures the crfiqa_sface config's two modes, each in a fresh subprocess so that its peak
memory (max RSS on CPU, max allocated on CUDA) is its own: frozen = the one-time embedding pass (plain +
mirrored image, eval mode, fp32) in images/s, then training steps of qs + class centres on cached
embeddings in samples/s; full = the whole trainer step through SFace + qs (dropout on, BatchNorm frozen,
backbone lr x0.1) in samples/s. Classes default to lfw_train's 705; inputs are random tensors.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
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


def bench_finetune(
    mode: str,
    batch: int,
    classes: int,
    device: torch.device,
    steps: int,
    warmup: int,
    precision: str = "fp32",
) -> dict:
    """One mode of the crfiqa_sface config (see the module docstring); returns its row."""
    from fiqa_bench.fr_models._qs_head import WithQualityHead
    from fiqa_bench.training.finetune import QSOnly, input_adapter, set_batchnorm_eval

    from fiqa_bench.api import get_fr_model

    fr = get_fr_model("sface_torch", device="cpu")
    model = WithQualityHead(fr.torch_module, 128).to(device)
    adapt = input_adapter(fr.spec)
    head = CRFIQAHead(128, classes).to(device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    x = torch.rand(batch, 3, 112, 112, device=device) * 2 - 1
    y = torch.randint(0, classes, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    row: dict = {
        "network": f"sface_torch+qs ({mode})",
        "precision": precision,
        "batch": batch,
        "classes": classes,
    }

    def timed(fn, n: int) -> float:  # noqa: ANN001
        for _ in range(warmup):
            fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        return time.perf_counter() - t0

    if mode == "frozen":
        model.eval()

        def embed() -> None:
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None),
            ):
                model.net(adapt(x))
                model.net(adapt(x.flip(3)))

        dt = timed(embed, max(1, steps // 4))
        row["embed_images_per_s"] = round(batch * max(1, steps // 4) / dt, 1)  # images (each: plain + mirror)
        trainable = QSOnly(model.qs)
        params = list(model.qs.parameters())
        inputs = torch.randn(batch, 128, device=device) * 10
        inner_steps = steps * 20  # head-only steps are cheap: more of them for a stable figure
    else:
        trainable = model
        params = [
            {"params": [p for n, p in model.named_parameters() if not n.startswith("qs.")], "lr_scale": 0.1}
        ]
        params.append({"params": list(model.qs.parameters())})
        inputs = x
        inner_steps = steps
    opt = torch.optim.SGD(
        (params if isinstance(params[0], dict) else [{"params": params}])
        + [{"params": list(head.parameters())}],
        lr=0.0125,
        momentum=0.9,
        weight_decay=5e-4,
    )
    trainable.train()
    set_batchnorm_eval(trainable)
    clip = [p for p in model.parameters() if p.requires_grad]
    if mode == "frozen":
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith("qs."))
        clip = list(model.qs.parameters())

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=amp or torch.float32, enabled=amp is not None):
            emb, qs = trainable(inputs if mode == "frozen" else adapt(inputs))
        loss = head(emb.float(), qs.float(), y).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(clip, 5.0)
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dt = timed(step, inner_steps)
    row.update(steps=inner_steps, seconds=round(dt, 3), samples_per_s=round(batch * inner_steps / dt, 1))
    if device.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    else:  # max resident set of this process (Linux: KiB), model and data included
        row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    return row


def finetune_rows(args: argparse.Namespace, device: str) -> list[dict]:
    """Each mode in its own process: a clean peak-memory figure per mode."""
    rows = []
    for mode in ("frozen", "full"):
        cmd = [
            sys.executable,
            __file__,
            "--finetune-child",
            mode,
            "--device",
            device,
            "--batch",
            str(args.batch),
            "--classes",
            str(args.classes),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--precisions",
            args.precisions.split(",")[0],
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return rows


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
    ap.add_argument("--finetune", action="store_true", help="crfiqa_sface: frozen and full fine-tuning modes")
    ap.add_argument("--finetune-child", choices=["frozen", "full"], help=argparse.SUPPRESS)
    ap.add_argument("--device", default="auto", help="--finetune: auto, cpu or cuda")
    args = ap.parse_args()
    if args.finetune_child:
        dev = torch.device("cuda" if args.device == "cuda" else "cpu")
        if dev.type == "cpu":
            torch.set_num_threads(int(torch.get_num_threads()))
        row = bench_finetune(
            args.finetune_child,
            args.batch,
            args.classes,
            dev,
            args.steps,
            args.warmup,
            args.precisions.split(",")[0],
        )
        print(json.dumps(row))
        return
    rows = []
    if args.finetune:
        device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        rows = finetune_rows(args, device)
        label = (
            torch.cuda.get_device_name(0)
            if device == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
        for r in rows:
            print(json.dumps(r))
    elif args.cpu_smoke or not torch.cuda.is_available():
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
        peak = r.get("peak_mem_gib", r.get("peak_rss_gib", "-"))
        print(f"{r['network']:18s} {r['precision']:5s} {r['batch']:5d} {r['samples_per_s']:10.1f} {peak:>9}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": label, "torch": torch.__version__, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
