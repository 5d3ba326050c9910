"""One request's image as the request thread leaves it: uint8 pixels decoded on the CPU, or JPEG bytes kept for the
batched decode on the device (smcv.serving.prepare resizes either after batching)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from smcv.data.images import decode_image, open_image, original_size
from smcv.errors import DataError

#: EXIF orientation tag; the device decoder is only given JPEGs that need no rotation
_ORIENTATION = 0x0112
#: the JPEG end-of-image marker; a body without it is left to Pillow, which names the truncation
_JPEG_END = b"\xff\xd9"


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


def device_decodable(header: Image.Image, data: bytes) -> bool:
    """A colour JPEG that needs no EXIF rotation and ends with its end marker (what the device decoder is given)."""
    if header.format != "JPEG" or header.mode != "RGB" or not data[-4096:].rstrip(b"\0").endswith(_JPEG_END):
        return False
    try:
        return header.getexif().get(_ORIENTATION, 1) == 1
    except Exception:  # a malformed EXIF block: let Pillow decode it (it ignores such blocks)
        return False


def read(data: bytes, source: str, mode: str, formats: tuple[str, ...], *, max_pixels: Optional[int] = None,
         reduce_to: Optional[int] = None, keep_jpeg: bool = False) -> RequestImage:
    """Check the header (format, pixel limit) and either keep a device-decodable RGB JPEG or decode with Pillow."""
    if keep_jpeg and mode == "RGB":
        header = open_image(data, source, formats, max_pixels)
        if device_decodable(header, data):
            return RequestImage(None, data, header.size, header.size)
    return from_pil(decode_image(data, source, mode, formats=formats, max_pixels=max_pixels, reduce_to=reduce_to))


def decode_jpegs(jpegs: Sequence[bytes], device: torch.device) -> list[Union[torch.Tensor, DataError]]:
    """RGB uint8 CHW images decoded together on `device` (nvJPEG on a GPU); when the batch fails, each image is
    decoded alone so only the bad ones fail, each as a DataError naming the decoder's reason."""
    encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in jpegs]
    try:
        return list(_decode(encoded, device))
    except RuntimeError:
        pass
    found: list[Union[torch.Tensor, DataError]] = []
    for one in encoded:
        try:
            found.append(_decode([one], device)[0])
        except RuntimeError as exc:
            found.append(DataError(f"cannot decode the JPEG: {decoder_reason(exc)}"))
    return found


def _decode(encoded: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)


def decoder_reason(exc: BaseException) -> str:
    """torchvision's message without its source-file prefix ('decode_jpeg, /path/x.cpp:171, Image is truncated')."""
    return str(exc).rsplit(", ", 1)[-1].strip() or type(exc).__name__


def pixels_of(images: Sequence[RequestImage], device: torch.device) -> list[Union[torch.Tensor, DataError]]:
    """Every image's uint8 CHW pixels: Pillow-decoded ones as they are, kept JPEGs decoded together on `device`; a
    JPEG the device decoder refuses (or decodes to another size than its header's) is decoded by Pillow instead, so
    a valid image nvJPEG cannot read still gets its answer, and a broken one fails alone with Pillow's reason."""
    found: list[Union[torch.Tensor, DataError, None]] = [image.pixels for image in images]
    kept = [number for number, image in enumerate(images) if image.jpeg is not None]
    if kept:
        decoded = decode_jpegs([images[number].jpeg for number in kept], device)  # type: ignore[misc]
        for number, pixels in zip(kept, decoded):
            width, height = images[number].size
            if not isinstance(pixels, torch.Tensor) or tuple(pixels.shape[-2:]) != (height, width):
                pixels = _pillow_pixels(images[number].jpeg)  # type: ignore[arg-type]
            found[number] = pixels
    return found  # type: ignore[return-value]


def _pillow_pixels(jpeg: bytes) -> Union[torch.Tensor, DataError]:
    """RGB uint8 CHW pixels by Pillow (the header was checked when the request arrived), or its DataError."""
    try:
        return F.pil_to_tensor(decode_image(jpeg, "request body", "RGB", formats=("JPEG",)))
    except DataError as exc:
        return exc
