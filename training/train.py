"""``fiqa-bench train``: CR-FIQA training, the same code under ``python`` (one device) and ``torchrun`` (DDP).

    fiqa-bench train --config crfiqa_s --data DIR --out DIR
    python -m fiqa_bench.training.train --config crfiqa_s --data DIR --out DIR
    torchrun --nproc_per_node 4 -m fiqa_bench.training.train --config crfiqa_l --data DIR --out DIR

Outputs in --out: ``<step>backbone.pth`` (plain state_dict, published CR-FIQA backbone layout, loadable
with ``weights_only=True`` and strict keys) with a ``<step>backbone.json`` sidecar (config, target
variant, epoch, step), ``<step>state.pt`` (everything ``--resume`` needs), ``train_log.jsonl`` and
``verification.jsonl``.

Imports of torch happen inside the functions: the CLI builds its parser without paying for them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from fiqa_bench.errors import CheckpointError, FiqaError

log = logging.getLogger("fiqa_bench.training")

COMMON_FLAGS = {  # flag dest -> config key
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "network": "network",
    "max_steps": "max_steps",
    "num_classes": "num_classes",
    "precision": "precision",
    "workers": "workers",
    "seed": "seed",
    "target": "target",
    "verify_every": "verify_every",
    "checkpoint_every": "checkpoint_every",
    "log_every": "log_every",
    "data": "data",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", default="crfiqa_s", help="crfiqa_s, crfiqa_l or a TOML file (default: crfiqa_s)"
    )
    p.add_argument(
        "--data", help="folder with train.rec/train.idx, an identity-per-folder tree, or synthetic:N:C"
    )
    p.add_argument("--out", required=True, help="output folder (checkpoints, logs)")
    p.add_argument(
        "--set",
        action="append",
        dest="set_options",
        metavar="KEY=VALUE",
        help="override a config key (repeatable)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per GPU/process")
    p.add_argument("--lr", type=float, help="lr for a global batch of lr_batch (512), scaled linearly")
    p.add_argument("--network", help="iresnet18/34/50/100/200 (or iresnet:A,B,C,D block counts for tests)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps (0 = all epochs)")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"])
    p.add_argument(
        "--target", choices=["released", "paper"], help="CR-FIQA target: CCS/NNCCS or CCS/(NNCCS+1+eps)"
    )
    p.add_argument("--workers", type=int, help="DataLoader workers per process")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (torchrun: cuda:LOCAL_RANK)")
    p.add_argument(
        "--resume",
        help="a <step>state.pt file, or 'auto' = the latest readable one in --out (a damaged newer one is reported and skipped)",
    )
    p.add_argument(
        "--verify-dir", help="folder holding <name>.bin verification sets (default: the data folder)"
    )
    p.add_argument("--verify-every", type=int)
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    from .config import apply_overrides, load_config

    cfg = load_config(args.config)
    apply_overrides(cfg, args.set_options)
    for dest, key in COMMON_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            cfg[key] = value
    if not cfg.get("data"):
        raise FiqaError(
            "fiqa-bench train: no training data; pass --data DIR (train.rec/train.idx or image folders)"
        )
    from .config import validate_config

    return validate_config(cfg)


def build_backbone(cfg: dict[str, Any]) -> Any:
    """iResNet with the ``qs`` head; ``iresnet:A,B,C,D`` builds other block counts (tests)."""
    from fiqa_bench.fr_models._iresnet import LAYERS, IResNet
    from torch import nn

    net = str(cfg["network"])
    try:
        if net.startswith("iresnet:"):
            layers = tuple(int(v) for v in net.split(":", 1)[1].split(","))
        else:
            layers = LAYERS[int(net.removeprefix("iresnet"))]
    except (ValueError, KeyError):
        raise FiqaError(f"network {net!r}: use iresnet18/34/50/100/200 or iresnet:A,B,C,D") from None
    model = IResNet(
        layers, dropout=float(cfg["dropout"]), num_features=int(cfg["embedding_size"]), with_qs=True
    )
    size = int(cfg.get("image_size", 112))
    if size != 112:  # smoke tests on small inputs: fc sized for the final map (not the published layout)
        k = size
        for _ in range(4):
            k = math.ceil(k / 2)
        model.fc = nn.Linear(512 * k * k, int(cfg["embedding_size"]))
    return model


class Distributed:
    """torchrun environment (WORLD_SIZE/RANK/LOCAL_RANK) or a single process."""

    def __init__(self, device_arg: str) -> None:
        import torch
        import torch.distributed as dist

        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = torch.cuda.is_available() if device_arg == "auto" else device_arg.startswith("cuda")
        if use_cuda:
            index = (
                self.local_rank
                if self.world_size > 1 or device_arg in ("auto", "cuda")
                else int(device_arg.split(":")[1])
            )
            self.device = torch.device("cuda", index)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.enabled = self.world_size > 1
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    def gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        import torch.distributed as dist

        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed save (full disk) leaves no temporary file


def _atomic_write_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _rng_state(device: Any) -> dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: Any) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


STATE_NAME = re.compile(r"^(\d+)state\.pt$")
STATE_KEYS = (
    "backbone",
    "head",
    "optimizer",
    "scaler",
    "step",
    "epoch",
    "batch_in_epoch",
    "rng",
    "world_size",
    "batch_size",
)


def state_files(out: Path) -> list[Path]:
    """``<step>state.pt`` files in ``out``, newest step first; other names (``beststate.pt``,
    temporary files) are not states and are ignored."""
    found = [
        (int(m.group(1)), p) for p in out.glob("*state.pt") if (m := STATE_NAME.match(p.name)) and p.is_file()
    ]
    return [p for _, p in sorted(found, reverse=True)]


def find_latest_state(out: Path) -> Path | None:
    states = state_files(out)
    return states[0] if states else None


def load_resume_state(resume: str, out: Path, device: Any) -> tuple[dict[str, Any], Path]:
    """The training state to resume from and its file. ``resume="auto"``: the newest readable
    ``<step>state.pt`` in ``out``; a truncated or corrupt newer one is reported in one line and the
    previous one is used. A named file that cannot be read is a CheckpointError."""
    import torch

    auto = resume == "auto"
    candidates = state_files(out) if auto else [Path(resume)]
    if not candidates or not candidates[0].is_file():
        raise CheckpointError(
            f"--resume {resume}: no <step>state.pt found{' in ' + str(out) if auto else ''}"
        )
    problems = []
    for path in candidates:
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
                raise ValueError("not a fiqa-bench training state (keys missing)")
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for damage
            why = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
            if not auto:
                raise CheckpointError(
                    f"{path}: cannot be read as a training state ({why}); it is truncated or corrupt. "
                    "Fix: resume from an earlier <step>state.pt, or use --resume auto."
                ) from None
            problems.append(f"{path.name} ({why})")
            log.warning(
                "resume: %s is truncated or corrupt (%s); falling back to the previous state", path, why
            )
            continue
        return state, path
    raise CheckpointError(
        f"--resume auto: no readable <step>state.pt in {out}: {'; '.join(problems)}. Fix: start without --resume."
    )


def metadata(
    cfg: dict[str, Any],
    step: int,
    epoch: int,
    epoch_end: bool,
    world_size: int,
    num_classes: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``<step>backbone.json`` sidecar: config, data fingerprint, CR-FIQA target, backbone origin."""
    from fiqa_bench import __version__

    from .loss import TARGETS

    return {
        "format": "fiqa-bench crfiqa backbone sidecar v1",
        "arch": str(cfg["network"]) + "+qs",
        "backbone_model": None,  # a registered FR model fine-tuned with a qs head (see finetune.py)
        "freeze_backbone": bool(cfg.get("freeze_backbone", False)),
        "step": step,
        "epoch": epoch,  # completed epochs (1-based count) when epoch_end, else the epoch in progress (0-based)
        "epoch_end": epoch_end,
        "target_variant": cfg["target"],
        "target_formula": TARGETS[cfg["target"]],
        "num_classes": num_classes,
        "world_size": world_size,
        "global_batch": int(cfg["batch_size"]) * world_size,
        "input": "RGB 112x112, (x/255 - 0.5) / 0.5",
        "fiqa_bench_version": __version__,
        "config": {k: v for k, v in cfg.items()},
        "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }


def train(
    cfg: dict[str, Any],
    out: Path,
    *,
    device_arg: str = "auto",
    resume: str | None = None,
    verify_dir: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run training; returns a summary dict (steps, final checkpoint, last losses)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from .config import lr_multiplier, scaled_lr
    from .data import FlipSampler, batches_per_epoch, build_dataset, data_fingerprint, worker_errors
    from .loss import CRFIQAHead

    dist_env = Distributed(device_arg)
    device = dist_env.device
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg["seed"])
    precision = str(cfg["precision"]) if device.type == "cuda" else "fp32"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    dataset = build_dataset(str(cfg["data"]), int(cfg.get("image_size", 112)), seed)
    num_classes = int(cfg["num_classes"]) or int(dataset.num_classes)
    if num_classes < int(dataset.num_classes):  # labels >= num_classes would fail deep inside the loss
        raise FiqaError(
            f"{cfg['data']}: num_classes {num_classes} is below the {dataset.num_classes} identities the data "
            "holds; drop --num-classes (0 = from the data) or set it to at least that."
        )
    extra_meta: dict[str, Any] = {"data_fingerprint": data_fingerprint(str(cfg["data"]))}
    # Same initial weights on every rank (DDP would broadcast rank 0's anyway), then per-rank streams.
    torch.manual_seed(seed)
    adapt = None
    if cfg.get("backbone_model"):  # fine-tuning a registered FR model (frozen: on cached embeddings)
        from .finetune import build_finetune

        ft = build_finetune(cfg, dataset, extra_meta["data_fingerprint"], device, out, dist_env.rank)
        backbone, trainable, dataset, adapt = ft.export, ft.model, ft.dataset, ft.adapt
        extra_meta.update(ft.meta)
        param_groups = [
            (ft.backbone_params, float(cfg["backbone_lr_scale"]), "backbone"),
            (ft.qs_params, 1.0, "qs"),
        ]
    else:
        backbone = build_backbone(cfg).to(device)
        trainable = backbone
        param_groups = [([p for p in backbone.parameters() if p.requires_grad], 1.0, "backbone")]
    head = CRFIQAHead(
        int(cfg["embedding_size"]),
        num_classes,
        s=float(cfg["s"]),
        m=float(cfg["m"]),
        alpha=float(cfg["alpha"]),
        beta=float(cfg["beta"]),
        target=str(cfg["target"]),
    ).to(device)
    if cfg.get("init_from"):
        from .finetune import init_head_from

        init_head_from(head, str(cfg["init_from"]))
    torch.manual_seed(seed + 1 + dist_env.rank)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed + 1 + dist_env.rank)

    base_lr = scaled_lr(cfg, dist_env.world_size)
    params = [{"params": ps, "name": name, "lr_scale": scale} for ps, scale, name in param_groups if ps] + [
        {"params": list(head.parameters()), "name": "head", "lr_scale": 1.0}
    ]
    optimizer = torch.optim.SGD(
        params, lr=base_lr, momentum=float(cfg["momentum"]), weight_decay=float(cfg["weight_decay"])
    )
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

    step, start_epoch, batch_in_epoch = 0, 0, 0
    if resume:
        state, state_path = load_resume_state(resume, out, device)
        if state.get("world_size") != dist_env.world_size or state.get("batch_size") != int(
            cfg["batch_size"]
        ):
            raise CheckpointError(
                f"{state_path}: written with world size {state.get('world_size')} x batch {state.get('batch_size')}, "
                f"now {dist_env.world_size} x {cfg['batch_size']}; resume with the same layout for an exact continuation"
            )
        backbone.load_state_dict(state["backbone"])
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step, start_epoch, batch_in_epoch = (
            int(state["step"]),
            int(state["epoch"]),
            int(state["batch_in_epoch"]),
        )
        _set_rng_state(state["rng"][dist_env.rank], device)
        if dist_env.main:
            log.warning(
                "resumed from %s at step %d (epoch %d, batch %d)",
                state_path,
                step,
                start_epoch,
                batch_in_epoch,
            )

    model: torch.nn.Module = trainable
    head_model: torch.nn.Module = head
    if dist_env.enabled:
        ids = [device.index] if device.type == "cuda" else None
        model = DDP(trainable, device_ids=ids, broadcast_buffers=False)
        head_model = DDP(head, device_ids=ids)

    bs = int(cfg["batch_size"])
    sampler = FlipSampler(dataset, dist_env.world_size, dist_env.rank, seed=seed, flip=bool(cfg["flip"]))
    per_epoch = batches_per_epoch(len(dataset), dist_env.world_size, bs)
    if per_epoch == 0:
        raise FiqaError(
            f"{cfg['data']}: {len(dataset)} images give no full batch of {bs} per process; lower --batch-size"
        )
    epochs, max_steps = int(cfg["epochs"]), int(cfg["max_steps"])
    total_steps = epochs * per_epoch if not max_steps else min(max_steps, epochs * per_epoch)

    verify_sets = []
    if int(cfg["verify_every"]) > 0 and dist_env.main:
        from .verify import BinSet, find_bin_sets

        folder = Path(verify_dir) if verify_dir else Path(str(cfg["data"]))
        if folder.is_file():
            folder = folder.parent
        verify_sets = (
            [BinSet(p) for p in find_bin_sets(folder, list(cfg["verify_sets"]))] if folder.is_dir() else []
        )
        if not verify_sets:
            log.warning(
                "no verification .bin sets (%s) in %s; verification skipped",
                ",".join(cfg["verify_sets"]),
                folder,
            )

    if dist_env.main:
        (out / "config.json").write_text(json.dumps(cfg, indent=2))
        log.warning(
            "training %s+qs on %s: %d images, %d classes, %d x %d per step, %d steps/epoch, %d steps, lr %.4g, %s on %s",
            cfg["network"],
            cfg["data"],
            len(dataset),
            num_classes,
            dist_env.world_size,
            bs,
            per_epoch,
            total_steps,
            base_lr,
            precision,
            device,
        )
    log_file = out / "train_log.jsonl"
    log_every, ckpt_every = max(1, int(cfg["log_every"])), int(cfg["checkpoint_every"])
    kept: list[int] = []

    def save(epoch: int, batch: int, epoch_end: bool) -> None:
        rngs = dist_env.gather(_rng_state(device))  # every rank's stream, for an exact resume
        if not dist_env.main:
            return
        sd = {k: v.detach().cpu() for k, v in backbone.state_dict().items()}
        meta = metadata(
            cfg,
            step,
            epoch + 1 if epoch_end else epoch,
            epoch_end,
            dist_env.world_size,
            num_classes,
            extra_meta,
        )
        _atomic_save(sd, out / f"{step}backbone.pth")
        _atomic_write_text(json.dumps(meta, indent=2), out / f"{step}backbone.json")
        state = {
            "backbone": sd,
            "head": head.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "epoch": epoch + 1 if epoch_end else epoch,
            "batch_in_epoch": 0 if epoch_end else batch,
            "rng": rngs,
            "world_size": dist_env.world_size,
            "batch_size": bs,
        }
        _atomic_save(state, out / f"{step}state.pt")
        kept.append(step)
        while len(kept) > max(1, int(cfg["keep_checkpoints"])):
            old = kept.pop(0)
            (out / f"{old}state.pt").unlink(missing_ok=True)
            old_meta = out / f"{old}backbone.json"
            if old_meta.is_file() and not json.loads(old_meta.read_text()).get("epoch_end"):
                (out / f"{old}backbone.pth").unlink(missing_ok=True)  # epoch-end backbones are kept
                old_meta.unlink()

    def train_mode() -> None:
        model.train()
        head_model.train()
        if cfg.get("freeze_bn"):
            set_batchnorm_eval(trainable)

    from .finetune import set_batchnorm_eval

    train_mode()
    clip_params = [p for p in backbone.parameters() if p.requires_grad]
    last: dict[str, float] = {}
    done = step >= total_steps
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not (progress and dist_env.main),
        unit="step",
        dynamic_ncols=True,
    )
    for epoch in range(start_epoch, epochs):
        if done:
            break
        lr = base_lr * lr_multiplier(epoch, list(cfg["lr_steps"]))
        for g in optimizer.param_groups:
            g["lr"] = lr * float(g.get("lr_scale", 1.0))
        sampler.set_epoch(epoch)
        first = batch_in_epoch if epoch == start_epoch else 0
        sampler.start = first * bs
        # A private generator: building the loader must not draw from the global RNG (exact resume).
        loader = DataLoader(
            dataset,
            batch_size=bs,
            sampler=sampler,
            num_workers=int(cfg["workers"]),
            drop_last=True,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed + epoch),
            persistent_workers=False,
        )
        batch = first
        t0, seen = time.perf_counter(), 0
        for images, labels in worker_errors(loader):  # a worker's DataFormatError stays one line
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            if adapt is not None:
                images = adapt(images)
            with torch.autocast(
                device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                emb, qs = model(images)
            parts = head_model(emb.float(), qs.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(parts.total).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(clip_params, max_norm=float(cfg["clip_grad_norm"]), norm_type=2)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            batch += 1
            seen += bs * dist_env.world_size
            bar.update(1)
            if step % log_every == 0 or step == total_steps:
                loss, ce, q, ccs, nnccs, tgt, qs_mean = dist_env.mean(
                    [
                        parts.total.item(),
                        parts.ce.item(),
                        parts.quality.item(),
                        parts.ccs.mean().item(),
                        parts.nnccs.mean().item(),
                        parts.target.mean().item(),
                        qs.float().mean().item(),
                    ]
                )
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                last = {
                    "step": step,
                    "epoch": epoch,
                    "loss": loss,
                    "ce": ce,
                    "quality": q,
                    "ccs": ccs,
                    "nnccs": nnccs,
                    "target_mean": tgt,
                    "qs_mean": qs_mean,
                    "lr": lr,
                    "samples_per_s": rate,
                }
                if dist_env.main:
                    with open(log_file, "a") as f:
                        f.write(json.dumps(last) + "\n")
                    bar.set_postfix(
                        loss=f"{loss:.3f}", ce=f"{ce:.3f}", q=f"{q:.4f}", lr=f"{lr:.3g}", sps=f"{rate:.1f}"
                    )
                    if not progress:
                        log.info(
                            "step %d epoch %d loss %.4f ce %.4f quality %.5f lr %.4g %.1f samples/s",
                            step,
                            epoch,
                            loss,
                            ce,
                            q,
                            lr,
                            rate,
                        )
                t0, seen = time.perf_counter(), 0
            if verify_sets and step % int(cfg["verify_every"]) == 0:
                from .verify import verify

                acc = verify(backbone, verify_sets, device)
                train_mode()  # verify() restores train mode wholesale; keep frozen BatchNorm frozen
                with open(out / "verification.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, **acc}) + "\n")
                bar.write(f"step {step} verification: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
            if step >= total_steps:
                done = True
            if ckpt_every and step % ckpt_every == 0 and not (done or batch == per_epoch):
                save(epoch, batch, epoch_end=False)
            if done:
                break
        every = max(1, int(cfg.get("epoch_checkpoint_every", 1)))
        if batch == per_epoch and ((epoch + 1) % every == 0 or epoch + 1 == epochs or done):
            save(epoch, batch, epoch_end=True)
        elif done:
            save(epoch, batch, epoch_end=False)
        batch_in_epoch = 0
    bar.close()
    dist_env.barrier()
    dist_env.close()
    return {"steps": step, "final": str(out / f"{step}backbone.pth"), "last": last}


def main(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    if int(os.environ.get("RANK", "0")) == 0:
        logging.getLogger("fiqa_bench.training").setLevel(logging.INFO if args.quiet else logging.WARNING)
    summary = train(
        cfg,
        Path(args.out),
        device_arg=args.device,
        resume=args.resume,
        verify_dir=args.verify_dir,
        progress=not args.quiet,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"final checkpoint: {summary['final']} (step {summary['steps']})")
    return 0


def _cli() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fiqa_bench.training.train", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return main(args)
    except FiqaError as exc:
        print(f"fiqa-bench train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_cli())
