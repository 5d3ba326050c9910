"""SSD feature extractors: VGG-16 (reduced fc6/fc7), ResNet-50 and a tiny CNN, each with its extra layers.

`norm="group"` (training from scratch) puts group norm after every convolution of the base network and the extras
(ResNet-50's batch norm becomes group norm); `norm="none"` is the plain network ImageNet weights load into (the
built-in's).
"""

from __future__ import annotations

import re
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet50
from torchvision.ops import FrozenBatchNorm2d

BASE_NETWORKS = ("vgg-16", "resnet-50", "tiny")
NORMS = ("none", "group")
GROUPS = 32  # GroupNorm groups (every normalised layer has a multiple of 32 channels)
#: VGG-16 configuration "D" up to conv5_3 (max-pool 5 is replaced by SSD's 3x3 stride-1 pool)
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
VGG_CONV4_3 = 10  # conv4_3 is VGG-16's tenth convolution


def check_norm(norm: str) -> None:
    """Refuse an unknown normalisation name."""
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; use one of {', '.join(NORMS)}")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Group norm (32 groups) or nothing (Identity, which has no state) after a convolution."""
    if norm == "group":
        return nn.GroupNorm(min(GROUPS, channels), channels)
    return nn.Identity()


def _conv_relu(in_ch: int, out: int, norm: str, kernel: int, **conv: int) -> list[nn.Module]:
    """Conv (+ group norm) + ReLU; the conv has no bias when a normalisation follows it."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out, kernel, bias=norm == "none", **conv)]
    if norm != "none":
        layers.append(norm_layer(norm, out))
    return layers + [nn.ReLU(inplace=True)]


def _extra(in_ch: int, mid: int, out: int, kernel: int = 3, stride: int = 2, padding: int = 1,
           norm: str = "none") -> nn.Sequential:
    return nn.Sequential(*_conv_relu(in_ch, mid, norm, 1),
                         *_conv_relu(mid, out, norm, kernel, stride=stride, padding=padding))


def _out_channels(block: nn.Sequential) -> int:
    return [layer for layer in block if isinstance(layer, nn.Conv2d)][-1].out_channels


def _he_init(module: nn.Module) -> None:
    """He (Kaiming, fan-in) init of the conv layers, so ReLU activations keep their scale through the depth.

    Xavier init halves the activation variance at every ReLU layer: a VGG-16 trained from scratch then feeds the
    SSD head fc7 and extra-layer maps about 1e3-1e4 times smaller than conv4_3's, and training stalls. Pretrained
    weights overwrite the base layers; the extras always start from here. Batch and group norm start as the identity
    (weight 1, bias 0).
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


def vgg16_features(norm: str = "none") -> nn.Sequential:
    """VGG-16 conv layers numbered as torchvision's vgg16().features (as vgg16_bn().features when normalised)."""
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            # the third pool rounds up, as in the SSD paper (75 -> 38 at 300 px)
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=sum(1 for x in layers if isinstance(x, nn.MaxPool2d)) == 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), *_conv_relu_tail(norm, int(item))]
            channels = int(item)
    return nn.Sequential(*layers)


def _conv_relu_tail(norm: str, channels: int) -> list[nn.Module]:
    # VGG keeps its conv biases with a normalisation too, as torchvision's vgg16_bn
    return [nn.ReLU(inplace=True)] if norm == "none" else [norm_layer(norm, channels), nn.ReLU(inplace=True)]


