"""The Flask app against decompression bombs and oversized images: 413 before decoding, smaller decoding."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageFile

from smcv.serving.app import create_app


def bomb_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG of width x height: a few KB on the wire, width x height bytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\0" * (1 + (width + 7) // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(row * height, 9))
            + chunk(b"IEND", b""))


def post(client, data, content_type="image/png", **headers):
    return client.post("/invocations", data=data, headers={"Content-Type": content_type, **headers})


@pytest.fixture
def loads(monkeypatch):
    """The sizes of every ImageFile.load() call (the step that allocates the pixels)."""
    calls = []
    original = ImageFile.ImageFile.load

    def spy(self):
        calls.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def test_bomb_is_413_json_before_decoding_and_the_app_keeps_serving(make_holder, fake_task, loads):
    client = create_app(make_holder()).test_client()
    data = bomb_png(12000, 12000)
    assert len(data) < 64 * 1024
    response = post(client, data)
    assert response.status_code == 413 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["image_size"] == [12000, 12000] and body["image_pixels"] == 144_000_000
    assert body["max_image_pixels"] == 50_000_000
    assert "12000x12000" in body["error"] and "50 Mpx" in body["error"] and "SMCV_MAX_IMAGE_PIXELS" in body["error"]
    assert loads == []
    assert post(client, fake_task.image_bytes()).status_code == 200


def test_pixel_limit_from_the_environment(make_holder, fake_task, monkeypatch):
    monkeypatch.setenv("SMCV_MAX_IMAGE_PIXELS", "150")
    client = create_app(make_holder()).test_client()
    assert post(client, fake_task.image_bytes(size=(15, 10))).status_code == 200
    body = post(client, fake_task.image_bytes(size=(16, 10), fmt="JPEG"), "image/jpeg").get_json()
    assert body["status"] == 413 and body["max_image_pixels"] == 150 and body["image_size"] == [16, 10]


@pytest.mark.parametrize("bad", ["0", "-1", "fifty"])
def test_bad_pixel_limit_stops_serve_with_one_line(monkeypatch, capsys, tmp_path, bad):
    from smcv.serving import server

    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    monkeypatch.setattr(server, "count_gpus", lambda: 0)
    monkeypatch.setenv("SMCV_MAX_IMAGE_PIXELS", bad)
    with pytest.raises(SystemExit) as info:
        server.main([])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "SMCV_MAX_IMAGE_PIXELS" in err and len(err.strip().splitlines()) == 1


def test_gif_sent_as_png_is_415_naming_the_format(make_holder, fake_task):
    client = create_app(make_holder()).test_client()
    body = post(client, fake_task.image_bytes(fmt="GIF")).get_json()
    assert body["status"] == 415 and body["detected_format"] == "GIF" and "JPEG or PNG" in body["error"]
    body = post(client, fake_task.image_bytes(fmt="JPEG"), "image/png").get_json()
    assert body["status"] == 415 and "Content-Type: image/jpeg" in body["error"]


def test_large_image_is_decoded_smaller_but_answered_at_its_own_size(make_holder, fake_task, loads):
    client = create_app(make_holder(manifest={"input_side": 50})).test_client()
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200), (0, 255, 0)).save(buffer, format="JPEG")
    response = post(client, buffer.getvalue(), "image/jpeg", Accept="application/json;annotation=1")
    assert response.status_code == 200
    assert response.get_json()["annotation"] == {"width": 1600, "height": 1200}
    assert set(loads) == {(200, 150)}  # the JPEG decoder produced 1/8 of the pixels
    assert response.get_json()["mean"] == pytest.approx([0.0, 1.0, 0.0], abs=0.02)
