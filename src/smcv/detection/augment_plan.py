"""SSD augmentation parameters for a whole batch, drawn as torchvision's transforms draw them (zoom out, IoU crop,
flip, photometric distortion), and the boxes they move to the network's input size."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

ZOOM_P = 0.5
ZOOM_SIDE = (1.0, 4.0)
CROP_OPTIONS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)  # minimum IoU of a box with the crop; >= 1: keep the view
CROP_SCALE = (0.3, 1.0)
CROP_ASPECT = (0.5, 2.0)
CROP_TRIALS = 40
CROP_GROUPS_PER_DRAW = 16  # (option, trials) groups drawn at once per image; more are drawn for images not yet decided
FLIP_P = 0.5
PHOTOMETRIC_P = 0.5
BRIGHTNESS, CONTRAST, SATURATION, HUE = (0.875, 1.125), (0.5, 1.5), (0.5, 1.5), (-0.05, 0.05)


@dataclass
class Photometric:
    """Per-image photometric parameters (torchvision's RandomPhotometricDistort); factor 1 / hue 0 where not drawn."""

    brightness: torch.Tensor  # (N,)
    contrast: torch.Tensor  # (N,)
    saturation: torch.Tensor  # (N,)
    hue: torch.Tensor  # (N,)
    contrast_before: torch.Tensor  # (N,) bool: contrast before saturation and hue, else after
    permutation: torch.Tensor  # (N, 3) channel order (identity where not drawn)


@dataclass
class Plan:
    """One batch's geometry on each image's zoom-out canvas, in original pixels, and its photometric parameters."""

    canvas: torch.Tensor  # (N, 2) canvas height, width (the image's size without zoom out)
    offset: torch.Tensor  # (N, 2) top, left of the image on the canvas
    crop: torch.Tensor  # (N, 4) top, left, height, width on the canvas (the whole canvas without a crop)
    flip: torch.Tensor  # (N,) bool
    photometric: Photometric

    def pin_memory(self) -> "Plan":
        """The plan with pinned tensors (DataLoader pin_memory)."""
        pinned = Photometric(**{f.name: getattr(self.photometric, f.name).pin_memory() for f in fields(Photometric)})
        return replace(self, canvas=self.canvas.pin_memory(), offset=self.offset.pin_memory(),
                       crop=self.crop.pin_memory(), flip=self.flip.pin_memory(), photometric=pinned)


def _uniform(low: float, high: float, *shape: int) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape)


