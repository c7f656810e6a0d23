"""IR-101 FR models in the face.evoLVe / TFace layout: AdaFace (PyTorch Lightning ``.ckpt``) and CurricularFace.

Both use the one IR module of ``_irse.py``; each card loads its published file strictly
(``_checkpoint.match_layout``): every key must match in name and shape after the known wrapping prefixes
are stripped, else one line lists what differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fiqa_bench.registry import Card, WeightFile, register_fr_model, resolve_weights

from ._checkpoint import match_layout, read_checkpoint
from ._common import InputSpec
from ._irse import IRNet
from ._torch_model import TorchFRModel, check_options

# AdaFace's README and inference.py: BGR (cv2 order), ((x / 255) - 0.5) / 0.5.
ADAFACE_INPUT = InputSpec(colour="BGR", mean=127.5, std=127.5)
# CurricularFace: PIL (RGB) training images, Normalize(0.5, 0.5); its evaluation flips the BGR val arrays
# to RGB ([:, [2, 1, 0]]) before the model.
CURRICULARFACE_INPUT = InputSpec(colour="RGB", mean=127.5, std=127.5)

_OPTIONS = (
    "Options: flip_tta (false | true/'concat' | 'sum': e + f, as CurricularFace's and AdaFace's own "
    "evaluations), precision (fp32 | bf16 | fp16 on CUDA), channels_last (default on)."
)


def has_mid_bn(state: dict[str, Any]) -> bool:
    """True for the TFace/AdaFace block (BN after the first conv: ``res_layer.5`` exists), False for
    face.evoLVe's ``bottleneck_IR`` (``res_layer.0..4``)."""
    return any(k.endswith("body.0.res_layer.5.running_mean") for k in state)


def load_irnet(
    path: Path, *, depth: int, mid_bn: bool | None, strip: tuple[str, ...], ignore: tuple[str, ...] = ()
) -> IRNet:
    """An IR embedding network loaded strictly from ``path`` (``mid_bn=None``: block layout read from the file)."""
    state = read_checkpoint(path)
    mid = has_mid_bn(state) if mid_bn is None else mid_bn
    module = IRNet(depth, mid_bn=mid, head="embedding")
    module.load_state_dict(
        match_layout(module, state, source=str(path), arch=module.arch, strip=strip, ignore=ignore),
        strict=True,
    )
    return module


def _card(name: str, spec: InputSpec, **fields: Any) -> Card:
    return Card(
        name=name,
        kind="fr_model",
        input_size=spec.size,
        colour=spec.colour,
        normalisation=spec.describe(),
        embedding_size=512,
        **fields,
    )


ADAFACE_CARD = _card(
    "adaface_ir101",
    ADAFACE_INPUT,
    summary="AdaFace IR-101 (official PyTorch Lightning checkpoint, MS1MV2); BGR input",
    aliases=("adaface",),
    paper="Kim, Jain, Liu, AdaFace: Quality Adaptive Margin for Face Recognition, CVPR 2022",
    licence="MIT (mk-minchul/AdaFace code and released weights)",
    weights=(
        WeightFile(
            "adaface_ir101_ms1mv2.ckpt",
            source="AdaFace README 'Pretrained Models' table, R100 / MS1MV2 Google Drive link "
            "(https://github.com/mk-minchul/AdaFace); keep the file name",
        ),
    ),
    notes=(
        "Layout (AdaFace net.py + train_val.py): a Lightning checkpoint {'state_dict': {...}, 'hyper_parameters', "
        "'optimizer_states', ...}; the backbone is under 'model.' (input_layer, body.0..48 with BasicBlockIR "
        "res_layer.0..5, output_layer.0..4), the AdaFace margin head 'head.kernel' is ignored; hyper-parameter "
        "objects are read as inert stand-ins (no code runs). Input BGR, (x/255 - 0.5)/0.5 (README: 'our "
        "pretrained model takes the input in BGR color channel'; inference.py to_input). Embedding = raw "
        "output_layer output (AdaFace returns it L2-normalised plus its norm; the cosine is the same). The "
        "R100 files for MS1MV3 / WebFace4M / WebFace12M load the same way: --weights adaface_ir101=PATH. "
        "Verified: a checkpoint built with AdaFace's key names and Lightning wrapper loads with every key "
        "matched; no published weights on this machine. " + _OPTIONS
    ),
)

CURRICULARFACE_CARD = _card(
    "curricularface_ir101",
    CURRICULARFACE_INPUT,
    summary="CurricularFace IR-101 (MS1MV2, the CurricularFace / TFace release)",
    aliases=("curricularface",),
    paper="Huang, Wang, Tai, Liu, Shen, Li, Li, Huang, CurricularFace: Adaptive Curriculum Learning Loss "
    "for Deep Face Recognition, CVPR 2020",
    licence="MIT (HuangYG123/CurricularFace); Apache-2.0 (Tencent/TFace); weights: research use (no separate terms)",
    weights=(
        WeightFile(
            "CurricularFace_Backbone.pth",
            source="CurricularFace README 'Model' section, IR101 Google Drive / Baidu link "
            "(https://github.com/HuangYG123/CurricularFace)",
        ),
    ),
    notes=(
        "Plain state_dict (or DataParallel 'module.'): input_layer, body.0..48, output_layer.0..4 "
        "(BatchNorm1d(512, affine=False)). The block layout is read from the file: face.evoLVe bottleneck_IR "
        "(res_layer.0..4, the CurricularFace repository's model_irse.py) or TFace BasicBlockIR (res_layer.0..5, "
        "BN after the first conv); either must then match key for key. Input RGB, (x/255 - 0.5)/0.5. "
        "Embedding = raw output_layer output. Verified: checkpoints built with both key layouts load with "
        "every key matched; no published weights on this machine. " + _OPTIONS
    ),
)


def _factory(
    depth: int, mid_bn: bool | None, spec: InputSpec, strip: tuple[str, ...], ignore: tuple[str, ...]
):
    def factory(
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
        module = load_irnet(Path(path), depth=depth, mid_bn=mid_bn, strip=strip, ignore=ignore)
        return TorchFRModel(
            card,
            module,
            spec,
            weights_path=path,
            device=device,
            flip_tta=flip_tta,
            precision=precision,
            channels_last=channels_last,
        )

    return factory


register_fr_model(ADAFACE_CARD)(
    _factory(100, True, ADAFACE_INPUT, strip=("model.", "module.", "model.module."), ignore=("head.",))
)
register_fr_model(CURRICULARFACE_CARD)(
    _factory(100, None, CURRICULARFACE_INPUT, strip=("module.", "backbone.", "module.backbone."), ignore=())
)
