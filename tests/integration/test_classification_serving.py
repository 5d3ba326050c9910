"""Serving a trained classification model: /ping before and after load, content types, 4xx with JSON bodies."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from smcv.serving.app import create_app
from smcv.serving.model_holder import ModelHolder
from smcv.train import main as train_main
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders
from tests.helpers.opt_ml import OptMl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("served")
    opt_ml = OptMl(base / "opt_ml")
    write_class_folders(opt_ml.channel("train"), 4, mode="RGB")
    opt_ml.configure({**TINY_CLASSIFICATION, "image_shape": "3,16,16"})
    mp = pytest.MonkeyPatch()
    mp.setenv("SAGEMAKER_BASE_DIR", str(opt_ml.base))
    try:
        assert train_main() == 0
    finally:
        mp.undo()
    return opt_ml.model_dir


def encoded(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 30), 128).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def client(model_dir, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_IN_MB", "1")
    holder = ModelHolder(model_dir, "cpu")
    app = create_app(holder)
    with app.test_client() as c:
        c.holder = holder
        yield c
    holder.close()


def test_ping_is_503_before_load_and_200_after(client):
    before = client.get("/ping")
    assert before.status_code == 503 and before.is_json
    client.holder.start()
    assert client.holder.wait(60)
    after = client.get("/ping")
    assert after.status_code == 200


@pytest.mark.parametrize("ctype, fmt, mode", [("image/jpeg", "JPEG", "RGB"), ("image/png", "PNG", "RGBA"),
                                              ("application/x-image", "PNG", "L"), ("image/png; charset=binary", "PNG", "RGB")])
def test_content_types_return_the_builtin_probability_list(client, ctype, fmt, mode):
    client.holder.load()
    response = client.post("/invocations", data=encoded(fmt, mode), content_type=ctype)
    assert response.status_code == 200, response.data
    probs = json.loads(response.data)
    assert isinstance(probs, list) and len(probs) == 2 and sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_jsonlines_accept_wraps_in_prediction(client):
    client.holder.load()
    response = client.post("/invocations", data=encoded("PNG"), content_type="image/png",
                           headers={"Accept": "application/jsonlines"})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/jsonlines")
    assert len(json.loads(response.data)["prediction"]) == 2


@pytest.mark.parametrize("kwargs, status, fragment", [
    ({"data": b"x,y", "content_type": "text/csv"}, 415, "image/jpeg"),
    ({"data": b"", "content_type": "image/png", "headers": {"Accept": "text/html"}}, 406, "application/json"),
    ({"data": b"\x89PNG\r\n\x1a\nbroken", "content_type": "image/png"}, 400, "image"),
    ({"data": b"\xff" * (1024 * 1024 + 10), "content_type": "image/jpeg"}, 413, "1"),
])
def test_errors_are_json_and_the_worker_keeps_serving(client, kwargs, status, fragment):
    client.holder.load()
    response = client.post("/invocations", **kwargs)
    assert response.status_code == status and response.is_json
    body = response.get_json()
    assert body["status"] == status and fragment in json.dumps(body)
    ok = client.post("/invocations", data=encoded("PNG"), content_type="image/png")
    assert ok.status_code == 200
