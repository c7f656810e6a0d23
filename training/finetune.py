"""CR-FIQA from a registered torch FR model (config key ``backbone_model``, e.g. ``sface_torch``).

Two modes (config key ``freeze_backbone``):

* frozen: the FR network is fixed (eval mode: BatchNorm statistics, no dropout). Every training image's
  embedding, and that of its horizontal flip when ``flip`` is on, is computed ONCE, stored in
  ``<embedding_cache>/<key>.pt`` (key = data fingerprint, FR card, weights sha256, flip) and reused in
  every epoch and on resume; only ``qs`` and the ArcFace class centres train.
* full fine-tuning: the whole network trains, its parameters at ``lr * backbone_lr_scale`` (a small
  rate), ``qs`` and the centres at ``lr``; ``freeze_bn`` keeps the pretrained BatchNorm statistics
  (small CPU batches would otherwise overwrite them). ``init_from`` starts from a frozen run's
  ``<step>state.pt`` (its ``qs`` and centres), so the backbone never sees the gradients of random centres.

The trainer's images are RGB in [-1, 1] ((x/255 - 0.5) / 0.5); :func:`input_adapter` converts them to
the FR card's own input (SFace: (x - 127.5) / 128), so training sees exactly what inference sees.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fiqa_bench.errors import CheckpointError, FiqaError

log = logging.getLogger("fiqa_bench.training")


class QSOnly(nn.Module):
    """Frozen mode's trainable model: a cached embedding -> (embedding, qs(embedding))."""

    def __init__(self, qs: nn.Linear) -> None:
        super().__init__()
        self.qs = qs

    def forward(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return emb, self.qs(emb)


class CachedEmbeddings(Dataset):
    """Items (index, flip) -> (embedding float32 [D], label) from a [2, N, D] tensor (plain, flipped)."""

    def __init__(self, embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
        self.embeddings, self.labels, self.num_classes = embeddings, labels, num_classes

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def __getitem__(self, item: tuple[int, bool] | int) -> tuple[torch.Tensor, int]:
        index, flip = item if isinstance(item, tuple) else (item, False)
        return self.embeddings[int(bool(flip)), int(index)], int(self.labels[int(index)])


class FineTuneParts(NamedTuple):
    export: nn.Module  # saved as <step>backbone.pth: FR network + qs
    model: nn.Module  # what the training step runs (frozen: QSOnly on cached embeddings)
    dataset: Dataset
    adapt: Callable[[torch.Tensor], torch.Tensor]  # trainer tensor -> model input
    backbone_params: list[nn.Parameter]  # at lr * backbone_lr_scale (empty when frozen)
    qs_params: list[nn.Parameter]
    meta: dict[str, Any]  # recorded in the checkpoint sidecar


def input_adapter(spec: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """[-1, 1] RGB (x/255 - 0.5)/0.5 -> (x - spec.mean)/spec.std in the card's channel order."""
    scale = 127.5 / float(spec.std)
    shift = (127.5 - float(spec.mean)) / float(spec.std)
    bgr = spec.colour == "BGR"
    if scale == 1.0 and shift == 0.0 and not bgr:
        return lambda x: x

    def adapt(x: torch.Tensor) -> torch.Tensor:
        x = x * scale + shift
        return x.flip(1) if bgr else x

    return adapt


def set_batchnorm_eval(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def build_finetune(
    cfg: dict[str, Any], dataset: Dataset, fingerprint: str, device: torch.device, out: Path, rank: int = 0
) -> FineTuneParts:
    """The FR model ``cfg['backbone_model']`` + qs, ready for the trainer (see the module docstring)."""
    from fiqa_bench.fr_models._qs_head import WithQualityHead

    from fiqa_bench.api import get_fr_model
    from fiqa_bench.registry import file_fingerprint

    name = str(cfg["backbone_model"])
    fr = get_fr_model(name, device="cpu")  # channels_last: faster on CPU (oneDNN) and CUDA
    module, spec = getattr(fr, "torch_module", None), getattr(fr, "spec", None)
    if module is None or spec is None:
        raise FiqaError(
            f"backbone_model {name!r} is not a torch FR model; use e.g. sface_torch or arcface_r50"
        )
    size = int(cfg.get("image_size", 112))
    if tuple(spec.size) != (size, size):
        raise FiqaError(f"backbone_model {name} takes {spec.size} inputs; set image_size = {spec.size[0]}")
    if int(cfg["embedding_size"]) != int(fr.card.embedding_size):
        raise FiqaError(
            f"backbone_model {name} gives {fr.card.embedding_size}-D embeddings; set embedding_size = "
            f"{fr.card.embedding_size} in the config"
        )
    torch.manual_seed(
        int(cfg["seed"])
    )  # qs's initial weights depend on the seed only, not on the FR card's build
    export = WithQualityHead(module, int(fr.card.embedding_size)).to(device)
    weights_sha = file_fingerprint(fr.weights_path) if fr.weights_path else None
    meta = {
        "backbone_model": name,
        "backbone_weights": str(fr.weights_path) if fr.weights_path else None,
        "backbone_weights_sha256": weights_sha,
        "input": f"{spec.colour} {spec.size[1]}x{spec.size[0]}, {spec.describe()}",
        "arch": export.arch,
    }
    if cfg.get("init_from"):
        _init_from(export, str(cfg["init_from"]))
    adapt = input_adapter(spec)
    frozen = bool(cfg["freeze_backbone"])
    qs_params = list(export.qs.parameters())
    if not frozen:
        backbone_params = [p for n, p in export.named_parameters() if not n.startswith("qs.")]
        return FineTuneParts(export, export, dataset, adapt, backbone_params, qs_params, meta)
    for n, p in export.named_parameters():
        p.requires_grad_(n.startswith("qs."))
    key_blob = json.dumps([fingerprint, name, weights_sha, bool(cfg["flip"]), spec.describe()])
    key = hashlib.sha256(key_blob.encode()).hexdigest()[:20]
    folder = Path(str(cfg.get("embedding_cache") or out / "embedding_cache"))
    cached = embed_once(export, dataset, adapt, folder / f"{key}.pt", bool(cfg["flip"]), device, cfg, rank)
    meta["embedding_cache"] = str(folder / f"{key}.pt")
    return FineTuneParts(export, QSOnly(export.qs), cached, adapt, [], qs_params, meta)


def _init_from(export: nn.Module, path: str) -> None:
    """Backbone + qs from a fiqa-bench ``<step>state.pt`` or ``<step>backbone.pth`` (strict keys)."""
    from fiqa_bench.fr_models._checkpoint import match_state_dict

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"init_from {p}: no such file; point to a frozen run's <step>state.pt")
    obj = torch.load(p, map_location="cpu", weights_only=True)
    state = obj["backbone"] if isinstance(obj, dict) and "backbone" in obj else obj
    export.load_state_dict(match_state_dict(export, state, source=str(p)), strict=True)


def init_head_from(head: nn.Module, path: str) -> None:
    """The ArcFace centres of a ``<step>state.pt`` (init_from); a backbone.pth carries none (kept random)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "head" in obj:
        head.load_state_dict(obj["head"], strict=True)
    else:
        log.warning("init_from %s holds no class centres (not a state.pt); the centres start random", path)


def embed_once(
    export: nn.Module,
    dataset: Dataset,
    adapt: Callable[[torch.Tensor], torch.Tensor],
    path: Path,
    flip: bool,
    device: torch.device,
    cfg: dict[str, Any],
    rank: int = 0,
) -> CachedEmbeddings:
    """Embeddings [2, N, D] float32 (plain; flipped or a copy when flip is off) of every image, eval mode, fp32."""
    if path.is_file():
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if int(obj["labels"].shape[0]) == len(dataset):
            log.warning("frozen backbone: %d cached embeddings read from %s", len(dataset), path)
            return CachedEmbeddings(obj["embeddings"], obj["labels"], int(dataset.num_classes))
        log.warning(
            "%s holds %d embeddings, the data %d: recomputing", path, obj["labels"].shape[0], len(dataset)
        )
    from tqdm import tqdm

    net = export.net if hasattr(export, "net") else export
    was_training = export.training
    export.eval()
    n = len(dataset)
    loader = DataLoader(
        _PlainAndFlip(dataset, flip),
        batch_size=int(cfg.get("embed_batch_size", 64)),
        shuffle=False,
        num_workers=int(cfg["workers"]),
        drop_last=False,
    )
    plain, flipped, labels = [], [], []
    bar = tqdm(
        total=n, unit="img", desc="embed (frozen backbone, once)", disable=rank != 0, dynamic_ncols=True
    )
    with torch.inference_mode():
        for x, x_flip, y in loader:
            e = net(adapt(x.to(device))).float().cpu()
            plain.append(e)
            flipped.append(net(adapt(x_flip.to(device))).float().cpu() if flip else e)
            labels.append(y)
            bar.update(len(y))
    bar.close()
    export.train(was_training)
    emb = torch.stack([torch.cat(plain), torch.cat(flipped)])
    lab = torch.cat(labels).long()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save({"embeddings": emb, "labels": lab}, tmp)
    os.replace(tmp, path)
    return CachedEmbeddings(emb, lab, int(dataset.num_classes))


class _PlainAndFlip(Dataset):
    def __init__(self, dataset: Dataset, flip: bool) -> None:
        self.dataset, self.flip = dataset, flip

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        x, y = self.dataset[(index, False)]
        return x, (x.flip(2) if self.flip else x[:, :0]), y
