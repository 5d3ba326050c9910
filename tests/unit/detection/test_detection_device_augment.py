"""SSD augmentation of whole batches on the training device (run on the CPU here): boxes move as torchvision moves
them, image and boxes stay aligned, photometric steps equal torchvision's, and the result agrees in distribution with
the per-image CPU augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from smcv.detection.augment_plan import Photometric, draw_plan, move_boxes
from smcv.detection.datasets import DeviceCollate, to_device
from smcv.augmentation_device import on_device
from smcv.detection.device_augment import augment_on_device, raw_batch
from smcv.detection.params import detection_schema
from smcv.detection.photometric import distort
from smcv.detection.transforms import DecodeOnly, DetectionTransform, make_target

SIZE = 300
CPU = torch.device("cpu")
#: distinct object colours, far from each other, from the zoom-out fill and from the background
COLOURS = [(230, 20, 20), (20, 220, 20), (20, 20, 230), (230, 230, 20), (20, 220, 220), (230, 20, 230)]
BACKGROUND = (60, 60, 60)


def boxes_apart(gen: torch.Generator, height: int, width: int, count: int) -> torch.Tensor:
    """Up to `count` non-overlapping boxes on a grid of cells (so each pixel belongs to at most one box)."""
    cols, rows = 3, 2
    cells = torch.randperm(cols * rows, generator=gen)[:count]
    out = []
    for cell in cells.tolist():
        cx, cy = cell % cols, cell // cols
        cw, ch = width / cols, height / rows
        w = cw * (0.35 + 0.6 * torch.rand(1, generator=gen).item())
        h = ch * (0.35 + 0.6 * torch.rand(1, generator=gen).item())
        x0 = cx * cw + (cw - w) * torch.rand(1, generator=gen).item()
        y0 = cy * ch + (ch - h) * torch.rand(1, generator=gen).item()
        out.append([round(x0), round(y0), round(x0 + w), round(y0 + h)])
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 4)


def painted(height: int, width: int, boxes: torch.Tensor) -> torch.Tensor:
    """A uint8 image: each box filled with its own colour on a plain background."""
    image = torch.tensor(BACKGROUND, dtype=torch.uint8).view(3, 1, 1).repeat(1, height, width)
    for k, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        image[:, y0:y1, x0:x1] = torch.tensor(COLOURS[k], dtype=torch.uint8).view(3, 1, 1)
    return image


def scene_batch(gen: torch.Generator, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    images, boxes = [], []
    for _ in range(n):
        height, width = (int(v) for v in torch.randint(60, 200, (2,), generator=gen))
        count = int(torch.randint(0, 5, (1,), generator=gen))
        b = boxes_apart(gen, height, width, count)
        images.append(painted(height, width, b))
        boxes.append(b)
    return images, boxes


# ---- boxes: the plan moves them exactly as torchvision's functional ops do -----------------------------------------
@pytest.mark.parametrize("seed", range(40))
def test_boxes_move_as_torchvision_moves_them(seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    n = 6
    sizes = torch.randint(40, 400, (n, 2), generator=gen)
    rows = [boxes_apart(gen, int(h), int(w), int(torch.randint(0, 5, (1,), generator=gen))) for h, w in sizes.tolist()]
    boxes = torch.zeros(n, 4, 4)
    valid = torch.zeros(n, 4, dtype=torch.bool)
    for i, r in enumerate(rows):
        boxes[i, : len(r)], valid[i, : len(r)] = r, True
    plan, kept = draw_plan(sizes, boxes, valid, "ssd")
    moved, survive = move_boxes(plan, boxes, kept, SIZE)
    assert not (survive & ~valid).any()
    assert (moved[~survive] == 0).all()
    for i in range(n):
        want = torchvision_boxes(plan, i, rows[i], kept[i, : len(rows[i])], sizes[i].tolist(), SIZE)
        torch.testing.assert_close(moved[i][survive[i]], want, rtol=0, atol=1e-3)


def torchvision_boxes(plan, i, boxes, kept, size_hw, out_size):
    """The CPU path's kernels on one image's boxes: pad (zoom out), crop, zero the boxes whose centre left the crop,
    flip, resize, clamp, sanitize (min_size 1, min_area 1)."""
    (height, width), (top, left) = plan.canvas[i].tolist(), plan.offset[i].tolist()
    b = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(size_hw))
    b = TF.pad(b, [left, top, width - left - size_hw[1], height - top - size_hw[0]])
    assert tuple(b.canvas_size) == (height, width)
    ct, cl, ch, cw = plan.crop[i].tolist()
    b = TF.crop(b, top=ct, left=cl, height=ch, width=cw)
    b[~kept] = 0
    if plan.flip[i]:
        b = TF.horizontal_flip(b)
    b = TF.resize(b, [out_size, out_size])
    b = TF.clamp_bounding_boxes(b)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return b.as_subclass(torch.Tensor)[(w >= 1) & (h >= 1) & (w * h >= 1)]


def test_iou_crop_keeps_a_box_centre_and_reaches_the_drawn_overlap():
    torch.manual_seed(3)
    sizes = torch.tensor([[100, 100]]).repeat(200, 1)
    boxes = torch.tensor([[[40.0, 40.0, 60.0, 60.0]]]).repeat(200, 1, 1)
    plan, kept = draw_plan(sizes, boxes, torch.ones(200, 1, dtype=torch.bool), "ssd")
    cropped = (plan.crop[:, 2:] != plan.canvas).any(dim=1)
    assert 0.3 < cropped.float().mean() < 0.98  # some draws keep the view (option 1.0), most crop
    assert kept[cropped].all()  # the only box: a crop must contain its centre
    assert (plan.crop[:, 2:] >= (plan.canvas.float() * 0.3).floor()).all()


def test_images_without_boxes_are_not_cropped():
    torch.manual_seed(0)
    sizes = torch.tensor([[80, 120]]).repeat(50, 1)
    plan, kept = draw_plan(sizes, torch.zeros(50, 1, 4), torch.zeros(50, 1, dtype=torch.bool), "ssd")
    assert (plan.crop[:, :2] == 0).all() and (plan.crop[:, 2:] == plan.canvas).all()
    assert not kept.any()


# ---- image and boxes stay aligned ------------------------------------------------------------------------------------
def edge_margins(batch, i: int) -> tuple[int, int]:
    """Output pixels an edge may blur over: one source pixel at the image's scale (upsampled edges spread), plus 2."""
    ch, cw = batch.plan.crop[i, 2:].tolist()
    return int(np.ceil(batch.size / ch)) + 2, int(np.ceil(batch.size / cw)) + 2


