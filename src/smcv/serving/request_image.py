"""One request's image as the request thread leaves it: uint8 pixels decoded on the CPU, or JPEG bytes kept for the
batched decode on the device (smcv.serving.prepare resizes either after batching)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from smcv.data.images import decode_image, open_image, original_size
from smcv.data.jpeg import decode_or_pillow, device_decodable
from smcv.errors import DataError


@dataclass(frozen=True)
class RequestImage:
    """Decoded uint8 CHW `pixels`, or `jpeg` bytes to decode on the device; `size` (width, height) is what the
    network will see, `original_size` the size as sent (larger when Pillow decoded it smaller)."""

    pixels: Optional[torch.Tensor]
    jpeg: Optional[bytes]
    size: tuple[int, int]
    original_size: tuple[int, int]


def from_pil(image: Image.Image) -> RequestImage:
    """A decoded image (already in the predictor's mode) as uint8 CHW pixels."""
    return RequestImage(F.pil_to_tensor(image), None, image.size, original_size(image))


def read(data: bytes, source: str, mode: str, formats: tuple[str, ...], *, max_pixels: Optional[int] = None,
         reduce_to: Optional[int] = None, keep_jpeg: bool = False) -> RequestImage:
    """Check the header (format, pixel limit) and either keep a device-decodable RGB JPEG or decode with Pillow."""
    if keep_jpeg and mode == "RGB":
        header = open_image(data, source, formats, max_pixels)
        if device_decodable(header, data):
            return RequestImage(None, data, header.size, header.size)
    return from_pil(decode_image(data, source, mode, formats=formats, max_pixels=max_pixels, reduce_to=reduce_to))


def pixels_of(images: Sequence[RequestImage], device: torch.device) -> list[Union[torch.Tensor, DataError]]:
    """Every image's uint8 CHW pixels: Pillow-decoded ones as they are, kept JPEGs decoded together on `device`; a
    JPEG the device decoder refuses (or decodes to another size than its header's) is decoded by Pillow instead, so
    a valid image nvJPEG cannot read still gets its answer, and a broken one fails alone with Pillow's reason."""
    found: list[Union[torch.Tensor, DataError, None]] = [image.pixels for image in images]
    kept = [number for number, image in enumerate(images) if image.jpeg is not None]
    if kept:
        decoded = decode_or_pillow([images[number].jpeg for number in kept],  # type: ignore[misc]
                                   [images[number].size[::-1] for number in kept], ["request body"] * len(kept), device)
        for number, pixels in zip(kept, decoded):
            found[number] = pixels
    return found  # type: ignore[return-value]
