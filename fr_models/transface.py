"""TransFace: the insightface face ViT with a patch-reweighting (SE) module, ICCV 2023.

Architecture, checkpoint layout and preprocessing from the authors' code (github.com/DanJun6737/TransFace,
``backbones/vit.py``, ``backbones/__init__.py``, ``eval_ijbc.py``; MIT), re-implemented, not copied:

* face ViT blocks (see ``_face_vit``): patch 9 -> 144 tokens, ``pos_embed`` 1 x 144 x D (no class token),
  final LayerNorm ``norm``;
* ``senet``: Linear(144 D, 144, no bias) -> ReLU -> Linear(144, 144, no bias) -> Sigmoid on the flattened
  tokens; each token is multiplied by its weight;
* ``feature``: Linear(144 D, D, no bias) -> BatchNorm1d(eps 2e-5) -> Linear(D, 512, no bias) ->
  BatchNorm1d(eps 2e-5): the 512-D embedding (first output of the authors' forward);
* ``mask_token`` is used in training only; the released ``.pt`` files are plain state_dicts loaded strictly.
* Input (``eval_ijbc.py``): cv2 BGR -> RGB, (x/255 - 0.5)/0.5, NCHW, 112 x 112.

TransFace-S (D 512, depth 12), -B (512, 24) and -L (768, 24): the size is read from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from fiqa_bench.registry import Card, WeightFile, register_fr_model, resolve_weights

from ._checkpoint import match_keys, read_checkpoint
from ._common import InputSpec
from ._face_vit import HEADS, Block, PatchEmbed, vit_config
from ._torch_model import TorchFRModel, check_options

TRANSFACE_INPUT = InputSpec(colour="RGB", mean=127.5, std=127.5)

TRANSFACE_CARD = Card(
    name="transface",
    kind="fr_model",
    summary="TransFace (face ViT + patch-reweighting SE module; S/B/L read from the file), 512-D",
    aliases=("transface_l", "transface-l"),
    paper="Dan, Liu, Xie, Yu, Zhao, Li, TransFace: Calibrating Transformer Training for Face Recognition from a Data-Centric Perspective, ICCV 2023",
    licence="MIT (TransFace code); weights released by the authors (Google Drive) for research",
    input_size=TRANSFACE_INPUT.size,
    colour=TRANSFACE_INPUT.colour,
    normalisation=TRANSFACE_INPUT.describe(),
    embedding_size=512,
    weights=(
        WeightFile(
            "glint360k_model_TransFace_L.pt",
            source="TransFace README, 'TransFace Pretrained Models' (Google Drive); other sizes/sets: --weights transface=PATH",
        ),
    ),
    notes=(
        "Any released TransFace .pt (MS1MV2 or Glint360K; S, B or L) loads: width and depth come from the tensor "
        "shapes, 8 heads. Every key must match (the training-only mask_token may be absent). The authors evaluate "
        "with autocast on CUDA; fiqa-bench runs float32 unless precision=bf16/fp16. Their IJB-C script adds the "
        "flipped image's embedding (use flip_tta=sum for that). Options: flip_tta, precision, "
        "channels_last. Checked with small random networks in the authors' key layout; the released weights were "
        "not available here."
    ),
)


class TransFace(nn.Module):
    """TransFace's VisionTransformer at inference (masking off), with the authors' parameter names."""

    def __init__(
        self,
        dim: int = 768,
        depth: int = 24,
        hidden: int = 3072,
        patch: int = 9,
        image: int = 112,
        embedding: int = 512,
        heads: int = HEADS,
    ) -> None:
        super().__init__()
        n = (image // patch) ** 2
        self.num_patches, self.dim = n, dim
        self.arch = f"TransFace ViT (width {dim}, depth {depth}, patch {patch}, {embedding}-D)"
        self.patch_embed = PatchEmbed(dim, patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, n, dim))
        self.blocks = nn.ModuleList(Block(dim, hidden, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.feature = nn.Sequential(
            nn.Linear(dim * n, dim, bias=False),
            nn.BatchNorm1d(dim, eps=2e-5),
            nn.Linear(dim, embedding, bias=False),
            nn.BatchNorm1d(embedding, eps=2e-5),
        )
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))  # training only
        self.senet = nn.Sequential(
            nn.Linear(dim * n, n, bias=False),
            nn.ReLU(),
            nn.Linear(n, n, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x) + self.pos_embed
        for block in self.blocks:
            t = block(t)
        t = self.norm(t.float())
        flat = t.reshape(len(t), -1)
        weighted = self.senet(flat).unsqueeze(-1) * t
        return self.feature(weighted.reshape(len(t), -1))


def load_transface(path: str | Path) -> TransFace:
    """Build the network the file describes and load it with every key matched, or one CheckpointError."""
    state = read_checkpoint(path)
    cfg = vit_config(state, str(path), "TransFace", ("pos_embed", "senet.0.weight", "feature.3.weight"))
    emb = int({k.removeprefix("module."): v for k, v in state.items()}["feature.3.weight"].shape[0])
    model = TransFace(**cfg, embedding=emb)
    matched = match_keys(
        model.state_dict(), state, str(path), model.arch, optional=("mask_token", "num_batches_tracked")
    )
    model.load_state_dict(matched, strict=True)
    return model.eval()


@register_fr_model(TRANSFACE_CARD)
def transface(
    card: Card,
    *,
    weights: str | Path | None = None,
    weights_dir: str | Path | None = None,
    device: str = "cpu",
    flip_tta: Any = False,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> TorchFRModel:
    check_options(card, device, flip_tta, precision)
    path = resolve_weights(card, weights, weights_dir)
    return TorchFRModel(
        card,
        load_transface(path),
        TRANSFACE_INPUT,
        weights_path=path,
        device=device,
        flip_tta=flip_tta,
        precision=precision,
        channels_last=channels_last,
    )
