"""Content types in and out: request image decoding, Accept negotiation, custom attributes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Sequence

from PIL import Image

from smcv.contract import ENV_DEFAULT_ACCEPT
from smcv.data.images import ImageFormatError, ImageTooLargeError, decode_image, sniff_image_type
from smcv.errors import DataError, HTTPError

if TYPE_CHECKING:  # torch: workers only, the gunicorn master imports this module
    from smcv.serving.request_image import RequestImage

#: request content types that carry one encoded image (JPEG or PNG bytes; octet-stream is sniffed)
IMAGE_REQUEST_TYPES = ("image/jpeg", "image/png", "application/x-image", "application/octet-stream")
#: the Pillow formats decoded for each request type; the generic types are sniffed among JPEG and PNG
SNIFFED_FORMATS = ("JPEG", "PNG")
REQUEST_FORMATS = {"image/jpeg": ("JPEG",), "image/png": ("PNG",), "application/x-image": SNIFFED_FORMATS,
                   "application/octet-stream": SNIFFED_FORMATS}
#: the request type that names each decodable format
FORMAT_CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png"}

#: the verbose JSON answer with class names (JumpStart's 'application/json;verbose'; bare 'verbose' means verbose=1)
JSON_VERBOSE = "application/json;verbose=1"

#: the default response type when set and offered by the task (SageMaker inference-toolkit convention)

#: MIME parameters that never distinguish one response type from another
_INSIGNIFICANT_PARAMS = frozenset({"q", "charset"})

#: Accept parameters that tune the answer without selecting another type, e.g. application/json;verbose;n_predictions=3
#: (n_predictions: keep the N most likely classes or boxes; threshold: drop boxes scoring below it)
RESPONSE_OPTIONS = frozenset({"n_predictions", "threshold"})

#: Accept parameters that are flags: bare, empty, 1 or true select the flagged type ('verbose=1'); 0 or false drop them
_FLAG_PARAMS = frozenset({"verbose"})
_FLAG_ON, _FLAG_OFF = frozenset({"", "1", "true", "yes"}), frozenset({"0", "false", "no"})


@dataclass(frozen=True)
class MediaType:
    """A parsed media type: lower-case type/subtype, significant parameters and the q-value."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...] = ()
    q: float = 1.0

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    def specificity(self) -> int:
        """0 for */*, 1 for type/*, 2 for type/subtype, 3 when parameters are given too."""
        if self.type == "*":
            return 0
        if self.subtype == "*":
            return 1
        return 3 if self.params else 2

    def matches(self, offered: "MediaType") -> bool:
        """Whether this (Accept) range covers an offered type; exact ranges must match its parameters too."""
        if self.type == "*":
            return not self.params or self.params == offered.params
        if self.type != offered.type:
            return False
        if self.subtype == "*":
            return not self.params or self.params == offered.params
        return self.subtype == offered.subtype and self.params == offered.params


def parse_media_type(value: str) -> MediaType:
    """Parse 'type/subtype; a=b; q=0.5' leniently; raises ValueError when there is no type/subtype."""
    head, *raw_params = value.split(";")
    essence = head.strip().lower()
    if essence == "*":
        essence = "*/*"
    kind, sep, subtype = essence.partition("/")
    if not sep or not kind or not subtype:
        raise ValueError(f"not a media type: {value!r}")
    params, q = [], 1.0
    for raw in raw_params:
        name, _, val = raw.partition("=")
        name, val = name.strip().lower(), val.strip().strip('"')
        if not name:
            continue
        if name == "q":
            q = _parse_q(val)
        elif name in _FLAG_PARAMS and val.lower() in _FLAG_OFF:
            continue
        elif name in _FLAG_PARAMS and val.lower() in _FLAG_ON:
            params.append((name, "1"))
        elif name not in _INSIGNIFICANT_PARAMS and name not in RESPONSE_OPTIONS:
            params.append((name, val.lower()))
    return MediaType(kind, subtype, tuple(sorted(params)), q)


