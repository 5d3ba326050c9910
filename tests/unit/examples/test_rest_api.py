"""examples/rest_api/handler.py against botocore's Stubber: no network, real request/response shapes."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.response import StreamingBody  # noqa: E402  (after the importorskip above)
from botocore.stub import Stubber  # noqa: E402

HANDLER = Path(__file__).resolve().parents[3] / "examples" / "rest_api" / "handler.py"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40  # the handler only checks the signature; the endpoint decodes


def load_handler():
    spec = importlib.util.spec_from_file_location("rest_api_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def handler():
    return load_handler()


@pytest.fixture
def runtime():
    client = boto3.client("sagemaker-runtime", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def event(body: bytes = PNG, content_type: str = "application/x-image", encoded: bool = True) -> dict:
    return {"headers": {"content-type": content_type}, "isBase64Encoded": encoded,
            "body": base64.b64encode(body).decode() if encoded else body.decode(errors="replace")}


def answer(stubber, payload, accept: str, endpoint: str = "smcv-ep") -> None:
    raw = json.dumps(payload).encode()
    stubber.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
                         {"EndpointName": endpoint, "ContentType": "application/x-image", "Accept": accept, "Body": PNG})


def test_classification_class_name_and_probability(handler, runtime):
    client, stubber = runtime
    answer(stubber, {"probabilities": [0.1, 0.85, 0.05], "labels": ["normal", "pneumonia", "other"],
                     "predicted_label": "pneumonia"},
           handler.ACCEPT["classification"])
    response = handler.handle(event(), client, {"ENDPOINT_NAME": "smcv-ep", "TOP_K": "2"})
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert (body["class"], body["class_id"], body["probability"]) == ("pneumonia", 1, 0.85)
    assert [t["class"] for t in body["top"]] == ["pneumonia", "normal"]


def test_classification_plain_list_names_from_environment(handler, runtime):
    client, stubber = runtime
    answer(stubber, [0.7, 0.3], handler.ACCEPT["classification"])
    env = {"ENDPOINT_NAME": "smcv-ep", "CLASS_NAMES": '["cat", "dog"]'}
    body = json.loads(handler.handle(event(content_type="image/png"), client, env)["body"])
    assert body["class"] == "cat" and body["probability"] == 0.7


def test_detection_boxes_over_min_score(handler, runtime):
    client, stubber = runtime
    answer(stubber, {"prediction": [[1.0, 0.4, 0, 0, 1, 1], [0.0, 0.95, 0.1, 0.2, 0.3, 0.4]]}, "application/json")
    env = {"ENDPOINT_NAME": "smcv-ep", "TASK": "detection", "CLASS_NAMES": "car, person", "MIN_SCORE": "0.5"}
    body = json.loads(handler.handle(event(), client, env)["body"])
    assert body == {"detections": [{"class": "car", "class_id": 0, "score": 0.95,
                                    "box": {"xmin": 0.1, "ymin": 0.2, "xmax": 0.3, "ymax": 0.4}}]}


def test_segmentation_summary(handler, runtime):
    client, stubber = runtime
    answer(stubber, {"shape": [2, 4], "class_counts": {"0": 6, "1": 2}, "classes": ["background", "nucleus"]},
           "application/json")
    body = json.loads(handler.handle(event(), client, {"ENDPOINT_NAME": "smcv-ep", "TASK": "segmentation"})["body"])
    assert body["shape"] == [2, 4]
    assert body["classes"] == [{"class": "background", "class_id": 0, "pixels": 6, "share": 0.75},
                               {"class": "nucleus", "class_id": 1, "pixels": 2, "share": 0.25}]


@pytest.mark.parametrize("bad,message", [
    (event(content_type="text/plain"), "Content-Type 'text/plain' is not supported"),
    (event(encoded=False), "binaryMediaTypes"),
    (event(body=b"hello"), "not a JPEG or PNG"),
    ({"headers": {"Content-Type": "image/jpeg"}, "isBase64Encoded": True, "body": "***"}, "not valid base64"),
])
def test_bad_requests_are_400_without_calling_the_endpoint(handler, runtime, bad, message):
    client, _ = runtime  # no response queued: a call would fail the Stubber
    response = handler.handle(bad, client, {"ENDPOINT_NAME": "smcv-ep"})
    assert response["statusCode"] == 400 and message in json.loads(response["body"])["error"]


def test_model_error_4xx_is_400_and_other_errors_502(handler, runtime):
    client, stubber = runtime
    stubber.add_client_error("invoke_endpoint", "ModelError", "Received client error (415)", http_status_code=424,
                             response_meta={}, modeled_fields={"OriginalStatusCode": 415})
    stubber.add_client_error("invoke_endpoint", "ValidationError", "Endpoint smcv-ep of account 1 not found.")
    first = handler.handle(event(), client, {"ENDPOINT_NAME": "smcv-ep"})
    second = handler.handle(event(), client, {"ENDPOINT_NAME": "smcv-ep"})
    assert first["statusCode"] == 400 and "ModelError" in json.loads(first["body"])["error"]
    assert second["statusCode"] == 502 and "not found" in json.loads(second["body"])["error"]


def test_lambda_handler_uses_one_client(handler, runtime, monkeypatch):
    client, stubber = runtime
    answer(stubber, [0.2, 0.8], handler.ACCEPT["classification"], endpoint="prod")
    monkeypatch.setattr(handler, "_client", client)
    monkeypatch.setenv("ENDPOINT_NAME", "prod")
    response = handler.lambda_handler(event(), None)
    assert json.loads(response["body"])["class"] == "1"
