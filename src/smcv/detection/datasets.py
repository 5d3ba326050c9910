"""The detection Dataset: decode an image, put its boxes in pixels, transform, and collate into fixed-size batches."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2.functional import pil_to_tensor

from smcv.data.images import decode_image
from smcv.data.jpeg import EncodedJpeg, encoded_jpeg
from smcv.detection.device_augment import RawBatch, augment_on_device, raw_batch
from smcv.detection.samples import Sample
from smcv.detection.transforms import decode_cap, make_target, plain_target


def decode_rgb(data: bytes, source: str) -> torch.Tensor:
    """A uint8 RGB CHW tensor, EXIF orientation applied (DataError naming the source when undecodable)."""
    return pil_to_tensor(decode_image(data, source, "RGB"))


class DetectionDataset(torch.utils.data.Dataset):
    """Samples with model class ids (0-based, background not included); items are (uint8 image, target). With
    keep_jpeg (training on a GPU, augmentation there), JPEGs the device decoder takes stay encoded: (EncodedJpeg,
    RawBatch target), decoded on the device (smcv.data.device_decode)."""

    def __init__(self, samples: Sequence[Sample], label_maps: Sequence[np.ndarray], transform: Callable) -> None:
        if len(samples) != len(label_maps):
            raise ValueError("one label array per sample is needed")
        self.samples, self.label_maps, self.transform = list(samples), list(label_maps), transform
        self.keep_jpeg = False

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sample = self.samples[index]
        image = self._image(sample.image.read(), sample.source)
        height, width = (image.height, image.width) if isinstance(image, EncodedJpeg) else image.shape[-2:]
        boxes = torch.from_numpy(np.asarray(sample.objects.boxes, np.float32).reshape(-1, 4).copy())
        if sample.normalized:
            boxes *= torch.tensor([width, height, width, height], dtype=torch.float32)
        labels = torch.from_numpy(np.asarray(self.label_maps[index], np.int64))
        difficult = torch.from_numpy(np.asarray(sample.objects.difficult, bool))
        target = make_target(boxes, labels, difficult, height, width)
        if isinstance(image, EncodedJpeg):
            return image, plain_target(target, int(height), int(width))
        return self.transform(tv_tensors.Image(image), target)

    def _image(self, data: bytes, source: str) -> torch.Tensor | EncodedJpeg:
        """Pillow-decoded RGB pixels, or (keep_jpeg) the header-checked JPEG the device decoder takes."""
        encoded = encoded_jpeg(data, source, "RGB") if self.keep_jpeg else None
        return encoded if encoded is not None else decode_rgb(data, source)


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Stack the equal-size uint8 images; keep one target dict per image."""
    images = torch.stack([item[0] for item in batch])
    return images, [item[1] for item in batch]


class DeviceCollate:
    """Collate for augmentation on the device: decoded items (DecodeOnly) become a RawBatch with its plan drawn;
    transformed items (validation) are stacked by `collate`."""

    def __init__(self, size: int, augmentation: str, photometric: bool = True) -> None:
        self.size, self.augmentation, self.photometric = size, augmentation, photometric

    def __call__(self, batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> Any:
        if "original_size" not in batch[0][1]:
            return collate(batch)
        return raw_batch([item[0] for item in batch], [item[1]["original_size"] for item in batch],
                         [item[1]["boxes"] for item in batch], [item[1]["labels"] for item in batch],
                         self.size, self.augmentation, self.photometric, decode_cap(self.size))


def to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A collated batch on the device: images as 0-1 floats, targets' boxes and labels (a RawBatch is augmented
    there first)."""
    if isinstance(batch, RawBatch):
        return augment_on_device(batch, device)
    images, targets = batch
    x = images.to(device, non_blocking=True).float().div_(255.0)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    moved = [{"boxes": t["boxes"].to(device, non_blocking=True), "labels": t["labels"].to(device, non_blocking=True)}
             for t in targets]
    return x, moved
