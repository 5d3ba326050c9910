"""The SSD network: torchvision's SSD (head, matcher, box coder) around our backbones, fed fixed-size batches."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.ops import batched_nms, clip_boxes_to_image

from smcv.detection.backbones import build_backbone, check_norm
from smcv.detection.loss import ssd_loss
from smcv.errors import ConfigError
from smcv.pretrained import WeightsNeed, imagenet_need, load_matching, read_state_dict

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Caffe-style VGG weights (e.g. torchvision's vgg16 'features' weights) expect 0-255 inputs minus the mean
CAFFE_MEAN = (0.48235, 0.45882, 0.40784)
CAFFE_STD = (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0)
#: scores below this are not considered in validation (serving uses 0: no threshold, only the top-k cap)
#: IoU at or above which a default box is trained as an object's box (SSD's matcher; the advisor's anchor check)
MATCH_IOU = 0.5
VALIDATION_SCORE_THRESHOLD = 0.01
TOPK_CANDIDATES = 400  # per class, before NMS


def anchor_config(base_network: str, image_shape: int) -> dict[str, list]:
    """Default-box aspect ratios per feature map and the scales (fractions of the image side) of the SSD paper."""
    if base_network == "vgg-16" and image_shape >= 512:
        return {"aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]],
                "scales": [0.04, 0.1, 0.26, 0.42, 0.58, 0.74, 0.9, 1.06]}
    if base_network == "vgg-16":
        return {"aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                "scales": [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05]}
    return {"aspect_ratios": [[2], [2, 3], [2, 3], [2, 3], [2], [2]],
            "scales": [0.1, 0.2, 0.37, 0.54, 0.71, 0.88, 1.05]}


def detector_spec(base_network: str, image_shape: int, num_classes: int, *, nms_threshold: float = 0.45,
                  detections_per_image: int = 200, frozen_bn: bool = False, caffe_norm: bool = False,
                  norm: str = "none") -> dict[str, Any]:
    """Everything needed to rebuild the network (stored in manifest.json under 'detector').

    `norm`: "group" for the from-scratch variant (group norm in base and extras), "none" for the plain network
    ImageNet weights load into; a spec without it (models saved before it existed) is "none".
    """
    check_norm(norm)
    return {"base_network": base_network, "image_shape": int(image_shape), "num_classes": int(num_classes),
            **anchor_config(base_network, image_shape), "frozen_bn": bool(frozen_bn), "norm": norm,
            "mean": list(CAFFE_MEAN if caffe_norm else IMAGENET_MEAN), "std": list(CAFFE_STD if caffe_norm else IMAGENET_STD),
            "nms_threshold": float(nms_threshold), "detections_per_image": int(detections_per_image)}


#: std of the head's convolution weights over normalised feature maps: the first class logits and box offsets are
#: then about 0.1-0.4 (torchvision's Xavier init gives 1-2 there: confident random scores that training must undo)
HEAD_INIT_STD = 0.01


def scratch_head_init(head: nn.Module) -> None:
    """Normal(0, 0.01) weights and zero biases for the head's convolutions (predictions start near 0)."""
    for conv in head.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.normal_(conv.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(conv.bias)


class SSDDetector(SSD):
    """SSD on fixed-size float batches in [0, 1]; normalises inside; labels are 0-based object classes."""

    def __init__(self, spec: dict[str, Any]) -> None:
        size, norm = int(spec["image_shape"]), spec.get("norm", "none")
        backbone = build_backbone(spec["base_network"], size, spec.get("frozen_bn", False), norm=norm)
        anchors = DefaultBoxGenerator(spec["aspect_ratios"], scales=spec["scales"])
        classes = int(spec["num_classes"]) + 1
        super().__init__(backbone, anchors, (size, size), classes, iou_thresh=MATCH_IOU,
                         image_mean=list(spec["mean"]), image_std=list(spec["std"]),
                         score_thresh=VALIDATION_SCORE_THRESHOLD, nms_thresh=float(spec["nms_threshold"]),
                         detections_per_img=int(spec["detections_per_image"]), topk_candidates=TOPK_CANDIDATES)
        self.spec = dict(spec)
        if norm != "none":
            scratch_head_init(self.head)
        self.register_buffer("pixel_mean", torch.tensor(spec["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(spec["std"]).view(1, 3, 1, 1), persistent=False)
        self._anchor_cache: dict[tuple, torch.Tensor] = {}

    def anchors_for(self, features: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
        """Default boxes (A, 4) in pixel XYXY for these feature-map sizes, cached."""
        grids = tuple(tuple(f.shape[-2:]) for f in features)
        device = features[0].device
        key = (grids, height, width, str(device))
        if key not in self._anchor_cache:
            probe = ImageList(torch.empty((1, 3, height, width), device="meta"), [(height, width)])
            shapes = [torch.empty((0, 0, h, w), device=device) for h, w in grids]
            self._anchor_cache[key] = self.anchor_generator(probe, shapes)[0].to(device)
        return self._anchor_cache[key]

    def head_outputs(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Float32 box regressions and class logits for a batch, and the matching anchors."""
        x = (images - self.pixel_mean) / self.pixel_std
        features = self.backbone(x)
        outputs = {k: v.float() for k, v in self.head(features).items()}
        anchors = self.anchors_for(features, x.shape[-2], x.shape[-1])
        if anchors.shape[0] != outputs["cls_logits"].shape[1]:
            raise RuntimeError(f"{anchors.shape[0]} default boxes but the head predicts "
                               f"{outputs['cls_logits'].shape[1]}: the anchor configuration does not fit the backbone")
        return outputs, anchors

    def losses(self, outputs: dict[str, torch.Tensor], anchors: torch.Tensor,
               targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The multibox losses; targets carry 0-based 'labels' and pixel 'boxes'."""
        shifted = [{"boxes": t["boxes"].float(), "labels": t["labels"] + 1} for t in targets]
        return ssd_loss(outputs["cls_logits"], outputs["bbox_regression"], anchors, shifted,
                        self.proposal_matcher, self.box_coder, neg_to_pos=self.neg_to_pos_ratio)

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        """Training: the loss dict (targets required). Evaluation: one detection dict per image."""
        outputs, anchors = self.head_outputs(images)
        if self.training:
            if targets is None:
                raise ValueError("targets are needed in training mode")
            return self.losses(outputs, anchors, targets)
        return self.detect(outputs, anchors, images.shape[-2], images.shape[-1])

    def detect(self, outputs: dict[str, torch.Tensor], anchors: torch.Tensor, height: int, width: int) -> list[dict]:
        """Per-class top-k, score threshold, per-class NMS, best detections_per_img; pixel boxes, 0-based labels."""
        scores_all = torch.softmax(outputs["cls_logits"], dim=-1)[..., 1:]
        num_classes = scores_all.shape[-1]
        k = min(self.topk_candidates, anchors.shape[0])
        results = []
        for regression, scores in zip(outputs["bbox_regression"], scores_all):
            boxes = clip_boxes_to_image(self.box_coder.decode_single(regression, anchors), (height, width))
            top_scores, top_index = scores.topk(k, dim=0)  # (k, classes)
            classes = torch.arange(num_classes, device=scores.device).expand(k, num_classes)
            keep = top_scores > self.score_thresh
            cand_boxes, cand_scores, cand_labels = boxes[top_index[keep]], top_scores[keep], classes[keep]
            chosen = batched_nms(cand_boxes, cand_scores, cand_labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": cand_boxes[chosen], "scores": cand_scores[chosen], "labels": cand_labels[chosen]})
        return results


def build_detector(spec: dict[str, Any]) -> SSDDetector:
    """The SSD network described by a spec (see detector_spec)."""
    return SSDDetector(spec)


def pretrained_names(base_network: str) -> list[str]:
    """Weight file names smcv.pretrained looks for, e.g. vgg16.pth, resnet50.pth."""
    return {"vgg-16": ["vgg16", "vgg16_features", "vgg16_bn"], "resnet-50": ["resnet50"]}.get(base_network, [])


def weights_need(base_network: str) -> WeightsNeed:
    """The ImageNet weights of a base network: torchvision's SSD300 VGG-16 features or its ResNet-50."""
    if base_network == "tiny":
        raise ConfigError("base_network 'tiny' has no pretrained weights; set use_pretrained_model=0")
    arch = "vgg16_features" if base_network == "vgg-16" else "resnet50"
    return imagenet_need(f"the {base_network} base network", pretrained_names(base_network), arch)


def is_caffe_style(path: Path) -> bool:
    """Whether a VGG weights file expects Caffe-style inputs (torchvision's vgg16 'features' weights)."""
    return any(word in path.name.lower() for word in ("features", "caffe", "amdegroot"))


def load_base_weights(model: SSDDetector, path: Path) -> None:
    """Load ImageNet backbone weights (a torchvision state_dict) into the base network by name."""
    state = read_state_dict(path)
    missing = set(load_matching(model.backbone, state, source=path.name))
    base = [name for name, _, _ in model.backbone.base_parameters()]
    loaded = sum(1 for name in base if name not in missing)
    if loaded < len(base) // 2:
        raise ConfigError(f"pretrained weights {path.name} fill only {loaded} of {len(base)} layers of the "
                          f"{model.spec['base_network']} base network; supply a torchvision "
                          f"{pretrained_names(model.spec['base_network'])[0]} state_dict")


def freeze_base_network(model: SSDDetector, pattern: str) -> list[str]:
    """Stop gradients for base-network parameters whose name or MXNet-style alias matches the regex."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"freeze_layer_pattern {pattern!r} is not a valid regular expression: {exc}") from None
    frozen, examples = [], []
    for name, alias, param in model.backbone.base_parameters():
        examples.append(f"{name} ({alias})")
        if regex.search(name) or regex.search(alias):
            param.requires_grad_(False)
            frozen.append(name)
    if frozen:
        log.info("freeze_layer_pattern %r froze %d base-network tensors", pattern, len(frozen))
    else:
        log.warning("freeze_layer_pattern %r matches no base-network parameter; names look like %s", pattern,
                    ", ".join(examples[:6]))
    return frozen


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
