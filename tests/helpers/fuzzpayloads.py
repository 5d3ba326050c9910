"""Deterministic hostile /invocations payloads: odd-mode, truncated, corrupt and bomb images, wrong content types
and Accept headers, empty, oversized and garbage bodies, malformed requests and stalling clients.

`generate(task, count, seed, limit_bytes)` gives the same list for the same arguments (random.Random and numpy
generators seeded from `seed`), so a failing payload can be replayed by its index.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from tests.helpers.rawhttp import request_bytes

#: response types each task offers (docs/serving.md), to draw Accept headers from
OFFERED = {
    "classification": ["application/json", "application/jsonlines", "application/json;verbose"],
    "detection": ["application/json", "application/json;annotation=1", "application/jsonlines",
                  "application/json;verbose"],
    "segmentation": ["image/png", "application/x-recordio-protobuf", "application/x-protobuf", "application/json",
                     "application/json;probabilities=1", "application/json;verbose"],
}
IMAGE_TYPES = ["image/jpeg", "image/png", "application/x-image", "application/octet-stream"]
#: (mode, format) pairs Pillow writes; CMYK only as JPEG
MODES = [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGB", "PNG"), ("RGBA", "PNG"), ("I;16", "PNG"),
         ("L", "JPEG"), ("RGB", "JPEG"), ("CMYK", "JPEG"), ("RGB", "JPEG-progressive")]
OTHER_FORMATS = ["GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM"]
BAD_CONTENT_TYPES = ["text/csv", "application/json", "image/gif", "text/plain; charset=utf-8", "multipart/form-data",
                     "image", "/", ";;;", "IMAGE/JPEG;q=0", "application/x-image; boundary=\"x\"", "x" * 300,
                     "image/png\x7f", "application/x-recordio-protobuf"]
BAD_ACCEPTS = ["text/html", "image/gif", "application/xml;q=1, text/*", "garbage", ",,,", "*/*;q=0", "application/json;q=0",
               "application/json;verbose;n_predictions=0", "application/json;verbose;n_predictions=abc",
               "application/json;threshold=2", "application/json;threshold=-0.1", "application/json;threshold=nan",
               "application/json;n_predictions=99999999999999999999", "a" * 2000, "application/json;verbose=maybe",
               "*/*; q=abc", "image/*", "application/*;verbose"]
GARBAGE_JSON = [b"{", b"[]", b"null", b'{"instances": [[1, 2, 3]]}', b'{"image": "' + b"A" * 500 + b'"}',
                b'{"a": ' * 500 + b"1" + b"}" * 500, "{\"\u00e9\": \"\u2603\"}".encode(), b"\xff\xfe{\x00}\x00"]

#: kinds and their share of the payloads (they add up to 100)
KINDS = {"valid": 24, "odd_format": 5, "truncated": 14, "corrupt": 14, "garbage": 5, "bomb": 5, "content_type": 8,
         "empty": 3, "oversized": 4, "json": 4, "accept": 6, "malformed": 5, "slow": 3}


@dataclass(frozen=True)
class Payload:
    """One request: its raw bytes, and whether the client then stalls (keeps the connection open, sends nothing)."""

    index: int
    kind: str
    detail: str
    data: bytes
    #: a stalled request header: the server may close without an answer (it cannot know where to answer)
    may_close: bool = False


def generate(task: str, count: int, seed: int, limit_bytes: int) -> list[Payload]:
    """count payloads for a task; deterministic in (task, count, seed, limit_bytes)."""
    rng = random.Random(f"{seed}-{task}")
    kinds = [kind for kind, share in KINDS.items() for _ in range(share)]
    return [_payload(task, index, rng.choice(kinds), rng, limit_bytes) for index in range(count)]


def _payload(task: str, index: int, kind: str, rng: random.Random, limit: int) -> Payload:
    nprng = np.random.default_rng(rng.getrandbits(32))
    accept = rng.choice(OFFERED[task] + ["*/*", None])
    headers = {"Accept": accept} if accept else {}
    if kind == "valid":
        data, mode, fmt = _image(rng, nprng)
        content_type = rng.choice(["image/jpeg" if fmt == "JPEG" else "image/png", "application/x-image",
                                   "application/octet-stream"])
        return _post(index, kind, f"{mode} {fmt} {content_type}", data, content_type, headers)
    if kind == "odd_format":
        fmt = rng.choice(OTHER_FORMATS)
        data = _encode(Image.fromarray(nprng.integers(0, 256, (24, 20, 3), dtype=np.uint8), "RGB"), fmt)
        return _post(index, kind, fmt, data, rng.choice(IMAGE_TYPES), headers)
    if kind == "truncated":
        data, mode, fmt = _image(rng, nprng)
        cut = rng.randrange(0, len(data))
        return _post(index, kind, f"{mode} {fmt} cut at {cut}/{len(data)}", data[:cut], rng.choice(IMAGE_TYPES), headers)
    if kind == "corrupt":
        data, mode, fmt = _image(rng, nprng)
        body = bytearray(data)
        flips = rng.randint(1, 24)
        for _ in range(flips):
            position = rng.randrange(len(body))
            body[position] = rng.randrange(256)
        if rng.random() < 0.2:  # and a block moved
            start = rng.randrange(len(body))
            block = body[start:start + rng.randint(1, 64)]
            del body[start:start + len(block)]
            at = rng.randrange(len(body) + 1)
            body[at:at] = block
        return _post(index, kind, f"{mode} {fmt} {flips} byte(s) changed", bytes(body), rng.choice(IMAGE_TYPES), headers)
    if kind == "garbage":
        size = rng.choice([1, 2, 8, 100, 1000, 5000])
        data = bytes(nprng.integers(0, 256, size, dtype=np.uint8))
        if rng.random() < 0.3:  # a real magic number and garbage behind it
            data = rng.choice([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"RIFF"]) + data
        return _post(index, kind, f"{len(data)} random bytes", data, rng.choice(IMAGE_TYPES), headers)
    if kind == "bomb":
        which = rng.choice(["png-1bit-12000", "png-header-only", "jpeg-header-65000", "png-wide"])
        data = {"png-1bit-12000": _png_bomb, "png-header-only": lambda: _png_header(100_000, 100_000, 8, 2),
                "jpeg-header-65000": _jpeg_huge_header, "png-wide": lambda: _png_header(2_000_000_000, 1, 8, 0)}[which]()
        content_type = rng.choice(["image/jpeg" if which.startswith("jpeg") else "image/png", "application/x-image"])
        return _post(index, kind, which, data, content_type, headers)
    if kind == "content_type":
        data, mode, fmt = _image(rng, nprng)
        choice = rng.random()
        if choice < 0.3:
            content_type, detail = None, "missing"
        elif choice < 0.6:  # the other image type than the bytes
            content_type = "image/png" if fmt == "JPEG" else "image/jpeg"
            detail = f"{fmt} sent as {content_type}"
        else:
            content_type = rng.choice(BAD_CONTENT_TYPES)
            detail = content_type[:40]
        return _post(index, kind, detail, data, content_type, headers)
    if kind == "empty":
        content_type = rng.choice(IMAGE_TYPES + [None, "application/json"])
        length = rng.choice([-1, None])  # Content-Length: 0, or none at all
        return Payload(index, kind, f"{content_type} length={length}",
                       request_bytes("POST", "/invocations", b"", _with_type(headers, content_type), length=length))
    if kind == "oversized":
        size = limit + rng.choice([1, 1000, 65536, 300_000])
        data, _, _ = _image(rng, nprng, small=True)
        body = (data * (size // len(data) + 1))[:size]
        how = rng.choice(["declared", "chunked", "declared-partial"])
        if how == "declared-partial":  # declares the size, sends a little, waits for the 413
            raw = request_bytes("POST", "/invocations", body[:1000], {**headers, "Content-Type": "image/png"},
                                length=size)
        else:
            raw = request_bytes("POST", "/invocations", body, {**headers, "Content-Type": "image/png"},
                                chunked=how == "chunked")
        return Payload(index, kind, f"{how} {size} bytes", raw)
    if kind == "json":
        body = rng.choice(GARBAGE_JSON)
        return _post(index, kind, body[:30].decode("latin-1"), body, rng.choice(["application/json", "application/x-image",
                                                                                  "image/png"]), headers)
    if kind == "accept":
        data, mode, fmt = _image(rng, nprng, small=True)
        accept = rng.choice(BAD_ACCEPTS)
        return _post(index, kind, accept[:60], data, "application/x-image", {"Accept": accept})
    if kind == "malformed":
        return _malformed(index, rng)
    return _slow(index, rng, nprng)


def _post(index: int, kind: str, detail: str, body: bytes, content_type, headers: dict) -> Payload:
    return Payload(index, kind, detail, request_bytes("POST", "/invocations", body, _with_type(headers, content_type)))


def _with_type(headers: dict, content_type) -> dict:
    return {**headers, "Content-Type": content_type} if content_type is not None else dict(headers)


def _malformed(index: int, rng: random.Random) -> Payload:
    which = rng.choice(["get-invocations", "unknown-path", "bad-request-line", "huge-header", "bad-length",
                        "http10", "delete-ping", "nul-in-header", "bad-chunked"])
    raw = {
        "get-invocations": lambda: request_bytes("GET", "/invocations"),
        "unknown-path": lambda: request_bytes("POST", "/" + "x" * rng.randint(1, 300), b"abc",
                                              {"Content-Type": "image/png"}),
        "bad-request-line": lambda: b"GARBAGE \x01\x02\r\n\r\n",
        "huge-header": lambda: request_bytes("POST", "/invocations", b"x", {"X-Big": "a" * 9000}),
        "bad-length": lambda: (b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                               b"Content-Type: image/png\r\nContent-Length: -5\r\n\r\nabc"),
        "http10": lambda: b"POST /invocations HTTP/1.0\r\nContent-Type: image/png\r\nContent-Length: 3\r\n\r\nabc",
        "delete-ping": lambda: request_bytes("DELETE", "/ping"),
        "nul-in-header": lambda: (b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                  b"Content-Type: image/\x00png\r\nContent-Length: 3\r\n\r\nabc"),
        "bad-chunked": lambda: (b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                b"Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
    }[which]()
    return Payload(index, "malformed", which, raw)


def _slow(index: int, rng: random.Random, nprng: np.random.Generator) -> Payload:
    """A client that sends part of its request and then stalls (the connection stays open, nothing more comes)."""
    data, _, fmt = _image(rng, nprng, small=True)
    if rng.random() < 0.75:  # the whole header, part of the body: the server must answer 408
        raw = request_bytes("POST", "/invocations", data, {"Content-Type": "application/x-image"})
        cut = len(raw) - len(data) + rng.randrange(0, len(data))
        return Payload(index, "slow", f"body {cut}/{len(raw)} bytes then stall", raw[:cut])
    raw = request_bytes("POST", "/invocations", data, {"Content-Type": "application/x-image"})
    cut = rng.randrange(1, raw.index(b"\r\n\r\n"))
    return Payload(index, "slow", f"header {cut} bytes then stall", raw[:cut], may_close=True)


def _image(rng: random.Random, nprng: np.random.Generator, small: bool = False) -> tuple[bytes, str, str]:
    """An encoded image of a random mode, format and size (1 to 400 px a side, most of them small)."""
    mode, fmt = rng.choice(MODES)
    side = rng.choice([1, 2, 3, 7, 16, 33, 64, 100] if small else [1, 2, 7, 16, 33, 64, 100, 150, 257, 400])
    width, height = max(1, side + rng.randint(-side // 2, side)), side
    return _encode(_noise(mode, width, height, nprng), fmt), mode, fmt.split("-")[0]


def _noise(mode: str, width: int, height: int, nprng: np.random.Generator) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray(nprng.integers(0, 65536, (height, width), dtype=np.uint16))  # a 16-bit grey PNG
    rgba = Image.fromarray(nprng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    if mode == "P":
        return rgba.convert("RGB").quantize(colors=int(nprng.integers(2, 256)))
    return rgba.convert(mode)


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG-progressive":
        image.save(out, format="JPEG", progressive=True, quality=80)
    elif fmt == "ICO":
        image.resize((16, 16)).save(out, format="ICO")
    else:
        image.save(out, format=fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_header(width: int, height: int, depth: int, colour: int, idat: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + (_chunk(b"IDAT", idat) if idat else b"") + _chunk(b"IEND", b"")


@lru_cache(maxsize=1)
def _png_bomb() -> bytes:
    """A valid 12000 x 12000 1-bit PNG (all black): about 18 KB on the wire, 144 Mpx once decoded."""
    row = b"\x00" + b"\x00" * (12000 // 8)
    return _png_header(12000, 12000, 1, 0, zlib.compress(row * 12000, 9))


@lru_cache(maxsize=1)
def _jpeg_huge_header() -> bytes:
    """A small real JPEG whose frame header (SOF0) claims 65000 x 65000 pixels."""
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(out, format="JPEG")
    data = bytearray(out.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)
