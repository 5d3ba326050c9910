"""smcv predict: the SageMaker endpoint transport (botocore Stubber), the in-process path and the older form."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from smcv.cli import main as cli_main
from smcv.local_predict import predict_file
from smcv.predict_client import (DEFAULT_ACCEPT, REQUEST_TYPE, PredictOptions, endpoint_transport, parse_response,
                                 predict_images, summary)
from tests.helpers.exportmodels import CLASS_NAMES, write_tiny_model

boto3 = pytest.importorskip("boto3")
stub = pytest.importorskip("botocore.stub")
from botocore.response import StreamingBody  # noqa: E402  (after the importorskip above)


def png(path, seed=0, size=(30, 20)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_endpoint_transport_sends_image_bytes_and_prints_names_from_the_manifest(tmp_path):
    image = png(tmp_path / "a.png")
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    body = json.dumps({"prediction": [[1.0, 0.9, 0.1, 0.2, 0.5, 0.6], [0.0, 0.3, 0.0, 0.0, 1.0, 1.0]]}).encode()
    with stub.Stubber(client) as stubber:
        stubber.add_response("invoke_endpoint",
                             {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "application/json"},
                             {"EndpointName": "my-ssd", "ContentType": REQUEST_TYPE, "Accept": DEFAULT_ACCEPT,
                              "Body": image.read_bytes()})
        lines = []
        overlays = tmp_path / "overlays"
        predictions = predict_images([image], endpoint_transport("my-ssd", client=client),
                                     PredictOptions(names=["car", "person"], overlay_dir=overlays), lines.append)
        stubber.assert_no_pending_responses()
    assert lines == [f"{image}\t1 object(s) with score >= 0.5: person 0.90 [0.100, 0.200, 0.500, 0.600]"]
    assert predictions[0].kind == "detection" and len(predictions[0].detections) == 2
    drawn = np.asarray(Image.open(overlays / "a.overlay.png"), dtype=int)
    assert drawn.shape == (20, 30, 3) and (drawn != np.asarray(Image.open(image), dtype=int)).any()


def test_endpoint_errors_surface(tmp_path):
    image = png(tmp_path / "a.png")
    client = boto3.client("sagemaker-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with stub.Stubber(client) as stubber:
        stubber.add_client_error("invoke_endpoint", "ValidationError", "Endpoint nope not found.")
        with pytest.raises(Exception, match="Endpoint nope not found"):
            predict_images([image], endpoint_transport("nope", client=client), PredictOptions(), lambda _: None)


def test_in_process_older_form_and_raw_bodies(tmp_path, capsys):
    model_dir = write_tiny_model("classification", tmp_path / "model")
    image = png(tmp_path / "x.png", seed=1)
    assert cli_main(["predict", str(model_dir), str(image), "--accept", "application/json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(json.loads(predict_file(model_dir, image)[0]))
    assert cli_main(["predict", str(image), "--model-dir", str(model_dir)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.split("\t")[1].split(" ")[0] in CLASS_NAMES["classification"] and line.count(", ") == 2


def test_bad_input_is_one_line_on_stderr(tmp_path, capsys):
    assert cli_main(["predict", str(tmp_path / "missing")]) == 2
    assert "say where the model is" in capsys.readouterr().err
    model_dir = write_tiny_model("classification", tmp_path / "model")
    assert cli_main(["predict", str(tmp_path / "missing"), "--model-dir", str(model_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["predict", str(tmp_path), "--model-dir", str(model_dir)]) == 2  # a folder without images
    assert "holds no" in capsys.readouterr().err


@pytest.mark.parametrize("body,names,expected", [
    ([0.1, 0.7, 0.2], ["a", "b", "c"], "b 0.700, c 0.200, a 0.100"),
    ({"prediction": [0.6, 0.4], "labels": ["cat", "dog"]}, [], "cat 0.600, dog 0.400"),
    ({"shape": [2, 2], "class_counts": {"0": 3, "2": 1}, "classes": ["bg", "road", "sky"]}, [], "bg 75.0%, sky 25.0%"),
    ({"prediction": [[0.0, 0.2, 0, 0, 1, 1]]}, [], "0 object(s) with score >= 0.5"),
])
def test_summaries_of_each_response_form(body, names, expected):
    assert summary(parse_response(json.dumps(body).encode(), "application/json", names)) == expected


@pytest.mark.parametrize("body,expected", [
    ({"probabilities": [0.2, 0.8], "labels": ["normal", "pneumonia"], "predicted_label": "pneumonia"},
     "pneumonia 0.800, normal 0.200"),
    ({"labels": ["circle", "square"], "detections": [{"label": "square", "class_id": 1, "score": 0.9,
                                                      "box": [0.1, 0.2, 0.3, 0.4]}]},
     "1 object(s) with score >= 0.5: square 0.90 [0.100, 0.200, 0.300, 0.400]"),
    ({"labels": ["background", "cell"], "class_pixels": {"background": 30, "cell": 10}}, "background 75.0%, cell 25.0%"),
])
def test_summaries_of_the_verbose_answers(body, expected):
    assert summary(parse_response(json.dumps(body).encode(), "application/json;verbose=1", [])) == expected
