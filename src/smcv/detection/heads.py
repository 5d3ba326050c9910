"""The SSD head with batch norm on each feature map it reads (training from scratch)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.detection.ssd import SSDHead


class NormalisedSSDHead(SSDHead):
    """torchvision's SSDHead (same parameter names) preceded by batch norm of every level's feature map.

    Each prediction level then reaches its classification and box convolutions at unit scale whatever the level's
    depth (ScratchDet's batch norm in the detection head); weight 1, bias 0 at the start.
    """

    def __init__(self, in_channels: list[int], num_anchors: list[int], num_classes: int) -> None:
        super().__init__(in_channels, num_anchors, num_classes)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in in_channels)
        for norm in self.norms:
            nn.init.ones_(norm.weight)
            nn.init.zeros_(norm.bias)

    def forward(self, x: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Box regressions and class logits of the normalised feature maps."""
        return super().forward([norm(level) for norm, level in zip(self.norms, x)])
