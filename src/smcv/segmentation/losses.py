"""The training loss: a weighted sum of softmax focal loss and soft dice loss, pixels labelled 255 ignored; FCN's
auxiliary head adds the same loss on its logits, weighted."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as nnf

from smcv.segmentation.params import IGNORE_INDEX

DICE_SMOOTH = 1.0


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float, valid: torch.Tensor,
               class_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean over labelled pixels of -(1 - p_t)^gamma log p_t (softmax focal loss; gamma 0 is cross-entropy);
    with class_weight, the mean weighted by the weight of each pixel's true class (class_balance=weights)."""
    ce = nnf.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="none")
    if not valid.any():
        return logits.sum() * 0.0
    ce = ce[valid]
    per_pixel = ce if gamma == 0 else (1.0 - torch.exp(-ce)).clamp(min=0) ** gamma * ce
    if class_weight is None:
        return per_pixel.mean()
    weight = class_weight.to(per_pixel.dtype)[target[valid]]
    return (weight * per_pixel).sum() / weight.sum().clamp(min=1e-12)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - soft dice over the batch: the foreground class when there are 2 classes, else the mean over the classes
    present in the target."""
    num_classes = logits.shape[1]
    probs = torch.softmax(logits, dim=1) * valid.unsqueeze(1)
    onehot = nnf.one_hot(torch.where(valid, target, 0), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    onehot = onehot * valid.unsqueeze(1)
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    cardinality = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * intersection + DICE_SMOOTH) / (cardinality + DICE_SMOOTH)
    if num_classes == 2:
        return 1.0 - dice[1]
    present = onehot.sum(dims) > 0
    if not present.any():
        return logits.sum() * 0.0
    return 1.0 - dice[present].mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, focal_weight: float, dice_weight: float,
                      gamma: float = 2.0, class_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """focal_weight * focal + dice_weight * dice, computed in float32 (logits B,C,H,W; target B,H,W int64)."""
    logits = logits.float()
    valid = target != IGNORE_INDEX
    loss = logits.new_zeros(())
    if focal_weight:
        loss = loss + focal_weight * focal_loss(logits, target, gamma, valid, class_weight)
    if dice_weight:
        loss = loss + dice_weight * dice_loss(logits, target, valid)
    return loss


class SegmentationCriterion(torch.nn.Module):
    """The training loss with its weights from the hyperparameters; build_model attaches it to the network."""

    def __init__(self, focal_weight: float, dice_weight: float, gamma: float,
                 class_weight: Optional[list[float]] = None, aux_weight: float = 0.0, test_time_flip: bool = False) -> None:
        super().__init__()
        self.focal_weight, self.dice_weight, self.gamma, self.aux_weight = focal_weight, dice_weight, gamma, aux_weight
        self.test_time_flip = test_time_flip  # validation averages the logits with the mirrored image's
        self.register_buffer("class_weight", None if class_weight is None else torch.tensor(class_weight),
                             persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, aux: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The loss of logits; plus aux_weight x the loss of the auxiliary logits when given (FCN training)."""
        loss = segmentation_loss(logits, target, self.focal_weight, self.dice_weight, self.gamma, self.class_weight)
        if aux is None or not self.aux_weight:
            return loss
        return loss + self.aux_weight * segmentation_loss(aux, target, self.focal_weight, self.dice_weight, self.gamma,
                                                          self.class_weight)
