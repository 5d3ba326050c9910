"""Metrics against hand-worked examples, accumulated over batches and ranks; the focal + dice loss."""

from __future__ import annotations

import math
import pickle

import pytest
import torch
import torch.nn.functional as nnf

from smcv.segmentation.losses import dice_loss, focal_loss, segmentation_loss
from smcv.segmentation.metrics import DICE, MIOU, PIXEL_ACCURACY, ConfusionEvaluator, confusion_matrix

# Binary example, worked by hand. 255 is ignored (its prediction 0 does not count).
#   target  0 0 1 1      pred  0 1 1 0
#           0 X 1 1            0 0 1 1     (X = 255)
# (true, pred) counts over the 7 labelled pixels: (0,0)=2 (0,1)=1 (1,0)=1 (1,1)=3
# class 0: TP 2, FP 1, FN 1 -> IoU 2/4 = 0.5;  class 1: TP 3, FP 1, FN 1 -> IoU 3/5 = 0.6
# mIOU = 0.55; pixel accuracy = 5/7; dice (foreground) = 2*3 / (2*3 + 1 + 1) = 0.75
TARGET = torch.tensor([[[0, 0, 1, 1], [0, 255, 1, 1]]])
PRED = torch.tensor([[[0, 1, 1, 0], [0, 0, 1, 1]]])


def test_confusion_matrix_by_hand():
    assert confusion_matrix(PRED, TARGET, 2).tolist() == [[2, 1], [1, 3]]


def test_binary_metrics_by_hand():
    ev = ConfusionEvaluator(2)
    ev.update(PRED, TARGET)
    m = ev.compute()
    assert m[MIOU] == pytest.approx(0.55)
    assert m[PIXEL_ACCURACY] == pytest.approx(5 / 7)
    assert m[DICE] == pytest.approx(0.75)


def test_accumulates_pixels_not_batch_averages():
    # the same 8 pixels in two batches of different content; a per-batch average would differ
    ev = ConfusionEvaluator(2)
    ev.update(PRED[:, :1], TARGET[:, :1])  # row 1: (0,0)=1 (0,1)=1 (1,1)=1 (1,0)=1 -> batch mIOU 1/3
    ev.update(PRED[:, 1:], TARGET[:, 1:])  # row 2: (0,0)=1 (1,1)=2 -> batch mIOU 1.0
    assert ev.compute()[MIOU] == pytest.approx(0.55)  # not (1/3 + 1) / 2


def test_state_is_picklable_and_merges_like_ranks():
    rank0, rank1 = ConfusionEvaluator(2), ConfusionEvaluator(2)
    rank0.update(PRED[:, :1], TARGET[:, :1])
    rank1.update(PRED[:, 1:], TARGET[:, 1:])
    state = pickle.loads(pickle.dumps(rank1.state()))
    rank0.merge([state])
    assert rank0.compute()[PIXEL_ACCURACY] == pytest.approx(5 / 7)


def test_multiclass_by_hand():
    # target 0 0 1 2 2 X, pred 0 1 1 2 0 2 (X = 255); class 3 never appears and is left out of the means.
    # class 0: TP 1 FP 1 FN 1 -> IoU 1/3, dice 1/2;  class 1: TP 1 FP 1 FN 0 -> IoU 1/2, dice 2/3
    # class 2: TP 1 FP 0 FN 1 -> IoU 1/2, dice 2/3
    # mIOU = (1/3 + 1/2 + 1/2) / 3 = 4/9; pixel accuracy 3/5; dice = (1/2 + 2/3 + 2/3) / 3 = 11/18
    target = torch.tensor([0, 0, 1, 2, 2, 255]).view(1, 2, 3)
    pred = torch.tensor([0, 1, 1, 2, 0, 2]).view(1, 2, 3)
    ev = ConfusionEvaluator(4)
    ev.update(pred, target)
    m = ev.compute()
    assert (m[MIOU], m[PIXEL_ACCURACY], m[DICE]) == pytest.approx((4 / 9, 3 / 5, 11 / 18))


def test_empty_foreground_everywhere_is_perfect_dice():
    ev = ConfusionEvaluator(2)
    ev.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long))
    assert ev.compute() == {MIOU: 1.0, PIXEL_ACCURACY: 1.0, DICE: 1.0}


def test_focal_by_hand():
    # equal logits: p_t = 1/2, cross-entropy ln 2, focal weight (1 - 1/2)^2 = 1/4
    logits = torch.zeros(1, 2, 1, 1)
    target = torch.ones(1, 1, 1, dtype=torch.long)
    valid = target != 255
    assert focal_loss(logits, target, 2.0, valid).item() == pytest.approx(0.25 * math.log(2))
    assert focal_loss(logits, target, 0.0, valid).item() == pytest.approx(math.log(2))


def test_focal_gamma_0_is_cross_entropy_with_ignore():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0, :] = 255
    expected = nnf.cross_entropy(logits, target, ignore_index=255)
    assert segmentation_loss(logits, target, 1.0, 0.0, gamma=0.0).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ignored_pixels_do_not_change_the_loss():
    torch.manual_seed(1)
    logits = torch.randn(1, 2, 4, 4)
    target = torch.randint(0, 2, (1, 4, 4))
    target[0, :2] = 255
    before = segmentation_loss(logits, target, 1.0, 1.0)
    changed = logits.clone()
    changed[0, :, :2] = torch.randn(2, 2, 4) * 10
    assert segmentation_loss(changed, target, 1.0, 1.0).item() == pytest.approx(before.item(), rel=1e-6)


def test_dice_loss_by_hand_and_perfect():
    # 2 classes, foreground only. Confident correct logits -> probabilities ~ one-hot -> dice ~ 1, loss ~ 0
    target = torch.tensor([[[0, 1], [1, 0]]])
    logits = nnf.one_hot(target, 2).permute(0, 3, 1, 2).float() * 50
    valid = target != 255
    assert dice_loss(logits, target, valid).item() == pytest.approx(0.0, abs=1e-6)
    # equal logits: p = 1/2 everywhere; foreground I = 2 * 1/2 = 1, P = 2, T = 2 -> dice (2*1 + 1)/(4 + 1) = 0.6
    assert dice_loss(torch.zeros(1, 2, 2, 2), target, valid).item() == pytest.approx(0.4)


def test_loss_weights_and_gradient():
    torch.manual_seed(2)
    logits = torch.randn(2, 2, 4, 4, requires_grad=True)
    target = torch.randint(0, 2, (2, 4, 4))
    focal = segmentation_loss(logits, target, 1.0, 0.0)
    dice = segmentation_loss(logits, target, 0.0, 1.0)
    both = segmentation_loss(logits, target, 2.0, 0.5)
    assert both.item() == pytest.approx(2 * focal.item() + 0.5 * dice.item(), rel=1e-6)
    both.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_all_ignored_batch_gives_zero_loss_with_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2), 255)
    loss = segmentation_loss(logits, target, 1.0, 1.0)
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
