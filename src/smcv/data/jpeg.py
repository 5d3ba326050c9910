"""JPEG decoding on a device (nvJPEG on a GPU, libjpeg on the CPU) for batches that Pillow has only header-checked:
which JPEGs the device decoder is given, and the decode that lets only the bad ones fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from smcv.contract import jpeg_decode_setting
from smcv.data.images import decode_image, open_image
from smcv.errors import ConfigError, DataError

#: EXIF orientation tag; the device decoder is only given JPEGs that need no rotation
_ORIENTATION = 0x0112
#: the JPEG end-of-image marker; a body without it is left to Pillow, which names the truncation
_JPEG_END = b"\xff\xd9"
#: how the training log says that JPEGs are decoded on the training device
DEVICE_DECODE_NOTE = ("JPEG images are decoded there too (batched decode_jpeg, nvJPEG on a GPU), the workers only "
                      "read their bytes")
#: Pillow's mode of a baseline JPEG -> the device decoder's mode giving the same pixels
_READ_MODES = {"RGB": ImageReadMode.RGB, "L": ImageReadMode.GRAY}


def decode_on_device(gpu: bool) -> bool:
    """Whether JPEGs are kept encoded for the batched device decode: $SMCV_JPEG_DECODE, auto meaning on a GPU (on a
    CPU, Pillow in the request threads or DataLoader workers runs the same libjpeg-turbo in parallel)."""
    try:
        wanted = jpeg_decode_setting()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return wanted == "device" or (wanted == "auto" and gpu)


@dataclass
class EncodedJpeg:
    """A training image left encoded for the device decoder: its bytes, stored size, Pillow mode and file name."""

    data: torch.Tensor  # (bytes,) uint8
    height: int
    width: int
    mode: str  # "RGB" or "L"
    source: str  # how errors name it

    def pin_memory(self) -> "EncodedJpeg":
        """The bytes pinned (DataLoader pin_memory), for the copy the device decoder makes."""
        return EncodedJpeg(self.data.pin_memory(), self.height, self.width, self.mode, self.source)


def device_decodable(header: Image.Image, data: bytes, mode: str = "RGB") -> bool:
    """A JPEG stored in `mode` (RGB colour or L grey) that needs no EXIF rotation and ends with its end marker (what
    the device decoder is given)."""
    if (header.format != "JPEG" or header.mode != mode or mode not in _READ_MODES
            or not data[-4096:].rstrip(b"\0").endswith(_JPEG_END)):
        return False
    try:
        return header.getexif().get(_ORIENTATION, 1) == 1
    except Exception:  # a malformed EXIF block: let Pillow decode it (it ignores such blocks)
        return False


def encoded_jpeg(data: bytes, source: str, mode: str) -> Optional[EncodedJpeg]:
    """The header-checked training JPEG the device decoder takes (None: decode it with Pillow); a bad header or one
    over the pixel limit raises DataError naming `source`."""
    header = open_image(data, source)
    if not device_decodable(header, data, mode):
        return None
    return EncodedJpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), header.height, header.width, mode, source)


def decode_or_pillow(jpegs: Sequence[Union[bytes, torch.Tensor]], sizes: Sequence[tuple[int, int]],
                     sources: Sequence[str], device: torch.device,
                     mode: str = "RGB") -> list[Union[torch.Tensor, DataError]]:
    """decode_jpegs, then Pillow (on the CPU) for each JPEG the device decoder refused or decoded to another (height,
    width) than `sizes` says: a valid image nvJPEG cannot read still decodes, a broken one is Pillow's DataError
    naming its source."""
    found = decode_jpegs(jpegs, device, mode)
    for number, pixels in enumerate(found):
        if not isinstance(pixels, torch.Tensor) or tuple(pixels.shape[-2:]) != tuple(sizes[number]):
            found[number] = _pillow_pixels(jpegs[number], sources[number], mode)
    return found


def _pillow_pixels(data: Union[bytes, torch.Tensor], source: str, mode: str) -> Union[torch.Tensor, DataError]:
    raw = data.numpy().tobytes() if isinstance(data, torch.Tensor) else data
    try:
        return F.pil_to_tensor(decode_image(raw, source, mode, formats=("JPEG",)))
    except DataError as exc:
        return exc


def decode_jpegs(jpegs: Sequence[Union[bytes, torch.Tensor]], device: torch.device,
                 mode: str = "RGB") -> list[Union[torch.Tensor, DataError]]:
    """uint8 CHW images in `mode` decoded together on `device`; when the batch fails, each image is decoded alone
    so only the bad ones fail, each as a DataError naming the decoder's reason."""
    encoded = [data if isinstance(data, torch.Tensor) else torch.frombuffer(bytearray(data), dtype=torch.uint8)
               for data in jpegs]
    try:
        return list(_decode(encoded, device, mode))
    except RuntimeError:
        pass
    found: list[Union[torch.Tensor, DataError]] = []
    for one in encoded:
        try:
            found.append(_decode([one], device, mode)[0])
        except RuntimeError as exc:
            found.append(DataError(f"cannot decode the JPEG: {decoder_reason(exc)}"))
    return found


def _decode(encoded: list[torch.Tensor], device: torch.device, mode: str) -> list[torch.Tensor]:
    if device.type == "cuda":
        # torchvision allocates the outputs on the caller's stream, but nvJPEG (its hardware engine above all) writes
        # them without waiting for that stream: a block the caching allocator recycled from a tensor that queued
        # kernels still read would be overwritten under them (pytorch/vision#9606, meta-pytorch/torchcodec#1634).
        # With the stream drained first, every recycled block is really free. The stream is the preparing one
        # (serving's side stream, the trainer's staging stream), so this waits for the previous batch's
        # preparation, not for the model.
        torch.cuda.current_stream(device).synchronize()
    return decode_jpeg(encoded, mode=_READ_MODES[mode], device=device)


def decoder_reason(exc: BaseException) -> str:
    """torchvision's message without its source-file prefix ('decode_jpeg, /path/x.cpp:171, Image is truncated')."""
    return str(exc).rsplit(", ", 1)[-1].strip() or type(exc).__name__
