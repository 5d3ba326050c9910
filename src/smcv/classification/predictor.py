"""Serving a classification model with the built-in's response formats."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Optional, Sequence

import torch

from smcv.classification.threshold import predicted_class
from smcv.classification.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_placement
from smcv.flip_average import flip_averaged
from smcv.serving.codecs import JSON_VERBOSE, ResponseOptions
from smcv.serving.prepare import Placement
from smcv.task_api import Predictor

JSON = "application/json"
JSONLINES = "application/jsonlines"
#: classes listed under "top_k" in the verbose answer unless the Accept header sets n_predictions
DEFAULT_TOP_K = 5


class ClassificationPredictor(Predictor):
    """JSON list of class probabilities (default), {"prediction": [...]} for jsonlines, or a verbose form."""

    response_types = (JSON, JSONLINES, JSON_VERBOSE)
    batch_response_type = JSONLINES  # the built-in answers {"prediction": [...]} lines in batch transform

    def __init__(self, model: torch.nn.Module, image_shape: Optional[tuple[int, int, int]], resize: Optional[int],
                 mode: str, multi_label: bool, class_names: list[str], device: torch.device, input_side: int = 0,
                 decision_threshold: Optional[float] = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, test_time_flip: bool = False) -> None:
        self.model, self.image_shape, self.resize, self.mode = model.eval(), image_shape, resize, mode
        self.mean, self.std = tuple(mean), tuple(std)
        self.input_side = input_side  # the longest side the transform needs; larger requests decode smaller
        self.image_mode = mode
        self.multi_label, self.class_names, self.device = multi_label, class_names, device
        self.decision_threshold = None if multi_label else decision_threshold  # binary: class 1 when p1 >= it
        self.test_time_flip = test_time_flip  # average with the mirrored image's logits, as validated

    def placement(self, height: int, width: int) -> Placement:
        """Validation's geometry (eval_transform): shorter side to `resize` and a centre crop, or a direct resize."""
        return eval_placement(self.image_shape, self.resize, height, width)

    def predict_batch(self, batch: torch.Tensor, metas: Sequence[dict[str, Any]] = ()) -> list[Any]:
        if self.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), _autocast(self.device):
            logits = flip_averaged(self.model, batch, self.test_time_flip, dense=False)
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)
        return [row.tolist() for row in probs.cpu()]

    def encode(self, result: list[float], meta: dict[str, Any], accept: str) -> bytes:
        if accept == JSONLINES:
            return (json.dumps({"prediction": result}) + "\n").encode()
        if accept == JSON_VERBOSE:
            return json.dumps(self.verbose(result, meta.get("options") or ResponseOptions())).encode()
        return json.dumps(result).encode()

    def verbose(self, result: list[float], options: ResponseOptions) -> dict[str, Any]:
        """JumpStart's {"probabilities", "labels", "predicted_label"} plus the n_predictions most likely classes;
        predicted_label follows the saved decision threshold (then also in the answer) of a binary model."""
        names = self.class_names or [str(i) for i in range(len(result))]
        order = sorted(range(len(result)), key=lambda i: -result[i])
        top = order[: options.n_predictions or DEFAULT_TOP_K]
        answer = {"probabilities": result, "labels": names,
                  "predicted_label": names[predicted_class(result, self.decision_threshold)],
                  "top_k": [{"label": names[i], "class_id": i, "probability": result[i]} for i in top]}
        if self.decision_threshold is not None and len(result) == 2:
            answer["decision_threshold"] = self.decision_threshold
        return answer


def _autocast(device: torch.device):
    """BF16 autocast for inference on GPUs that support it; full precision elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
