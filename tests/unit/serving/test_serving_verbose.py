"""Verbose answers through the model holder: Accept 'application/json;verbose' in every spelling, class names from
the saved manifest, n_predictions as a per-request top-k, and a bad option as a 400."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from smcv import artifact
from smcv.classification.model import build_resnet
from smcv.errors import HTTPError
from smcv.serving.model_holder import ModelHolder

NAMES = ["cat", "dog", "owl", "fox"]


@pytest.fixture(scope="module")
def holder(tmp_path_factory):
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("model")
    manifest = {"task": "classification", "num_layers": 20, "num_classes": 4, "image_shape": [3, 32, 32],
                "class_names": NAMES}
    artifact.save_artifact(model_dir, build_resnet(20, 4).state_dict(), manifest)
    loaded = ModelHolder(model_dir, device="cpu", max_batch_size=1)
    loaded.load()
    assert loaded.error is None, loaded.error
    yield loaded
    loaded.close()


IMAGE = Image.new("RGB", (40, 30), (200, 30, 90))


@pytest.mark.parametrize("accept", ["application/json;verbose", "application/json;verbose=1", "application/json; verbose=true"])
def test_jumpstart_shape_with_class_names(holder, accept):
    body, content_type = holder.infer(IMAGE, accept)
    answer = json.loads(body)
    plain = json.loads(holder.infer(IMAGE, "application/json")[0])
    assert content_type == "application/json;verbose=1"
    assert answer["labels"] == NAMES and answer["probabilities"] == pytest.approx(plain, abs=1e-6)
    best = max(range(4), key=lambda i: plain[i])
    assert answer["predicted_label"] == NAMES[best]
    assert [t["label"] for t in answer["top_k"]] == sorted(NAMES, key=lambda n: -plain[NAMES.index(n)])


def test_n_predictions_keeps_the_most_likely_classes(holder):
    answer = json.loads(holder.infer(IMAGE, "application/json;verbose;n_predictions=2")[0])
    probabilities = answer["probabilities"]
    assert len(answer["top_k"]) == 2 and len(probabilities) == 4
    assert [t["probability"] for t in answer["top_k"]] == sorted(probabilities, reverse=True)[:2]
    assert all(NAMES[t["class_id"]] == t["label"] for t in answer["top_k"])


def test_bad_n_predictions_is_a_400(holder):
    with pytest.raises(HTTPError) as info:
        holder.infer(IMAGE, "application/json;verbose;n_predictions=-1")
    assert info.value.status == 400 and "n_predictions" in info.value.message


def test_the_app_passes_n_predictions_from_the_accept_header(holder):
    import io

    from smcv.serving.app import create_app

    client = create_app(holder).test_client()
    png = io.BytesIO()
    IMAGE.save(png, format="PNG")
    response = client.post("/invocations", data=png.getvalue(), headers={
        "Content-Type": "image/png", "Accept": "application/json;verbose;n_predictions=3"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json" and len(response.get_json()["top_k"]) == 3
    bad = client.post("/invocations", data=png.getvalue(), headers={
        "Content-Type": "image/png", "Accept": "application/json;verbose;n_predictions=0"})
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "n_predictions"
