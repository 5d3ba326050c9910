"""The SSD multibox loss: smooth-L1 box regression on matched anchors plus cross-entropy with hard negative mining."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

#: hardest background anchors an image contributes even when it has no object (so background-only images train)
MIN_NEGATIVES = 8
NEG_TO_POS_RATIO = 3.0


def match_anchors(targets: list[dict[str, torch.Tensor]], anchors: torch.Tensor, matcher: Any) -> torch.Tensor:
    """(N, A) index of the ground-truth box each anchor is matched to, -1 for background."""
    matched = []
    for target in targets:
        boxes = target["boxes"]
        if boxes.numel() == 0:
            matched.append(torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device))
        else:
            matched.append(matcher(box_iou(boxes, anchors)))
    return torch.stack(matched)


def ssd_loss(cls_logits: torch.Tensor, bbox_regression: torch.Tensor, anchors: torch.Tensor,
             targets: list[dict[str, torch.Tensor]], matcher: Any, box_coder: Any,
             neg_to_pos: float = NEG_TO_POS_RATIO, min_negatives: int = MIN_NEGATIVES) -> dict[str, torch.Tensor]:
    """Losses normalised by the number of matched anchors; target labels are 1-based (0 is background)."""
    matched = match_anchors(targets, anchors, matcher)
    positive = matched >= 0
    class_targets = torch.zeros_like(matched)
    box_losses = []
    for i, target in enumerate(targets):
        fg = positive[i]
        if not bool(fg.any()):
            continue
        gt_index = matched[i][fg]
        class_targets[i][fg] = target["labels"][gt_index]
        encoded = box_coder.encode_single(target["boxes"][gt_index], anchors[fg])
        box_losses.append(F.smooth_l1_loss(bbox_regression[i][fg], encoded, reduction="sum"))
    num_classes = cls_logits.shape[-1]
    ce = F.cross_entropy(cls_logits.reshape(-1, num_classes), class_targets.reshape(-1), reduction="none")
    ce = ce.view(class_targets.shape)
    num_negative = (neg_to_pos * positive.sum(dim=1)).clamp(min=min_negatives)
    candidate = ce.detach().masked_fill(positive, float("-inf"))
    rank = candidate.argsort(dim=1, descending=True).argsort(dim=1)
    negative = (rank < num_negative.unsqueeze(1)) & ~positive
    normaliser = positive.sum().clamp(min=1)
    box_loss = torch.stack(box_losses).sum() if box_losses else bbox_regression.sum() * 0.0
    return {"bbox_regression": box_loss / normaliser,
            "classification": (ce[positive].sum() + ce[negative].sum()) / normaliser}
