"""Serving responses: the built-in's JSON, the Ground Truth-like annotation form, JSON Lines; no score threshold."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from smcv.detection.model import build_detector, detector_spec
from smcv.detection.predictor import annotation_response, prediction_response
from smcv.serving import direct
from smcv.tasks.detection import DetectionTask


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    spec = detector_spec("tiny", 300, 3, detections_per_image=50)
    state = build_detector(spec).state_dict()
    manifest = json.loads(json.dumps({"task": "detection", "detector": spec}))
    return DetectionTask().build_predictor(manifest, state, torch.device("cpu"))


def run(predictor, image, accept):
    (result, meta), _ = direct.predict(predictor, [image, image], accept)
    return predictor.encode(result, meta, accept)


def test_prepare_gives_the_network_input_in_0_1():
    pred = DetectionTask().build_predictor({"task": "detection", "detector": detector_spec("tiny", 300, 3)},
                                           build_detector(detector_spec("tiny", 300, 3)).state_dict(), torch.device("cpu"))
    batch = pred.prepare([torch.full((3, 90, 160), 255, dtype=torch.uint8), torch.zeros((3, 7, 500), dtype=torch.uint8)])
    assert batch.shape == (2, 3, 300, 300) and batch.dtype == torch.float32
    assert torch.equal(batch[0], torch.ones(3, 300, 300)) and torch.equal(batch[1], torch.zeros(3, 300, 300))


def test_default_json_is_the_builtin_format(predictor):
    body = json.loads(run(predictor, Image.new("RGB", (160, 90), (90, 120, 30)), "application/json"))
    rows = body["prediction"]
    assert list(body) == ["prediction"] and len(rows) == 50  # capped by detections_per_image, no score threshold
    assert all(len(r) == 6 and isinstance(r[0], float) and r[0] in (0.0, 1.0, 2.0) for r in rows)
    assert all(0 <= v <= 1 for r in rows for v in r[2:]) and all(r[4] >= r[2] and r[5] >= r[3] for r in rows)
    scores = [r[1] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_jsonlines_and_annotation_forms(predictor):
    image = Image.new("L", (200, 100), 128)  # grey input is converted to RGB
    line = run(predictor, image, "application/jsonlines")
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and "prediction" in json.loads(line)
    body = json.loads(run(predictor, image, "application/json; annotation=1"))
    assert body["image_size"] == [{"width": 200, "height": 100, "depth": 3}]
    first = body["annotations"][0]
    assert set(first) == {"class_id", "score", "left", "top", "width", "height"} and isinstance(first["class_id"], int)
    assert all(0 <= a["left"] <= 200 and 0 <= a["top"] <= 100 for a in body["annotations"])


def test_response_conversion_by_hand():
    result = {"labels": [1, 0], "scores": [0.2, 0.9], "boxes": [[0.5, 0.5, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4]]}
    assert prediction_response(result) == {"prediction": [[0.0, 0.9, 0.1, 0.2, 0.3, 0.4], [1.0, 0.2, 0.5, 0.5, 1.0, 1.0]]}
    body = annotation_response(result, {"width": 200, "height": 100, "depth": 3})
    assert body["annotations"][0] == {"class_id": 0, "score": 0.9, "left": 20, "top": 20, "width": 40, "height": 20}


def test_response_types_offered(predictor):
    assert predictor.response_types == ("application/json", "application/json;annotation=1", "application/jsonlines",
                                        "application/json;verbose=1")


@pytest.fixture(scope="module")
def named_predictor():
    torch.manual_seed(0)
    spec = detector_spec("tiny", 300, 2, detections_per_image=20)
    manifest = {"task": "detection", "detector": spec, "class_names": ["circle", "square"]}
    return DetectionTask().build_predictor(manifest, build_detector(spec).state_dict(), torch.device("cpu"))


def run_with(predictor, image, accept):
    from smcv.serving import codecs

    chosen = codecs.negotiate(accept, predictor.response_types)
    return direct.answer(predictor, image, chosen, options=codecs.response_options(accept))


def test_verbose_names_each_box_with_fraction_and_pixel_coordinates(named_predictor):
    image = Image.new("RGB", (200, 100), (90, 120, 30))
    body = json.loads(run_with(named_predictor, image, "application/json;verbose"))
    builtin = json.loads(run_with(named_predictor, image, "application/json"))["prediction"]
    assert body["labels"] == ["circle", "square"] and body["image_size"] == {"width": 200, "height": 100}
    assert len(body["detections"]) == len(builtin) == 20
    for det, row in zip(body["detections"], builtin):
        assert det["label"] == ["circle", "square"][det["class_id"]] and det["class_id"] == int(row[0])
        assert det["score"] == row[1] and det["box"] == row[2:]
        assert det["left"] == round(row[2] * 200) and det["top"] == round(row[3] * 100)


def test_n_predictions_and_threshold_select_the_best_boxes(named_predictor):
    image = Image.new("RGB", (120, 120), (10, 200, 30))
    every = json.loads(run_with(named_predictor, image, "application/json;verbose"))["detections"]
    top3 = json.loads(run_with(named_predictor, image, "application/json;verbose;n_predictions=3"))["detections"]
    assert top3 == every[:3]
    cut = sorted(d["score"] for d in every)[len(every) // 2]
    above = json.loads(run_with(named_predictor, image, f"application/json;verbose;threshold={cut}"))["detections"]
    assert above == [d for d in every if d["score"] >= cut] and 0 < len(above) < len(every)
    builtin = json.loads(run_with(named_predictor, image, "application/json;n_predictions=2"))["prediction"]
    assert [r[1] for r in builtin] == [d["score"] for d in every[:2]]


def test_large_request_is_decoded_smaller_and_annotated_in_the_sent_pixels(predictor):
    import io

    from smcv.serving.codecs import decode_request_image

    buffer = io.BytesIO()
    Image.new("RGB", (2400, 1600), (90, 120, 30)).save(buffer, format="JPEG")
    image = decode_request_image(buffer.getvalue(), "image/jpeg", reduce_to=predictor.input_side)
    assert image.size == (1200, 800)  # JPEG draft at 1/2: the shorter side stays at least twice the 300 px input
    body = json.loads(run(predictor, image, "application/json;annotation=1"))
    assert body["image_size"] == [{"width": 2400, "height": 1600, "depth": 3}]
    assert max(a["left"] + a["width"] for a in body["annotations"]) > 1200