@dataclass(frozen=True)
class ResponseOptions:
    """Per-request answer options from the Accept header: the N most likely results, and a score floor."""

    n_predictions: Optional[int] = None
    threshold: Optional[float] = None


def response_options(accept: Optional[str]) -> ResponseOptions:
    """n_predictions and threshold from the Accept header's parameters; 400 naming the value when one is unusable."""
    found: dict[str, str] = {}
    for part in (accept or "").split(","):
        for raw in part.split(";")[1:]:
            name, _, val = raw.partition("=")
            name = name.strip().lower()
            if name in RESPONSE_OPTIONS and name not in found:
                found[name] = val.strip().strip('"')
    return ResponseOptions(_option(found, "n_predictions", int, 1, None), _option(found, "threshold", float, 0.0, 1.0))


def _option(found: dict[str, str], name: str, kind: type, low: float, high: Optional[float]) -> Any:
    if name not in found:
        return None
    try:
        value = kind(found[name])
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        limits = f"a whole number >= {low}" if kind is int else f"a number from {low:g} to {high:g}"
        raise HTTPError(400, f"Accept parameter {name}={found[name]!r} must be {limits}, e.g. "
                             f"'application/json;verbose;{name}={3 if kind is int else 0.5}'", parameter=name)
    return value


def _parse_q(value: str) -> float:
    try:
        return min(max(float(value), 0.0), 1.0)
    except ValueError:
        return 1.0


def request_image_type(content_type: Optional[str], accepted: Sequence[str] = IMAGE_REQUEST_TYPES) -> str:
    """The request media type without parameters; 415 unless it is one of the accepted types (default: images)."""
    essence = (content_type or "").split(";", 1)[0].strip().lower()
    if essence not in accepted:
        shown = essence or "none"
        raise HTTPError(415, f"unsupported Content-Type {shown!r}; send the image bytes with one of the supported types",
                        supported=list(accepted))
    return essence


def batch_default(batch_type: Optional[str], batch_transform: bool) -> Optional[str]:
    """The default answer type for a request without Accept: the task's batch type in batch transform, unless
    SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT names one (None: the usual order)."""
    if batch_transform and batch_type and not os.environ.get(ENV_DEFAULT_ACCEPT):
        return batch_type
    return None


def negotiate(accept: Optional[str], offered: Sequence[str], default: Optional[str] = None) -> str:
    """The offered response type that best satisfies an Accept header; 406 when none does."""
    if not offered:
        raise HTTPError(500, "the model offers no response content type")
    order = _preference_order(offered, default)
    if accept is None or not accept.strip():
        return order[0]
    ranges = []
    for position, part in enumerate(p for p in accept.split(",") if p.strip()):
        try:
            ranges.append((position, parse_media_type(part)))
        except ValueError:
            continue  # a malformed entry is ignored, as browsers and proxies do
    best, best_key = None, None
    for rank, candidate in enumerate(order):
        key = _score(parse_media_type(candidate), ranges, rank)
        if key is not None and (best_key is None or key > best_key):
            best, best_key = candidate, key
    if best is None:
        raise HTTPError(406, f"cannot answer in any type the Accept header {accept!r} allows; ask for one of the offered types",
                        supported=list(offered))
    return best


def _preference_order(offered: Sequence[str], default: Optional[str]) -> list[str]:
    """Offered types with the default first: the explicit one, else $SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else the task's."""
    order = list(offered)
    for wanted in (default, os.environ.get(ENV_DEFAULT_ACCEPT)):
        if not wanted:
            continue
        try:
            target = parse_media_type(wanted)
        except ValueError:
            continue
        for candidate in order:
            if parse_media_type(candidate) == target:
                order.remove(candidate)
                return [candidate, *order]
    return order


