"""torchvision's RandomPhotometricDistort for a whole batch with per-image parameters, on float images holding uint8
values (0-255), with the kernels of smcv.data.colour."""

from __future__ import annotations

import torch

from smcv.data.colour import adjust_brightness, adjust_contrast, adjust_hue, blend, gray, per_image
from smcv.detection.augment_plan import Photometric


def _on_rows(images: torch.Tensor, drawn: torch.Tensor, step) -> torch.Tensor:
    """Apply `step(images[rows], rows)` to the rows the plan drew (a host-side mask: no device sync), in place."""
    rows = drawn.nonzero().squeeze(1)
    if rows.numel():
        index = rows.to(images.device, non_blocking=True)
        images[index] = step(images[index], rows)
    return images


def distort(images: torch.Tensor, p: Photometric) -> torch.Tensor:
    """Brightness, contrast (before or after), saturation, hue and channel order, each on the images that drew it."""
    def factor(values: torch.Tensor, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return per_image(values[rows], like)

    out = images.clone()
    out = _on_rows(out, p.brightness != 1.0, lambda x, r: adjust_brightness(x, p.brightness[r]))
    out = _on_rows(out, (p.contrast != 1.0) & p.contrast_before, lambda x, r: adjust_contrast(x, p.contrast[r]))
    out = _on_rows(out, p.saturation != 1.0, lambda x, r: blend(x, gray(x), factor(p.saturation, r, x)))
    out = _on_rows(out, p.hue != 0.0, lambda x, r: adjust_hue(x, p.hue[r]))
    out = _on_rows(out, (p.contrast != 1.0) & ~p.contrast_before, lambda x, r: adjust_contrast(x, p.contrast[r]))
    order = p.permutation.to(images.device).view(-1, 3, 1, 1).expand_as(out)
    return out.gather(1, order)
