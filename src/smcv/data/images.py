"""Image decoding and encoding with Pillow: every stored mode normalised to the mode a task asks for."""

from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from smcv.contract import ENV_MAX_IMAGE_PIXELS
from smcv.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MODES = ("RGB", "L", "RGBA")
#: 50 Mpx: far above any model input (at most 1024 px a side), below 150 MB per decoded RGB image
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
#: leading bytes of formats Pillow reads, to name a format without opening it (some readers decode on open)
_FORMAT_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"), (b"\xffO\xffQ", "JPEG2000"),
    (b"8BPS", "PSD"), (b"qoif", "QOI"), (b"DDS ", "DDS"), (b"icns", "ICNS"), (b"%!PS", "EPS"),
    *((b"P" + bytes([digit]), "PPM") for digit in b"123456"), (b"Pf", "PFM"), (b"PF", "PFM"),
)
_FILE_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")
_PIXELS_IN_MESSAGE = re.compile(r"\((\d+) pixels\)")

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


class ImageTooLargeError(DataError):
    """An image whose header declares more pixels than SMCV_MAX_IMAGE_PIXELS allows (refused before decoding)."""

    def __init__(self, source: str, size: tuple[int, int] | None, pixels: int, limit: int) -> None:
        shown = f"{size[0]}x{size[1]} ({pixels / 1e6:.1f} Mpx)" if size else f"{pixels / 1e6:.1f} Mpx"
        self.reason = (f"the image is {shown}, above the limit of {limit / 1e6:g} Mpx; downscale it, "
                       f"or raise {ENV_MAX_IMAGE_PIXELS} (now {limit})")
        super().__init__(f"{source}: {self.reason}")
        self.size, self.pixels, self.limit = size, pixels, limit


class ImageFormatError(DataError):
    """An image in a format the caller does not accept (e.g. a GIF sent as image/png)."""

    def __init__(self, source: str, detected: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{source}: the image is {detected}, not {' or '.join(allowed)}")
        self.detected, self.allowed = detected, allowed


def max_image_pixels() -> int:
    """The pixel limit from $SMCV_MAX_IMAGE_PIXELS (default 50 Mpx); a bad value is a ConfigError."""
    raw = os.environ.get(ENV_MAX_IMAGE_PIXELS, "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{ENV_MAX_IMAGE_PIXELS}={raw!r} must be a positive pixel count (width x height), "
                          f"e.g. {DEFAULT_MAX_IMAGE_PIXELS}")
    return value


def detect_format(data: bytes) -> str | None:
    """Pillow's name of the image format from its magic bytes (nothing is decoded), or None when unknown."""
    head = bytes(data[:16])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return "AVIF" if head[8:12] in (b"avif", b"avis") else "HEIF"
    for signature, name in _FORMAT_SIGNATURES:
        if head.startswith(signature):
            return name
    if len(head) >= 3 and head[0] == 0x0A and head[1] <= 5 and head[2] == 1:
        return "PCX"
    try:  # TGA has no magic bytes; Pillow's TGA reader parses the header only
        with Image.open(io.BytesIO(data), formats=["TGA"]) as img:
            return img.format
    except Exception:  # Pillow raises many types for unknown bytes; any of them means "not identified"
        return None


def decode_reason(exc: BaseException) -> str:
    """Pillow's reason without the repr of the in-memory file it was given."""
    if isinstance(exc, UnidentifiedImageError):
        return "not a recognised image format"
    return _FILE_REPR.sub("the image", str(exc)) or type(exc).__name__


def open_image(data: bytes, source: str, formats: tuple[str, ...] | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Read only the header: refuse formats not in `formats` and sizes above the pixel limit; nothing is decoded."""
    limit = max_image_pixels() if max_pixels is None else max_pixels
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit  # Pillow's own bomb check must not refuse what our limit allows
    try:
        with warnings.catch_warnings():  # Pillow warns above its limit; ours (checked below) decides instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(formats) if formats else None)
    except Image.DecompressionBombError as exc:
        found = _PIXELS_IN_MESSAGE.search(str(exc))
        raise ImageTooLargeError(source, None, int(found.group(1)) if found else limit + 1, limit) from None
    except (OSError, SyntaxError, ValueError) as exc:
        detected = detect_format(data) if formats else None
        if detected and detected not in formats:
            raise ImageFormatError(source, detected, tuple(formats)) from None
        kind = sniff_image_type(data) or "unknown format"
        raise DataError(f"{source}: cannot decode image ({len(data)} bytes, {kind}): {decode_reason(exc)}; "
                        f"replace or remove this file") from None
    if img.width * img.height > limit:
        raise ImageTooLargeError(source, img.size, img.width * img.height, limit)
    return img


def _reduce(img: Image.Image, side: int) -> Image.Image:
    """Shrink by an integer factor while the shorter side stays >= 2 x side (modes reduce() cannot take are kept)."""
    factor = min(img.size) // (2 * side)
    if factor < 2:
        return img
    try:
        return img.reduce(factor)
    except ValueError:  # palette and 1-bit images: reduce() does not support them
        return img


def decode_image(data: bytes, source: str, mode: str | None = "RGB", *, formats: tuple[str, ...] | None = None,
                 max_pixels: int | None = None, reduce_to: int | None = None) -> Image.Image:
    """Decode image bytes (EXIF orientation applied) into `mode`; bad, too large or unwanted images raise DataError.

    With `reduce_to` (the side the caller resizes to anyway), images over twice that side are decoded smaller
    (JPEG draft, integer reduce); info["original_size"] keeps the full size (see original_size()).
    """
    img = open_image(data, source, formats, max_pixels)
    full = img.size
    try:
        if reduce_to and img.format == "JPEG":
            img.draft(None, (2 * reduce_to, 2 * reduce_to))
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        kind = sniff_image_type(data) or "unknown format"
        raise DataError(f"{source}: cannot decode image ({len(data)} bytes, {kind}): {decode_reason(exc)}; "
                        f"replace or remove this file") from None
    loaded = img.size
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a malformed EXIF block only loses the orientation, never the image
        pass
    if img.size != loaded and img.size == loaded[::-1]:
        full = full[::-1]
    img = _reduce(img, reduce_to) if reduce_to else img  # before the mode conversion multiplies the bytes
    try:
        img = normalise_mode(img, mode)
    except ValueError as exc:
        if mode is not None and mode not in MODES:
            raise
        raise DataError(f"{source}: unsupported colour mode {img.mode} ({exc}); "
                        f"save the image as RGB or grey") from None
    img = _reduce(img, reduce_to) if reduce_to else img  # 1-bit and palette images, now converted
    img.info["original_size"] = full
    return img


def original_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as sent, before decode_image(reduce_to=...) shrank it."""
    return tuple(img.info.get("original_size", img.size))


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
