"""ViT-FIQA: a face ViT with a learnable quality token and a regression head.

Architecture, checkpoint layout and preprocessing from the authors' code
(github.com/atzoriandrea/ViT-FIQA-Assessing-Face-Image-Quality-using-Vision-Transformers, CC BY-NC 4.0;
``backbones/vit_qs.py``, ``evaluation/QualityModel.py``, ``evaluation/FaceModel.py``), re-implemented:

* Patch embedding Conv2d(3, D, 9, stride 9) on 112 x 112 -> 12 x 12 = 144 patch tokens (the last 4 pixel
  rows/columns are not seen); the quality token ``qs_token`` (1 x 1 x D) is put in front; ``pos_embed``
  (1 x 145 x D) is added.
* ``depth`` pre-norm blocks: x + attn(LayerNorm(x)), x + mlp(LayerNorm(x)); attention with 8 heads,
  ``qkv`` Linear without bias, scale head_dim^-0.5, ``proj`` Linear with bias; MLP fc1 -> ReLU6 -> fc2.
* Final LayerNorm over all 145 tokens. Quality = ``head_qs`` (BatchNorm1d(D, eps 2e-5) -> Linear(D, 1,
  no bias)) of the quality token; the 144 patch tokens go to ``feature`` (the FR embedding), which a
  quality score does not need and is not computed here (its weights are still checked and loaded).
* Released evaluation ("vit_FC", ViT-S): D = 512, depth 12, 8 heads, mask_ratio 0.1 (a ``mask_token``
  used in training only), mode "token"; the file ``model.pt`` is a plain state_dict loaded strictly.
* Input: the image as read by cv2 (BGR, the default ``--color_channel``), resized to 112 x 112,
  ``x / 255 - 0.5) / 0.5``, NCHW. The raw quality (a CR-FIQA-style regression) is higher = better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from fiqa_bench.fr_models._face_vit import HEADS, Block, PatchEmbed, vit_config
from torch import nn

from fiqa_bench.errors import FiqaError
from fiqa_bench.registry import Card, Option, WeightFile, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

COLOURS = ("BGR", "RGB")

WEIGHTS = WeightFile(
    "model.pt",
    source=(
        "ViT-FIQA release (README 'download pre-trained model weights', Google Drive folder of "
        "github.com/atzoriandrea/ViT-FIQA-Assessing-Face-Image-Quality-using-Vision-Transformers); the evaluation "
        "code reads <model_path>/model.pt. The name is generic: prefer --weights vitfiqa=PATH"
    ),
)

VITFIQA_CARD = Card(
    name="vitfiqa",
    kind="method",
    summary="ViT-FIQA: face ViT (patch 9, 144 tokens) with a learnable quality token -> BatchNorm + linear regression head",
    aliases=("vit-fiqa", "vit_fiqa"),
    paper="Atzori, Boutros, Damer, ViT-FIQA: Assessing Face Image Quality using Vision Transformers, ICCV Workshops 2025",
    licence="CC BY-NC 4.0 (authors' code and weights); fiqa-bench re-implementation Apache-2.0",
    input_size=(112, 112),
    colour="BGR",
    normalisation="aligned 112x112 crop, BGR (authors' default color_channel), (x/255 - 0.5)/0.5, NCHW",
    score_direction="higher_better",
    weights=(WEIGHTS,),
    options=(
        Option(
            "colour",
            "BGR",
            "channel order fed to the network: BGR (the authors' default) or RGB",
            parse=lambda v: str(v).upper(),
            choices=COLOURS,
        ),
    ),
    notes=(
        "Architecture read from the file: embedding width, depth, MLP width and patch size from the tensor shapes "
        "(ViT-S: 512/12; the ViT-B config 512/24 loads too); 8 heads. Every key must match (a missing mask_token, "
        "used only in training, is accepted). Option colour=RGB for checkpoints trained on RGB input (the "
        "authors' script has that switch; its default and the released evaluation use BGR). Checked here with "
        "small random checkpoints in the authors' key layout; the released weights were not available."
    ),
)


class ViTQualityToken(nn.Module):
    """The ViT-FIQA network (mode "token"), with the authors' parameter names."""

    def __init__(
        self,
        dim: int = 512,
        depth: int = 12,
        heads: int = HEADS,
        hidden: int = 2048,
        patch: int = 9,
        image: int = 112,
    ) -> None:
        super().__init__()
        n = (image // patch) ** 2
        self.arch = f"ViT-FIQA (width {dim}, depth {depth}, patch {patch}, {n} patches)"
        self.patch_embed = PatchEmbed(dim, patch)
        self.qs_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, dim))
        self.blocks = nn.ModuleList(Block(dim, hidden, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.feature = nn.Sequential(
            nn.Linear(dim * n, dim, bias=False),
            nn.BatchNorm1d(dim, eps=2e-5),
            nn.Linear(dim, dim, bias=False),
            nn.BatchNorm1d(dim, eps=2e-5),
        )
        self.head_qs = nn.Sequential(nn.BatchNorm1d(dim, eps=2e-5), nn.Linear(dim, 1, bias=False))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))  # training only (masked patches)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat((self.qs_token.expand(len(x), -1, -1), x), dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x.float())

    def quality(self, x: torch.Tensor) -> torch.Tensor:
        """N x 1 quality from the refined quality token (the ``qs`` output of the authors' forward)."""
        return self.head_qs(self.tokens(x)[:, 0])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.tokens(x)
        return self.feature(t[:, 1:].reshape(len(t), -1)), self.head_qs(t[:, 0])


def load_vitfiqa(path: Any) -> ViTQualityToken:
    from fiqa_bench.fr_models._checkpoint import match_keys, read_checkpoint

    state = read_checkpoint(path)
    model = ViTQualityToken(**vit_config(state, str(path), "ViT-FIQA", ("qs_token",)))
    matched = match_keys(
        model.state_dict(), state, str(path), model.arch, optional=("mask_token", "num_batches_tracked")
    )
    model.load_state_dict(matched, strict=True)
    return model.eval()


class VitFiqa(BaseMethod):
    batch_size = 32

    def __init__(self, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.device = ctx.device
        self.model = load_vitfiqa(ctx.weights_file()).to(ctx.device)

    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """RGB uint8 N x 112 x 112 x 3 -> float32 N x 3 x 112 x 112, the card's colour order, (x/255 - 0.5)/0.5."""
        if images.shape[1:3] != (112, 112):
            raise FiqaError(
                f"vitfiqa: expects 112x112 aligned crops, got {images.shape[1]}x{images.shape[2]}"
            )
        x = images[..., ::-1] if self.options["colour"] == "BGR" else images
        t = torch.from_numpy(np.ascontiguousarray(x)).to(self.device).permute(0, 3, 1, 2).float()
        return (t / 255.0 - 0.5) / 0.5

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        with torch.inference_mode():
            return self.model.quality(self.preprocess(images)).reshape(-1).double().cpu().numpy()


register_method(VITFIQA_CARD)(VitFiqa)