@pytest.mark.parametrize("seed", range(30))
def test_each_output_box_still_holds_its_colour(seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, boxes = scene_batch(gen, 6)
    labels = [torch.arange(len(b)) for b in boxes]  # label k = colour k
    batch = raw_batch(images, [tuple(im.shape[-2:]) for im in images], boxes, labels, SIZE, "ssd", photometric=False)
    x, targets = augment_on_device(batch, CPU)
    levels = (x * 255).round()
    checked = 0
    for i, target in enumerate(targets):
        my, mx = edge_margins(batch, i)
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            if label < 0:
                continue
            x0, y0, x1, y1 = (int(v) for v in (np.ceil(box[0]) + mx, np.ceil(box[1]) + my, np.floor(box[2]) - mx,
                                               np.floor(box[3]) - my))
            if x1 <= x0 or y1 <= y0:
                continue
            region = levels[i, :, y0:y1, x0:x1]
            colour = torch.tensor(COLOURS[label], dtype=torch.float32).view(3, 1, 1)
            assert (region - colour).abs().max() <= 3, f"image {i} box {box} lost its colour {COLOURS[label]}"
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("seed", range(10))
def test_no_object_colour_outside_its_box(seed):
    torch.manual_seed(100 + seed)
    gen = torch.Generator().manual_seed(100 + seed)
    images, boxes = scene_batch(gen, 6)
    labels = [torch.arange(len(b)) for b in boxes]
    batch = raw_batch(images, [tuple(im.shape[-2:]) for im in images], boxes, labels, SIZE, "ssd", photometric=False)
    x, targets = augment_on_device(batch, CPU)
    levels = (x * 255).round()
    for i, target in enumerate(targets):
        for label, colour in enumerate(COLOURS):
            found = ((levels[i] - torch.tensor(colour, dtype=torch.float32).view(3, 1, 1)).abs().amax(0) <= 3)
            rows = target["labels"] == label
            if not rows.any():
                continue  # the box may have been cropped away or dropped; its colour may remain in a sliver
            x0, y0, x1, y1 = target["boxes"][rows][0].tolist()
            ys, xs = found.nonzero(as_tuple=True)
            my, mx = edge_margins(batch, i)
            assert (xs >= np.floor(x0) - mx).all() and (xs <= np.ceil(x1) + mx).all()
            assert (ys >= np.floor(y0) - my).all() and (ys <= np.ceil(y1) + my).all()


# ---- photometric steps equal torchvision's uint8 kernels -------------------------------------------------------------
def _identity(n: int) -> dict:
    return dict(brightness=torch.ones(n), contrast=torch.ones(n), saturation=torch.ones(n), hue=torch.zeros(n),
                contrast_before=torch.ones(n, dtype=torch.bool), permutation=torch.arange(3).expand(n, 3))


@pytest.mark.parametrize("op", ["brightness", "contrast", "saturation", "hue", "permutation", "all"])
def test_photometric_steps_equal_torchvision_uint8_kernels(op):
    gen = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (4, 3, 24, 32), dtype=torch.uint8, generator=gen)
    params = _identity(4)
    factors = torch.tensor([0.6, 0.9, 1.2, 1.45])
    if op in ("brightness", "all"):
        params["brightness"] = torch.tensor([0.88, 0.95, 1.05, 1.12])
    if op in ("contrast", "all"):
        params["contrast"] = factors
        params["contrast_before"] = torch.tensor([True, False, True, False])
    if op in ("saturation", "all"):
        params["saturation"] = factors.flip(0)
    if op in ("hue", "all"):
        params["hue"] = torch.tensor([-0.05, -0.01, 0.02, 0.049])
    if op in ("permutation", "all"):
        params["permutation"] = torch.tensor([[2, 0, 1], [0, 1, 2], [1, 2, 0], [2, 1, 0]])
    got = distort(images.float(), Photometric(**params))
    for i in range(4):
        want = images[i]
        if params["brightness"][i] != 1:
            want = TF.adjust_brightness(want, float(params["brightness"][i]))
        if params["contrast"][i] != 1 and params["contrast_before"][i]:
            want = TF.adjust_contrast(want, float(params["contrast"][i]))
        if params["saturation"][i] != 1:
            want = TF.adjust_saturation(want, float(params["saturation"][i]))
        if params["hue"][i] != 0:
            want = TF.adjust_hue(want, float(params["hue"][i]))
        if params["contrast"][i] != 1 and not params["contrast_before"][i]:
            want = TF.adjust_contrast(want, float(params["contrast"][i]))
        want = TF.permute_channels(want, params["permutation"][i].tolist())
        diff = (got[i] - want.float()).abs()
        # one step matches to a level (float rounding at level boundaries); in the chain a later contrast step
        # (factor up to 1.5) can stretch an earlier level of difference, on a few pixels; a wrong order differs by tens
        assert diff.max() <= (3 if op == "all" else 1) and diff.mean() < 0.05, f"{op}: image {i} differs by {diff.max()}"


