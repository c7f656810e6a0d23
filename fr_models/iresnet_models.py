"""iResNet FR models with published checkpoints: ArcFace, ElasticFace, MagFace, CR-FIQA (L/S), and ``crfiqa:PATH``.

Each card loads its published file strictly (``_checkpoint``): every key must match in name and
shape, so a wrong file fails with one message that names the architecture the file looks like.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiqa_bench.errors import CheckpointError
from fiqa_bench.registry import Card, WeightFile, register_fr_model
from fiqa_bench.types import BuildContext

from ._checkpoint import guess_architecture, infer_iresnet_config, match_state_dict, read_checkpoint
from ._common import TORCH_MODEL_OPTIONS, InputSpec
from ._iresnet import LAYERS, IResNet, IResNetMapQS, iresnet
from ._qs_head import load_from_sidecar, read_sidecar
from ._torch_model import TorchFRModel, check_options

ARCFACE_INPUT = InputSpec(colour="RGB", mean=127.5, std=127.5)
# MagFace trains and infers on cv2.imread (BGR) images scaled by ToTensor to [0, 1], with no mean
# subtraction (its dataloader and inference/gen_feat.py), so the channels are reversed here.
MAGFACE_INPUT = InputSpec(colour="BGR", mean=0.0, std=255.0)


@dataclass(frozen=True)
class Arch:
    depth: int
    with_qs: bool = False
    bn_eps: float = 1e-5
    spec: InputSpec = ARCFACE_INPUT


_TORCH_OPTIONS = (
    "Options: flip_tta (false | true/'concat': [e/|e|, f/|f|] as the reference evaluation | 'sum': e + f), "
    "precision (fp32 | bf16 | fp16 on CUDA), channels_last (default on)."
)
_INSIGHTFACE_ZOO = (
    "insightface arcface_torch model zoo (https://github.com/deepinsight/insightface/tree/master/recognition/"
    "arcface_torch, 'Model Zoo' links); keep the folder name: <weights_dir>/{folder}/backbone.pth"
)


def _card(name: str, arch: Arch, summary: str, **fields: Any) -> Card:
    spec = arch.spec
    qs = " + CR-FIQA quality head (qs)" if arch.with_qs else ""
    return Card(
        name=name,
        kind="fr_model",
        summary=summary,
        input_size=spec.size,
        colour=spec.colour,
        normalisation=spec.describe(),
        embedding_size=512,
        options=TORCH_MODEL_OPTIONS,
        notes=f"iresnet{arch.depth}{qs}; BatchNorm eps {arch.bn_eps:g}; embedding = raw `features` output "
        f"(not L2-normalised). {_TORCH_OPTIONS} " + fields.pop("notes", ""),
        **fields,
    )


def build_model(
    card: Card,
    arch: Arch,
    weights_path: str | Path | None,
    *,
    device: str = "cpu",
    flip_tta: Any = False,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> TorchFRModel:
    """The card's iResNet, loaded strictly from ``weights_path`` (None: random init, for tests/benchmarks)."""
    state = read_checkpoint(weights_path) if weights_path is not None else None  # read first: fail fast
    module = iresnet(arch.depth, with_qs=arch.with_qs, bn_eps=arch.bn_eps)
    if state is not None:
        module.load_state_dict(match_state_dict(module, state, source=str(weights_path)), strict=True)
    return TorchFRModel(
        card,
        module,
        arch.spec,
        weights_path=weights_path,
        device=device,
        flip_tta=flip_tta,
        precision=precision,
        channels_last=channels_last,
        output_index=0,
    )


def _factory(arch: Arch) -> Callable[[BuildContext], TorchFRModel]:
    def factory(ctx: BuildContext) -> TorchFRModel:
        o = ctx.options
        check_options(ctx.card, ctx.device, o["flip_tta"], o["precision"])
        return build_model(
            ctx.card,
            arch,
            ctx.weights_file(),
            device=ctx.device,
            flip_tta=o["flip_tta"],
            precision=o["precision"],
            channels_last=o["channels_last"],
        )

    return factory


ARCFACE_PAPER = (
    "Deng, Guo, Xue, Zafeiriou, ArcFace: Additive Angular Margin Loss for Deep Face Recognition, CVPR 2019"
)
INSIGHTFACE_LICENCE = (
    "insightface pretrained models: non-commercial research use only (model zoo terms); code MIT"
)
CRFIQA_PAPER = "Boutros, Fang, Klemt, Fu, Kuijper, Damer, CR-FIQA: Face Image Quality Assessment by Learning Sample Relative Classifiability, CVPR 2023"
CRFIQA_LICENCE = "CC BY-NC 4.0 (fdbtrs/CR-FIQA)"
CRFIQA_SOURCE = "CR-FIQA repository README, 'pretrained model' links (https://github.com/fdbtrs/CR-FIQA)"

