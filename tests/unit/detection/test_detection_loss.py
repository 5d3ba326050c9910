"""The batched SSD matching and loss equal the former per-image implementation (kept here as the reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from smcv.detection.loss import mined_classification_loss, match_anchors_batched, pad_targets, ssd_loss

SIZE = 96


def reference_match(targets, anchors, matcher):
    """The former per-image matching: torchvision's SSDMatcher on each image's IoU matrix."""
    matched = []
    for target in targets:
        if target["boxes"].numel() == 0:
            matched.append(torch.full((anchors.shape[0],), -1, dtype=torch.int64))
        else:
            matched.append(matcher(box_iou(target["boxes"], anchors)))
    return torch.stack(matched)


def reference_loss(cls_logits, bbox_regression, anchors, targets, matcher, box_coder, neg_to_pos=3.0, min_negatives=8):
    """The former per-image loss (box encoding image by image)."""
    matched = reference_match(targets, anchors, matcher)
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
    normaliser = positive.sum().clamp(min=1)
    box_loss = torch.stack(box_losses).sum() if box_losses else bbox_regression.sum() * 0.0
    # hard negative mining was batched before and is unchanged: the production function is the reference for it
    mined = mined_classification_loss(cls_logits, class_targets, positive, neg_to_pos, min_negatives)
    return {"bbox_regression": box_loss / normaliser, "classification": mined / normaliser}


def make_anchors() -> torch.Tensor:
    generator = DefaultBoxGenerator([[2], [2, 3], [2]], scales=[0.1, 0.3, 0.6, 1.0])
    probe = ImageList(torch.empty((1, 3, SIZE, SIZE)), [(SIZE, SIZE)])
    maps = [torch.empty((0, 0, s, s)) for s in (12, 6, 3)]
    return generator(probe, maps)[0]


def random_boxes(gen: torch.Generator, count: int) -> torch.Tensor:
    """Boxes of every kind: large, tiny (under a pixel), off-grid, duplicated, touching the border."""
    if count == 0:
        return torch.zeros((0, 4))
    kind = torch.randint(0, 4, (1,), generator=gen).item()
    low = torch.rand(count, 2, generator=gen) * SIZE * 0.9
    extent = {0: torch.rand(count, 2, generator=gen) * SIZE * 0.6 + 2,
              1: torch.rand(count, 2, generator=gen) * 0.9 + 0.05,  # tiny
              2: torch.rand(count, 2, generator=gen) * SIZE,
              3: torch.full((count, 2), 24.0)}[kind]
    boxes = torch.cat([low, (low + extent).clamp(max=SIZE)], dim=1)
    if count > 1 and torch.rand(1, generator=gen).item() < 0.4:  # duplicates: identical boxes share a best anchor
        boxes[1] = boxes[0]
        if count > 2:
            boxes[-1] = boxes[0]
    if kind == 3:  # grid-aligned boxes: ties in IoU between anchors
        boxes = boxes.round()
    return boxes


def random_targets(gen: torch.Generator, images: int) -> list[dict[str, torch.Tensor]]:
    targets = []
    for _ in range(images):
        count = int(torch.randint(0, 7, (1,), generator=gen))
        if torch.rand(1, generator=gen).item() < 0.2:
            count = 0
        targets.append({"boxes": random_boxes(gen, count), "labels": torch.randint(1, 5, (count,), generator=gen)})
    return targets


@pytest.mark.parametrize("seed", range(60))
def test_batched_matching_equals_torchvision_ssd_matcher_per_image(seed):
    gen = torch.Generator().manual_seed(seed)
    anchors = make_anchors()
    targets = random_targets(gen, int(torch.randint(1, 6, (1,), generator=gen)))
    boxes, labels = pad_targets(targets, anchors.device)
    got = match_anchors_batched(boxes, labels > 0, anchors, 0.5)
    assert torch.equal(got, reference_match(targets, anchors, det_utils.SSDMatcher(0.5)))


def test_boxes_sharing_a_best_anchor_keep_torchvision_order():
    anchors = make_anchors()
    box = anchors[5:6].clone()
    targets = [{"boxes": torch.cat([box, box, box]), "labels": torch.tensor([1, 2, 3])}]
    boxes, labels = pad_targets(targets, anchors.device)
    got = match_anchors_batched(boxes, labels > 0, anchors, 0.5)
    assert got[0, 5].item() == 2  # the last box assigned wins, as in torchvision's in-order assignment
    assert torch.equal(got, reference_match(targets, anchors, det_utils.SSDMatcher(0.5)))


def test_batch_without_any_box_matches_nothing():
    anchors = make_anchors()
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    boxes, labels = pad_targets([empty, empty], anchors.device)
    assert (match_anchors_batched(boxes, labels > 0, anchors, 0.5) == -1).all()


@pytest.mark.parametrize("seed", range(25))
def test_batched_loss_equals_per_image_loss(seed):
    gen = torch.Generator().manual_seed(1000 + seed)
    anchors = make_anchors()
    targets = random_targets(gen, 4)
    num_anchors, num_classes = anchors.shape[0], 5
    logits = torch.randn(4, num_anchors, num_classes, generator=gen, requires_grad=True)
    regression = torch.randn(4, num_anchors, 4, generator=gen, requires_grad=True)
    coder = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    matcher = det_utils.SSDMatcher(0.5)
    got = ssd_loss(logits, regression, anchors, targets, matcher, coder)
    want = reference_loss(logits, regression, anchors, targets, matcher, coder)
    for key in ("bbox_regression", "classification"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    got_grads = torch.autograd.grad(got["bbox_regression"] + got["classification"], (logits, regression))
    want_grads = torch.autograd.grad(want["bbox_regression"] + want["classification"], (logits, regression))
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


def test_padding_rows_are_ignored_by_the_loss():
    anchors = make_anchors()
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(1, anchors.shape[0], 3, generator=gen)
    regression = torch.randn(1, anchors.shape[0], 4, generator=gen)
    coder, matcher = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)), det_utils.SSDMatcher(0.5)
    plain = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0]]), "labels": torch.tensor([2])}]
    padded = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 0.0, 0.0]]), "labels": torch.tensor([2, 0])}]
    a, b = ssd_loss(logits, regression, anchors, plain, matcher, coder), ssd_loss(logits, regression, anchors, padded, matcher, coder)
    assert a["bbox_regression"].item() > 0
    for key in a:
        assert torch.equal(a[key], b[key])


def test_other_matchers_are_refused_with_a_fix():
    anchors = make_anchors()
    with pytest.raises(TypeError, match="SSDMatcher"):
        ssd_loss(torch.zeros(1, anchors.shape[0], 2), torch.zeros(1, anchors.shape[0], 4), anchors, [],
                 det_utils.Matcher(0.5, 0.4), det_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)))
