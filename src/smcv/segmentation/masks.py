"""Masks: PNG bytes to class-id arrays, through the built-in's label maps or a Ground Truth colour map, validated."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from smcv.data.images import ImageTooLargeError, decode_reason, open_image
from smcv.errors import DataError

log = logging.getLogger(__name__)

IGNORE = 255
_INVALID = 0xFFFF
_SINGLE_CHANNEL = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L")
_SHOWN = 8


@dataclass(frozen=True)
class LabelMap:
    """The built-in label map: {"scale": "3"} (value // 3) or {"map": {"<class>": <pixel value>}}; 255 stays ignore."""

    scale: int = 1
    mapping: Optional[tuple[tuple[int, int], ...]] = None  # (class id, pixel value)

    def describe(self) -> str:
        """Short text for error messages."""
        if self.mapping is not None:
            return f"label map {{'map': {dict(self.mapping)}}}"
        return f"label map scale {self.scale}" if self.scale != 1 else "the default label map (pixel value = class id)"


def _hex_key(text: str, source: str) -> int:
    value = str(text).strip().lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    try:
        if len(value) != 6:
            raise ValueError
        return int(value, 16)
    except ValueError:
        raise DataError(f"{source}: {text!r} is not a hex colour like '#ff0000'") from None


def parse_color_map(obj: dict, source: str) -> tuple[dict[int, int], dict[int, str]]:
    """A colour map as (0xRRGGBB -> class id, class id -> name), from Ground Truth's internal-color-map
    ({"0": {"class-name": ..., "hex-color": "#ffffff"}}) or a plain {"#ff0000": 1}."""
    colors: dict[int, int] = {}
    names: dict[int, str] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            try:
                cls = int(key)
            except ValueError:
                raise DataError(f"{source}: colour-map key {key!r} is not a class id") from None
            if "hex-color" not in value:
                raise DataError(f"{source}: colour-map entry {key!r} has no 'hex-color'")
            colors[_hex_key(value["hex-color"], source)] = cls
            if value.get("class-name"):
                names[cls] = str(value["class-name"])
        else:
            try:
                colors[_hex_key(key, source)] = int(value)
            except (TypeError, ValueError):
                raise DataError(f"{source}: colour-map entry {key!r}: {value!r} is not a class id") from None
    if not colors:
        raise DataError(f"{source}: the colour map is empty")
    return colors, names


def parse_label_map(obj: Any, source: str) -> tuple[LabelMap, Optional[dict[int, int]], dict[int, str]]:
    """A label-map JSON object as (LabelMap, colour map or None, class names)."""
    if not isinstance(obj, dict):
        raise DataError(f"{source}: a label map is a JSON object like {{\"scale\": \"1\"}} or {{\"map\": {{\"0\": 5}}}}")
    for key in ("internal-color-map", "color_map", "colour_map"):
        if key in obj:
            colors, names = parse_color_map(obj[key], source)
            return LabelMap(), colors, names
    if "map" in obj:
        entries = obj["map"]
        try:
            pairs = tuple(sorted((int(cls), int(value)) for cls, value in entries.items()))
        except (AttributeError, TypeError, ValueError):
            raise DataError(f"{source}: 'map' must map class ids to pixel values, e.g. {{\"0\": 5, \"1\": 0}}") from None
        if any(not 0 <= value <= 255 for _, value in pairs):
            raise DataError(f"{source}: 'map' pixel values must be 0..255")
        return LabelMap(mapping=pairs), None, {}
    try:
        scale = int(float(obj.get("scale", 1)))
    except (TypeError, ValueError):
        raise DataError(f"{source}: 'scale' must be a positive integer, got {obj.get('scale')!r}") from None
    if scale < 1:
        raise DataError(f"{source}: 'scale' must be a positive integer, got {scale}")
    return LabelMap(scale=scale), None, {}


def read_label_map(path: Path) -> tuple[LabelMap, Optional[dict[int, int]], dict[int, str]]:
    """Read a label-map JSON file."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the label map ({exc}); it must be JSON like {{\"scale\": \"1\"}}") from None
    return parse_label_map(obj, str(path))


def open_mask(data: bytes, source: str):
    """Decode mask bytes with Pillow, without any mode conversion."""
    try:
        img = open_image(data, source)  # refuses sizes above SMCV_MAX_IMAGE_PIXELS before decoding
        img.load()
    except ImageTooLargeError:
        raise
    except DataError:
        raise DataError(f"{source}: cannot decode the mask (not a recognised image); masks must be PNG files") from None
    except Exception as exc:  # Pillow raises many types for bad files
        raise DataError(f"{source}: cannot decode the mask ({decode_reason(exc)}); masks must be PNG files") from None
    return img


def raw_values(data: bytes, source: str) -> np.ndarray:
    """The stored pixel values of a single-channel mask; other modes are a DataError."""
    img = open_mask(data, source)
    if img.mode not in _SINGLE_CHANNEL:
        raise DataError(
            f"{source}: the mask has {len(img.getbands())} channels (mode {img.mode}); masks must be single-channel "
            f"8-bit PNGs (mode L or P) holding class ids. Save it as a grey or palette PNG, or supply a colour map "
            f"(a Ground Truth manifest's internal-color-map, or {{\"color_map\": {{\"#rrggbb\": class}}}} in the label map)")
    return np.asarray(img).astype(np.int64 if img.mode.startswith("I") else np.uint8)


@dataclass
class MaskDecoder:
    """Turns mask bytes into an HxW uint8 array of class ids (255 = ignore), or raises DataError naming the file."""

    num_classes: int
    label_map: LabelMap = field(default_factory=LabelMap)
    color_map: Optional[dict[int, int]] = None
    binary_255: bool = False

    def __post_init__(self) -> None:
        self._lut = self._build_lut()
        if self.color_map:
            bad = sorted({c for c in self.color_map.values() if not 0 <= c < self.num_classes})
            if bad:
                raise DataError(f"the colour map has class ids {bad}, but num_classes={self.num_classes}; "
                                f"set num_classes to the number of classes in the colour map")

    def _build_lut(self) -> np.ndarray:
        lut = np.full(256, _INVALID, dtype=np.uint16)
        if self.binary_255:
            lut[0], lut[255] = 0, 1
            return lut
        if self.label_map.mapping is not None:
            for cls, value in self.label_map.mapping:
                if 0 <= cls < self.num_classes:
                    lut[value] = cls
        else:
            values = np.arange(255)
            classes = values // self.label_map.scale
            keep = classes < self.num_classes
            lut[values[keep]] = classes[keep]
        lut[IGNORE] = IGNORE
        return lut

    def decode(self, data: bytes, source: str) -> np.ndarray:
        """Class ids for one mask file's bytes."""
        if self.color_map:
            return self._decode_colors(data, source)
        raw = raw_values(data, source)
        if raw.dtype != np.uint8:
            if raw.size and (raw.min() < 0 or raw.max() > 255):
                self._fail(source, np.unique(raw[(raw < 0) | (raw > 255)]))
            raw = raw.astype(np.uint8)
        mapped = self._lut[raw]
        if (mapped == _INVALID).any():
            self._fail(source, np.unique(raw[mapped == _INVALID]))
        return mapped.astype(np.uint8)

    def _decode_colors(self, data: bytes, source: str) -> np.ndarray:
        img = open_mask(data, source).convert("RGB")
        rgb = np.asarray(img).astype(np.int32)
        keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        unique, inverse = np.unique(keys, return_inverse=True)
        unknown = [int(k) for k in unique if int(k) not in self.color_map]
        if unknown:
            shown = ", ".join(f"#{k:06x}" for k in unknown[:_SHOWN])
            known = ", ".join(f"#{k:06x}={c}" for k, c in list(self.color_map.items())[:_SHOWN])
            raise DataError(f"{source}: mask colours {shown} are not in the colour map ({known}); fix the mask or "
                            f"the manifest's internal-color-map")
        classes = np.array([self.color_map[int(k)] for k in unique], dtype=np.uint8)
        return classes[inverse].reshape(keys.shape)

    def _fail(self, source: str, values: Iterable[int]) -> None:
        shown = ", ".join(str(int(v)) for v in list(values)[:_SHOWN])
        if self.binary_255:
            raise DataError(f"{source}: mask values {shown} found, but binary_mask_255 reads masks as 0 = background "
                            f"and 255 = foreground only; set binary_mask_255=false if 255 means 'ignore'")
        raise DataError(
            f"{source}: mask values {shown} are not class ids for num_classes={self.num_classes} under "
            f"{self.label_map.describe()} (valid: 0..{self.num_classes - 1}, and 255 = ignore). Raise num_classes, fix "
            f"the mask, or give a label map (label_map channel: {{\"scale\": \"N\"}} or {{\"map\": ...}})")


def decide_binary_255(setting: str, num_classes: int, samples: Iterable[np.ndarray], has_map: bool) -> bool:
    """Whether 255 means foreground: 'true'/'false' as given; 'auto' = 2 classes, no label map, and the sampled
    masks hold only 0 and 255 with some 255."""
    if setting != "auto":
        return setting == "true"
    if num_classes != 2 or has_map:
        return False
    seen: set[int] = set()
    for values in samples:
        seen.update(int(v) for v in np.unique(values))
        if not seen <= {0, 255}:
            return False
    if 255 in seen:
        log.info("binary_mask_255=auto: the masks hold only 0 and 255 with num_classes=2, so 255 is read as "
                 "foreground (class 1); set binary_mask_255=false if 255 means 'ignore'")
        return True
    return False
