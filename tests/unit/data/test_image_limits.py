"""Tests for smcv.data.images limits: decompression bombs refused before decoding, format lists, reduced decoding."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageFile

from smcv.classification.datasets import ClassificationDataset
from smcv.classification.sources import FileItem
from smcv.data.images import (DEFAULT_MAX_IMAGE_PIXELS, ImageFormatError, ImageTooLargeError, decode_image,
                              load_image, max_image_pixels, open_image, original_size)
from smcv.errors import ConfigError, DataError


def bomb_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of width x height: a few KB on disk, width x height bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(row * height, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encoded(fmt: str, size: tuple[int, int] = (6, 4), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 90).save(out, format=fmt)
    return out.getvalue()


@pytest.fixture
def loads(monkeypatch):
    """Every ImageFile.load() call (the step that allocates the pixels), recorded."""
    calls = []
    original = ImageFile.ImageFile.load

    def spy(self):
        calls.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_bomb_is_refused_from_its_header_before_any_pixel_is_decoded(loads):
    data = bomb_png(12000, 12000)
    assert len(data) < 64 * 1024
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(data, "train/cat/bomb.png")
    assert loads == []
    message = str(info.value)
    assert message.startswith("DataError: train/cat/bomb.png: the image is 12000x12000 (144.0 Mpx)")
    assert "SMCV_MAX_IMAGE_PIXELS" in message and "\n" not in message
    assert isinstance(info.value, DataError) and info.value.limit == DEFAULT_MAX_IMAGE_PIXELS


def test_bomb_beyond_pillows_own_error_limit_is_the_same_error_without_warnings(loads):
    data = bomb_png(14000, 14000)  # 196 Mpx: above 2 x Pillow's default limit, where Pillow itself raises
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageTooLargeError, match=r"b.png: the image is 196.0 Mpx, above the limit of 50 Mpx"):
            decode_image(data, "b.png")
        with pytest.raises(ImageTooLargeError):
            decode_image(bomb_png(12000, 12000), "c.png")  # between Pillow's warning and error limits
    assert loads == []


def test_raised_limit_is_not_overruled_by_pillows_global_limit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = open_image(bomb_png(14000, 14000), "big.png", max_pixels=200_000_000)
    assert img.size == (14000, 14000)  # header read only; the caller's limit, not Pillow's, decides


def test_limit_from_environment(monkeypatch):
    monkeypatch.setenv("SMCV_MAX_IMAGE_PIXELS", "100")
    assert max_image_pixels() == 100
    assert decode_image(encoded("PNG", (10, 10)), "ok.png").size == (10, 10)
    with pytest.raises(ImageTooLargeError, match=r"11x10 .*limit of 0\.0001 Mpx.*SMCV_MAX_IMAGE_PIXELS \(now 100\)"):
        decode_image(encoded("PNG", (11, 10)), "big.png")
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv("SMCV_MAX_IMAGE_PIXELS", bad)
        with pytest.raises(ConfigError, match="SMCV_MAX_IMAGE_PIXELS"):
            max_image_pixels()


def test_training_image_over_the_limit_is_a_data_error_naming_the_file(tmp_path, loads):
    path = tmp_path / "dog" / "huge.png"
    path.parent.mkdir()
    path.write_bytes(bomb_png(12000, 12000))
    with pytest.raises(DataError, match=f"{path}: the image is 12000x12000"):
        load_image(path)
    dataset = ClassificationDataset([FileItem(path, (0.0,))], [], "RGB", 2, False, transform=lambda x: x)
    with pytest.raises(DataError, match=f"{path}: the image is 12000x12000"):
        dataset[0]
    assert loads == []


def test_mask_over_the_limit_is_a_data_error(loads):
    from smcv.segmentation.masks import open_mask

    with pytest.raises(ImageTooLargeError, match="masks/a.png: the image is 12000x12000"):
        open_mask(bomb_png(12000, 12000), "masks/a.png")
    assert loads == []


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM", "TGA", "PCX", "JPEG"])
def test_only_the_listed_formats_are_decoded(fmt, loads):
    data = encoded(fmt, (16, 16))
    with pytest.raises(ImageFormatError) as info:
        decode_image(data, "request body", formats=("PNG",))
    assert info.value.detected == fmt and "request body: the image is " + fmt in str(info.value)
    assert loads == []
    assert decode_image(data, "any.img").size == (16, 16)  # without a list, every Pillow format decodes


def test_undecodable_bytes_name_the_source_not_an_in_memory_file():
    for formats in (None, ("PNG",)):
        with pytest.raises(DataError) as info:
            decode_image(b"definitely not an image", "upload.png", formats=formats)
        message = str(info.value)
        assert "upload.png: cannot decode image" in message and "not a recognised image format" in message
        assert "BytesIO" not in message and " at 0x" not in message


def test_oversized_inputs_decode_smaller_and_keep_their_original_size(loads):
    jpeg = decode_image(encoded("JPEG", (4000, 3000)), "big.jpg", reduce_to=100)
    assert set(loads) == {(500, 375)}  # JPEG draft: the decoder itself produced 1/8 of the pixels
    assert jpeg.size == (500, 375) and original_size(jpeg) == (4000, 3000)
    png = decode_image(encoded("PNG", (2000, 1000)), "big.png", reduce_to=100)
    assert png.size == (400, 200) and original_size(png) == (2000, 1000)
    small = decode_image(encoded("PNG", (300, 200)), "small.png", reduce_to=100)
    assert small.size == (300, 200) and original_size(small) == (300, 200)