def _relu_after_conv(features: nn.Sequential, conv_number: int) -> int:
    """Index in `features` of the ReLU that follows the conv_number-th convolution."""
    convs = [i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
    return next(i for i in range(convs[conv_number - 1], len(features)) if isinstance(features[i], nn.ReLU))


def _through_extras(extras: nn.ModuleList, x: torch.Tensor, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """The feature maps so far, then one more per extra layer, each fed by the one before."""
    for extra in extras:
        x = extra(x)
        outputs.append(x)
    return outputs


def _outside_extras(backbone: nn.Module, alias: Callable[[str], str]) -> Iterator[tuple[str, str, nn.Parameter]]:
    """(name, alias, parameter) of every parameter of a backbone but its extra layers."""
    return ((name, alias(name), param) for name, param in backbone.named_parameters()
            if not name.startswith("extras."))


class VGGBackbone(nn.Module):
    """VGG-16 with L2-normalised conv4_3, dilated fc6 and fc7 (SSD's reduced VGG), then the extra layers."""

    def __init__(self, highres: bool, norm: str = "none") -> None:
        super().__init__()
        check_norm(norm)
        self.features = vgg16_features(norm)
        self.conv4_3_relu = _relu_after_conv(self.features, VGG_CONV4_3)
        self.l2_scale = nn.Parameter(torch.full((512,), 20.0))
        self.pool5 = nn.MaxPool2d(3, stride=1, padding=1)
        self.fc6 = nn.Conv2d(512, 1024, 3, padding=6, dilation=6)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.fc6_norm, self.fc7_norm = norm_layer(norm, 1024), norm_layer(norm, 1024)  # Identity: no state
        if highres:  # SSD512: five stride-2 extras, the last with a 4x4 kernel
            specs = [(1024, 256, 512), (512, 128, 256), (256, 128, 256), (256, 128, 256)]
            extras = [_extra(*s, norm=norm) for s in specs] + [_extra(256, 128, 256, kernel=4, stride=1, padding=1,
                                                                       norm=norm)]
        else:  # SSD300: two stride-2 extras, then two unpadded 3x3
            extras = [_extra(1024, 256, 512, norm=norm), _extra(512, 128, 256, norm=norm),
                      _extra(256, 128, 256, stride=1, padding=0, norm=norm),
                      _extra(256, 128, 256, stride=1, padding=0, norm=norm)]
        self.extras = nn.ModuleList(extras)
        self.out_channels = [512, 1024] + [_out_channels(e) for e in extras]
        _he_init(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i == self.conv4_3_relu:
                outputs.append(self.l2_scale.view(1, -1, 1, 1) * F.normalize(x, dim=1))
        x = F.relu(self.fc7_norm(self.fc7(F.relu(self.fc6_norm(self.fc6(self.pool5(x)))))))
        outputs.append(x)
        return _through_extras(self.extras, x, outputs)

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
            elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
                names[f"features.{i}."] = f"conv{block}_{conv}_bn_"
        names.update({"fc6.": "fc6_", "fc7.": "fc7_", "fc6_norm.": "fc6_bn_", "fc7_norm.": "fc7_bn_"})
        for name, param in self.named_parameters():
            prefix = next((p for p in names if name.startswith(p)), None)
            if prefix is not None:
                yield name, names[prefix] + name[len(prefix):], param


class ResNetBackbone(nn.Module):
    """ResNet-50 layer3 (stride 16) and layer4 (stride 32) outputs, then four stride-2 extras."""

    def __init__(self, frozen_bn: bool, norm: str = "none") -> None:
        super().__init__()
        check_norm(norm)
        net = resnet50(weights=None, norm_layer=FrozenBatchNorm2d if frozen_bn else
                       (lambda channels: norm_layer("group", channels)) if norm == "group" else nn.BatchNorm2d)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.extras = nn.ModuleList([_extra(2048, 256, 512, norm=norm), _extra(512, 128, 256, norm=norm),
                                     _extra(256, 128, 256, norm=norm), _extra(256, 128, 256, norm=norm)])
        _he_init(self.extras)
        self.out_channels = [1024, 2048, 512, 256, 256, 256]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        outputs = [x]
        x = self.layer4(x)
        outputs.append(x)
        return _through_extras(self.extras, x, outputs)

    def base_parameters(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        """(name, MXNet-style alias, parameter) of the ResNet layers (extras excluded)."""
        return _outside_extras(self, _resnet_alias)


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

    def __init__(self, norm: str = "none") -> None:
        super().__init__()
        check_norm(norm)
        self.stem = nn.Sequential(_conv_bn(3, 16, 2), _conv_bn(16, 32, 2), _conv_bn(32, 64, 2))
        self.stage2 = _conv_bn(64, 128, 2)
        self.extras = nn.ModuleList([_extra(128, 64, 128, norm=norm) for _ in range(4)])
        _he_init(self.extras)
        self.out_channels = [64, 128, 128, 128, 128, 128]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = [x]
        x = self.stage2(x)
        outputs.append(x)
        return _through_extras(self.extras, x, outputs)

    def base_parameters(self) -> Iterator[tuple[str, str, nn.Parameter]]:
        """(name, alias, parameter) of the stem and stage2."""
        return _outside_extras(self, lambda name: name)


def build_backbone(base_network: str, image_shape: int, frozen_bn: bool = False, norm: str = "none") -> nn.Module:
    """The feature extractor for a base network; VGG switches to the SSD512 layout from 512 px."""
    if base_network == "vgg-16":
        return VGGBackbone(highres=image_shape >= 512, norm=norm)
    if base_network == "resnet-50":
        return ResNetBackbone(frozen_bn, norm=norm)
    if base_network == "tiny":
        return TinyBackbone(norm=norm)
    raise ValueError(f"unknown base_network {base_network!r}; use one of {', '.join(BASE_NETWORKS)}")
