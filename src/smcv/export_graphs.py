"""Per-task export graphs: the served network with its normalisation inside, and the metadata that documents it.

Every exported graph takes one input, `image`: float32, NCHW, pixel values 0-255 (a uint8 image cast to float),
already resized to the trained input size. What happens before (resize) and after (post-processing) is written
into the metadata, which is the contract for whoever runs the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from smcv.detection.model import TOPK_CANDIDATES
from smcv.errors import ConfigError
from smcv.flip_average import flip_averaged

INPUT_NAME = "image"
METADATA_VERSION = 1


@dataclass
class ExportGraph:
    """A module ready to trace, an example input, its output names, and the metadata describing it."""

    module: nn.Module
    example: torch.Tensor
    output_names: list[str]
    metadata: dict[str, Any]


class ClassifierGraph(nn.Module):
    """0-255 image -> normalised -> ResNet (logits averaged with the mirrored image's under test_time_flip) ->
    softmax (or sigmoid for multi-label) probabilities."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], multi_label: bool,
                 flip: bool = False) -> None:
        super().__init__()
        self.model, self.multi_label, self.flip = model, multi_label, flip
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = flip_averaged(self.model, (image - self.mean) / self.std, self.flip, dense=False)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)


class DetectorGraph(nn.Module):
    """0-255 image -> SSD head -> decoded boxes (fractions of the input side) and per-class scores, before NMS."""

    def __init__(self, detector: nn.Module, size: int) -> None:
        super().__init__()
        self.detector = detector
        self.register_buffer("scale", torch.full((4,), float(size)))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, anchors = self.detector.head_outputs(image / 255.0)
        regression = outputs["bbox_regression"]
        batch, count = regression.shape[0], regression.shape[1]
        boxes = self.detector.box_coder.decode_single(regression.reshape(-1, 4), anchors.repeat(batch, 1))
        boxes = (boxes / self.scale).clamp(0.0, 1.0).reshape(batch, count, 4)
        scores = torch.softmax(outputs["cls_logits"], dim=-1)[..., 1:]
        return boxes, scores


