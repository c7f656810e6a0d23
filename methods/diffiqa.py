"""eDifFIQA (T/S/M/L) and DifFIQA(R): quality regressors distilled from DifFIQA (Babnik, Peer, Struc).

Re-implemented from the authors' inference code (LSIbabnikz/eDifFIQA ``inference.py``, ``utils.py``,
``model/ediffiqa.py``, ``model/mlp.py``, ``configs/ediffiqa*_config.yaml``; LSIbabnikz/DifFIQA
``diffiqa(r)/inference.py``, ``utils.py``, ``configs/model_config.yaml``):

* eDifFIQA: ``eDifFIQA(base_model, mlp)``; checkpoint keys ``base_model.<backbone>`` and ``mlp.l1.{weight,bias}``
  (Linear 512 -> 1024), ``mlp.l2.{weight,bias}`` (Linear 1024 -> 1); forward ``l2(GELU(l1(base_model(x))))``.
  Backbones: T MobileFaceNet (L2-normalised output), S iresnet18, M iresnet50, L iresnet100 (insightface
  arcface_torch iresnet, BN eps 1e-5, raw ``features`` output).
* DifFIQA(R): ``Sequential(OrderedDict(base=iresnet100, linear=Linear(512, 1)))``; keys ``base.*``, ``linear.*``.

Input (all five): PIL RGB -> Resize(112) -> ToTensor -> Normalize(0.5, 0.5), i.e. RGB (x/255 - 0.5)/0.5 on
the 112x112 crop. Score: the regressor output, trained on DifFIQA qualities min-max scaled to [0, 1]
(DifFIQA quality = mean cosine similarity between the embeddings of the image and of its diffusion-
perturbed / reconstructed / flipped versions), so higher = better; values slightly outside [0, 1] occur.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fiqa_bench.fr_models._checkpoint import load_layout
from fiqa_bench.fr_models._common import InputSpec, check_size
from fiqa_bench.fr_models._iresnet import iresnet
from fiqa_bench.fr_models._mobilefacenet import MobileFaceNet
from torch import nn

from fiqa_bench.registry import Card, WeightFile, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod
from ._regressor import TorchRegressor

INPUT = InputSpec(colour="RGB", mean=127.5, std=127.5)
NORMALISATION = "RGB 112x112, (x/255 - 0.5) / 0.5 (authors' Resize(112) + ToTensor + Normalize(0.5, 0.5))"
EDIFFIQA_PAPER = (
    "Babnik, Peer, Struc, eDifFIQA: Towards Efficient Face Image Quality Assessment based on Denoising "
    "Diffusion Probabilistic Models, IEEE TBIOM 2024"
)
DIFFIQA_PAPER = (
    "Babnik, Peer, Struc, DifFIQA: Face Image Quality Assessment Using Denoising Diffusion Probabilistic "
    "Models, IJCB 2023 (DifFIQA(R): the distilled regressor)"
)
EDIFFIQA_SOURCE = (
    "eDifFIQA README, '2.2 Inference' pretrained-model link (https://github.com/LSIbabnikz/eDifFIQA; also "
    "on HuggingFace under LSIbabnikz); the file names are those of model/ediffiqa.py EDIFFIQA_CONF"
)
SCORE_NOTES = (
    "Score = regressor output, higher = better (trained on DifFIQA qualities min-max scaled to [0, 1]). "
    "Learned, so no degradation is exempt."
)


class EDifFIQANet(nn.Module):
    """``mlp(base_model(x))``: the authors' eDifFIQA module with return_feat=0 (keys base_model.*, mlp.*)."""

    def __init__(self, base_model: nn.Module) -> None:
        super().__init__()
        self.base_model = base_model
        self.mlp = nn.Sequential(
            OrderedDict([("l1", nn.Linear(512, 1024)), ("ac", nn.GELU()), ("l2", nn.Linear(1024, 1))])
        )

    def forward(self, x: Any) -> Any:
        return self.mlp(self.base_model(x))


def diffiqa_r_net() -> nn.Module:
    """DifFIQA(R): ``Sequential(base=iresnet100, linear=Linear(512, 1))`` (keys base.*, linear.*)."""
    return nn.Sequential(OrderedDict([("base", iresnet(100)), ("linear", nn.Linear(512, 1))]))


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    filename: str
    backbone: str
    build: Callable[[], nn.Module]
    paper: str = EDIFFIQA_PAPER
    source: str = EDIFFIQA_SOURCE
    layout: str = ""
    licence: str = (
        "none declared (LSIbabnikz/eDifFIQA has no licence file; weights shared for research): research "
        "comparison only; Apache-2.0 (fiqa-bench code)"
    )