# ---- agreement in distribution with the CPU path --------------------------------------------------------------------
def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical distribution functions."""
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def ks_critical(n: int, m: int, c_alpha: float = 1.95) -> float:
    """The two-sample KS rejection bound at alpha = 0.001."""
    return c_alpha * np.sqrt((n + m) / (n * m))


#: the distribution comparison runs at a small network size to keep the CPU path's share of the test short
DIST_SIZE = 96


def _gradient_boxes_scene(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey objects bright on their left half and dark on their right half: a flip shows inside every box."""
    height, width = (int(v) for v in torch.randint(40, 100, (2,), generator=gen))
    boxes = boxes_apart(gen, height, width, int(torch.randint(1, 4, (1,), generator=gen)))
    image = torch.full((3, height, width), 120, dtype=torch.uint8)
    for x0, y0, x1, y1 in boxes.long().tolist():
        mid = (x0 + x1) // 2
        image[:, y0:y1, x0:mid], image[:, y0:y1, mid:x1] = 240, 10
    return image, boxes


def _stats(images: torch.Tensor, targets: list[dict]) -> dict[str, list[float]]:
    out = {"count": [], "area": [], "flipped": [], "mean": []}
    for image, target in zip(images, targets):
        keep = target["labels"] >= 0
        out["count"].append(float(keep.sum()))
        out["mean"].append(float(image.float().mean()))
        gray = image.float().mean(0)
        for x0, y0, x1, y1 in target["boxes"][keep].tolist():
            out["area"].append((x1 - x0) * (y1 - y0) / DIST_SIZE ** 2)
            if x1 - x0 >= 6 and y1 - y0 >= 3:
                xa, xb, ya, yb = int(np.ceil(x0)), int(np.floor(x1)), int(np.ceil(y0)), int(np.floor(y1))
                third = max((xb - xa) // 3, 1)
                left, right = gray[ya:yb, xa:xa + third].mean(), gray[ya:yb, xb - third:xb].mean()
                out["flipped"].append(float(right > left))
    return out


@pytest.mark.slow
def test_device_and_cpu_augmentation_agree_in_distribution():
    gen = torch.Generator().manual_seed(11)
    scenes = [_gradient_boxes_scene(gen) for _ in range(16)]
    labels = [torch.zeros(len(b), dtype=torch.int64) for _, b in scenes]
    draws = 256
    torch.manual_seed(0)
    cpu = DetectionTransform(DIST_SIZE, "ssd")
    cpu_images, cpu_targets = [], []
    for k in range(draws):
        image, boxes = scenes[k % len(scenes)]
        h, w = image.shape[-2:]
        out, target = cpu(tv_tensors.Image(image), make_target(boxes, labels[k % len(scenes)],
                                                               torch.zeros(len(boxes), dtype=torch.bool), h, w))
        cpu_images.append(out)
        cpu_targets.append(target)
    torch.manual_seed(1)
    dev_images, dev_targets = [], []
    for start in range(0, draws, 16):
        picked = [scenes[k % len(scenes)] for k in range(start, start + 16)]
        batch = raw_batch([im for im, _ in picked], [tuple(im.shape[-2:]) for im, _ in picked], [b for _, b in picked],
                          [labels[k % len(scenes)] for k in range(start, start + 16)], DIST_SIZE, "ssd")
        x, targets = augment_on_device(batch, CPU)
        dev_images.extend((x * 255).round())
        dev_targets.extend(targets)
    a = _stats(torch.stack(cpu_images), cpu_targets)
    b = _stats(torch.stack(dev_images), dev_targets)
    assert abs(np.mean(a["flipped"]) - 0.5) < 0.1 and abs(np.mean(a["flipped"]) - np.mean(b["flipped"])) < 0.1
    assert abs(np.mean(a["count"]) - np.mean(b["count"])) < 0.25
    assert ks_statistic(np.array(a["count"]), np.array(b["count"])) < ks_critical(draws, draws)
    assert ks_statistic(np.array(a["area"]), np.array(b["area"])) < ks_critical(len(a["area"]), len(b["area"]))
    assert ks_statistic(np.array(a["mean"]), np.array(b["mean"])) < ks_critical(draws, draws)
    assert abs(np.mean(a["mean"]) - np.mean(b["mean"])) < 4.0  # grey levels


# ---- the loader side and the hyperparameter --------------------------------------------------------------------------
def test_decode_only_caps_each_side_and_keeps_original_boxes():
    image = torch.zeros((3, 2000, 400), dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 1500.0, 300.0, 1900.0]])
    out, target = DecodeOnly(SIZE)(tv_tensors.Image(image), make_target(boxes, torch.tensor([0]),
                                                                         torch.tensor([False]), 2000, 400))
    assert tuple(out.shape) == (3, 1000, 400)
    assert target["original_size"] == (2000, 400)
    assert torch.equal(target["boxes"], boxes)


