"""SSD object detection: a drop-in for SageMaker's object-detection built-in (names, inputs, metric, responses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from smcv.advisor import POOR_COVERAGE
from smcv.balance import class_counts
from smcv.config import HyperParameters, Schema
from smcv.detection.box_stats import box_coverage_facts
from smcv.detection.build import build_training_model
from smcv.detection.datasets import to_device
from smcv.detection.metrics import DetectionEvaluator
from smcv.detection.model import build_detector, weights_need
from smcv.detection.params import detection_schema, parse_attribute_names, warmup_epochs
from smcv.detection.predictor import DetectionPredictor
from smcv.detection.prepare import prepare_detection_data
from smcv.detection.report import DetectionReport
from smcv.errors import ConfigError
from smcv.pretrained import WeightsNeed
from smcv.task_api import (AdvisorFacts, CardFacts, Evaluator, OnDevice, PreparedData, Predictor, Report, Task, TrainSettings,
                           staged_inputs, train_settings_from)


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
        # freeze_layer_pattern is applied to base-network names (with MXNet aliases) in build_model
        return train_settings_from(hp, lr_warmup_epochs=warmup_epochs(hp.lr_warmup_epochs, hp.use_pretrained_model))

    def pretrained_need(self, hp: HyperParameters) -> Optional[WeightsNeed]:
        return weights_need(hp.base_network) if hp.use_pretrained_model else None

    def prepare_data(self, hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict]) -> PreparedData:
        return prepare_detection_data(hp, channels, channel_config, parse_attribute_names(hp.attribute_names))

    def build_model(self, hp: HyperParameters, data: PreparedData, channels: dict[str, Path],
                    weights: Optional[Path] = None) -> torch.nn.Module:
        model, spec = build_training_model(hp, channels, weights or self.resolve_pretrained(hp, channels))
        data.info["detector"] = spec
        return model

    def stage_batch(self, batch: Any, device: torch.device) -> OnDevice:
        return OnDevice(staged_inputs(batch, device, to_device))

    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        images, targets = staged_inputs(batch, device, to_device)
        losses = model(images, targets)
        return losses["bbox_regression"] + losses["classification"]

    def new_evaluator(self, hp: HyperParameters, data: PreparedData) -> Evaluator:
        return DetectionEvaluator(hp.num_classes, hp.overlap_threshold)

    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device, evaluator: Evaluator) -> torch.Tensor:
        images, targets = to_device(batch, device)
        outputs, anchors = model.head_outputs(images)
        losses = model.losses(outputs, anchors, targets)
        evaluator.update(model.detect(outputs, anchors, images.shape[-2], images.shape[-1]), batch[1])
        return (losses["bbox_regression"] + losses["classification"]).detach()

    def advisor_facts(self, hp: HyperParameters, data: PreparedData) -> AdvisorFacts:
        labels = getattr(data.train, "label_maps", None)
        boxes = class_counts(np.concatenate(labels), hp.num_classes) if labels else None
        coverage, remedy, smallest = (box_coverage_facts(data.train.samples, labels, hp.num_classes, hp.base_network,
                                                         hp.image_shape, POOR_COVERAGE)
                                      if labels else ([], "", None))
        return AdvisorFacts(train_samples=len(data.train), input_side=hp.image_shape, augmented=hp.augmentation != "none",
                            augmentation_remedy="augmentation=ssd (or flip)", class_counts=boxes, count_unit="boxes",
                            class_names=list(data.class_names), announce_classes=True, box_coverage=coverage or None,
                            coverage_remedy=remedy, smallest_default_box=smallest)

    def new_report(self, hp: HyperParameters, data: PreparedData) -> Optional[Report]:
        return DetectionReport(hp.num_classes, hp.overlap_threshold, data.class_names)

    def card_facts(self, hp: HyperParameters, data: PreparedData) -> CardFacts:
        spec = data.info.get("detector") or {}
        return CardFacts(
            description=f"Object detection (SSD) of {hp.num_classes} classes: boxes with class ids and scores.",
            architecture=f"SSD with a {hp.base_network} base network",
            preprocessing=f"decoded as RGB, resized to {hp.image_shape}x{hp.image_shape} (aspect ratio not kept), "
                          f"scaled to 0-1 and normalised inside the network (mean {spec.get('mean')}, std "
                          f"{spec.get('std')}); boxes come back as fractions of the original image.",
            response_types=DetectionPredictor.response_types,
            notes=["Validation mAP is VOC 2007 11-point AP at IoU "
                   f"{hp.overlap_threshold}; small or crowded objects may be missed at this input size."])

    def manifest_fields(self, hp: HyperParameters, data: PreparedData) -> dict[str, Any]:
        if "detector" not in data.info:
            raise RuntimeError("build_model must run before manifest_fields (it decides the detector spec)")
        fields = {"detector": data.info["detector"], "image_shape": hp.image_shape,
                  "response_types": list(DetectionPredictor.response_types)}
        if data.info.get("source_class_ids") is not None:
            fields["source_class_ids"] = data.info["source_class_ids"]
        return fields

    def extra_metric_lines(self, metrics: dict[str, float]) -> list[str]:
        value = metrics.get("validation:mAP")
        if value is None:
            return []
        return [f"#quality_metric: validation mAP <score>=({value:.6f})"]

    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> Predictor:
        spec = manifest.get("detector")
        if not isinstance(spec, dict):
            raise ConfigError("manifest.json has no 'detector' section; the model must come from an smcv detection job")
        model = build_detector(spec)
        model.load_state_dict(state_dict)
        model.eval().to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return DetectionPredictor(model, int(spec["image_shape"]), device, tuple(manifest.get("class_names") or ()))

