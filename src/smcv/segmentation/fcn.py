"""FCN (the built-in's default algorithm): torchvision's FCN head on a dilated ResNet-50/101, logits at the input size."""

from __future__ import annotations

from typing import Union

import torch
import torch.nn.functional as nnf
from torchvision.models import segmentation as tv_segmentation

#: smp-style encoder names FCN takes and torchvision's builder for each (dilated ResNet, output stride 8)
FCN_BUILDERS = {"resnet50": tv_segmentation.fcn_resnet50, "resnet101": tv_segmentation.fcn_resnet101}
#: FCN's output stride: inputs are rounded to multiples of it, as the built-in rounds crop sizes to 8
FCN_STRIDE = 8


class FCNLogits(tv_segmentation.FCN):
    """torchvision's FCN (same parameter names) returning logits instead of a dict; in training mode with the
    auxiliary head, (logits, aux_logits). Both are upsampled to the input size."""

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:  # type: ignore[override]
        size = x.shape[-2:]
        features = self.backbone(x)
        out = nnf.interpolate(self.classifier(features["out"]), size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is None or not self.training:
            return out
        aux = nnf.interpolate(self.aux_classifier(features["aux"]), size=size, mode="bilinear", align_corners=False)
        return out, aux


def build_fcn(encoder: str, num_classes: int, aux: bool) -> FCNLogits:
    """An FCN with random weights (nothing is downloaded): ResNet layers 3-4 dilated, FCNHead, optional aux head."""
    built = FCN_BUILDERS[encoder](weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=aux)
    return FCNLogits(built.backbone, built.classifier, built.aux_classifier)
