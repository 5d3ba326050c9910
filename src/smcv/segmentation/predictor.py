"""Serving: image in; class-id PNG, RecordIO-protobuf probabilities or JSON out, at the request image's size.

application/json;verbose (smcv): {"labels": [class names], "shape": [h, w], "class_share": {name: fraction of the
pixels}, "class_pixels": {name: count}, "mask_png_base64": the indexed PNG mask, base64}.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from smcv.data.png import indexed_png
from smcv.errors import HTTPError
from smcv.flip_average import flip_averaged
from smcv.segmentation.protobuf import probabilities_response
from smcv.segmentation.transforms import content_size, to_original_size
from smcv.serving.codecs import JSON_VERBOSE
from smcv.serving.prepare import Placement
from smcv.task_api import Predictor

PNG = "image/png"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
JSON_PROBABILITIES = "application/json;probabilities=1"
RESPONSE_TYPES = (PNG, RECORDIO_PROTOBUF, PROTOBUF, JSON, JSON_PROBABILITIES, JSON_VERBOSE)
#: the longest side of the probability maps in the JSON response
JSON_PROBABILITY_SIDE = 64


@functools.lru_cache(maxsize=1)
def palette() -> tuple[int, ...]:
    """A 256-colour palette (PASCAL VOC's bit pattern) so indexed masks are viewable; index 255 is white."""
    colors = []
    for index in range(256):
        r = g = b = 0
        cid = index
        for shift in range(7, -1, -1):
            r |= ((cid >> 0) & 1) << shift
            g |= ((cid >> 1) & 1) << shift
            b |= ((cid >> 2) & 1) << shift
            cid >>= 3
        colors += [r, g, b]
    colors[255 * 3:] = [255, 255, 255]
    return tuple(colors)


def mask_png(labels: np.ndarray) -> bytes:
    """A class-id mask as an indexed PNG in the serving palette (255, unlabelled, is white); compressed with the GIL
    released, so the request threads encode their masks in parallel."""
    return indexed_png(np.ascontiguousarray(labels, np.uint8), palette())


def class_ids(probs: torch.Tensor) -> np.ndarray:
    """argmax over classes as an HxW uint8 array on the CPU, ties to the lower id (only the uint8 map leaves a GPU;
    on the CPU numpy's argmax over the class axis is faster than torch's)."""
    if probs.device.type == "cuda":
        return probs.argmax(dim=0).to(torch.uint8).cpu().numpy()
    if probs.shape[0] == 2:
        return (probs[1] > probs[0]).numpy().astype(np.uint8)
    return np.argmax(probs.numpy(), axis=0).astype(np.uint8)


@dataclass(frozen=True)
class SegmentationResult:
    """One image's answer material on the CPU: the class-id map at the sent size, and the probabilities only when
    the negotiated type needs them (full size for protobuf, at most JSON_PROBABILITY_SIDE for JSON)."""

    labels: np.ndarray
    num_classes: int
    probabilities: Optional[torch.Tensor] = None
    small_probabilities: Optional[torch.Tensor] = None


class SegmentationPredictor(Predictor):
    """Letterbox or resize to the trained input, run the network, map the probabilities back to the input size."""

    response_types = RESPONSE_TYPES
    image_mode = "RGB"

    def __init__(self, model: torch.nn.Module, geometry: dict[str, Any], mean: tuple[float, ...],
                 std: tuple[float, ...], class_names: list[str], device: torch.device, test_time_flip: bool = False) -> None:
        self.model, self.device = model.eval(), device
        self.mode, self.size = geometry["mode"], int(geometry["size"])
        self.input_side = self.size  # requests far larger than this are decoded smaller; masks keep the sent size
        self.mean, self.std, self.class_names = tuple(mean), tuple(std), class_names
        self.test_time_flip = test_time_flip  # average with the mirrored image's logits, as validated

    def placement(self, height: int, width: int) -> Placement:
        """The whole square (resize) or the letterbox (long side to the input, padded right and bottom with 0)."""
        return Placement(content_size(self.mode, self.size, height, width), (self.size, self.size))

    def request_meta(self, size: tuple[int, int], original: tuple[int, int]) -> dict[str, Any]:
        """The size as sent (the mask's size) and the part of the network input the image fills."""
        return {"width": original[0], "height": original[1], "content": content_size(self.mode, self.size, size[1], size[0])}

    def predict_batch(self, batch: torch.Tensor, metas: Sequence[dict[str, Any]]) -> list[SegmentationResult]:
        """Softmax, then per image on the device: the probabilities at the sent size, their argmax; only the uint8
        map (and the probabilities the negotiated type needs) is copied to the CPU."""
        if self.device.type == "cuda":
            batch = batch.contiguous(memory_format=torch.channels_last)
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            probs = torch.softmax(flip_averaged(self.model, batch, self.test_time_flip, dense=True), dim=1)
        with torch.inference_mode():
            return [self._result(one, meta) for one, meta in zip(probs, metas)]

    def _result(self, probs: torch.Tensor, meta: dict[str, Any]) -> SegmentationResult:
        """One image's network-size probabilities (on the device) to what encode needs for meta['accept']."""
        accept = meta.get("accept", PNG)
        full = self.probabilities(probs, meta)
        return SegmentationResult(
            class_ids(full), int(probs.shape[0]),
            probabilities=full.cpu() if accept in (RECORDIO_PROTOBUF, PROTOBUF) else None,
            small_probabilities=self._small_probabilities(probs, meta).cpu() if accept == JSON_PROBABILITIES else None)

    def probabilities(self, result: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """Class probabilities (C, H, W) at the request image's size."""
        return to_original_size(result, meta["content"], meta["height"], meta["width"])

    def encode(self, result: SegmentationResult, meta: dict[str, Any], accept: str) -> bytes:
        if accept in (RECORDIO_PROTOBUF, PROTOBUF):
            return probabilities_response(_needed(result.probabilities, accept).numpy())
        if accept == PNG:
            return mask_png(result.labels)
        if accept == JSON_VERBOSE:
            return json.dumps(self.verbose(result.labels, result.num_classes)).encode()
        if accept in (JSON, JSON_PROBABILITIES):
            small = _needed(result.small_probabilities, accept) if accept == JSON_PROBABILITIES else None
            return json.dumps(self._json(result.labels, result.num_classes, meta, small)).encode()
        raise HTTPError(406, f"unsupported Accept {accept!r}", supported=list(RESPONSE_TYPES))

    def verbose(self, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
        """Class names, each class's share of the pixels, and the mask as a base64 PNG."""
        names = self.class_names or [str(i) for i in range(num_classes)]
        counts = np.bincount(labels.ravel(), minlength=len(names))
        total = max(1, int(labels.size))
        return {"labels": names, "shape": [int(labels.shape[0]), int(labels.shape[1])],
                "class_share": {names[i]: round(int(n) / total, 6) for i, n in enumerate(counts[: len(names)])},
                "class_pixels": {names[i]: int(n) for i, n in enumerate(counts[: len(names)])},
                "mask_png_base64": base64.b64encode(mask_png(labels)).decode("ascii")}

    def _json(self, labels: np.ndarray, num_classes: int, meta: dict[str, Any],
              small: Optional[torch.Tensor]) -> dict[str, Any]:
        counts = np.bincount(labels.ravel(), minlength=len(self.class_names) or num_classes)
        body: dict[str, Any] = {
            "shape": [int(meta["height"]), int(meta["width"])],
            "class_counts": {str(i): int(n) for i, n in enumerate(counts) if n},
            "classes": self.class_names or [str(i) for i in range(num_classes)],
        }
        if small is not None:
            body["probabilities_shape"] = list(small.shape)
            body["probabilities"] = [[[round(float(v), 4) for v in row] for row in plane] for plane in small]
        return body

    def _small_probabilities(self, result: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
        """The probability maps resized so the longer side is at most JSON_PROBABILITY_SIDE, aspect kept."""
        height, width = int(meta["height"]), int(meta["width"])
        scale = min(1.0, JSON_PROBABILITY_SIDE / max(height, width))
        target = (max(1, round(height * scale)), max(1, round(width * scale)))
        content = result[:, : meta["content"][0], : meta["content"][1]].unsqueeze(0)
        return torch.nn.functional.interpolate(content, size=target, mode="bilinear", align_corners=False)[0]


def _needed(probabilities: Optional[torch.Tensor], accept: str) -> torch.Tensor:
    """The probabilities predict_batch kept for this response type (it keeps them only when meta['accept'] asks)."""
    if probabilities is None:
        raise ValueError(f"the result holds no probabilities for {accept!r}; pass it as meta['accept'] to predict_batch")
    return probabilities
