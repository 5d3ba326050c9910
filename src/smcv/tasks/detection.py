"""SSD object detection: a drop-in for SageMaker's object-detection built-in (names, inputs, metric, responses)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch

from smcv.config import REQUIRED, HyperParameters, Param, Schema, common_training_params
from smcv.errors import ConfigError
from smcv.tasks.base import Evaluator, PreparedData, Predictor, Task, TrainSettings

DEFAULTS = {"epochs": 30, "learning_rate": 0.001, "mini_batch_size": 32, "momentum": 0.9, "weight_decay": 0.0005,
            "lr_scheduler_factor": 0.1}


def detection_schema() -> Schema:
    """The built-in's hyperparameters (same names, defaults, ranges) plus smcv's documented extensions."""
    from smcv.detection.backbones import BASE_NETWORKS
    from smcv.detection.readers import DATA_FORMATS
    from smcv.detection.transforms import AUGMENTATIONS

    return Schema("object-detection", [
        Param("num_classes", "int", REQUIRED, low=1, help="number of object classes (background not counted)"),
        Param("num_training_samples", "int", REQUIRED, low=1, help="number of training images"),
        Param("base_network", "str", "vgg-16", choices=BASE_NETWORKS, help="'vgg-16' or 'resnet-50' ('tiny': smcv smoke-test network)"),
        Param("use_pretrained_model", "bool", True, help="start the base network from ImageNet weights (pretrained channel or baked in)"),
        Param("image_shape", "int", 300, low=300, help="input side in pixels (300 or 512 recommended)"),
        *common_training_params(DEFAULTS),
        Param("optimizer", "str", "sgd", choices=("sgd", "adam", "rmsprop", "adadelta"), help="optimizer"),
        Param("overlap_threshold", "float", 0.5, low=0, high=1, low_inclusive=False, help="IoU for a true positive in validation:mAP"),
        Param("nms_threshold", "float", 0.45, low=0, high=1, low_inclusive=False, help="non-maximum suppression IoU"),
        Param("label_width", "int", 350, low=7, help="padded label width of the built-in's RecordIO reader (accepted; smcv reads any width)"),
        Param("freeze_layer_pattern", "str", None, help="regex on base-network layer names whose weights stay fixed"),
        Param("data_format", "str", "auto", choices=DATA_FORMATS, help="smcv: input format; auto sniffs the channel"),
        Param("attribute_names", "str", None, help="smcv: augmented-manifest attributes, e.g. '[\"source-ref\", \"bounding-box\"]'"),
        Param("classes", "str", None, help="smcv: class names in id order, comma-separated or a JSON list"),
        Param("precision_dtype", "str", "float32", choices=("float32", "float16", "bfloat16"), help="training precision"),
        Param("amp", "bool", True, help="smcv: BF16 autocast on GPUs that support it"),
        Param("augmentation", "str", "ssd", choices=AUGMENTATIONS, help="smcv: ssd (distort, zoom out, IoU crop, flip), flip, or none"),
        Param("detections_per_image", "int", 200, low=1, high=1000, help="smcv: detections kept per image after NMS"),
        Param("gradient_accumulation_steps", "int", 1, low=1, help="smcv: optimizer step every N mini-batches"),
        Param("checkpoint_frequency", "int", None, low=1, help="smcv: also save the model every N epochs under model/snapshots"),
    ])


def parse_attribute_names(value: Optional[str]) -> Optional[list[str]]:
    """The attribute_names hyperparameter: a JSON list or comma-separated names."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        names = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",")]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"attribute_names {text!r} is not a JSON list ({exc}); use '[\"source-ref\", \"bounding-box\"]'") from None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"attribute_names must list the image attribute then the bounding-box attribute, got {text!r}")
    return names


def _to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    images, targets = batch
    x = images.to(device, non_blocking=True).float().div_(255.0)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    moved = [{"boxes": t["boxes"].to(device, non_blocking=True), "labels": t["labels"].to(device, non_blocking=True)}
             for t in targets]
    return x, moved