ARCHS: dict[str, Arch] = {
    "arcface_r100": Arch(100),
    "arcface_r50": Arch(50),
    "cosface_r100": Arch(100),
    "elasticface_arc": Arch(100),
    "magface_r100": Arch(100, bn_eps=2e-5, spec=MAGFACE_INPUT),
    "crfiqa_l": Arch(100, with_qs=True),
    "crfiqa_s": Arch(50, with_qs=True),
}

CARDS: dict[str, Card] = {
    "arcface_r100": _card(
        "arcface_r100",
        ARCHS["arcface_r100"],
        "ArcFace iResNet100 trained on MS1MV3 (insightface arcface_torch ms1mv3_arcface_r100_fp16)",
        aliases=("arcface",),
        paper=ARCFACE_PAPER,
        licence=INSIGHTFACE_LICENCE,
        weights=(
            WeightFile(
                "ms1mv3_arcface_r100_fp16/backbone.pth",
                source=_INSIGHTFACE_ZOO.format(folder="ms1mv3_arcface_r100_fp16"),
            ),
        ),
        notes="Plain state_dict (arcface_torch save). sha256 not published.",
    ),
    "arcface_r50": _card(
        "arcface_r50",
        ARCHS["arcface_r50"],
        "ArcFace iResNet50 trained on MS1MV3 (insightface arcface_torch ms1mv3_arcface_r50_fp16)",
        paper=ARCFACE_PAPER,
        licence=INSIGHTFACE_LICENCE,
        weights=(
            WeightFile(
                "ms1mv3_arcface_r50_fp16/backbone.pth",
                source=_INSIGHTFACE_ZOO.format(folder="ms1mv3_arcface_r50_fp16"),
            ),
        ),
        notes="Plain state_dict (arcface_torch save). sha256 not published.",
    ),
    "cosface_r100": _card(
        "cosface_r100",
        ARCHS["cosface_r100"],
        "CosFace iResNet100 trained on Glint360K (insightface arcface_torch glint360k_cosface_r100_fp16_0.1)",
        aliases=("cosface",),
        paper="Wang, Wang, Zhou, Ji, Gong, Zhou, Li, Liu, CosFace: Large Margin Cosine Loss for Deep Face "
        "Recognition, CVPR 2018; model: An, Zhu, Xiao, Wu, Zhang, Xu, Fu, Partial FC, ICCVW 2021 (Glint360K)",
        licence=INSIGHTFACE_LICENCE,
        weights=(
            WeightFile(
                "glint360k_cosface_r100_fp16_0.1/backbone.pth",
                source=_INSIGHTFACE_ZOO.format(folder="glint360k_cosface_r100_fp16_0.1"),
            ),
        ),
        notes="Plain state_dict (arcface_torch save), the same iresnet100 keys as arcface_r100; the FR model "
        "of the DifFIQA(R) and eDifFIQA papers (their regressors are initialised from it). Input RGB, "
        "(x/255 - 0.5)/0.5 (arcface_torch). sha256 not published. Verified: a plain state_dict with the "
        "arcface_torch key names loads with every key matched; no published weights on this machine.",
    ),
    "elasticface_arc": _card(
        "elasticface_arc",
        ARCHS["elasticface_arc"],
        "ElasticFace-Arc iResNet100 trained on MS1MV2 (the FR model of the CR-FIQA reference ERC plots)",
        aliases=("elasticface",),
        paper="Boutros, Damer, Kirchbuchner, Kuijper, ElasticFace: Elastic Margin Loss for Deep Face Recognition, CVPR Workshops 2022",
        licence="CC BY-NC-SA 4.0 (fdbtrs/ElasticFace)",
        weights=(
            WeightFile(
                "295672backbone.pth",
                source="ElasticFace repository README, ElasticFace-Arc 'pretrained model' link "
                "(https://github.com/fdbtrs/ElasticFace -> https://cloud-ext.igd.fraunhofer.de/s/44iGb2XxqZa2aDA)",
            ),
        ),
        notes="Plain state_dict. sha256 not published.",
    ),
    "magface_r100": _card(
        "magface_r100",
        ARCHS["magface_r100"],
        "MagFace iResNet100 trained on MS1MV2 (magnitude of the raw embedding = quality)",
        aliases=("magface_iresnet100",),
        paper="Meng, Zhao, Huang, Liu, Yang, Han, MagFace: A Universal Representation for Face Recognition and Quality Assessment, CVPR 2021",
        licence="Apache-2.0 (IrvingMeng/MagFace)",
        weights=(
            WeightFile(
                "magface_epoch_00025.pth",
                source="MagFace repository README, 'iResNet100 / MS1MV2' model link (https://github.com/IrvingMeng/MagFace)",
            ),
        ),
        notes=(
            "Checkpoint layout: {'epoch', 'arch', 'state_dict', 'optimizer'}; the backbone sits under "
            "'features.module.' (DDP training) or 'module.features.' (DataParallel training) beside the "
            "MagLinear head ('fc.weight' [512, classes]), which is ignored. MagFace's iresnet uses BatchNorm "
            "eps 2e-5 and reads images with cv2.imread, so its input is BGR in [0, 1] (verified in its "
            "published dataloader and inference/gen_feat.py); fiqa-bench reverses the channels internally. "
            "Do not use flip_tta='concat' with the magface quality method: it fixes the norm at sqrt(2)."
        ),
    ),
    "crfiqa_l": _card(
        "crfiqa_l",
        ARCHS["crfiqa_l"],
        "CR-FIQA(L) backbone as an FR model: iResNet100 + qs trained on MS1MV2 (embedding output)",
        aliases=("crfiqa_large",),
        paper=CRFIQA_PAPER,
        licence=CRFIQA_LICENCE,
        weights=(WeightFile("181952backbone.pth", source=CRFIQA_SOURCE),),
        notes="Plain state_dict with qs.weight [1, 512], qs.bias [1]. The quality output is read by the crfiqa method.",
    ),
    "crfiqa_s": _card(
        "crfiqa_s",
        ARCHS["crfiqa_s"],
        "CR-FIQA(S) backbone as an FR model: iResNet50 + qs trained on CASIA-WebFace (embedding output)",
        aliases=("crfiqa_small",),
        paper=CRFIQA_PAPER,
        licence=CRFIQA_LICENCE,
        weights=(WeightFile("32572backbone.pth", source=CRFIQA_SOURCE),),
        notes="Plain state_dict with qs.weight [1, 512], qs.bias [1].",
    ),
}

