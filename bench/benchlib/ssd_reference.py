"""The reference SSD300-VGG16 training loop in the style of torchvision's detection references: PIL decode and
the SSD augmentation per image on the CPU (DataLoader workers), torchvision's ssd300_vgg16 with its per-image
anchor matching and per-image resize/normalise, FP32 throughout."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.models.detection import ssd300_vgg16
from torchvision.transforms import v2

from benchlib.device import timed


def read_voc(folder: Path) -> list[tuple[Path, list[list[float]], list[str]]]:
    """(image, boxes in pixels, class names) of every Annotations/*.xml with its JPEGImages/ image."""
    items = []
    for xml in sorted((folder / "Annotations").glob("*.xml")):
        root = ET.parse(xml).getroot()
        boxes, names = [], []
        for obj in root.findall("object"):
            box = obj.find("bndbox")
            boxes.append([float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
            names.append(obj.findtext("name").strip())
        items.append((folder / "JPEGImages" / root.findtext("filename").strip(), boxes, names))
    return items


def ssd_augmentation() -> v2.Compose:
    """torchvision's references/detection 'ssd' data augmentation policy."""
    return v2.Compose([v2.RandomPhotometricDistort(p=1), v2.RandomZoomOut(fill={tv_tensors.Image: (123, 117, 104),
                                                                                "others": 0}),
                       v2.RandomIoUCrop(), v2.RandomHorizontalFlip(p=0.5), v2.ToImage(),
                       v2.ToDtype(torch.float, scale=True), v2.SanitizeBoundingBoxes()])


class VocDataset(Dataset):
    """Pascal VOC images and boxes, decoded and augmented per image."""

    def __init__(self, items: list[tuple[Path, list[list[float]], list[str]]], classes: list[str]) -> None:
        self.items, self.ids = items, {name: i + 1 for i, name in enumerate(classes)}  # 0 is the background
        self.transform = ssd_augmentation()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        path, boxes, names = self.items[index]
        image = Image.open(path).convert("RGB")
        target = {"boxes": tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                                    format="XYXY", canvas_size=(image.height, image.width)),
                  "labels": torch.tensor([self.ids[n] for n in names], dtype=torch.int64)}
        return self.transform(image, target)


def collate(batch: list) -> tuple:
    """Lists of images and targets, as the references collate."""
    return tuple(zip(*batch))


def reference_throughput(folder: Path, batch: int, steps: int, workers: int, device: torch.device) -> float:
    """Images/s of an epoch of `steps` steps (after a warm-up epoch) of the reference loop on the VOC folder."""
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    items = read_voc(folder)
    classes = sorted({name for _path, _boxes, names in items for name in names})
    dataset = torch.utils.data.Subset(VocDataset(items, classes), range(min(len(items), batch * steps)))
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                        collate_fn=collate, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=len(classes) + 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9, weight_decay=4e-4)

    def epoch() -> None:
        model.train()
        for images, targets in loader:
            images = [image.to(device, non_blocking=True) for image in images]
            targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()
    return len(loader) * batch / timed(epoch, device)
