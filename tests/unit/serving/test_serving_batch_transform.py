"""Batch transform: SAGEMAKER_BATCH makes IC answer {"prediction": [...]} lines by default as the built-in does, and
JSON Lines requests (one base64 image per line) get one answer per line, in order, with errors naming the record."""

from __future__ import annotations

import base64
import io
import json

import pytest
import torch
from PIL import Image

from smcv import artifact
from smcv.classification.model import build_resnet
from smcv.serving.app import create_app
from smcv.serving.model_holder import ModelHolder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    manifest = {"task": "classification", "num_layers": 20, "num_classes": 3, "image_shape": [3, 32, 32],
                "class_names": ["a", "b", "c"]}
    artifact.save_artifact(folder, build_resnet(20, 3).state_dict(), manifest)
    return folder


@pytest.fixture
def client_for(model_dir, monkeypatch):
    holders = []

    def make(batch: str | None = None):
        if batch is None:
            monkeypatch.delenv("SAGEMAKER_BATCH", raising=False)
        else:
            monkeypatch.setenv("SAGEMAKER_BATCH", batch)
        holder = ModelHolder(model_dir, device="cpu", max_batch_size=4)
        holder.load()
        holders.append(holder)
        return create_app(holder).test_client()

    yield make
    for holder in holders:
        holder.close()


def png(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("batch", ["true", "True"])
def test_batch_transform_without_accept_answers_prediction_lines_as_the_builtin(client_for, batch):
    plain = client_for(None).post("/invocations", data=png((9, 99, 199)), headers={"Content-Type": "image/png"})
    assert plain.mimetype == "application/json" and isinstance(plain.get_json(), list)
    answer = client_for(batch).post("/invocations", data=png((9, 99, 199)), headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and answer.mimetype == "application/jsonlines"
    assert answer.data.endswith(b"\n")
    assert json.loads(answer.data)["prediction"] == pytest.approx(plain.get_json(), abs=1e-6)


def test_batch_transform_keeps_an_explicit_accept_and_the_default_accept_variable(client_for, monkeypatch):
    client = client_for("true")
    explicit = client.post("/invocations", data=png((1, 2, 3)), headers={"Content-Type": "image/png",
                                                                          "Accept": "application/json"})
    assert explicit.mimetype == "application/json" and isinstance(explicit.get_json(), list)
    monkeypatch.setenv("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/json")
    chosen = client_for("true").post("/invocations", data=png((1, 2, 3)), headers={"Content-Type": "image/png"})
    assert chosen.mimetype == "application/json"


def lines(*images: bytes, key: str = "image") -> bytes:
    return b"".join(json.dumps({key: base64.b64encode(i).decode()}).encode() + b"\n" for i in images)


def test_json_lines_request_gets_one_answer_per_line_in_order(client_for):
    client = client_for("true")
    colours = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    single = [client.post("/invocations", data=png(c), headers={"Content-Type": "image/png",
                                                               "Accept": "application/jsonlines"}) for c in colours]
    body = lines(*[png(c) for c in colours])
    answer = client.post("/invocations", data=body, headers={"Content-Type": "application/jsonlines"})
    assert answer.status_code == 200 and answer.mimetype == "application/jsonlines"
    got = [json.loads(line) for line in answer.data.splitlines()]
    assert [g["prediction"] for g in got] == [pytest.approx(json.loads(s.data)["prediction"], abs=1e-6) for s in single]
    verbose = client.post("/invocations", data=lines(png(colours[0]), key="b64"),
                          headers={"Content-Type": "application/jsonlines", "Accept": "application/json;verbose"})
    assert json.loads(verbose.data.splitlines()[0])["labels"] == ["a", "b", "c"]


@pytest.mark.parametrize("good_lines, body, fragment", [
    (1, b'{"image": "' + base64.b64encode(b"not an image") + b'"}\n', "record 2"),
    (2, b"{not json}\n", "line 3"),
    (0, b'{"picture": "abc"}\n', "line 1 of the JSON Lines body has no image"),
    (0, b'{"image": "%%%"}\n', "not valid base64"),
    (0, b"\n\n", "no lines"),
])
def test_bad_json_lines_are_a_400_naming_the_line(client_for, good_lines, body, fragment):
    answer = client_for("true").post("/invocations", data=lines(*[png((5, 5, 5))] * good_lines) + body,
                                     headers={"Content-Type": "application/jsonlines"})
    assert answer.status_code == 400 and answer.mimetype == "application/json"
    message = answer.get_json()["error"]
    assert fragment in message, message


@pytest.mark.parametrize("negotiated", ["image/png", "application/x-protobuf", "text/csv"])
def test_json_lines_need_a_json_answer(negotiated):
    """A segmentation mask as PNG cannot be one line of JSON Lines: 406 saying what to ask for."""
    from smcv.errors import HTTPError
    from smcv.serving import records

    with pytest.raises(HTTPError) as info:
        records.check_json_answer(negotiated)
    assert info.value.status == 406 and "application/jsonlines" in info.value.message
    records.check_json_answer("application/json;verbose=1")