class SegmenterGraph(nn.Module):
    """0-255 image -> normalised -> FCN/UNet/... (logits averaged with the mirrored image's under test_time_flip) ->
    per-pixel softmax probabilities at the input size."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float], flip: bool = False) -> None:
        super().__init__()
        self.model, self.flip = model, flip
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(flip_averaged(self.model, (image / 255.0 - self.mean) / self.std, self.flip, dense=True),
                             dim=1)


def _input(channels: int, height: int, width: int, resize: str) -> dict[str, Any]:
    return {"name": INPUT_NAME, "shape": ["batch", channels, height, width], "dtype": "float32", "layout": "NCHW",
            "channel_order": "RGB" if channels == 3 else "grey (L)", "value_range": [0, 255], "resize": resize}


def _normalization(mean: list[float], std: list[float]) -> dict[str, Any]:
    return {"mean": list(mean), "std": list(std), "formula": "(pixel / 255 - mean) / std per channel",
            "applied": "inside the graph; feed raw 0-255 pixel values"}


def classification_graph(manifest: dict[str, Any], predictor: Any) -> ExportGraph:
    """The classification network with ImageNet normalisation and softmax/sigmoid inside."""
    channels, height, width = (int(v) for v in manifest["image_shape"])
    mean, std = list(predictor.mean), list(predictor.std)
    multi_label = bool(manifest.get("multi_label"))
    resize = (f"shorter side to {manifest['resize']} px (antialiased), then centre crop {height}x{width}"
              if manifest.get("resize") else f"resize to {height}x{width} (antialiased, aspect not kept)")
    names = list(manifest.get("class_names") or [])
    metadata = {
        "input": _input(channels, height, width, resize), "normalization": _normalization(mean, std),
        "outputs": [{"name": "probabilities", "shape": ["batch", int(manifest["num_classes"])], "dtype": "float32",
                     "meaning": ("independent sigmoid probability per class (multi-label)" if multi_label else
                                 "softmax probability per class, in class_names order")}],
        "postprocessing": "argmax (or a threshold for multi-label) gives the class index into class_names",
        "class_names": names, "test_time_flip": bool(manifest.get("test_time_flip")),
    }
    graph = ClassifierGraph(predictor.model, mean, std, multi_label, metadata["test_time_flip"])
    return ExportGraph(graph, torch.rand(1, channels, height, width) * 255.0, ["probabilities"], metadata)


def detection_graph(manifest: dict[str, Any], predictor: Any) -> ExportGraph:
    """The SSD with normalisation and box decoding inside; NMS is left to the caller (documented)."""
    spec = manifest["detector"]
    size, classes = int(spec["image_shape"]), int(spec["num_classes"])
    metadata = {
        "input": _input(3, size, size, f"resize to {size}x{size} (antialiased, aspect not kept)"),
        "normalization": _normalization(spec["mean"], spec["std"]),
        "outputs": [
            {"name": "boxes", "shape": ["batch", "anchors", 4], "dtype": "float32",
             "meaning": "decoded default boxes as xmin, ymin, xmax, ymax fractions of the input side (0-1)"},
            {"name": "scores", "shape": ["batch", "anchors", classes], "dtype": "float32",
             "meaning": "softmax score per object class (background column removed), class_names order"}],
        "postprocessing": (f"raw outputs before NMS. To match the endpoint: per class keep the top "
                           f"{TOPK_CANDIDATES} anchors by score, then per-class NMS at IoU "
                           f"{spec['nms_threshold']}, then the best {spec['detections_per_image']} over all classes; "
                           "scale boxes by the original width/height"),
        "nms_threshold": float(spec["nms_threshold"]), "detections_per_image": int(spec["detections_per_image"]),
        "class_names": list(manifest.get("class_names") or []),
    }
    return ExportGraph(DetectorGraph(predictor.model, size), torch.rand(1, 3, size, size) * 255.0, ["boxes", "scores"], metadata)


def segmentation_graph(manifest: dict[str, Any], predictor: Any) -> ExportGraph:
    """The segmentation network with normalisation and softmax inside."""
    geometry, norm = manifest["input"], manifest["normalization"]
    size = int(geometry["size"])
    resize = (f"resize to {size}x{size} (antialiased, aspect not kept)" if geometry["mode"] == "resize" else
              f"letterbox: scale the longer side to {size} px (aspect kept, antialiased), pad bottom/right with 0 "
              f"to {size}x{size}")
    classes = int(manifest["num_classes"])
    metadata = {
        "input": _input(3, size, size, resize), "normalization": _normalization(norm["mean"], norm["std"]),
        "outputs": [{"name": "probabilities", "shape": ["batch", classes, size, size], "dtype": "float32",
                     "meaning": "softmax probability per class and pixel of the input"}],
        "postprocessing": ("crop the letterboxed content region, resize to the original size (bilinear), argmax over "
                           "classes gives the class-id mask" if geometry["mode"] != "resize" else
                           "resize to the original size (bilinear), argmax over classes gives the class-id mask"),
        "class_names": list(manifest.get("class_names") or []), "test_time_flip": bool(manifest.get("test_time_flip")),
    }
    graph = SegmenterGraph(predictor.model, list(norm["mean"]), list(norm["std"]), metadata["test_time_flip"])
    return ExportGraph(graph, torch.rand(1, 3, size, size) * 255.0, ["probabilities"], metadata)


GRAPHS: dict[str, Callable[[dict[str, Any], Any], ExportGraph]] = {
    "classification": classification_graph, "detection": detection_graph, "segmentation": segmentation_graph,
}


def build_export_graph(manifest: dict[str, Any], predictor: Any) -> ExportGraph:
    """The export graph for a served model (predictor from task.build_predictor on the CPU)."""
    task = manifest.get("task")
    if task not in GRAPHS:
        raise ConfigError(f"cannot export a {task!r} model; export supports {', '.join(GRAPHS)}")
    graph = GRAPHS[task](manifest, predictor)
    graph.module.eval()
    graph.metadata = {"smcv_export_version": METADATA_VERSION, "task": task,
                      "architecture": manifest.get("architecture") or manifest.get("detector", {}).get("base_network"),
                      **graph.metadata}
    return graph
