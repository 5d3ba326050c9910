"""The SSD multibox loss: smooth-L1 box regression on matched anchors plus cross-entropy with hard negative mining,
matched and encoded for the whole batch at once."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import SSDMatcher  # the matcher torchvision's SSD builds
from torchvision.ops import box_iou

#: hardest background anchors an image contributes even when it has no object (so background-only images train)
MIN_NEGATIVES = 8
NEG_TO_POS_RATIO = 3.0


def pad_targets(targets: list[dict[str, torch.Tensor]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, G, 4) boxes and (N, G) labels, padded with zero boxes and label 0; a label of 0 (background) is padding."""
    width = max([1] + [int(t["labels"].numel()) for t in targets])  # at least one (padding) row: no empty gathers
    boxes = torch.zeros((len(targets), width, 4), device=device)
    labels = torch.zeros((len(targets), width), dtype=torch.int64, device=device)
    for i, target in enumerate(targets):
        count = int(target["labels"].numel())
        boxes[i, :count] = target["boxes"].reshape(-1, 4)
        labels[i, :count] = target["labels"].reshape(-1)
    return boxes, labels


def match_anchors_batched(boxes: torch.Tensor, valid: torch.Tensor, anchors: torch.Tensor, threshold: float) -> torch.Tensor:
    """(N, A) index of the ground-truth box each anchor is matched to, -1 for background.

    torchvision's SSDMatcher for every image at once: an anchor takes its highest-IoU box (the first on ties) when
    the IoU reaches `threshold`; then each box takes its own best anchor (the first on ties), and when boxes share a
    best anchor the box with the highest index keeps it (torchvision's in-order assignment). Invalid rows match nothing.
    """
    n, g = valid.shape
    if g == 0:
        return torch.full((n, anchors.shape[0]), -1, dtype=torch.int64, device=anchors.device)
    iou = box_iou(boxes.reshape(-1, 4), anchors).view(n, g, -1)
    iou = iou.masked_fill(~valid.unsqueeze(-1), -1.0)
    best_iou, matches = iou.max(dim=1)
    matches = matches.masked_fill(best_iou < threshold, -1)
    best_anchor = iou.max(dim=2).indices  # (N, G)
    box_number = torch.arange(1, g + 1, device=anchors.device).expand(n, g).masked_fill(~valid, 0)
    forced = torch.zeros_like(matches).scatter_reduce_(1, best_anchor, box_number, reduce="amax") - 1
    return torch.where(forced >= 0, forced, matches)


def matcher_threshold(matcher: Any) -> float:
    """The IoU threshold of a torchvision SSDMatcher (the only matcher the batched matching reproduces)."""
    if not isinstance(matcher, SSDMatcher) or matcher.low_threshold != matcher.high_threshold:
        raise TypeError(f"ssd_loss reproduces torchvision's SSDMatcher only, not {type(matcher).__name__}; "
                        "build the model with an SSDMatcher (torchvision's SSD default)")
    return float(matcher.high_threshold)


def ssd_loss(cls_logits: torch.Tensor, bbox_regression: torch.Tensor, anchors: torch.Tensor,
             targets: list[dict[str, torch.Tensor]], matcher: Any, box_coder: Any,
             neg_to_pos: float = NEG_TO_POS_RATIO, min_negatives: int = MIN_NEGATIVES) -> dict[str, torch.Tensor]:
    """Losses normalised by the number of matched anchors; target labels are 1-based, rows labelled 0 are padding."""
    boxes, labels = pad_targets(targets, anchors.device)
    boxes = boxes.to(anchors.dtype)
    matched = match_anchors_batched(boxes, labels > 0, anchors, matcher_threshold(matcher))
    positive = matched >= 0
    gt_index = matched.clamp(min=0)
    class_targets = torch.where(positive, labels.gather(1, gt_index), 0)
    # every anchor is encoded (no data-dependent shapes, no host sync); unmatched anchors encode themselves (zeros)
    reference = anchors.expand_as(bbox_regression)
    matched_boxes = boxes.gather(1, gt_index.unsqueeze(-1).expand(-1, -1, 4))
    matched_boxes = torch.where(positive.unsqueeze(-1), matched_boxes, reference)
    encoded = box_coder.encode_single(matched_boxes.reshape(-1, 4), reference.reshape(-1, 4)).view_as(bbox_regression)
    box_terms = F.smooth_l1_loss(bbox_regression, encoded, reduction="none").sum(-1)
    box_loss = torch.where(positive, box_terms, 0.0).sum()
    normaliser = positive.sum().clamp(min=1)
    return {"bbox_regression": box_loss / normaliser,
            "classification": mined_classification_loss(cls_logits, class_targets, positive, neg_to_pos,
                                                        min_negatives) / normaliser}


def mined_classification_loss(cls_logits: torch.Tensor, class_targets: torch.Tensor, positive: torch.Tensor,
                              neg_to_pos: float = NEG_TO_POS_RATIO, min_negatives: int = MIN_NEGATIVES) -> torch.Tensor:
    """Summed cross-entropy of the positive anchors plus each image's hardest negatives (neg_to_pos per positive,
    at least min_negatives)."""
    num_classes = cls_logits.shape[-1]
    ce = F.cross_entropy(cls_logits.reshape(-1, num_classes), class_targets.reshape(-1), reduction="none")
    ce = ce.view(class_targets.shape)
    num_negative = (neg_to_pos * positive.sum(dim=1)).clamp(min=min_negatives)
    candidate = ce.detach().masked_fill(positive, float("-inf"))
    rank = candidate.argsort(dim=1, descending=True).argsort(dim=1)
    negative = (rank < num_negative.unsqueeze(1)) & ~positive
    return ce[positive].sum() + ce[negative].sum()
