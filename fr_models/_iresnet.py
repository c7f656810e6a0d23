"""iResNet (insightface ``arcface_torch`` layout), re-implemented from its published structure.

The module and parameter names are exactly those of the published checkpoints (ArcFace, ElasticFace,
CurricularFace, CR-FIQA, MagFace after prefix stripping), so ``load_state_dict`` works key for key:

    conv1, bn1, prelu                      stem (3x3 conv 3->64, no bias)
    layer1 .. layer4                       stages, widths 64/128/256/512, first block stride 2
      layerK.J.{bn1,conv1,bn2,prelu,conv2,bn3}, layerK.0.downsample.{0 (1x1 conv), 1 (BN)}
    bn2                                    BatchNorm2d(512) on the 7x7 map
    dropout                                nn.Dropout before ``fc`` (holds no parameters)
    fc                                     Linear(512*7*7 = 25088, num_features)
    features                               BatchNorm1d(num_features): its output is the embedding
    qs                                     (CR-FIQA only) Linear(num_features, 1): the quality score

Attributes other code relies on (a stable contract):

* ``model.layer1`` .. ``model.layer4``: stage outputs for forward hooks (GraFIQs).
* ``model.dropout``: the ``nn.Dropout`` before ``fc``. It is NOT in-place, so the backbone output can be
  reused for many stochastic passes. SER-FIQ: ``feats = model.forward_backbone(x)`` once, then
  ``model.dropout.p = 0.5; model.dropout.train()`` and call ``model.forward_head(feats)`` T times.
* ``model.forward_backbone(x)`` -> N x 25088 (stem, stages, ``bn2``, flatten; before dropout).
* ``model.forward_head(flat)`` -> embedding (or ``(embedding, qs)``): dropout, ``fc``, ``features``, ``qs``.
* ``model.depth``, ``model.with_qs``, ``model.num_features``, ``model.arch`` (e.g. "iresnet100+qs").

The embedding is returned raw (not L2-normalised), as the published models do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn

# Blocks per stage for each published depth.
LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
WIDTHS = (64, 128, 256, 512)
FC_SPATIAL = 7 * 7  # 112 input, four stride-2 stages -> 7x7


def depth_for_layers(layers: Sequence[int]) -> int | None:
    """The published depth whose block counts are ``layers`` (None if no depth has them)."""
    for depth, counts in LAYERS.items():
        if tuple(layers) == counts:
            return depth
    return None


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation style block: bn1 -> conv1 -> bn2 -> prelu -> conv2(stride) -> bn3, + shortcut."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=eps)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=eps)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=eps)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


class IResNet(nn.Module):
    def __init__(
        self,
        layers: Sequence[int],
        *,
        dropout: float = 0.0,
        num_features: int = 512,
        with_qs: bool = False,
        fp16: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"iResNet needs block counts for 4 stages, got {list(layers)}")
        self.layers_per_stage = tuple(int(n) for n in layers)
        self.depth = depth_for_layers(self.layers_per_stage)
        self.num_features = num_features
        self.with_qs = with_qs
        # fp16: the backbone runs under CUDA autocast(float16) and ``fc`` in float32, as the published
        # training code does. Inference precision is chosen by the FR-model wrapper, not by this flag.
        self.fp16 = fp16
        name = f"iresnet{self.depth}" if self.depth else f"iresnet{list(self.layers_per_stage)}"
        self.arch = name + ("+qs" if with_qs else "")

        self.conv1 = nn.Conv2d(3, WIDTHS[0], kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0], eps=bn_eps)
        self.prelu = nn.PReLU(WIDTHS[0])
        inplanes = WIDTHS[0]
        stages = []
        for width, count in zip(WIDTHS, self.layers_per_stage, strict=True):
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, kernel_size=1, stride=2, bias=False),
                nn.BatchNorm2d(width, eps=bn_eps),
            )
            blocks = [IBasicBlock(inplanes, width, 2, downsample, eps=bn_eps)]
            blocks += [IBasicBlock(width, width, 1, None, eps=bn_eps) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn2 = nn.BatchNorm2d(WIDTHS[-1], eps=bn_eps)
        self.dropout = nn.Dropout(p=dropout, inplace=False)
        self.fc = nn.Linear(WIDTHS[-1] * FC_SPATIAL, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=bn_eps)
        self.qs = nn.Linear(num_features, 1) if with_qs else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.1)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.constant_(m.weight, 1.0)
                nn.init.constant_(m.bias, 0.0)
        # The published training keeps the embedding BN's scale fixed at 1.
        self.features.weight.requires_grad = False

    def forward_backbone(self, x: torch.Tensor) -> torch.Tensor:
        """Images N x 3 x 112 x 112 (already normalised) -> flattened ``bn2`` output N x 25088."""
        # Only ENTER an autocast region for fp16 training: an ``enabled=False`` region would switch off a
        # caller's own autocast (the FR-model wrapper's bf16/fp16 inference).
        ctx = (
            torch.autocast("cuda", dtype=torch.float16)
            if (self.fp16 and x.is_cuda)
            else contextlib.nullcontext()
        )
        with ctx:
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.bn2(x)
            x = torch.flatten(x, 1)
        return x

    def forward_head(self, flat: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Dropout -> fc -> features (-> qs) on the output of :meth:`forward_backbone`."""
        x = self.dropout(flat)
        x = self.fc(x.float() if self.fp16 else x)
        x = self.features(x)
        if self.qs is not None:
            return x, self.qs(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return self.forward_head(self.forward_backbone(x))


class IResNetMapQS(IResNet):
    """CR-FIQA-style iResNet whose quality head reads the last stage's feature MAP (SynFIQA++ release).

    From MR-FIQA's ``Utilities/cr_model.py`` (``fix_qs=True``, chosen by its fiqa_inference.py when the file
    name contains 'SynFIQA++'): ``qs = Sequential(0 AdaptiveAvgPool2d(1), 1 Flatten, 2 Linear(512, 256),
    3 BatchNorm1d(256), 4 ReLU, 5 Dropout(0.5), 6 Linear(256, 256), 7 BatchNorm1d(256), 8 ReLU,
    9 Linear(256, 1))`` on the layer4 output BEFORE ``bn2``; the embedding path is unchanged (bn2, flatten,
    fc, features; its dropout is inactive in eval mode). ``forward`` -> (embedding, quality);
    ``forward_head`` returns the embedding alone (the quality does not depend on the flattened features).
    """

    def __init__(self, layers: Sequence[int], *, num_features: int = 512, bn_eps: float = 1e-5) -> None:
        super().__init__(layers, num_features=num_features, with_qs=False, bn_eps=bn_eps)
        self.with_qs = True
        self.arch += "+qs-map (SynFIQA++ head)"
        self.qs = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
            nn.Linear(WIDTHS[-1], 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(256, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Linear(256, 1),
        )

    def forward_head(self, flat: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.features(self.fc(self.dropout(flat)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        x = self.prelu(self.bn1(self.conv1(x)))
        fmap = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        quality = self.qs(fmap)
        emb = self.features(self.fc(self.dropout(torch.flatten(self.bn2(fmap), 1))))
        return emb, quality


@torch.no_grad()
def randomise_for_testing_(model: IResNet, seed: int = 0, residual_scale: float = 0.2) -> IResNet:
    """Random weights whose eval-mode forward stays finite: for tests and benchmarks, never for results.

    The published init (conv ~ N(0, 0.1)) relies on train-mode BatchNorm; in eval mode with default
    running stats a deep iResNet overflows. Here convs get variance-preserving (He) weights, every BN random
    affine parameters and running statistics (so each key matters to the output), and the last BN of each
    residual branch a small scale so 50+ blocks do not blow up.
    """
    g = torch.Generator().manual_seed(seed)
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.01)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            n = m.num_features
            scale = residual_scale if name.endswith(".bn3") else 1.0
            m.weight.copy_(scale * (1.0 + 0.1 * torch.randn(n, generator=g)))
            m.bias.copy_(0.05 * torch.randn(n, generator=g))
            m.running_mean.copy_(0.05 * torch.randn(n, generator=g))
            m.running_var.copy_(0.75 + 0.5 * torch.rand(n, generator=g))
        elif isinstance(m, nn.PReLU):
            m.weight.copy_(0.25 + 0.05 * torch.randn(m.weight.shape, generator=g))
    return model


def iresnet(
    depth: int,
    *,
    dropout: float = 0.0,
    num_features: int = 512,
    with_qs: bool = False,
    fp16: bool = False,
    bn_eps: float = 1e-5,
) -> IResNet:
    """iResNet of a published depth (18, 34, 50, 100, 200)."""
    if depth not in LAYERS:
        raise ValueError(f"iresnet depth {depth} is not one of {sorted(LAYERS)}")
    return IResNet(
        LAYERS[depth], dropout=dropout, num_features=num_features, with_qs=with_qs, fp16=fp16, bn_eps=bn_eps
    )


def iresnet18(**kwargs: object) -> IResNet:
    return iresnet(18, **kwargs)  # type: ignore[arg-type]


def iresnet34(**kwargs: object) -> IResNet:
    return iresnet(34, **kwargs)  # type: ignore[arg-type]


def iresnet50(**kwargs: object) -> IResNet:
    return iresnet(50, **kwargs)  # type: ignore[arg-type]


def iresnet100(**kwargs: object) -> IResNet:
    return iresnet(100, **kwargs)  # type: ignore[arg-type]


def iresnet200(**kwargs: object) -> IResNet:
    return iresnet(200, **kwargs)  # type: ignore[arg-type]