for _name, _c in CARDS.items():
    register_fr_model(_c)(_factory(ARCHS[_name]))


GENERIC_CARD = Card(
    name="crfiqa",
    kind="fr_model",
    summary="any iResNet checkpoint (e.g. from fiqa-bench training) as an FR model: crfiqa:PATH; depth and qs head inferred",
    aliases=("iresnet",),
    takes_argument=True,
    paper=CRFIQA_PAPER,
    licence="that of the checkpoint",
    input_size=ARCFACE_INPUT.size,
    colour=ARCFACE_INPUT.colour,
    normalisation=ARCFACE_INPUT.describe(),
    embedding_size=512,
    options=TORCH_MODEL_OPTIONS,
    notes=(
        "Reads the depth (18/34/50/100/200) from the block counts of layer1..4, the qs head from qs.* (CR-FIQA "
        "qs Linear(512, 1), or the SynFIQA++ map head qs.2..qs.9), and the embedding size from fc.weight; "
        "prefixes module./features.module./backbone. are stripped. MR-FIQA's released iResNet50 checkpoints "
        "(CASIA-WebFace, DigiFace-1M, DCFace, SFace2, HSFace-10K, IDiff-Face, GANDiffFace, SynFIQA, SynFIQA++, "
        "SynFIQA + CASIA; oufuzhao/MR-FIQA leaderboard links, CC BY-NC 4.0) load here. "
        "Input as ArcFace/CR-FIQA training: RGB, (x/255 - 0.5) / 0.5. " + _TORCH_OPTIONS
    ),
)


@register_fr_model(GENERIC_CARD)
def crfiqa_from_path(ctx: BuildContext) -> TorchFRModel:
    card, device, o = ctx.card, ctx.device, ctx.options
    flip_tta, precision, channels_last = o["flip_tta"], o["precision"], o["channels_last"]
    check_options(card, device, flip_tta, precision)
    path = ctx.weights_file(path=ctx.weights if ctx.weights is not None else ctx.argument)
    state = read_checkpoint(path)
    cfg = infer_iresnet_config(state)
    meta = read_sidecar(path)
    if cfg is None and meta and meta.get("backbone_model"):  # fiqa-bench fine-tuned from another FR model
        return load_from_sidecar(
            card,
            path,
            state,
            meta,
            device=device,
            flip_tta=flip_tta,
            precision=precision,
            channels_last=channels_last,
        )
    if cfg is None:
        raise CheckpointError(
            f"{path}: not an iResNet checkpoint (it looks like {guess_architecture(state)})."
        )
    if cfg["qs_head"] == "map":
        module: IResNet = IResNetMapQS(LAYERS[cfg["depth"]], num_features=cfg["num_features"])
    else:
        module = IResNet(LAYERS[cfg["depth"]], with_qs=cfg["with_qs"], num_features=cfg["num_features"])
    module.load_state_dict(match_state_dict(module, state, source=str(path)), strict=True)
    arch_card = dataclasses.replace(
        card,
        embedding_size=cfg["num_features"],
        notes=f"{module.arch} read from {path.name}. " + card.notes,
    )
    return TorchFRModel(
        arch_card,
        module,
        ARCFACE_INPUT,
        weights_path=path,
        device=device,
        flip_tta=flip_tta,
        precision=precision,
        channels_last=channels_last,
    )
