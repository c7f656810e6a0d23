"""IR / IR-SE backbone of face.evoLVe, TFace, CurricularFace, AdaFace and SDD-FIQA: one module for all of them.

Re-implemented from the published structure (face.evoLVe ``backbone/model_irse.py``, TFace
``recognition/torchkit/backbone/model_irse.py``, AdaFace ``net.py``, CurricularFace
``backbone/model_irse.py``, TFace ``quality/generate_pseudo_labels/extract_embedding/model/model.py``).
Module and parameter names equal those of the published checkpoints, so keys match one for one:

    input_layer.{0 conv 3x3 3->64, 1 BN, 2 PReLU}
    body.N                                 one block per unit, numbered through all four stages
      shortcut_layer                       MaxPool2d(1, stride) (no parameters) when in == out channels,
                                           else Sequential(0 conv 1x1 stride, 1 BN)
      res_layer                            mid_bn=True  (TFace BasicBlockIR, AdaFace):
                                               0 BN(in), 1 conv3x3, 2 BN, 3 PReLU, 4 conv3x3(stride), 5 BN
                                           mid_bn=False (face.evoLVe bottleneck_IR: CurricularFace repo,
                                           SDD-FIQA): 0 BN(in), 1 conv3x3, 2 PReLU, 3 conv3x3(stride), 4 BN
                                           IR-SE adds an SE block (fc1, fc2: 1x1 convs, no bias, reduction 16)
                                           after the last BN, as ``res_layer.se_block`` (TFace/AdaFace) or as
                                           the next index (face.evoLVe).
    output_layer (head="embedding")        0 BN2d(512), 1 Dropout(0.4), 2 Flatten, 3 Linear(25088, 512),
                                           4 BatchNorm1d(512, affine=False): the raw embedding
    quality (head="quality", SDD-FIQA)     0 Flatten, 1 PReLU(25088), 2 Dropout(0.5), 3 Linear(25088, 1)

Stages: widths 64/128/256/512, first unit of each stage stride 2 (112 -> 7), blocks per stage
18: 2,2,2,2; 34: 3,4,6,3; 50: 3,4,14,3; 100 ("IR-101"): 3,13,30,3. Input 112x112.

Attributes for other code (the same contract as ``_iresnet.IResNet``, embedding head only):
``forward_backbone(x)`` -> N x 25088 (input_layer, body, output_layer.0, flatten), ``forward_head(flat)``
(dropout, Linear, BatchNorm1d), ``dropout`` (the ``nn.Dropout`` of output_layer, not in-place), ``arch``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import torch
from torch import nn

BLOCKS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
}
WIDTHS = (64, 128, 256, 512)
SPATIAL = 7 * 7  # 112 input, four stride-2 stages
SE_REDUCTION = 16

Head = Literal["embedding", "quality"]
SeNaming = Literal["none", "named", "indexed"]


class SEModule(nn.Module):
    """Squeeze-and-excitation: global mean -> fc1 (1x1 conv, C -> C/16) -> ReLU -> fc2 -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))
        return x * w


class IRBlock(nn.Module):
    """Residual unit: ``res_layer(x) + shortcut_layer(x)`` (see the module docstring for the layouts)."""

    def __init__(self, cin: int, cout: int, stride: int, *, mid_bn: bool, se: SeNaming) -> None:
        super().__init__()
        if cin == cout:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )
        layers: list[nn.Module] = [nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False)]
        if mid_bn:
            layers.append(nn.BatchNorm2d(cout))
        layers += [nn.PReLU(cout), nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
        if se == "indexed":
            layers.append(SEModule(cout))
        self.res_layer = nn.Sequential(*layers)
        if se == "named":
            self.res_layer.add_module("se_block", SEModule(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRNet(nn.Module):
    """IR / IR-SE network with an embedding head (FR) or the SDD-FIQA quality head."""

    def __init__(
        self,
        depth: int,
        *,
        mid_bn: bool = True,
        se: SeNaming = "none",
        head: Head = "embedding",
        embedding_size: int = 512,
    ) -> None:
        super().__init__()
        if depth not in BLOCKS:
            raise ValueError(f"IR depth {depth} is not one of {sorted(BLOCKS)}")
        self.depth, self.mid_bn, self.se, self.head = depth, mid_bn, se, head
        self.arch = f"IR{'-SE' if se != 'none' else ''}-{101 if depth == 100 else depth}" + (
            "" if mid_bn else " (face.evoLVe block, no mid BN)"
        )
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False), nn.BatchNorm2d(WIDTHS[0]), nn.PReLU(WIDTHS[0])
        )
        units: list[nn.Module] = []
        cin = WIDTHS[0]
        for width, count in zip(WIDTHS, BLOCKS[depth], strict=True):
            for i in range(count):
                units.append(IRBlock(cin, width, 2 if i == 0 else 1, mid_bn=mid_bn, se=se))
                cin = width
        self.body = nn.Sequential(*units)
        flat = WIDTHS[-1] * SPATIAL
        if head == "embedding":
            self.output_layer = nn.Sequential(
                nn.BatchNorm2d(WIDTHS[-1]),
                nn.Dropout(0.4),
                nn.Flatten(),
                nn.Linear(flat, embedding_size),
                nn.BatchNorm1d(embedding_size, affine=False),
            )
        elif head == "quality":
            self.quality = nn.Sequential(nn.Flatten(), nn.PReLU(flat), nn.Dropout(0.5), nn.Linear(flat, 1))
        else:
            raise ValueError(f"IRNet head {head!r}: expected 'embedding' or 'quality'")

    @property
    def dropout(self) -> nn.Module:
        """The dropout before the embedding layer (SER-FIQ switches it to train mode)."""
        return self.output_layer[1] if self.head == "embedding" else self.quality[2]

    def forward_backbone(self, x: torch.Tensor) -> torch.Tensor:
        """input_layer -> body (-> output_layer.0 BatchNorm2d for the embedding head) -> flatten: N x 25088."""
        x = self.body(self.input_layer(x))
        if self.head == "embedding":
            x = self.output_layer[0](x)
        return torch.flatten(x, 1)

    def forward_head(self, flat: torch.Tensor) -> torch.Tensor:
        """Embedding: dropout -> Linear -> BatchNorm1d (N x 512, raw). Quality: PReLU -> dropout -> Linear (N x 1)."""
        if self.head == "embedding":
            return self.output_layer[4](self.output_layer[3](self.output_layer[1](flat)))
        return self.quality[3](self.quality[2](self.quality[1](flat)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_backbone(x))

    def residual_last_bns(self) -> Iterator[nn.BatchNorm2d]:
        """The last BatchNorm of every residual branch (for variance-preserving random test weights)."""
        for unit in self.body:
            bns = [m for m in unit.res_layer if isinstance(m, nn.BatchNorm2d)]  # type: ignore[union-attr]
            yield bns[-1]
