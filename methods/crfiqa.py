"""CR-FIQA: the quality head (qs) of a CR-FIQA-trained iResNet; published (L/S) or fiqa-bench-trained checkpoints.

The backbone is loaded through the FR-model cards of the same names (fr_models/iresnet_models.py), so
one checkpoint file serves both ``--models crfiqa_l`` (embedding) and ``--methods crfiqa_l`` (quality).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fiqa_bench.errors import CheckpointError
from fiqa_bench.registry import Card, Option, WeightFile, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

PAPER = "Boutros, Fang, Klemt, Fu, Kuijper, Damer, CR-FIQA: Face Image Quality Assessment by Learning Sample Relative Classifiability, CVPR 2023"
LICENCE = "CC BY-NC 4.0 (published CR-FIQA weights, fdbtrs/CR-FIQA); Apache-2.0 (fiqa-bench implementation)"
SOURCE = "CR-FIQA repository README, 'pretrained model' links (https://github.com/fdbtrs/CR-FIQA)"
NORMALISATION = "RGB, (x/255 - 0.5) / 0.5 in [-1, 1] (as the CR-FIQA training and quality-extraction code)"
NOTES = (
    "Score = the raw qs output (a regression of CCS/NNCCS; unbounded, values above 1 occur), higher = better. "
    "Learned, so no degradation is exempt. Option precision: fp32 (default) | bf16 | fp16 (CUDA)."
)

CRFIQA_L_CARD = Card(
    name="crfiqa_l",
    kind="method",
    summary="CR-FIQA(L): qs head of the published iResNet100 (MS1MV2) checkpoint",
    aliases=("crfiqa_large", "cr-fiqa(l)"),
    paper=PAPER,
    licence=LICENCE,
    normalisation=NORMALISATION,
    score_direction="higher_better",
    weights=(WeightFile("181952backbone.pth", source=SOURCE),),
    options=(
        Option(
            "precision",
            "fp32",
            "precision of the forward pass (fp16: CUDA only)",
            choices=("fp32", "bf16", "fp16"),
        ),
    ),
    notes="iresnet100 + qs, plain state_dict. sha256 not published. " + NOTES,
)

CRFIQA_S_CARD = Card(
    name="crfiqa_s",
    kind="method",
    summary="CR-FIQA(S): qs head of the published iResNet50 (CASIA-WebFace) checkpoint",
    aliases=("crfiqa_small", "cr-fiqa(s)"),
    paper=PAPER,
    licence=LICENCE,
    normalisation=NORMALISATION,
    score_direction="higher_better",
    weights=(WeightFile("32572backbone.pth", source=SOURCE),),
    options=(
        Option(
            "precision",
            "fp32",
            "precision of the forward pass (fp16: CUDA only)",
            choices=("fp32", "bf16", "fp16"),
        ),
    ),
    notes="iresnet50 + qs, plain state_dict. sha256 not published. " + NOTES,
)

CRFIQA_PATH_CARD = Card(
    name="crfiqa",
    kind="method",
    summary="CR-FIQA quality from any iResNet+qs checkpoint (e.g. fiqa-bench training): crfiqa:PATH; depth inferred",
    aliases=("cr-fiqa",),
    paper=PAPER,
    licence="that of the checkpoint; Apache-2.0 (fiqa-bench implementation)",
    normalisation=NORMALISATION,
    score_direction="higher_better",
    takes_argument=True,
    options=(
        Option(
            "precision",
            "fp32",
            "precision of the forward pass (fp16: CUDA only)",
            choices=("fp32", "bf16", "fp16"),
        ),
    ),
    notes=(
        "Depth (18/34/50/100/200) from the layer1..4 block counts, as the crfiqa:PATH FR model. Also the MR-FIQA "
        "/ SynFIQA releases (oufuzhao/MR-FIQA README leaderboard: iResNet50 + qs trained with CR-FIQA on real "
        "or synthetic data, CC BY-NC 4.0; input as its fiqa_inference.py: RGB, Resize(112), (x/255 - 0.5)/0.5): "
        "SynFIQA++'s head differs (qs.2..qs.9: pooled layer4 map -> Linear 256 -> BN -> ReLU -> Linear 256 -> BN "
        "-> ReLU -> Linear 1, MR-FIQA Utilities/cr_model.py fix_qs=True) and is read from its keys, not from the "
        "file name. " + NOTES
    ),
)


class CrFiqa(BaseMethod):
    batch_size = 32

    def __init__(self, ctx: BuildContext, backbone: Any) -> None:
        super().__init__(ctx)
        card = ctx.card
        self.weight_files = backbone.weight_files
        self.backbone = backbone  # a TorchFRModel (not `fr_model`: no FR model is bound to this method)
        module = backbone.torch_module
        if getattr(module, "qs", None) is None:
            raise CheckpointError(
                f"{card.name}: {backbone.weights_path} has no CR-FIQA quality head (qs.weight/qs.bias); it is a plain "
                "FR backbone. Use it under --models, or point to a CR-FIQA checkpoint."
            )

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        import torch

        bb = self.backbone
        with torch.inference_mode():
            x = bb.preprocess(images)
            with bb.autocast():
                _, qs = bb.torch_module(x)
        return qs.float().reshape(-1).double().cpu().numpy()


def crfiqa_method(ctx: BuildContext) -> CrFiqa:
    """Factory of the three CR-FIQA cards: the backbone is the FR-model card of the same name (or
    ``crfiqa:PATH``), built on the method's weights, device and precision."""
    from fiqa_bench.build import build_fr_model

    fr_name = f"crfiqa:{ctx.argument}" if ctx.argument else ctx.card.name
    weights = ctx.weights if ctx.weights is not None else None
    backbone = build_fr_model(
        fr_name,
        {"precision": ctx.options["precision"]},
        weights=weights,
        weights_dir=ctx.weights_dir,
        device=ctx.device,
    )
    for p in backbone.weight_files:
        ctx.use_weights(p)
    return CrFiqa(ctx, backbone)


for _card in (CRFIQA_L_CARD, CRFIQA_S_CARD, CRFIQA_PATH_CARD):
    register_method(_card)(crfiqa_method)