VARIANTS = (
    Variant(
        "ediffiqa_t", "eDifFIQA(T)", "ediffiqaT.pth", "MobileFaceNet", lambda: EDifFIQANet(MobileFaceNet())
    ),
    Variant("ediffiqa_s", "eDifFIQA(S)", "ediffiqaS.pth", "iResNet18", lambda: EDifFIQANet(iresnet(18))),
    Variant("ediffiqa_m", "eDifFIQA(M)", "ediffiqaM.pth", "iResNet50", lambda: EDifFIQANet(iresnet(50))),
    Variant("ediffiqa_l", "eDifFIQA(L)", "ediffiqaL.pth", "iResNet100", lambda: EDifFIQANet(iresnet(100))),
    Variant(
        "diffiqa_r",
        "DifFIQA(R)",
        "diffiqa(r).pth",
        "iResNet100 (CosFace Glint360K initialisation)",
        diffiqa_r_net,
        paper=DIFFIQA_PAPER,
        source="DifFIQA repository, diffiqa(r)/README.md 'Model Weights' link (https://github.com/LSIbabnikz/DifFIQA); "
        "the file name of configs/inference_config.yaml",
        licence="MIT (LSIbabnikz/DifFIQA, code and released weights); Apache-2.0 (fiqa-bench code)",
        layout="plain state_dict of Sequential(base=iresnet100, linear=Linear(512, 1)): keys base.*, linear.weight "
        "[1, 512], linear.bias [1]",
    ),
)


def _card(v: Variant) -> Card:
    layout = v.layout or (
        f"plain state_dict of eDifFIQA({v.backbone}, MLP): keys base_model.*, mlp.l1 [1024, 512], mlp.l2 [1, 1024]"
    )
    return Card(
        name=v.name,
        kind="method",
        summary=f"{v.label}: {v.backbone} + regression head distilled from DifFIQA",
        aliases=(v.label.lower(),),
        paper=v.paper,
        licence=v.licence,
        normalisation=NORMALISATION,
        score_direction="higher_better",
        weights=(WeightFile(v.filename, source=v.source),),
        notes=(
            f"Checkpoint: {layout}; a DataParallel 'module.' prefix is stripped; every key must match. "
            f"{SCORE_NOTES} Verified: a checkpoint built with the authors' key names loads with every key matched "
            "and scores like the authors' forward written out in the test; no published weights on this machine."
        ),
    )


def _factory(v: Variant) -> Callable[[BuildContext], TorchRegressor]:
    def factory(ctx: BuildContext) -> TorchRegressor:
        network = load_layout(
            v.build(), ctx.weights_file(), arch=f"{v.label} ({v.backbone})", strip=("module.",)
        )
        return TorchRegressor(ctx, network, INPUT)

    return factory


CARDS = {v.name: _card(v) for v in VARIANTS}
for _v in VARIANTS:
    register_method(CARDS[_v.name])(_factory(_v))


# --- eDifFIQA(T) as exported to the OpenCV Zoo (ONNX) ------------------------------------------------------

ONNX_FILE = "ediffiqa_tiny_jun2024.onnx"

EDIFFIQA_T_ONNX_CARD = Card(
    name="ediffiqa_t_onnx",
    kind="method",
    summary="eDifFIQA(T) as exported to the OpenCV Zoo (ONNX Runtime): same network as ediffiqa_t",
    aliases=("ediffiqa(t)_onnx",),
    paper=EDIFFIQA_PAPER,
    licence="that of the OpenCV Zoo model folder face_image_quality_assessment_ediffiqa (not checked here); "
    "Apache-2.0 (fiqa-bench code)",
    normalisation="RGB 112x112, (x/255 - 0.5) / 0.5 (OpenCV Zoo ediffiqa.py _preprocess: BGR->RGB, /255, -0.5, /0.5)",
    score_direction="higher_better",
    weights=(
        WeightFile(
            ONNX_FILE,
            source="OpenCV Zoo, models/face_image_quality_assessment_ediffiqa (https://github.com/opencv/opencv_zoo; "
            "also huggingface.co/opencv/face_image_quality_assessment_ediffiqa)",
        ),
    ),
    notes=(
        "One image input N x 3 x 112 x 112 (a fixed batch of 1 is run image by image), one output per image: "
        "the raw regressor output, as the Zoo demo reads it (no sigmoid). "
        + SCORE_NOTES
        + " Verified: an ONNX "
        "export of the eDifFIQA(T) network with that interface scores like ediffiqa_t on the same weights; the "
        "Zoo file itself is not on this machine."
    ),
)


class OnnxRegressor(BaseMethod):
    """eDifFIQA(T) through ONNX Runtime: RGB [-1, 1] NCHW in, the first output's first value per image out."""

    batch_size = 32

    def __init__(self, ctx: BuildContext) -> None:
        from fiqa_bench.fr_models._onnx import open_session

        from fiqa_bench.errors import CheckpointError

        path = ctx.weights_file()
        super().__init__(ctx)
        self.session = open_session(path, ctx.device)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape) if inputs else []
        if len(inputs) != 1 or len(shape) != 4 or shape[1:] != [3, 112, 112] or not outputs:
            got = ", ".join(f"{i.name} {i.shape}" for i in inputs) or "no inputs"
            raise CheckpointError(
                f"{path}: not the eDifFIQA(T) ONNX export (expected one input N x 3 x 112 x 112, got {got})."
            )
        self.input_name = inputs[0].name
        self.fixed_one = shape[0] == 1

    def _raw_batch(self, images: np.ndarray, meta: Any) -> np.ndarray:
        check_size(images, INPUT.size, self.card.name)
        x = ((images.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(0, 3, 1, 2)
        chunks = [x[i : i + 1] for i in range(len(x))] if self.fixed_one else [x]
        out = [
            np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(c)})[0]) for c in chunks
        ]
        return np.concatenate([o.reshape(len(c), -1)[:, 0] for o, c in zip(out, chunks, strict=True)]).astype(
            np.float64
        )


register_method(EDIFFIQA_T_ONNX_CARD)(OnnxRegressor)
