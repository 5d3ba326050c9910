"""AWS Lambda behind API Gateway: an image in, the smcv endpoint's answer as readable JSON out.

The request body is the encoded image (JPEG or PNG). API Gateway hands it to Lambda base64-encoded when
`application/x-image` (or image/jpeg, image/png) is one of the API's binary media types; see README.md.
The function calls sagemaker-runtime InvokeEndpoint and answers, per task (env TASK):

- classification: {"class", "class_id", "probability", "top": [{"class", "class_id", "probability"}, ...]}
- detection: {"detections": [{"class", "class_id", "score", "box": {"xmin", "ymin", "xmax", "ymax"}}]}, boxes as
  fractions of the image width/height, scores >= MIN_SCORE
- segmentation: {"shape": [h, w], "classes": [{"class", "class_id", "pixels", "share"}]} (a summary of the mask)

Environment: ENDPOINT_NAME (required), TASK (classification), CLASS_NAMES (JSON list or comma-separated; else
the endpoint's names where its response has them, else the ids), MIN_SCORE (0.5), TOP_K (5).
Only the standard library and boto3 (part of the Lambda Python runtime) are used.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any, Optional

from botocore.exceptions import BotoCoreError, ClientError  # botocore comes with boto3 in the Lambda runtime

IMAGE_TYPES = ("application/x-image", "image/jpeg", "image/png")
#: what each task asks the endpoint for (classification: the verbose form, with class names, plain JSON otherwise)
ACCEPT = {"classification": "application/json;verbose=1, application/json;verbose;q=0.9, application/json;q=0.5",
          "detection": "application/json", "segmentation": "application/json"}
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")
_client = None


class BadRequest(Exception):
    """A request the caller must fix (400)."""


def runtime_client() -> Any:
    """The sagemaker-runtime client, created once per Lambda container (not at import)."""
    global _client
    if _client is None:
        import boto3  # the Lambda runtime ships boto3; imported here so tests can inject a stubbed client

        _client = boto3.client("sagemaker-runtime")
    return _client


def lambda_handler(event: dict, context: Any) -> dict:
    """API Gateway proxy integration entry point."""
    return handle(event, runtime_client(), os.environ)


def handle(event: dict, runtime: Any, env: Any) -> dict:
    """One request: decode, invoke the endpoint, reshape its answer; errors become JSON 4xx/5xx responses."""
    try:
        task = env.get("TASK", "classification")
        if task not in ACCEPT:
            return _response(500, {"error": f"TASK {task!r} is not one of {', '.join(ACCEPT)}; fix the function's environment"})
        image = request_image(event)
        answer = runtime.invoke_endpoint(EndpointName=env["ENDPOINT_NAME"], ContentType="application/x-image",
                                         Accept=ACCEPT[task], Body=image)
        body = json.loads(answer["Body"].read())
        names = class_names(env.get("CLASS_NAMES"))
        min_score, top_k = float(env.get("MIN_SCORE", "0.5")), int(env.get("TOP_K", "5"))
        return _response(200, RESHAPE[task](body, names, min_score, top_k))
    except BadRequest as exc:
        return _response(400, {"error": str(exc)})
    except ClientError as exc:
        error = exc.response.get("Error", {})
        original = int(exc.response.get("OriginalStatusCode") or 500)  # ModelError: the container's own status
        status = 400 if error.get("Code") == "ModelError" and 400 <= original < 500 else 502
        return _response(status, {"error": f"the endpoint call failed: {error.get('Code')}: {error.get('Message')}"})
    except BotoCoreError as exc:
        return _response(502, {"error": f"the endpoint call failed: {exc}"})


def request_image(event: dict) -> bytes:
    """The image bytes of an API Gateway event (base64 when the media type is binary)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        raise BadRequest(f"Content-Type {content_type or 'none'!r} is not supported; send the image bytes as one of "
                         f"{', '.join(IMAGE_TYPES)}")
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("the body is not valid base64") from None
    else:
        raise BadRequest("the image arrived as text: add application/x-image, image/jpeg and image/png to the API's "
                         "binaryMediaTypes (see README.md)")
    if not data.startswith(_SIGNATURES):
        raise BadRequest(f"the body ({len(data)} bytes) is not a JPEG or PNG image")
    return data


def class_names(value: Optional[str]) -> list[str]:
    """CLASS_NAMES as a JSON list or comma-separated names."""
    if not value:
        return []
    text = value.strip()
    return [str(n) for n in json.loads(text)] if text.startswith("[") else [n.strip() for n in text.split(",")]


def _name(names: list[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else str(class_id)


def classification(body: Any, names: list[str], min_score: float, top_k: int) -> dict:
    """Best class and the top k, from the plain list or the verbose {"probabilities", "labels"} form."""
    probabilities = body if isinstance(body, list) else body.get("probabilities", body.get("prediction"))
    names = names or ([] if isinstance(body, list) else list(body.get("labels") or []))
    order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
    top = [{"class": _name(names, i), "class_id": i, "probability": probabilities[i]} for i in order[:top_k]]
    return {**top[0], "top": top}


def detection(body: Any, names: list[str], min_score: float, top_k: int) -> dict:
    """Detections at or above min_score, best first, boxes as fractions of the image."""
    found = []
    for class_id, score, xmin, ymin, xmax, ymax in body["prediction"]:
        if score >= min_score:
            found.append({"class": _name(names, int(class_id)), "class_id": int(class_id), "score": score,
                          "box": {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}})
    return {"detections": sorted(found, key=lambda d: -d["score"])}


def segmentation(body: Any, names: list[str], min_score: float, top_k: int) -> dict:
    """Pixels per class and their share of the image."""
    names = names or list(body.get("classes") or [])
    counts = {int(k): int(v) for k, v in body["class_counts"].items()}
    total = sum(counts.values()) or 1
    classes = [{"class": _name(names, c), "class_id": c, "pixels": n, "share": round(n / total, 4)}
               for c, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return {"shape": body["shape"], "classes": classes}


RESHAPE = {"classification": classification, "detection": detection, "segmentation": segmentation}


def _response(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
