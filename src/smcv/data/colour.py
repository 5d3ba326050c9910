"""Colour kernels of torchvision's uint8 adjustments for a whole batch with per-image factors, on float images
holding uint8 levels (0-255): each step truncates to whole levels as torchvision's uint8 kernels do (a step may
land one level apart where float rounding falls on a level boundary). Used by the device augmentation of
detection and segmentation."""

from __future__ import annotations

import torch

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
#: torchvision's float -> uint8 conversion multiplies by 256 - 1e-3
TO_UINT8 = 255.0 + 1.0 - 1e-3


def per_image(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """One value per image, shaped to scale an (N, C, H, W) batch."""
    return values.to(images.device, images.dtype).view(-1, 1, 1, 1)


def gray(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) grey levels, truncated as torchvision's uint8 rgb_to_grayscale."""
    r, g, b = images.unbind(dim=1)
    return (r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2]).unsqueeze(1).floor()


def blend(images: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """images * ratio + other * (1 - ratio), clamped and truncated to whole levels."""
    return (images * ratio + other * (1.0 - ratio)).clamp(0, 255).floor()


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in 0-1 to HSV in 0-1 (torchvision's formula)."""
    r, g, b = rgb.unbind(dim=1)
    maxc, minc = rgb.amax(dim=1), rgb.amin(dim=1)
    flat = maxc == minc
    spread = torch.where(flat, torch.ones_like(maxc), maxc - minc)
    s = (maxc - minc) / torch.where(flat, torch.ones_like(maxc), maxc)
    rc, gc, bc = (maxc - r) / spread, (maxc - g) / spread, (maxc - b) / spread
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(flat, torch.zeros_like(h), h)
    return torch.stack([(h / 6.0 + 1.0).remainder(1.0), s, maxc], dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) HSV in 0-1 back to RGB in 0-1 (torchvision's formula)."""
    h, s, v = hsv.unbind(dim=1)
    h6 = h * 6.0
    i = h6.floor()
    f = h6 - i
    i = i.long().remainder(6)
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    vpqt = torch.stack([v, p, q, t], dim=1)
    select = torch.tensor([[0, 2, 1, 1, 3, 0], [3, 0, 0, 2, 1, 1], [1, 1, 3, 0, 0, 2]], device=hsv.device)
    return vpqt.gather(1, select[:, i].movedim(0, 1))


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale each image's levels by its factor, truncated to whole levels."""
    return (images * per_image(factor, images)).clamp(0, 255).floor()


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by its shift (fractions of a turn), as torchvision's adjust_hue on uint8 images."""
    hsv = _rgb_to_hsv(images / 255.0)
    hsv = torch.cat([(hsv[:, :1] + per_image(shift, images)).remainder(1.0), hsv[:, 1:]], dim=1)
    return (_hsv_to_rgb(hsv) * TO_UINT8).floor().clamp(0, 255)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with the mean of its grey levels."""
    mean = gray(images).mean(dim=(1, 2, 3), keepdim=True)
    return blend(images, mean, per_image(factor, images))
