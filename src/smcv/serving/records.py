"""Several images in one request: JSON Lines in (one base64 image per line), JSON Lines out (one answer per line).

Batch transform with SplitType=Line and BatchStrategy=MultiRecord sends many lines per request; each line is
`{"image": "<base64 JPEG or PNG>"}` (also `"b64"`, or `{"image": {"b64": ...}}` as TensorFlow Serving writes it).
The answer holds one compact JSON document per input line, in order.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Callable, TypeVar

from smcv.errors import HTTPError

T = TypeVar("T")
JSONLINES = "application/jsonlines"
#: request content types that carry JSON Lines of base64 images
RECORD_REQUEST_TYPES = (JSONLINES, "application/jsonl", "application/x-jsonlines")
#: keys a line may hold its image under
IMAGE_KEYS = ("image", "b64", "image_bytes")


def is_record_request(content_type: str) -> bool:
    """Whether a request media type (no parameters) is JSON Lines of images."""
    return content_type in RECORD_REQUEST_TYPES


def _image_field(document: object, line: int) -> str:
    if isinstance(document, dict):
        for key in IMAGE_KEYS:
            value = document.get(key)
            if isinstance(value, dict):
                value = value.get("b64")
            if isinstance(value, str):
                return value
    raise HTTPError(400, f"line {line} of the JSON Lines body has no image; write each line as "
                         '{"image": "<base64 JPEG or PNG bytes>"}', line=line)


def split_image_lines(data: bytes) -> list[bytes]:
    """The encoded image of each non-empty line; 400 naming the first line that is not usable."""
    images = []
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPError(400, f"line {number} of the JSON Lines body is not JSON ({exc})", line=number) from None
        try:
            images.append(base64.b64decode(_image_field(document, number), validate=True))
        except (binascii.Error, ValueError):
            raise HTTPError(400, f"line {number}: the image is not valid base64", line=number) from None
    if not images:
        raise HTTPError(400, 'the JSON Lines body holds no lines; send one {"image": "<base64>"} per line')
    return images


def decode_lines(data: bytes, decode: Callable[[bytes], T]) -> list[T]:
    """Each line's image decoded with `decode`; an error names the line it came from."""
    decoded = []
    for number, image in enumerate(split_image_lines(data), start=1):
        try:
            decoded.append(decode(image))
        except HTTPError as exc:
            raise HTTPError(exc.status, f"record {number}: {exc.message}", **{**exc.details, "record": number}) from None
    return decoded


def check_json_answer(response_type: str) -> None:
    """406 unless the negotiated answer is JSON, the only kind that can be written one per line."""
    if response_type.split(";", 1)[0] not in ("application/json", JSONLINES):
        raise HTTPError(406, f"a JSON Lines request is answered in JSON Lines, but {response_type} was negotiated; "
                             "ask for Accept: application/jsonlines (or application/json, application/json;verbose)",
                        negotiated=response_type)


def join_answers(bodies: list[bytes]) -> bytes:
    """One compact JSON document per line, in request order."""
    return b"".join(json.dumps(json.loads(body), separators=(",", ":")).encode() + b"\n" for body in bodies)
