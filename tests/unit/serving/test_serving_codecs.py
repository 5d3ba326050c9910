"""Content types: request image types, decoding errors, Accept negotiation, custom attributes."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from smcv.errors import HTTPError
from smcv.serving import codecs

DETECTION = ("application/json", "application/json;annotation=1")


def encoded(fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (5, 4), 128).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("header, expected", [
    ("image/jpeg", "image/jpeg"),
    ("image/png", "image/png"),
    ("application/x-image", "application/x-image"),
    ("application/octet-stream", "application/octet-stream"),
    ("IMAGE/JPEG; charset=binary", "image/jpeg"),
    (" application/x-image ;foo=bar", "application/x-image"),
])
def test_request_types_are_accepted_without_parameters(header, expected):
    assert codecs.request_image_type(header) == expected


@pytest.mark.parametrize("header", ["text/csv", "application/json", "", None, "image"])
def test_unknown_request_type_is_415_listing_supported(header):
    with pytest.raises(HTTPError) as info:
        codecs.request_image_type(header)
    assert info.value.status == 415
    assert info.value.to_json()["supported"] == list(codecs.IMAGE_REQUEST_TYPES)


@pytest.mark.parametrize("content_type, fmt", [
    ("image/jpeg", "JPEG"), ("image/png", "PNG"), ("application/x-image", "JPEG"), ("application/x-image", "PNG"),
    ("application/octet-stream", "JPEG"), ("application/octet-stream", "PNG"),
])
def test_decode_every_type(content_type, fmt):
    image = codecs.decode_request_image(encoded(fmt), content_type)
    assert image.size == (5, 4) and image.mode == "RGB"


@pytest.mark.parametrize("content_type", codecs.IMAGE_REQUEST_TYPES)
@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP", "ICO", "PPM", "TGA", "PCX", "JPEG2000"])
def test_formats_the_content_type_does_not_name_are_415(content_type, fmt):
    with pytest.raises(HTTPError) as info:
        codecs.decode_request_image(encoded(fmt), content_type)
    body = info.value.to_json()
    assert body["status"] == 415 and body["detected_format"] == fmt and body["content_type"] == content_type
    assert f"is a {fmt} image" in body["error"] and "convert it to JPEG or PNG" in body["error"]


@pytest.mark.parametrize("content_type, fmt, right_type", [("image/png", "JPEG", "image/jpeg"),
                                                           ("image/jpeg", "PNG", "image/png")])
def test_jpeg_sent_as_png_names_the_content_type_to_use(content_type, fmt, right_type):
    with pytest.raises(HTTPError) as info:
        codecs.decode_request_image(encoded(fmt), content_type)
    assert info.value.status == 415 and f"send it with Content-Type: {right_type}" in info.value.message


@pytest.mark.parametrize("content_type", codecs.IMAGE_REQUEST_TYPES)
def test_decode_error_names_the_payload_not_an_in_memory_file(content_type):
    with pytest.raises(HTTPError) as info:
        codecs.decode_request_image(b"these bytes are no image", content_type)
    text = json.dumps(info.value.to_json())
    assert info.value.status == 400 and "BytesIO" not in text and " at 0x" not in text
    assert "not a recognised image format" in info.value.details["detail"]


def test_decode_grayscale_png_to_rgb_and_keeps_mode_when_asked():
    assert codecs.decode_request_image(encoded("PNG", "L"), "image/png").mode == "RGB"
    assert codecs.decode_request_image(encoded("PNG", "L"), "image/png", mode="L").mode == "L"


@pytest.mark.parametrize("data, content_type", [
    (b"", "image/jpeg"),
    (b"not an image at all", "application/octet-stream"),
    (b"not an image at all", "image/png"),
    (encoded("PNG")[:30], "image/png"),  # truncated
])
def test_bad_bodies_are_400(data, content_type):
    with pytest.raises(HTTPError) as info:
        codecs.decode_request_image(data, content_type)
    assert info.value.status == 400
    assert info.value.message


def test_decode_error_names_the_cause():
    with pytest.raises(HTTPError) as info:
        codecs.decode_request_image(b"\x89PNG\r\n\x1a\n" + b"x" * 20, "application/octet-stream")
    body = info.value.to_json()
    assert body["status"] == 400 and "image/png" in body["error"] and body["detail"]


@pytest.mark.parametrize("accept, expected", [
    (None, "application/json"),
    ("", "application/json"),
    ("*/*", "application/json"),
    ("*", "application/json"),
    ("application/*", "application/json"),
    ("application/json", "application/json"),
    ("application/json; charset=utf-8", "application/json"),
    ("application/json;annotation=1", "application/json;annotation=1"),
    ("application/json; annotation=1; q=0.9", "application/json;annotation=1"),
    ("application/json;q=0.5, application/json;annotation=1", "application/json;annotation=1"),
    ("application/json;annotation=1;q=0.2, application/json;q=0.8", "application/json"),
    ("application/json;annotation=1;q=0, */*", "application/json"),
    ("text/html, */*;q=0.1", "application/json"),
    ("garbage, application/json", "application/json"),
])
def test_negotiation_with_significant_parameters(accept, expected):
    assert codecs.negotiate(accept, DETECTION) == expected


def test_plain_json_never_picks_the_annotation_form():
    assert codecs.negotiate("application/json", ("application/json;annotation=1", "application/json")) == "application/json"
    with pytest.raises(HTTPError) as info:
        codecs.negotiate("application/json", ("application/json;annotation=1",))
    assert info.value.status == 406


@pytest.mark.parametrize("accept", ["text/csv", "image/*", "application/json;annotation=2", "application/json;q=0",
                                    "*/*;q=0"])
def test_unsatisfiable_accept_is_406_listing_offered(accept):
    with pytest.raises(HTTPError) as info:
        codecs.negotiate(accept, DETECTION)
    assert info.value.status == 406
    assert info.value.to_json()["supported"] == list(DETECTION)


def test_q_values_and_client_order():
    offered = ("image/png", "application/json")
    assert codecs.negotiate("application/json;q=0.9, image/png;q=0.8", offered) == "application/json"
    assert codecs.negotiate("application/json, image/png", offered) == "application/json"
    assert codecs.negotiate("image/*;q=0.3, */*;q=0.5", offered) == "application/json"
    assert codecs.negotiate("*/*", offered) == "image/png"


def test_default_accept_from_environment(monkeypatch):
    offered = ("image/png", "application/json")
    monkeypatch.setenv(codecs.ENV_DEFAULT_ACCEPT, "application/json")
    assert codecs.negotiate(None, offered) == "application/json"
    assert codecs.negotiate("*/*", offered) == "application/json"
    assert codecs.negotiate("image/png", offered) == "image/png"
    monkeypatch.setenv(codecs.ENV_DEFAULT_ACCEPT, "text/csv")  # not offered: ignored
    assert codecs.negotiate(None, offered) == "image/png"


def test_custom_attributes():
    assert codecs.parse_custom_attributes(None) == {}
    assert codecs.parse_custom_attributes("top_k=3; Class_Names, gradcam=0") == {
        "top_k": "3", "class_names": "true", "gradcam": "0"}


CLASSIFICATION = ("application/json", "application/jsonlines", codecs.JSON_VERBOSE)


@pytest.mark.parametrize("accept", ["application/json;verbose", "application/json; verbose=1", "application/json;verbose=true",
                                    "application/json;verbose;n_predictions=3", "application/json;n_predictions=2;verbose",
                                    "APPLICATION/JSON;VERBOSE=True;threshold=0.5"])
def test_verbose_flag_in_any_spelling_selects_the_verbose_type(accept):
    assert codecs.negotiate(accept, CLASSIFICATION) == codecs.JSON_VERBOSE


@pytest.mark.parametrize("accept", ["application/json;verbose=0", "application/json;verbose=false", "application/json;n_predictions=3"])
def test_verbose_off_or_options_alone_keep_the_plain_type(accept):
    assert codecs.negotiate(accept, CLASSIFICATION) == "application/json"


def test_verbose_is_406_where_no_task_offers_it():
    with pytest.raises(HTTPError) as info:
        codecs.negotiate("application/json;verbose", ("application/json", "application/jsonlines"))
    assert info.value.status == 406


@pytest.mark.parametrize("accept, expected", [
    (None, codecs.ResponseOptions()),
    ("application/json;verbose", codecs.ResponseOptions()),
    ("application/json;verbose;n_predictions=3", codecs.ResponseOptions(n_predictions=3)),
    ("application/json; verbose; threshold=0.25; n_predictions=\"2\"", codecs.ResponseOptions(2, 0.25)),
    ("text/csv;n_predictions=4, application/json;verbose;n_predictions=9", codecs.ResponseOptions(n_predictions=4)),
])
def test_response_options_from_accept_parameters(accept, expected):
    assert codecs.response_options(accept) == expected


@pytest.mark.parametrize("accept, name", [
    ("application/json;verbose;n_predictions=0", "n_predictions"),
    ("application/json;verbose;n_predictions=two", "n_predictions"),
    ("application/json;verbose;n_predictions=1.5", "n_predictions"),
    ("application/json;verbose;threshold=1.5", "threshold"),
    ("application/json;verbose;threshold=", "threshold"),
])
def test_unusable_option_is_400_naming_it(accept, name):
    with pytest.raises(HTTPError) as info:
        codecs.response_options(accept)
    assert info.value.status == 400 and info.value.to_json()["parameter"] == name and name in info.value.message
