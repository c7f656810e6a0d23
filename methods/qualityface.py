"""QualityFace: a MobileNetV2 face-quality regressor whose checkpoint ships in the ``qualityface`` wheel.

The wheel's own code cannot run: it imports ``siriusbackbone`` (not installable from PyPI) for the
architecture. The checkpoint (``qualityface/checkpoints/last.pth``, a DataParallel state_dict) holds the
backbone twice, as ``module.backbone.net.*`` (a full torchvision-layout MobileNetV2 incl. an unused
1000-class classifier) and ``module.backbone.backbone.features.*``; both copies are identical, and the
latter matches torchvision's ``mobilenet_v2().features`` key for key and shape for shape (312/312).
The head, from the wheel's ``models.py``: mean over the spatial dims of the 1280-channel map, then
``classify`` = Linear(1280, 1). Input, from its ``config.py``/``api.py``: RGB, input_shape 3 x 128 x 128,
ToTensor ([0, 1]) then Normalize(0.5, 0.5) -> [-1, 1].
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fiqa_bench.errors import CheckpointError
from fiqa_bench.registry import Card, WeightFile, register_method
from fiqa_bench.types import BuildContext

from ._common import BaseMethod

WEIGHTS = WeightFile(
    "last.pth",
    sha256="95a14bfeb706b4919eed7a035c2380cafbb548e590770968af5be0321ae190b7",
    source="qualityface 1.0.3 wheel on PyPI (qualityface/checkpoints/last.pth): pip install --no-deps qualityface==1.0.3",
    package="qualityface",
)
INPUT = 128

QUALITYFACE_CARD = Card(
    name="qualityface",
    kind="method",
    summary="QualityFace: MobileNetV2 face-quality regressor (checkpoint from the qualityface 1.0.3 wheel)",
    aliases=("quality_face",),
    paper="no paper; github.com/siriusdemon/pytorch-QualityFace (trained on WIDER FACE crops, per its config)",
    licence="UNKNOWN (the wheel declares no licence): research comparison only",
    input_size=(INPUT, INPUT),
    colour="RGB",
    normalisation="aligned 112x112 crop resized to 128x128 (bilinear), x/255 then (x - 0.5)/0.5 -> [-1, 1]",
    score_direction="higher_better",
    weights=(WEIGHTS,),
    python_packages=("torchvision",),
    exempt_degradations=("noise",),
    notes=(
        "Architecture = torchvision mobilenet_v2().features (checkpoint keys and shapes match exactly) + "
        "spatial mean + Linear(1280, 1). siriusbackbone, the wheel's architecture dependency, is not on "
        "PyPI, so its non-parametric choices (ReLU6, BatchNorm eps 1e-5) are assumed to be torchvision's: "
        "unverified. The training labels' meaning is undocumented. Its crops were not ArcFace-aligned, "
        "so aligned faces are a domain shift. Loaded with weights_only=True and strict keys. Additive "
        "noise RAISES it on aligned LFW faces (lowered for 1 of 40): it reads noise as detail (exempt: noise)."
    ),
)


class QualityFace(BaseMethod):
    batch_size = 64

    def __init__(self, ctx: BuildContext) -> None:
        import torch
        import torchvision

        super().__init__(ctx)
        path, device = ctx.weights_file(), ctx.device
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # one line naming the file
            raise CheckpointError(
                f"{path}: cannot read the QualityFace checkpoint ({str(exc).splitlines()[0][:160]})."
            ) from None
        prefix = "module.backbone.backbone."
        feats = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        self.features = torchvision.models.mobilenet_v2(weights=None).features
        expected = set(self.features.state_dict())
        feats = {k.removeprefix("features."): v for k, v in feats.items()}
        if set(feats) != expected or "module.classify.weight" not in state:
            raise CheckpointError(
                f"{path}: not the QualityFace checkpoint ({len(set(feats) & expected)}/{len(expected)} backbone keys match). "
                f"Reinstall: {WEIGHTS.source}"
            )
        self.features.load_state_dict(feats, strict=True)
        self.classify = torch.nn.Linear(1280, 1)
        self.classify.load_state_dict(
            {"weight": state["module.classify.weight"], "bias": state["module.classify.bias"]}, strict=True
        )
        self.device = device
        self.features.eval().to(device)
        self.classify.eval().to(device)

    def _raw_batch(self, images: np.ndarray, meta: Mapping[str, np.ndarray] | None) -> np.ndarray:
        import cv2
        import torch

        x = np.stack([cv2.resize(im, (INPUT, INPUT), interpolation=cv2.INTER_LINEAR) for im in images])
        # The trained weights drive activations into denormal floats, which are ~3x slower on x86 CPUs;
        # flushing them to zero changes no score measurably (checked on LFW: max difference 0).
        torch.set_flush_denormal(True)
        try:
            with torch.inference_mode():
                t = torch.from_numpy(x).to(self.device).permute(0, 3, 1, 2).float()
                t = (t / 255.0 - 0.5) / 0.5
                out = self.classify(self.features(t).mean(dim=(2, 3)))
        finally:
            torch.set_flush_denormal(False)
        return out.reshape(-1).double().cpu().numpy()


register_method(QUALITYFACE_CARD)(QualityFace)
