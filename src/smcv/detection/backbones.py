"""SSD feature extractors: VGG-16 (reduced fc6/fc7), ResNet-50 and a tiny CNN, each with its extra layers."""

from __future__ import annotations

import re
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.ops import FrozenBatchNorm2d

BASE_NETWORKS = ("vgg-16", "resnet-50", "tiny")
#: VGG-16 configuration "D" up to conv5_3 (max-pool 5 is replaced by SSD's 3x3 stride-1 pool)
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG_CONV4_3_RELU = 22  # index in `features` of the ReLU after conv4_3 (torchvision's numbering)


def _extra(in_ch: int, mid: int, out: int, kernel: int = 3, stride: int = 2, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, mid, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, out, kernel, stride=stride, padding=padding), nn.ReLU(inplace=True))


def _he_init(module: nn.Module) -> None:
    """He (Kaiming, fan-in) init of the conv layers, so ReLU activations keep their scale through the depth.

    Xavier init halves the activation variance at every ReLU layer: a VGG-16 trained from scratch then feeds the
    SSD head fc7 and extra-layer maps about 1e3-1e4 times smaller than conv4_3's, and training stalls. Pretrained
    weights overwrite the base layers; the extras always start from here.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def vgg16_features() -> nn.Sequential:
    """VGG-16 conv layers numbered as torchvision's vgg16().features (so its weights load by name)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            # the third pool rounds up, as in the SSD paper (75 -> 38 at 300 px)
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=sum(1 for x in layers if isinstance(x, nn.MaxPool2d)) == 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


class VGGBackbone(nn.Module):
    """VGG-16 with L2-normalised conv4_3, dilated fc6 and fc7 (SSD's reduced VGG), then the extra layers."""

    def __init__(self, highres: bool) -> None:
        super().__init__()
        self.features = vgg16_features()
        self.l2_scale = nn.Parameter(torch.full((512,), 20.0))
        self.pool5 = nn.MaxPool2d(3, stride=1, padding=1)
        self.fc6 = nn.Conv2d(512, 1024, 3, padding=6, dilation=6)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        if highres:  # SSD512: five stride-2 extras, the last with a 4x4 kernel
            specs = [(1024, 256, 512), (512, 128, 256), (256, 128, 256), (256, 128, 256)]
            extras = [_extra(*s) for s in specs] + [_extra(256, 128, 256, kernel=4, stride=1, padding=1)]
        else:  # SSD300: two stride-2 extras, then two unpadded 3x3
            extras = [_extra(1024, 256, 512), _extra(512, 128, 256), _extra(256, 128, 256, stride=1, padding=0),
                      _extra(256, 128, 256, stride=1, padding=0)]
        self.extras = nn.ModuleList(extras)
        self.out_channels = [512, 1024] + [e[2].out_channels for e in extras]
        _he_init(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == VGG_CONV4_3_RELU:
                outputs.append(self.l2_scale.view(1, -1, 1, 1) * F.normalize(x, dim=1))
        x = F.relu(self.fc7(F.relu(self.fc6(self.pool5(x)))))
        outputs.append(x)
        for extra in self.extras:
            x = extra(x)
            outputs.append(x)
        return outputs

    def base_parameters(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        """(name, MXNet-style alias, parameter) of the base network (VGG layers and fc6/fc7)."""
        names = {}
        block, conv = 1, 0
        for i, layer in enumerate(self.features):
            if isinstance(layer, nn.MaxPool2d):
                block, conv = block + 1, 0
            elif isinstance(layer, nn.Conv2d):
                conv += 1
                names[f"features.{i}."] = f"conv{block}_{conv}_"
        names.update({"fc6.": "fc6_", "fc7.": "fc7_"})
        for name, param in self.named_parameters():
            prefix = next((p for p in names if name.startswith(p)), None)
            if prefix is not None:
                yield name, names[prefix] + name[len(prefix):], param


class ResNetBackbone(nn.Module):
    """ResNet-50 layer3 (stride 16) and layer4 (stride 32) outputs, then four stride-2 extras."""

    def __init__(self, frozen_bn: bool) -> None:
        super().__init__()

        net = resnet50(weights=None, norm_layer=FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.extras = nn.ModuleList([_extra(2048, 256, 512), _extra(512, 128, 256), _extra(256, 128, 256),
                                     _extra(256, 128, 256)])
        _he_init(self.extras)
        self.out_channels = [1024, 2048, 512, 256, 256, 256]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        outputs = [x]
        x = self.layer4(x)
        outputs.append(x)
        for extra in self.extras:
            x = extra(x)
            outputs.append(x)
        return outputs

    def base_parameters(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        """(name, MXNet-style alias, parameter) of the ResNet layers (extras excluded)."""
        for name, param in self.named_parameters():
            if not name.startswith("extras."):
                yield name, _resnet_alias(name), param


def _resnet_alias(name: str) -> str:
    name = re.sub(r"^conv1\.", "conv0_", name)
    name = re.sub(r"^bn1\.", "bn0_", name)
    name = re.sub(r"^layer(\d)\.(\d+)\.", lambda m: f"stage{m.group(1)}_unit{int(m.group(2)) + 1}_", name)
    name = name.replace("downsample.0.", "sc_").replace("downsample.1.", "sc_bn_")
    name = re.sub(r"(conv\d|bn\d)\.", r"\1_", name)
    return re.sub(r"(bn\d?_|sc_bn_)weight$", r"\1gamma", re.sub(r"(bn\d?_|sc_bn_)bias$", r"\1beta", name))


def _conv_bn(in_ch: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                         nn.ReLU(inplace=True))


class TinyBackbone(nn.Module):
    """A small conv net (smcv extension) for smoke tests and CPU trials: strides 8 and 16, then four extras."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, 16, 2), _conv_bn(16, 32, 2), _conv_bn(32, 64, 2))
        self.stage2 = _conv_bn(64, 128, 2)
        self.extras = nn.ModuleList([_extra(128, 64, 128) for _ in range(4)])
        _he_init(self.extras)
        self.out_channels = [64, 128, 128, 128, 128, 128]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = [x]
        x = self.stage2(x)
        outputs.append(x)
        for extra in self.extras:
            x = extra(x)
            outputs.append(x)
        return outputs

    def base_parameters(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        """(name, alias, parameter) of the stem and stage2."""
        for name, param in self.named_parameters():
            if not name.startswith("extras."):
                yield name, name, param


def build_backbone(base_network: str, image_shape: int, frozen_bn: bool = False) -> nn.Module:
    """The feature extractor for a base network; VGG switches to the SSD512 layout from 512 px."""
    if base_network == "vgg-16":
        return VGGBackbone(highres=image_shape >= 512)
    if base_network == "resnet-50":
        return ResNetBackbone(frozen_bn)
    if base_network == "tiny":
        return TinyBackbone()
    raise ValueError(f"unknown base_network {base_network!r}; use one of {', '.join(BASE_NETWORKS)}")
