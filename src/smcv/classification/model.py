"""ResNet networks for every num_layers value of the built-in algorithm (ImageNet-style and small-image CIFAR-style)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as nnf
from torch import nn
from torchvision.models import resnet
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from smcv.classification.transforms import GpuNormalize

IMAGENET_DEPTHS = (18, 34, 50, 101, 152, 200)
SMALL_IMAGE_DEPTHS = (20, 32, 44, 56, 110)
NUM_LAYERS = IMAGENET_DEPTHS + SMALL_IMAGE_DEPTHS


class SmallImageResNet(nn.Module):
    """The 6n+2-layer ResNet for small images (He et al. 2016, CIFAR): 3 stages of 16/32/64 channels."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = 16
        self.layer1 = self._stage(16, blocks, 1)
        self.layer2 = self._stage(32, blocks, 2)
        self.layer3 = self._stage(64, blocks, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _stage(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_resnet(num_layers: int, num_classes: int, in_channels: int = 3) -> nn.Module:
    """A ResNet with `num_layers` layers, `num_classes` outputs and `in_channels` input channels."""
    if num_layers in SMALL_IMAGE_DEPTHS:
        return SmallImageResNet(num_layers, num_classes, in_channels)
    if num_layers == 200:
        model: nn.Module = ResNet(Bottleneck, [3, 24, 36, 3], num_classes=num_classes)
    else:
        model = getattr(resnet, f"resnet{num_layers}")(weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def adapt_first_conv(state: dict[str, torch.Tensor], key: str, in_channels: int) -> dict[str, torch.Tensor]:
    """Make RGB first-layer weights fit a grey (1-channel) input by summing over colour channels."""
    weight = state.get(key)
    if weight is not None and weight.ndim == 4 and weight.shape[1] == 3 and in_channels == 1:
        state = dict(state)
        state[key] = weight.sum(dim=1, keepdim=True)
    return state


class TrainingCriterion(nn.Module):
    """What the training steps need beside the network: input normalisation and the loss.

    build_model attaches it to the network as `criterion`; it has no parameters and its buffer is not saved
    (persistent=False), so the state_dict and the artifact stay the network's alone."""

    def __init__(self, normalize: GpuNormalize, multi_label: bool, pos_weight: Optional[list[float]] = None,
                 class_weight: Optional[list[float]] = None, test_time_flip: bool = False) -> None:
        super().__init__()
        self.normalize, self.multi_label, self.test_time_flip = normalize, multi_label, test_time_flip
        self.register_buffer("pos_weight", None if pos_weight is None else torch.tensor(pos_weight), persistent=False)
        self.register_buffer("class_weight", None if class_weight is None else torch.tensor(class_weight),
                             persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.multi_label:
            return nnf.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)
        return nnf.cross_entropy(logits, targets, weight=self.class_weight)