class DetectionEvaluator(Evaluator):
    """VOC07 mAP at overlap_threshold and COCO mAP@[.5:.95], accumulated over the validation set."""

    def __init__(self, num_classes: int, overlap_threshold: float) -> None:
        from smcv.detection.metrics import MatchAccumulator

        self.accumulator = MatchAccumulator(num_classes, overlap_threshold)

    def update(self, outputs: Any, batch: Any) -> None:
        from smcv.detection.metrics import ImageResult

        for det, target in zip(outputs, batch):
            self.accumulator.add(ImageResult(
                det["boxes"].float().cpu().numpy(), det["scores"].float().cpu().numpy(), det["labels"].cpu().numpy(),
                target["boxes"].float().cpu().numpy(), target["labels"].cpu().numpy(), target["difficult"].cpu().numpy()))

    def compute(self) -> dict[str, float]:
        result = self.accumulator.compute()
        return {"validation:mAP": result["mAP"], "validation:mAP_coco": result["mAP_coco"]}

    def state(self) -> list[Any]:
        return self.accumulator.state()

    def merge(self, states: list[list[Any]]) -> None:
        for state in states:
            self.accumulator.merge(state)


class DetectionTask(Task):
    """SSD (VGG-16 or ResNet-50) object detection."""

    name = "detection"
    objective_metric = "validation:mAP"
    channel_names = ("train", "validation", "train_annotation", "validation_annotation", "pretrained", "model")
    metric_names = ("validation:mAP", "validation:mAP_coco")
    objective_type = "Maximize"

    def schema(self) -> Schema:
        return detection_schema()

    def train_settings(self, hp: HyperParameters) -> TrainSettings:
        return TrainSettings(
            epochs=hp.epochs, batch_size=hp.mini_batch_size, learning_rate=hp.learning_rate, optimizer=hp.optimizer,
            momentum=hp.momentum, weight_decay=hp.weight_decay, lr_scheduler="step",
            lr_scheduler_step=tuple(hp.lr_scheduler_step), lr_scheduler_factor=hp.lr_scheduler_factor,
            precision=hp.precision_dtype, amp=hp.amp, gradient_accumulation_steps=hp.gradient_accumulation_steps,
            checkpoint_frequency=hp.checkpoint_frequency, early_stopping=hp.early_stopping,
            early_stopping_min_epochs=hp.early_stopping_min_epochs, early_stopping_patience=hp.early_stopping_patience,
            early_stopping_tolerance=hp.early_stopping_tolerance, num_workers=hp.num_workers, seed=hp.seed,
            freeze_pattern=None)  # applied to base-network names (with MXNet aliases) in build_model

    def prepare_data(self, hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict]) -> PreparedData:
        from smcv.detection.prepare import prepare_detection_data

        return prepare_detection_data(hp, channels, channel_config, parse_attribute_names(hp.attribute_names))

    def build_model(self, hp: HyperParameters, data: PreparedData, channels: dict[str, Path]) -> torch.nn.Module:
        from smcv.detection.build import build_training_model

        model, spec = build_training_model(hp, channels)
        data.info["detector"] = spec
        return model

    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        images, targets = _to_device(batch, device)
        losses = model(images, targets)
        return losses["bbox_regression"] + losses["classification"]

    def new_evaluator(self, hp: HyperParameters, data: PreparedData) -> Evaluator:
        return DetectionEvaluator(hp.num_classes, hp.overlap_threshold)

    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device, evaluator: Evaluator) -> torch.Tensor:
        images, targets = _to_device(batch, device)
        outputs, anchors = model.head_outputs(images)
        losses = model.losses(outputs, anchors, targets)
        evaluator.update(model.detect(outputs, anchors, images.shape[-2], images.shape[-1]), batch[1])
        return (losses["bbox_regression"] + losses["classification"]).detach()

    def manifest_fields(self, hp: HyperParameters, data: PreparedData) -> dict[str, Any]:
        if "detector" not in data.info:
            raise RuntimeError("build_model must run before manifest_fields (it decides the detector spec)")
        fields = {"detector": data.info["detector"], "image_shape": hp.image_shape,
                  "response_types": list(_response_types())}
        if data.info.get("source_class_ids") is not None:
            fields["source_class_ids"] = data.info["source_class_ids"]
        return fields

    def extra_metric_lines(self, metrics: dict[str, float]) -> list[str]:
        value = metrics.get("validation:mAP")
        if value is None:
            return []
        return [f"#quality_metric: validation mAP <score>=({value:.6f})"]

    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> Predictor:
        from smcv.detection.model import build_detector
        from smcv.detection.predictor import DetectionPredictor

        spec = manifest.get("detector")
        if not isinstance(spec, dict):
            raise ConfigError("manifest.json has no 'detector' section; the model must come from an smcv detection job")
        model = build_detector(spec)
        model.load_state_dict(state_dict)
        model.eval().to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return DetectionPredictor(model, int(spec["image_shape"]), device, tuple(manifest.get("class_names") or ()))


def _response_types() -> tuple[str, ...]:
    from smcv.detection.predictor import DetectionPredictor

    return DetectionPredictor.response_types

