"""Ground-truth box statistics against the SSD default boxes: sizes per class and how many no default box fits."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import box_iou

from smcv.balance import spread_indices
from smcv.data.images import open_image
from smcv.detection.backbones import build_backbone
from smcv.detection.model import MATCH_IOU, anchor_config
from smcv.task_api import BoxCoverage

STATS_IMAGES = 1000  # images sampled for the statistics (their headers are read for pixel boxes)
IOU_CHUNK = 512  # boxes per IoU block (bounds the memory: chunk x default boxes floats)
#: EXIF orientations that swap width and height (decode_image applies them)
_TRANSPOSED = {5, 6, 7, 8}
#: layouts the advice may suggest instead: (base_network, image_shape)
LAYOUTS = (("vgg-16", 300), ("vgg-16", 512), ("resnet-50", 300))


def _image_size(sample) -> tuple[int, int]:
    image = open_image(sample.image.read(), sample.source)
    width, height = image.size
    return (height, width) if image.getexif().get(0x0112) in _TRANSPOSED else (width, height)


def relative_boxes(samples: Sequence, label_maps: Sequence[np.ndarray],
                   limit: int = STATS_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4) as fractions of their image's width and height, and their class ids, from up to `limit` images."""
    boxes, labels = [], []
    for i in spread_indices(len(samples), limit):
        sample, ids = samples[i], np.asarray(label_maps[i], np.int64)
        corners = np.asarray(sample.objects.boxes, np.float64).reshape(-1, 4)
        if not len(corners):
            continue
        if not sample.normalized:
            width, height = _image_size(sample)
            corners = corners / np.array([width, height, width, height], np.float64)
        boxes.append(np.clip(corners, 0.0, 1.0))
        labels.append(ids)
    if not boxes:
        return np.zeros((0, 4)), np.zeros((0,), np.int64)
    return np.concatenate(boxes), np.concatenate(labels)


def default_boxes(base_network: str, image_shape: int) -> np.ndarray:
    """The network's default boxes (A, 4) as fractions of the image (XYXY), as training matches them."""
    with torch.device("meta"):
        backbone = build_backbone(base_network, image_shape)
        grids = [f.shape[-2:] for f in backbone(torch.empty(1, 3, image_shape, image_shape))]
    config = anchor_config(base_network, image_shape)
    generator = DefaultBoxGenerator(config["aspect_ratios"], scales=config["scales"])
    probe = ImageList(torch.empty((1, 3, image_shape, image_shape), device="meta"), [(image_shape, image_shape)])
    anchors = generator(probe, [torch.empty((0, 0, h, w)) for h, w in grids])[0]
    return (anchors / image_shape).numpy().astype(np.float64)


def best_anchor_iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """For each box (n, 4), the highest IoU with any default box."""
    if not len(boxes):
        return np.zeros((0,))
    anchor_tensor = torch.from_numpy(anchors).float()
    best = [box_iou(torch.from_numpy(boxes[i:i + IOU_CHUNK]).float(), anchor_tensor).max(dim=1).values
            for i in range(0, len(boxes), IOU_CHUNK)]
    return torch.cat(best).numpy()


def coverage(boxes: np.ndarray, labels: np.ndarray, anchors: np.ndarray, num_classes: int,
             threshold: float = MATCH_IOU) -> list[BoxCoverage]:
    """Per class with boxes: size quantiles (side = sqrt of the area, fraction of the image) and the share of boxes
    whose best default box overlaps them below `threshold`."""
    best = best_anchor_iou(boxes, anchors)
    sides = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
    found = []
    for class_id in range(num_classes):
        mine = labels == class_id
        if not mine.any():
            continue
        p10, median, p90 = (float(v) for v in np.quantile(sides[mine], [0.1, 0.5, 0.9]))
        found.append(BoxCoverage(class_id=class_id, boxes=int(mine.sum()), side_p10=p10, side_median=median,
                                 side_p90=p90, poorly_matched=float((best[mine] < threshold).mean())))
    return found


def smallest_default_box(base_network: str, image_shape: int) -> float:
    """The first (smallest) default-box scale, a fraction of the image side."""
    return float(anchor_config(base_network, image_shape)["scales"][0])


def better_layouts(boxes: np.ndarray, labels: np.ndarray, class_ids: Sequence[int], current: tuple[str, int],
                   threshold: float = MATCH_IOU) -> str:
    """Advice naming the built-in layouts (base_network, image_shape) that fit the given classes' boxes better."""
    chosen = np.isin(labels, list(class_ids))
    now = float((best_anchor_iou(boxes[chosen], default_boxes(*current)) < threshold).mean()) if chosen.any() else 0.0
    options = []
    for base, size in LAYOUTS:
        if (base, size) == current or base == current[0] and (size >= 512) == (current[1] >= 512):
            continue  # the same default boxes as now
        share = float((best_anchor_iou(boxes[chosen], default_boxes(base, size)) < threshold).mean())
        if share < now:
            options.append((share, f"base_network={base} image_shape={size} ({share:.0%} poorly matched)"))
    if not options:
        return ""
    return "use " + " or ".join(text for _, text in sorted(options))


def box_coverage_facts(samples: Sequence, label_maps: Sequence[np.ndarray], num_classes: int, base_network: str,
                       image_shape: int, poor_share: float) -> tuple[list[BoxCoverage], str, Optional[float]]:
    """The per-class coverage, a remedy for poorly matched classes (other layouts), and the smallest default box."""
    boxes, labels = relative_boxes(samples, label_maps)
    if not len(boxes):
        return [], "", None
    found = coverage(boxes, labels, default_boxes(base_network, image_shape), num_classes)
    poor = [c.class_id for c in found if c.poorly_matched >= poor_share]
    remedy = better_layouts(boxes, labels, poor, (base_network, image_shape)) if poor else ""
    return found, remedy, smallest_default_box(base_network, image_shape)
