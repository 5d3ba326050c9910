"""Tests for smcv.data.images: every stored mode decodes to the requested mode."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from smcv.data.images import IMAGE_EXTENSIONS, decode_image, encode_image, load_image, sniff_image_type
from smcv.errors import DataError


def _save(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kw)
    return out.getvalue()


def _png_rgb16(pixels: list[tuple[int, int, int]]) -> bytes:
    """A 1-row 16-bit-per-channel RGB PNG, written by hand (Pillow cannot write one)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" + b"".join(struct.pack(">HHH", *p) for p in pixels)
    ihdr = struct.pack(">IIBBBBB", len(pixels), 1, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row)) + chunk(b"IEND", b"")


def test_extensions():
    assert set(IMAGE_EXTENSIONS) == {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


@pytest.mark.parametrize("stored", ["L", "RGB", "RGBA", "LA", "P", "1", "I;16", "CMYK"])
@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_every_mode_converts(stored, mode):
    img = Image.new(stored, (5, 3))
    fmt = "JPEG" if stored == "CMYK" else "PNG"
    out = decode_image(_save(img, fmt), "x", mode)
    assert out.mode == mode and out.size == (5, 3)


def test_16bit_grey_is_scaled_not_clipped():
    arr = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    data = _save(Image.fromarray(arr))
    assert np.asarray(decode_image(data, "g16.png", "L")).tolist() == [[0, 100, 255]]
    assert np.asarray(decode_image(data, "g16.png", "RGB"))[0, 1].tolist() == [100, 100, 100]
    assert decode_image(data, "g16.png", None).mode == "L"


def test_16bit_rgb_png():
    data = _png_rgb16([(65535, 0, 257 * 10), (0, 65535, 0)])
    assert np.asarray(decode_image(data, "c16.png")).tolist() == [[[255, 0, 10], [0, 255, 0]]]


def test_alpha_is_dropped_and_palette_expanded():
    rgba = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    assert np.asarray(decode_image(_save(rgba), "a.png")).tolist() == [[[10, 20, 30]] * 2]
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    pal.putpixel((1, 0), 1)
    data = _save(pal, transparency=0)
    assert np.asarray(decode_image(data, "p.png"))[0, 1].tolist() == [200, 100, 50]
    kept = decode_image(data, "p.png", None)  # masks: keep the palette indices
    assert kept.mode == "P" and np.asarray(kept).tolist() == [[0, 1]]


def test_exif_orientation_applied():
    img = Image.new("RGB", (4, 2), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = decode_image(_save(img, "JPEG", exif=exif), "r.jpg")
    assert out.size == (2, 4)


def test_undecodable_and_truncated_bytes():
    with pytest.raises(DataError, match=r"bad\.jpg: cannot decode image \(9 bytes, unknown format\)"):
        decode_image(b"not image", "bad.jpg")
    jpeg = _save(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    with pytest.raises(DataError, match=r"cut\.jpg: cannot decode image .*image/jpeg"):
        decode_image(jpeg[: len(jpeg) // 2], "cut.jpg")
    with pytest.raises(DataError, match="cannot decode"):
        decode_image(b"", "empty.png")


def test_load_image(tmp_path):
    path = tmp_path / "a.bmp"
    Image.new("RGB", (3, 2), (1, 2, 3)).save(path)
    assert load_image(path).size == (3, 2)
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "missing.png")


def test_encode_and_sniff():
    img = Image.new("RGB", (8, 8), (0, 128, 255))
    jpg, png = encode_image(img, ".jpg", 90), encode_image(img, "png")
    assert sniff_image_type(jpg) == "image/jpeg" and sniff_image_type(png) == "image/png"
    assert np.asarray(decode_image(png, "x")).tolist() == np.asarray(img).tolist()
    assert sniff_image_type(encode_image(Image.new("RGBA", (2, 2)), ".jpg")) == "image/jpeg"
    assert sniff_image_type(encode_image(img, ".bmp")) == "image/bmp"
    assert sniff_image_type(encode_image(img, ".tiff")) == "image/tiff"
    assert sniff_image_type(b"GIF89a....") == "image/gif"
    assert sniff_image_type(b"RIFF\0\0\0\0WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"{}") is None
    with pytest.raises(ValueError, match="unsupported image encoding"):
        encode_image(img, ".gif")