def draw_zoom(sizes: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(canvas, offset) of RandomZoomOut(side_range=(1, 4), p=0.5) for images of (N, 2) sizes (height, width)."""
    n = sizes.shape[0]
    ratio = torch.where(torch.rand(n) < ZOOM_P, _uniform(*ZOOM_SIDE, n), torch.ones(n)) if enabled else torch.ones(n)
    canvas = (sizes.float() * ratio.unsqueeze(1)).floor().long()
    offset = ((canvas - sizes).float() * torch.rand(n, 2)).floor().long()
    return canvas, offset


def _crop_candidates(canvas: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
    """CROP_GROUPS_PER_DRAW x CROP_TRIALS random crops per image (RandomIoUCrop's draws) and whether each is taken."""
    m, groups, trials = canvas.shape[0], CROP_GROUPS_PER_DRAW, CROP_TRIALS
    options = torch.tensor(CROP_OPTIONS)[torch.randint(0, len(CROP_OPTIONS), (m, groups))]
    height, width = (canvas[:, k].view(m, 1, 1).float() for k in (0, 1))
    scale = _uniform(*CROP_SCALE, m, groups, trials, 2)
    new_w, new_h = (width * scale[..., 0]).floor(), (height * scale[..., 1]).floor()
    aspect = new_w / new_h.clamp(min=1)
    shaped = (new_h > 0) & (new_w > 0) & (aspect >= CROP_ASPECT[0]) & (aspect <= CROP_ASPECT[1])
    where = torch.rand(m, groups, trials, 2)
    left, top = ((width - new_w) * where[..., 0]).floor(), ((height - new_h) * where[..., 1]).floor()
    right, bottom = left + new_w, top + new_h
    b = boxes.view(m, 1, 1, -1, 4)
    cx, cy = 0.5 * (b[..., 0] + b[..., 2]), 0.5 * (b[..., 1] + b[..., 3])
    c = [v.unsqueeze(-1) for v in (left, top, right, bottom)]
    inside = (c[0] < cx) & (cx < c[2]) & (c[1] < cy) & (cy < c[3]) & valid.view(m, 1, 1, -1)
    inter = ((torch.minimum(b[..., 2], c[2]) - torch.maximum(b[..., 0], c[0])).clamp(min=0)
             * (torch.minimum(b[..., 3], c[3]) - torch.maximum(b[..., 1], c[1])).clamp(min=0))
    areas = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = (inter / (areas + (new_w * new_h).unsqueeze(-1) - inter)).masked_fill(~inside, -1.0)
    taken = shaped & inside.any(-1) & (iou.amax(-1) >= options.unsqueeze(-1))
    return {"options": options, "taken": taken, "inside": inside,
            "crop": torch.stack([top, left, new_h, new_w], dim=-1).long()}


def draw_crops(canvas: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RandomIoUCrop for every image with a box: (crop (N, 4) top, left, height, width; kept (N, G) boxes whose centre
    lies in the crop). Images without boxes, and draws of the keep-the-view option, keep the whole canvas."""
    n = canvas.shape[0]
    crop = torch.cat([torch.zeros(n, 2, dtype=torch.long), canvas], dim=1)
    kept = valid.clone()
    todo = valid.any(dim=1)
    while bool(todo.any()):
        index = todo.nonzero().squeeze(1)
        c = _crop_candidates(canvas[index], boxes[index], valid[index])
        decided = (c["options"] >= 1.0) | c["taken"].any(-1)  # (M, groups): the first decided group is the answer
        found = decided.any(-1)
        group = decided.int().argmax(-1)
        rows = torch.arange(len(index))
        trial = c["taken"][rows, group].int().argmax(-1)
        cropped = found & (c["options"][rows, group] < 1.0)
        chosen = index[cropped]
        crop[chosen] = c["crop"][rows, group, trial][cropped]
        kept[chosen] = c["inside"][rows, group, trial][cropped]
        todo[index[found]] = False
    return crop, kept


def draw_photometric(n: int, enabled: bool) -> Photometric:
    """RandomPhotometricDistort(p=0.5)'s parameters for n images (identity when not enabled)."""
    def factor(low: float, high: float, identity: float) -> torch.Tensor:
        drawn = torch.rand(n) < PHOTOMETRIC_P if enabled else torch.zeros(n, dtype=torch.bool)
        return torch.where(drawn, _uniform(low, high, n), torch.full((n,), identity))

    brightness, contrast, saturation, hue = (factor(*BRIGHTNESS, 1.0), factor(*CONTRAST, 1.0),
                                             factor(*SATURATION, 1.0), factor(*HUE, 0.0))
    before = torch.rand(n) < 0.5
    permute = (torch.rand(n) < PHOTOMETRIC_P) & enabled
    order = torch.where(permute.unsqueeze(1), torch.rand(n, 3).argsort(dim=1), torch.arange(3).expand(n, 3))
    return Photometric(brightness, contrast, saturation, hue, before, order)


def draw_plan(sizes: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor, augmentation: str,
              photometric: bool = True) -> tuple[Plan, torch.Tensor]:
    """The batch's plan for `augmentation` (ssd, flip, none) and the boxes it keeps (N, G) before sanitizing;
    boxes are pixel XYXY on the original (N, 2) image sizes (height, width), `valid` marks real rows."""
    ssd = augmentation == "ssd"
    n = sizes.shape[0]
    canvas, offset = draw_zoom(sizes, ssd)
    if ssd:
        crop, kept = draw_crops(canvas, boxes + offset.flip(1).repeat(1, 2).unsqueeze(1).float(), valid)
    else:
        crop, kept = torch.cat([torch.zeros(n, 2, dtype=torch.long), canvas], dim=1), valid.clone()
    flip = torch.rand(n) < FLIP_P if augmentation in ("ssd", "flip") else torch.zeros(n, dtype=torch.bool)
    return Plan(canvas, offset, crop, flip, draw_photometric(n, ssd and photometric)), kept


def move_boxes(plan: Plan, boxes: torch.Tensor, kept: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (N, G, 4) on the size x size output and which survive: zoom, crop (clamped; boxes whose centre left the
    crop are zeroed), flip, resize, clamp, then SanitizeBoundingBoxes(min_size=1, min_area=1)."""
    top, left, height, width = (plan.crop[:, k].view(-1, 1).float() for k in range(4))
    shift = (plan.offset.flip(1).float() - torch.cat([left, top], dim=1)).repeat(1, 2).unsqueeze(1)
    moved = boxes + shift
    x = moved[..., 0::2].clamp(min=0).minimum(width.unsqueeze(-1))
    y = moved[..., 1::2].clamp(min=0).minimum(height.unsqueeze(-1))
    moved = torch.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], dim=-1).masked_fill(~kept.unsqueeze(-1), 0.0)
    flipped = torch.stack([width - moved[..., 2], moved[..., 1], width - moved[..., 0], moved[..., 3]], dim=-1)
    moved = torch.where(plan.flip.view(-1, 1, 1), flipped, moved)
    scale = torch.cat([size / width, size / height], dim=1).repeat(1, 2).unsqueeze(1)
    moved = (moved * scale).clamp(0, size)
    w, h = moved[..., 2] - moved[..., 0], moved[..., 3] - moved[..., 1]
    survive = kept & (w >= 1) & (h >= 1) & (w * h >= 1)
    return moved.masked_fill(~survive.unsqueeze(-1), 0.0), survive
