"""MobileFaceNet in the layout of eDifFIQA(T)'s base model (LSIbabnikz/eDifFIQA ``model/mobilenet.py``,
the TreB1eN InsightFace_Pytorch variant), re-implemented from its published structure.

Names (the checkpoint keys): ``conv1``, ``conv2_dw`` (ConvBlock: ``conv``, ``bn``, ``prelu``), ``conv_23``,
``conv_34``, ``conv_45`` (DepthWise: ``conv`` 1x1 expand, ``conv_dw`` grouped 3x3, ``project`` 1x1 conv+BN),
``conv_3``, ``conv_4``, ``conv_5`` (``model.N`` residual DepthWise units), ``conv_6_sep`` (ConvBlock 1x1 to 512),
``conv_6_dw`` (LinearBlock: depthwise 7x7 conv + BN), ``linear`` (512 -> 512, no bias), ``bn``
(BatchNorm1d(512), affine). Input 112x112; output L2-normalised (as the authors' forward).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Module):
    """conv (no bias) -> BatchNorm2d -> PReLU."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class LinearBlock(nn.Module):
    """conv (no bias) -> BatchNorm2d, no activation."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1
    ):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """1x1 ConvBlock to ``groups`` channels -> depthwise 3x3 ConvBlock (stride) -> 1x1 LinearBlock (+ input)."""

    def __init__(self, cin: int, cout: int, groups: int, stride: int, residual: bool = False) -> None:
        super().__init__()
        self.conv = ConvBlock(cin, groups)
        self.conv_dw = ConvBlock(groups, groups, 3, stride, 1, groups=groups)
        self.project = LinearBlock(groups, cout)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, channels: int, blocks: int, groups: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            *(DepthWise(channels, channels, groups, 1, residual=True) for _ in range(blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(nn.Module):
    arch = "MobileFaceNet"

    def __init__(self, embedding_size: int = 512) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128, stride=2)
        self.conv_3 = Residual(64, 4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256, stride=2)
        self.conv_4 = Residual(128, 6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512, stride=2)
        self.conv_5 = Residual(128, 2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512)
        self.conv_6_dw = LinearBlock(512, 512, 7, 1, 0, groups=512)
        self.linear = nn.Linear(512, embedding_size, bias=False)
        self.bn = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (
            self.conv1,
            self.conv2_dw,
            self.conv_23,
            self.conv_3,
            self.conv_34,
            self.conv_4,
            self.conv_45,
            self.conv_5,
            self.conv_6_sep,
            self.conv_6_dw,
        ):
            x = stage(x)
        x = self.bn(self.linear(torch.flatten(x, 1)))
        return nn.functional.normalize(x, dim=1)
