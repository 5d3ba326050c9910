"""Image decoding and encoding with Pillow: every stored mode normalised to the mode a task asks for."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image, ImageOps

from smcv.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MODES = ("RGB", "L", "RGBA")

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def sniff_image_type(data: bytes) -> str | None:
    """The image MIME type from the leading magic bytes, or None when it is not a known image format."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _SIGNATURES:
        if head.startswith(signature):
            return mime
    return None


def _to_8bit(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float grey images to 8-bit 'L' (16-bit range 0..65535 maps onto 0..255)."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        arr = arr * 255.0 if arr.size and np.nanmax(arr) <= 1.0 else arr
        out = np.clip(np.nan_to_num(arr), 0, 255)
    else:
        out = np.clip(arr.astype(np.int64), 0, 65535) / 257.0
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="L")


def normalise_mode(img: Image.Image, mode: str | None = "RGB") -> Image.Image:
    """Convert a decoded image to `mode` ('RGB', 'L', 'RGBA'; None keeps palette/grey/colour, only fixing bit depth).

    Alpha is dropped, not composited, as cv2.imread (used by MXNet's tools) does.
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"unsupported image mode {mode!r}; use one of {MODES} or None")
    if img.mode.startswith("I") or img.mode == "F":
        img = _to_8bit(img)
    elif img.mode == "1":
        img = img.convert("L")
    if mode is None:
        if img.mode in ("LA", "PA"):
            return img.convert(img.mode[0])
        return img if img.mode in ("L", "P", "RGB", "RGBA") else img.convert("RGB")
    if img.mode == mode:
        return img
    if mode == "L" and img.mode in ("RGBA", "LA", "PA", "P"):
        img = img.convert("RGB")  # luminance of the colours, alpha ignored
    return img.convert(mode)


def decode_image(data: bytes, source: str, mode: str | None = "RGB") -> Image.Image:
    """Decode image bytes (EXIF orientation applied) into `mode`; undecodable or truncated bytes raise DataError."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        kind = sniff_image_type(data) or "unknown format"
        raise DataError(f"{source}: cannot decode image ({len(data)} bytes, {kind}): {exc}; "
                        f"replace or remove this file") from None
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a malformed EXIF block only loses the orientation, never the image
        pass
    try:
        return normalise_mode(img, mode)
    except ValueError as exc:
        if mode is not None and mode not in MODES:
            raise
        raise DataError(f"{source}: unsupported colour mode {img.mode} ({exc}); "
                        f"save the image as RGB or grey") from None


def load_image(path: str | os.PathLike, mode: str | None = "RGB") -> Image.Image:
    """Read and decode an image file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file ({exc})") from None
    return decode_image(data, str(path), mode)


def encode_image(img: Image.Image, fmt: str = ".jpg", quality: int = 95) -> bytes:
    """Encode an image as JPEG (quality 1-100, alpha dropped) or PNG/BMP/TIFF (lossless)."""
    key = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
    if key not in _FORMATS:
        raise ValueError(f"unsupported image encoding {fmt!r}; use one of {sorted(_FORMATS)}")
    out = io.BytesIO()
    if _FORMATS[key] == "JPEG":
        if img.mode not in ("RGB", "L"):
            grey = img.mode.startswith("I") or img.mode in ("F", "LA", "1")
            img = normalise_mode(img, "L" if grey else "RGB")
        img.save(out, format="JPEG", quality=int(quality))
    else:
        img.save(out, format=_FORMATS[key])
    return out.getvalue()