def test_shrunk_images_keep_boxes_aligned():
    torch.manual_seed(4)
    gen = torch.Generator().manual_seed(4)
    boxes = boxes_apart(gen, 1800, 1500, 4)
    image = painted(1800, 1500, boxes)
    items = [DecodeOnly(SIZE)(tv_tensors.Image(image), make_target(boxes, torch.arange(4), torch.zeros(4, dtype=torch.bool),
                                                                    1800, 1500)) for _ in range(4)]
    batch = DeviceCollate(SIZE, "flip", photometric=False)(items)
    assert tuple(batch.images.shape[-2:]) == (1000, 1000)
    x, targets = to_device(batch, CPU)
    levels = (x * 255).round()
    for i, target in enumerate(targets):
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x0, y0, x1, y1 = int(box[0]) + 2, int(box[1]) + 2, int(box[2]) - 2, int(box[3]) - 2
            assert x1 - x0 > 10 and y1 - y0 > 10
            colour = torch.tensor(COLOURS[label], dtype=torch.float32).view(3, 1, 1)
            assert (levels[i, :, y0:y1, x0:x1] - colour).abs().max() <= 3


def test_validation_items_are_stacked_as_before():
    collate = DeviceCollate(SIZE, "ssd")
    item = (torch.zeros((3, SIZE, SIZE), dtype=torch.uint8), {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0)})
    images, targets = collate([item, item])
    assert images.shape == (2, 3, SIZE, SIZE) and len(targets) == 2


def test_raw_batch_pins_and_counts():
    gen = torch.Generator().manual_seed(0)
    images, boxes = scene_batch(gen, 3)
    batch = raw_batch(images, [tuple(im.shape[-2:]) for im in images], boxes, [torch.arange(len(b)) for b in boxes],
                      SIZE, "none")
    assert len(batch) == 3
    if torch.cuda.is_available():  # pinning needs an accelerator
        assert batch.pin_memory().images.is_pinned()
    assert not batch.plan.flip.any() and (batch.plan.crop[:, 2:] == batch.original).all()


def test_augmentation_device_hyperparameter():
    hp = detection_schema().resolve({"num_classes": "2", "num_training_samples": "4"})
    assert hp.augmentation_device == "auto"
    assert on_device("gpu") and not on_device("cpu")
    assert on_device("auto") == torch.cuda.is_available()
    with pytest.raises(Exception, match="augmentation_device"):
        detection_schema().resolve({"num_classes": "2", "num_training_samples": "4", "augmentation_device": "tpu"})
