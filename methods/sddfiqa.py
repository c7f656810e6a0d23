"""SDD-FIQA: an IR-50 quality regressor trained on similarity-distribution-distance pseudo-labels (Ou et al.).

Re-implemented from the authors' code (Tencent/TFace ``quality/eval.py``, ``quality/train.py``,
``quality/generate_pseudo_labels/extract_embedding/model/model.py``): ``R50([112, 112], use_type="Qua")``
= the face.evoLVe IR-50 (``bottleneck_IR`` units without a BN after the first conv) with the quality head
``quality = Sequential(Flatten, PReLU(25088), Dropout(0.5), Linear(25088, 1))`` directly on the 512 x 7 x 7
map (no output BN). The released file is ``torch.save(net.state_dict())`` of an ``nn.DataParallel`` model,
so every key starts with ``module.`` (stripped here, as eval.py does); keys: input_layer.0..2,
body.0..23 (shortcut_layer.0..1 on the 4 channel-changing units, res_layer.0..4), quality.1.weight
[25088], quality.3.weight [1, 25088], quality.3.bias [1].

Input (eval.py read_img): PIL RGB -> Resize(112, 112) -> ToTensor -> Normalize(0.5, 0.5), on faces aligned
as the refined MS1M training set (insightface 112x112 five-point alignment). Score: the regressor output;
the pseudo-label is the Wasserstein distance between a sample's intra-class and inter-class similarity
distributions (larger = more separable = better), so higher = better.
"""

from __future__ import annotations

from fiqa_bench.fr_models._checkpoint import load_layout
from fiqa_bench.fr_models._common import InputSpec
from fiqa_bench.fr_models._irse import IRNet

from fiqa_bench.registry import Card, WeightFile, register_method
from fiqa_bench.types import BuildContext

from ._regressor import TorchRegressor

INPUT = InputSpec(colour="RGB", mean=127.5, std=127.5)

SDDFIQA_CARD = Card(
    name="sddfiqa",
    kind="method",
    summary="SDD-FIQA: IR-50 + quality head regressing Wasserstein-distance pseudo-labels (TFace release)",
    aliases=("sdd-fiqa", "sdd_fiqa"),
    paper="Ou, Chen, Zhang, Huang, Li, Li, Li, Cao, Wang, SDD-FIQA: Unsupervised Face Image Quality Assessment "
    "with Similarity Distribution Distance, CVPR 2021",
    licence="Apache-2.0 (Tencent/TFace, code and released weights); Apache-2.0 (fiqa-bench code)",
    normalisation="RGB 112x112, (x/255 - 0.5) / 0.5 (eval.py: Resize(112) + ToTensor + Normalize(0.5, 0.5))",
    score_direction="higher_better",
    weights=(
        WeightFile(
            "SDD_FIQA_checkpoints_r50.pth",
            source="TFace quality/README.md 'Prediction of FIQA' Google Drive link (https://github.com/Tencent/TFace/"
            "tree/master/quality); the file name eval.py loads",
        ),
    ),
    notes=(
        "Checkpoint: DataParallel state_dict ('module.' stripped): input_layer.*, body.0..23 face.evoLVe "
        "bottleneck_IR (res_layer.0..4), quality.1 PReLU(25088), quality.3 Linear(25088, 1); every key must "
        "match (eval.py itself fills absent keys from a random init; here a missing key is an error). Score = "
        "regressor output, higher = better (pseudo-label: Wasserstein distance of intra- vs inter-class "
        "similarities). Learned, so no degradation is exempt. Verified: a checkpoint built with the authors' "
        "key names and 'module.' wrapper loads with every key matched and scores like the authors' forward "
        "written out in the test; no published weights on this machine."
    ),
)


def sddfiqa_net() -> IRNet:
    """The authors' ``R50(use_type="Qua")``: IR-50, face.evoLVe block (no mid BN), quality head."""
    return IRNet(50, mid_bn=False, head="quality")


@register_method(SDDFIQA_CARD)
def sddfiqa(ctx: BuildContext) -> TorchRegressor:
    network = load_layout(
        sddfiqa_net(), ctx.weights_file(), arch="SDD-FIQA IR-50 + quality head", strip=("module.",)
    )
    return TorchRegressor(ctx, network, INPUT)
