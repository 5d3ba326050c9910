"""Training and validation datasets: decode, check and transform (image, mask) pairs from any source."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from smcv.balance import spread_indices
from smcv.data.images import decode_image
from smcv.errors import ConfigError, DataError
from smcv.segmentation.device_augment import pair_batch
from smcv.segmentation.masks import LabelMap, MaskDecoder, decide_binary_255, raw_values, read_label_map
from smcv.segmentation.params import Geometry
from smcv.segmentation.sources import PairSource, find_manifests, folder_pairs, manifest_pairs, record_pairs

log = logging.getLogger(__name__)

SAMPLE_MASKS = 16  # masks read at start-up to decide binary_mask_255=auto
CHECK_PAIRS = 4  # pairs fully decoded and checked at start-up, per split
PIXEL_COUNT_MASKS = 64  # training masks (spread over the set) whose pixels are counted per class at start-up


class Original(NamedTuple):
    """A validation sample's mask at the image's stored size, and the (height, width) the image fills in the input."""

    mask: torch.Tensor
    content: tuple[int, int]


class SegmentationDataset(torch.utils.data.Dataset):
    """(uint8 CHW image, uint8 HW mask) pairs after the paired transform; with `content` (original height, width ->
    the part of the input the image fills), also the sample's `Original` for metrics at the original size."""

    def __init__(self, source: PairSource, decoder: MaskDecoder, transform: Optional[Callable],
                 content: Optional[Callable[[int, int], tuple[int, int]]] = None) -> None:
        self.source, self.decoder, self.transform, self.content = source, decoder, transform, content

    def __len__(self) -> int:
        return len(self.source)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded image and class-id mask at their stored size, checked against each other."""
        image_bytes, mask_bytes, image_name, mask_name = self.source.get(i)
        image = decode_image(image_bytes, image_name, "RGB")
        mask = self.decoder.decode(mask_bytes, mask_name)
        if mask.shape != (image.height, image.width):
            raise DataError(f"{mask_name}: the mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image {image_name} "
                            f"is {image.width}x{image.height}; a mask must have exactly its image's size")
        return tv_tensors.Image(F.pil_to_tensor(image)), tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask)))

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        image, mask = self.load(i)
        original = mask.as_subclass(torch.Tensor)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        pair = (image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor))
        if self.content is None:
            return pair
        return (*pair, Original(original, self.content(*original.shape)))


class DecodedPairs(SegmentationDataset):
    """Training pairs for augmentation on the device: decoded only, as {"image", "mask"} at their stored size."""

    def __init__(self, source: PairSource, decoder: MaskDecoder) -> None:
        super().__init__(source, decoder, None)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:  # type: ignore[override]
        image, mask = self.load(i)
        return {"image": image.as_subclass(torch.Tensor), "mask": mask.as_subclass(torch.Tensor)}


def collate(batch: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Stack images (B,3,H,W uint8) and masks (B,H,W uint8); validation batches add the list of `Original`s."""
    images, masks, *originals = zip(*batch)
    stacked = (torch.stack(images), torch.stack(masks))
    return (*stacked, list(originals[0])) if originals else stacked


class DeviceCollate:
    """Collate for augmentation on the device: DecodedPairs items become a PairBatch with its plan drawn;
    transformed pairs (validation) are stacked by `collate`."""

    def __init__(self, geometry: Geometry, augment: bool, flip: bool) -> None:
        self.geometry, self.augment, self.flip = geometry, augment, flip

    def __call__(self, batch: list[Any]) -> Any:
        if not isinstance(batch[0], dict):
            return collate(batch)
        return pair_batch([(item["image"], item["mask"]) for item in batch], self.geometry, self.augment, self.flip)


@dataclass
class Split:
    """One split's pairs and label map."""

    name: str
    source: PairSource
    label_map: LabelMap
    color_map: Optional[dict[int, int]]
    class_names: dict[int, str]


