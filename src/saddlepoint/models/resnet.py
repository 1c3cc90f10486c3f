"""ResNet-18 for CIFAR-sized inputs (He et al., 2016): a 3x3 stem and no initial max-pool."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from saddlepoint.models.preprocess import Normalize


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch-norm and a shortcut (a 1x1 conv when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 with widths 64-128-256-512 (``width`` scales them)."""

    def __init__(
        self,
        *,
        in_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        width: int = 64,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std or ()) if mean is not None else nn.Identity()
        self.stem = nn.Sequential(
            nn.Conv2d(int(in_shape[0]), width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        in_planes = width
        for stage, planes in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for index in range(2):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.stem(self.normalize(x)))
        return self.fc(torch.flatten(self.pool(out), 1))
