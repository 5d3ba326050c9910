"""Serving: resize to image_shape, detect, and answer in the built-in's formats.

Default (application/json) and application/jsonlines: {"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}
with class_id a float, coordinates fractions of the original width/height, best score first, no score threshold,
at most detections_per_image (200) after per-class NMS. application/json;annotation=1: the Ground Truth-like form
{"image_size": [{"width", "height", "depth"}], "annotations": [{"class_id", "score", "left", "top", "width",
"height"}]} in pixels of the original image. application/json;verbose (smcv): {"labels": [class names],
"image_size": {...}, "detections": [{"label", "class_id", "score", "box": [xmin, ymin, xmax, ymax] (fractions),
"left", "top", "width", "height" (pixels)}, ...]}, best first; Accept parameters n_predictions=N keeps the N best
and threshold=T drops scores below T (they also apply to the other JSON forms).
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import torch

from smcv.serving.codecs import JSON_VERBOSE, ResponseOptions
from smcv.serving.prepare import Placement
from smcv.task_api import Predictor

JSON = "application/json"
JSON_ANNOTATION = "application/json;annotation=1"
JSONLINES = "application/jsonlines"
SERVING_SCORE_THRESHOLD = 0.0


def _normalise_type(content_type: str) -> str:
    return ";".join(part.strip().lower() for part in content_type.split(";") if part.strip())


class DetectionPredictor(Predictor):
    """A loaded SSD ready to serve."""

    response_types = (JSON, JSON_ANNOTATION, JSONLINES, JSON_VERBOSE)

    def __init__(self, model: torch.nn.Module, image_shape: int, device: torch.device,
                 class_names: tuple[str, ...] = ()) -> None:
        self.model, self.size, self.device = model, int(image_shape), device
        self.class_names = list(class_names)
        self.input_side = self.size  # requests far larger than this are decoded smaller
        self.model.score_thresh = SERVING_SCORE_THRESHOLD

    def placement(self, height: int, width: int) -> Placement:
        """Resize to image_shape x image_shape, aspect not kept, as in training."""
        return Placement((self.size, self.size), (self.size, self.size))

    def request_meta(self, size: tuple[int, int], original: tuple[int, int]) -> dict[str, Any]:
        """The size as sent (boxes are answered in its pixels) and the colour depth."""
        return {"width": original[0], "height": original[1], "depth": 3}

    @torch.inference_mode()
    def predict_batch(self, batch: torch.Tensor, metas: Sequence[dict[str, Any]] = ()) -> list[dict[str, list]]:
        """Detections per image: normalised XYXY boxes, scores, 0-based class ids (best first), on the CPU."""
        images = batch  # prepared: 0-1 floats (mean 0, std 1) on the device
        if self.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        results = []
        for det in self.model(images):
            boxes = (det["boxes"] / self.size).clamp_(0.0, 1.0)
            results.append({"boxes": boxes.cpu().tolist(), "scores": det["scores"].float().cpu().tolist(),
                            "labels": det["labels"].cpu().tolist()})
        return results

    def encode(self, result: dict[str, list], meta: dict[str, Any], accept: str) -> bytes:
        """The response body for one image in the negotiated content type."""
        kind = _normalise_type(accept)
        result = select(result, meta.get("options") or ResponseOptions())
        if kind == JSON_ANNOTATION:
            return json.dumps(annotation_response(result, meta)).encode()
        if kind == JSON_VERBOSE:
            return json.dumps(verbose_response(result, meta, self.class_names)).encode()
        body = json.dumps(prediction_response(result)).encode()
        return body + b"\n" if kind == JSONLINES else body


def select(result: dict[str, list], options: ResponseOptions) -> dict[str, list]:
    """The detections scoring at least options.threshold, best first, at most options.n_predictions of them."""
    order = sorted(range(len(result["scores"])), key=lambda i: -result["scores"][i])
    if options.threshold is not None:
        order = [i for i in order if result["scores"][i] >= options.threshold]
    order = order[: options.n_predictions] if options.n_predictions else order
    return {key: [result[key][i] for i in order] for key in ("boxes", "scores", "labels")}


def verbose_response(result: dict[str, list], meta: dict[str, Any], class_names: list[str]) -> dict[str, Any]:
    """Detections with class names, fractional corners and pixel boxes, best first."""
    width, height = int(meta["width"]), int(meta["height"])
    names = list(class_names) or [str(i) for i in range(max(result["labels"], default=-1) + 1)]
    detections = []
    for box, pixels in zip(prediction_response(result)["prediction"], annotation_response(result, meta)["annotations"]):
        class_id = int(box[0])
        detections.append({"label": names[class_id] if class_id < len(names) else str(class_id), "class_id": class_id,
                           "score": box[1], "box": box[2:], **{k: pixels[k] for k in ("left", "top", "width", "height")}})
    return {"labels": names, "image_size": {"width": width, "height": height}, "detections": detections}


def prediction_response(result: dict[str, list]) -> dict[str, list]:
    """The built-in's {"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}."""
    rows = [[float(label), float(score), *[float(v) for v in box]]
            for label, score, box in zip(result["labels"], result["scores"], result["boxes"])]
    rows.sort(key=lambda row: -row[1])
    return {"prediction": rows}


def annotation_response(result: dict[str, list], meta: dict[str, Any]) -> dict[str, list]:
    """The Ground Truth-like form, boxes in pixels of the original image."""
    width, height = float(meta["width"]), float(meta["height"])
    annotations = []
    for row in prediction_response(result)["prediction"]:
        label, score, xmin, ymin, xmax, ymax = row
        left, top = round(xmin * width), round(ymin * height)
        annotations.append({"class_id": int(label), "score": score, "left": left, "top": top,
                            "width": round(xmax * width) - left, "height": round(ymax * height) - top})
    return {"image_size": [{"width": int(meta["width"]), "height": int(meta["height"]), "depth": int(meta.get("depth", 3))}],
            "annotations": annotations}