def _label_map_for(split: str, channels: dict[str, Path]) -> tuple[LabelMap, Optional[dict[int, int]], dict[int, str]]:
    """The split's file in the label_map channel (validation falls back to train's; a lone .json serves both)."""
    folder = channels.get("label_map")
    if folder is None or not folder.is_dir():
        return LabelMap(), None, {}
    files = sorted(p for p in folder.rglob("*.json") if p.is_file())
    for wanted in (f"{split}_label_map.json", "train_label_map.json", "label_map.json"):
        for path in files:
            if path.name == wanted:
                return read_label_map(path)
    if len(files) == 1:
        return read_label_map(files[0])
    if files:
        raise DataError(f"the label_map channel holds {', '.join(p.name for p in files)}; name them "
                        f"train_label_map.json and validation_label_map.json")
    return LabelMap(), None, {}


def _source(split: str, channels: dict[str, Path], pipe: dict[str, Path], mask_attribute: Optional[str]) -> PairSource:
    if split in pipe:
        return record_pairs(pipe[split], split)
    folder = channels[split]
    annotation = channels.get(f"{split}_annotation")
    if annotation is not None and annotation.is_dir():
        return folder_pairs(folder, annotation, split)
    manifests = find_manifests(folder)
    if len(manifests) == 1:
        return manifest_pairs(manifests[0], [folder, *[p for p in channels.values() if p != folder]], mask_attribute)
    if len(manifests) > 1:
        raise DataError(f"the {split} channel holds several manifests ({', '.join(p.name for p in manifests)}); keep one")
    raise DataError(f"the {split} channel has no '{split}_annotation' channel beside it and no augmented manifest; "
                    f"give images in '{split}' with same-named PNG masks in '{split}_annotation', or a Ground Truth "
                    f"manifest (.manifest/.jsonl) with source-ref and a '-ref' mask attribute")


def read_split(split: str, channels: dict[str, Path], pipe: dict[str, Path], mask_attribute: Optional[str]) -> Split:
    """Find one split's pairs and label map (`pipe`: the spooled .rec of each Pipe-mode split)."""
    source = _source(split, channels, pipe, mask_attribute)
    label_map, colors, names = _label_map_for(split, channels)
    if source.color_map:
        colors, names = source.color_map, {**names, **source.class_names}
    return Split(split, source, label_map, colors, names)


def sample_raw_masks(source: PairSource, count: int = SAMPLE_MASKS) -> list[np.ndarray]:
    """Stored values of up to `count` masks spread over the source."""
    if len(source) == 0:
        return []
    return [raw_values(*source.mask_bytes(i)) for i in spread_indices(len(source), count)]


def make_decoder(split: Split, num_classes: int, binary_255: bool) -> MaskDecoder:
    """The split's mask decoder."""
    if split.color_map and binary_255:
        raise ConfigError("binary_mask_255=true cannot be combined with a colour map; set binary_mask_255=auto or false")
    return MaskDecoder(num_classes, split.label_map, split.color_map, binary_255 and not split.color_map)


def check_pairs(dataset: SegmentationDataset, count: int = CHECK_PAIRS) -> None:
    """Decode a few pairs now so bad data fails before training starts."""
    for i in range(min(count, len(dataset))):
        dataset.load(i)


def binary_255(setting: str, num_classes: int, train: Split) -> bool:
    """Resolve binary_mask_255 from the train split's masks."""
    if setting == "auto" and (train.color_map or train.label_map != LabelMap()):
        return False
    samples = sample_raw_masks(train.source) if setting == "auto" and num_classes == 2 else []
    return decide_binary_255(setting, num_classes, samples, has_map=False)


def pixel_counts(dataset: SegmentationDataset, num_classes: int, limit: int = PIXEL_COUNT_MASKS) -> tuple[list[int], int]:
    """Labelled pixels per class in up to `limit` training masks spread over the set, and how many masks were read."""
    counts = np.zeros(num_classes, np.int64)
    picks = spread_indices(len(dataset), limit)
    for i in picks:
        mask = dataset.decoder.decode(*dataset.source.mask_bytes(i))
        counts += np.bincount(mask[mask < num_classes].ravel().astype(np.int64), minlength=num_classes)[:num_classes]
    return counts.tolist(), len(picks)


def class_names(num_classes: int, names: dict[int, str]) -> list[str]:
    """One name per class id: from a colour map where known, else the id."""
    return [names.get(i, str(i)) for i in range(num_classes)]


def describe(split: Split, dataset: SegmentationDataset) -> dict[str, Any]:
    """Facts about a split for the manifest."""
    return {"format": split.source.kind, "samples": len(dataset), "color_map": bool(split.color_map),
            "label_map": split.label_map.describe()}
