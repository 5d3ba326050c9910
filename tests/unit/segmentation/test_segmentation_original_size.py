"""Validation metrics are computed at each image's original size (as serving answers), not the network input size."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch
from PIL import Image

from smcv.segmentation.datasets import Original, SegmentationDataset, collate
from smcv.segmentation.losses import SegmentationCriterion
from smcv.segmentation.metrics import DICE, MIOU, PIXEL_ACCURACY, ConfusionEvaluator, labels_at_original_size
from smcv.segmentation.params import Geometry
from smcv.segmentation.transforms import build_transform, content_size
from smcv.tasks.segmentation import SegmentationTask

CPU = torch.device("cpu")


class FixedLogits(torch.nn.Module):
    """A stand-in network that answers the same logits for every batch."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.criterion = SegmentationCriterion(1.0, 1.0, 2.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(images.shape[0], -1, -1, -1)


def foreground_everywhere(side: int) -> torch.Tensor:
    """Logits (1, 2, side, side) that say class 1 at every pixel."""
    logits = torch.zeros(1, 2, side, side)
    logits[:, 1] = 4.0
    return logits


def test_metrics_at_original_size_differ_from_input_size_and_are_the_ones_reported():
    # Original 2x4 mask (H x W), resized to a 2x2 input ("resize" mode): nearest keeps columns 0 and 2.
    #   original  0 1 1 1      input size  0 1
    #             0 1 1 1                  0 1
    # The network says 1 everywhere. At input size: 2 of 4 pixels right -> pixel accuracy 0.5, IoU(1) = 2/4,
    # IoU(0) = 0, mIOU 0.25, dice 2*2/(2*2+2) = 2/3. At the original size (the constant map resized to 2x4):
    # 6 of 8 right -> pixel accuracy 0.75, IoU(1) = 6/8, IoU(0) = 0, mIOU 0.375, dice 2*6/(2*6+2) = 6/7.
    original = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.uint8)
    input_mask = torch.tensor([[[0, 1], [0, 1]]], dtype=torch.uint8)
    batch = (torch.zeros(1, 3, 2, 2, dtype=torch.uint8), input_mask, [Original(original, content_size("resize", 2, 2, 4))])
    model = FixedLogits(foreground_everywhere(2))

    at_input = ConfusionEvaluator(2)
    at_input.update(model(batch[0]).argmax(1), input_mask)
    assert at_input.compute() == pytest.approx({PIXEL_ACCURACY: 0.5, MIOU: 0.25, DICE: 2 / 3})

    reported = ConfusionEvaluator(2)
    loss = SegmentationTask().validation_step(model, batch, CPU, reported)
    assert reported.compute() == pytest.approx({PIXEL_ACCURACY: 0.75, MIOU: 0.375, DICE: 6 / 7})
    assert reported.matrix.tolist() == [[0, 2], [0, 6]] and loss.ndim == 0


def test_letterbox_padding_is_cut_off_before_resizing_back():
    # A 2x4 image letterboxed into a 4x4 input fills rows 0-1; rows 2-3 are padding. The logits say the true mask
    # in the content rows and class 1 in the padding: cut exactly, the 2x4 answer equals the mask (mIOU 1);
    # resizing the whole square instead would mix the padding rows in.
    mask = torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]])
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 1, :2] = mask.float() * 8 - 4
    logits[0, 1, 2:] = 4.0
    content = content_size("letterbox", 4, 2, 4)
    assert content == (2, 4)
    (labels,) = labels_at_original_size(logits, [content], [(2, 4)])
    assert labels.tolist() == mask.tolist()
    whole = torch.nn.functional.interpolate(torch.softmax(logits, 1), size=(2, 4), mode="bilinear").argmax(1)[0]
    assert whole.tolist() != mask.tolist()


class Pairs:
    """A PairSource stand-in over in-memory PNG pairs."""

    kind, color_map, class_names = "memory", None, {}

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def get(self, i: int) -> tuple[bytes, bytes, str, str]:
        return (*self.pairs[i], f"{i}.png", f"{i}.png")


class Identity:
    """A MaskDecoder stand-in: mask PNG bytes to a class-id array."""

    def decode(self, data: bytes, name: str):
        return np.array(Image.open(io.BytesIO(data)))


def png(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_validation_batches_carry_each_original_mask_and_its_letterbox():
    geometry = Geometry("letterbox", 32, 32, 32, 32)
    sizes = [(20, 50), (64, 16)]
    pairs = [(png(np.full((h, w, 3), 100)), png(np.arange(h * w).reshape(h, w) % 2)) for h, w in sizes]
    dataset = SegmentationDataset(Pairs(pairs), Identity(), build_transform(geometry, False),
                                  functools.partial(content_size, geometry.mode, geometry.size))
    images, masks, originals = collate([dataset[0], dataset[1]])
    assert images.shape == (2, 3, 32, 32) and masks.shape == (2, 32, 32)
    assert [tuple(o.mask.shape) for o in originals] == sizes
    assert [o.content for o in originals] == [(13, 32), (32, 8)]
    # the input holds the image exactly in the content rectangle and padding (mask 255) outside it
    assert (masks[0, 13:] == 255).all() and (masks[0, :13] != 255).all()
    assert (masks[1, :, 8:] == 255).all() and (masks[1, :, :8] != 255).all()