def _score(candidate: MediaType, ranges: list[tuple[int, MediaType]], rank: int) -> Optional[tuple]:
    """Sort key for one offered type: q of its most specific matching range, then specificity, Accept order, our order."""
    matching = [(r.specificity(), -pos, r.q) for pos, r in ranges if r.matches(candidate)]
    if not matching:
        return None
    specificity, neg_pos, q = max(matching)
    if q <= 0.0:
        return None
    return (q, specificity, neg_pos, -rank)


def decode_request_image(data: bytes, content_type: str, mode: Optional[str] = "RGB", *,
                         max_pixels: Optional[int] = None, reduce_to: Optional[int] = None) -> Image.Image:
    """Decode a request body into a PIL image in the given mode: 400 not an image, 413 too large, 415 wrong format."""
    _check_not_empty(data)
    try:
        return decode_image(data, "request body", mode=mode, formats=REQUEST_FORMATS.get(content_type, SNIFFED_FORMATS),
                            max_pixels=max_pixels, reduce_to=reduce_to)
    except DataError as exc:
        raise image_error(exc, data, content_type) from None


def read_request_image(data: bytes, content_type: str, mode: str = "RGB", *, max_pixels: Optional[int] = None,
                       reduce_to: Optional[int] = None, keep_jpeg: bool = False) -> "RequestImage":
    """A request body as the batcher takes it: header checked, then decoded to uint8 pixels, or (keep_jpeg) a colour
    JPEG kept encoded for the batched device decode; the same 400/413/415 answers as decode_request_image."""
    from smcv.serving import request_image  # imports torch: workers only

    _check_not_empty(data)
    try:
        return request_image.read(data, "request body", mode, REQUEST_FORMATS.get(content_type, SNIFFED_FORMATS),
                                  max_pixels=max_pixels, reduce_to=reduce_to, keep_jpeg=keep_jpeg)
    except DataError as exc:
        raise image_error(exc, data, content_type) from None


def _check_not_empty(data: bytes) -> None:
    if not data:
        raise HTTPError(400, "the request body is empty; send the encoded image bytes (JPEG or PNG)")


def image_error(exc: DataError, data: bytes, content_type: str) -> HTTPError:
    """The HTTP answer to an image that cannot be used: 413 too large, 415 wrong format, else 400 with the reason."""
    if isinstance(exc, ImageTooLargeError):
        return HTTPError(413, exc.reason, max_image_pixels=exc.limit, image_pixels=exc.pixels,
                         image_size=list(exc.size) if exc.size else None)
    if isinstance(exc, ImageFormatError):
        return _wrong_format(exc.detected, content_type)
    kind = sniff_image_type(data) or "unknown format"
    return HTTPError(400, f"the request body ({len(data)} bytes, {kind}) cannot be decoded as an image; "
                          "send valid JPEG or PNG bytes", content_type=content_type,
                     detail=str(exc.args[0]).removeprefix("request body: "))


def _wrong_format(detected: str, content_type: str) -> HTTPError:
    """415 naming the format found in the body and the Content-Type to send it with (when one exists)."""
    right_type = FORMAT_CONTENT_TYPES.get(detected)
    advice = (f"send it with Content-Type: {right_type}" if right_type
              else "convert it to JPEG or PNG and send it as image/jpeg or image/png")
    return HTTPError(415, f"the request body is a {detected} image but the Content-Type is {content_type}; {advice}",
                     detected_format=detected, content_type=content_type, supported=list(IMAGE_REQUEST_TYPES))


def parse_custom_attributes(value: Optional[str]) -> dict[str, str]:
    """Parse X-Amzn-SageMaker-Custom-Attributes 'a=1; b=2, flag' into a dict (flags map to 'true')."""
    result: dict[str, str] = {}
    for part in (value or "").replace(",", ";").split(";"):
        name, sep, val = part.partition("=")
        name = name.strip().lower()
        if name:
            result[name] = val.strip() if sep else "true"
    return result
