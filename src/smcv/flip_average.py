"""test_time_flip: the network's logits averaged over the image and its left-right mirror image (validation and
serving use this one function, so the endpoint answers as the model was validated)."""

from __future__ import annotations

from typing import Callable

import torch


def flip_averaged(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, flip: bool,
                  dense: bool) -> torch.Tensor:
    """forward(images) as float32; with flip, the mean of its logits and those of the mirrored images (dense,
    per-pixel logits are mirrored back first). Logits, not probabilities, are averaged: one rule for softmax,
    sigmoid and the losses computed from them."""
    logits = forward(images).float()
    if not flip:
        return logits
    mirrored = forward(images.flip(-1)).float()
    return (logits + (mirrored.flip(-1) if dense else mirrored)) / 2
