"""Image classification with the hyperparameters, channels and responses of SageMaker's built-in algorithm."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch

from smcv.classification import params
from smcv.classification.balance import balance_data
from smcv.classification.datasets import ClassificationDataset, positive_weights
from smcv.classification.manifest import label_rules
from smcv.classification.metrics import AccuracyEvaluator
from smcv.classification.model import SMALL_IMAGE_DEPTHS, TrainingCriterion, adapt_first_conv, build_resnet
from smcv.classification.predictor import ClassificationPredictor
from smcv.classification.report import ClassificationReport
from smcv.classification.sources import Split, check_labels, class_names_for, read_split
from smcv.classification.threshold import fixed_entry, parse_setting
from smcv.classification.device_augment import (MAX_UNCROPPED_AREA, CropBatch, DeviceCropCollate, augment_batch,
                                                device_collate, small_enough)
from smcv.classification.transforms import (GpuNormalize, eval_transform, normalisation, train_transform,
                                            uncropped_transform)
from smcv.augmentation_device import on_device
from smcv.config import HyperParameters, Schema
from smcv.data.jpeg import DEVICE_DECODE_NOTE, EncodedJpeg, decode_on_device
from smcv.contract import ENV_CACHE_LIMIT_MB
from smcv.errors import DataError
from smcv.flip_average import flip_averaged
from smcv.inputs import channel_inputs
from smcv.pretrained import WeightsNeed, imagenet_need, load_matching, read_state_dict
from smcv.task_api import (AdvisorFacts, CardFacts, Evaluator, OnDevice, PreparedData, Predictor, Report, Task, TrainSettings,
                           criterion_of, staged_inputs, train_settings_from)

log = logging.getLogger(__name__)


class ClassificationTask(Task):
    """ResNet image classification (torchvision), compatible with the built-in image-classification algorithm."""

    name = "classification"
    objective_metric = "validation:accuracy"
    channel_names = ("train", "validation", "train_lst", "validation_lst", "pretrained", "model")
    metric_names = ("validation:accuracy", "validation:top_5_accuracy")

    def schema(self) -> Schema:
        return params.classification_schema()

    def train_settings(self, hp: HyperParameters) -> TrainSettings:
        params.check(hp)
        params.warn_upscaling(hp)
        return train_settings_from(hp, beta_1=hp.beta_1, beta_2=hp.beta_2, eps=hp.eps, rho=hp.gamma)

    def pretrained_need(self, hp: HyperParameters) -> Optional[WeightsNeed]:
        if not hp.use_pretrained_model:
            return None
        return imagenet_need(f"ResNet-{hp.num_layers}", (f"resnet{hp.num_layers}", "resnet"))

    def prepare_data(self, hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict]) -> PreparedData:
        params.check(hp)
        train, validation = _read_splits(hp, channels, channel_config, channel_inputs(channels, channel_config).pipe)
        names = class_names_for(hp.num_classes, train, validation)
        if train.format == "folders" and len(names) != hp.num_classes:
            raise DataError(f"the train channel has {len(names)} class folders ({', '.join(names)}) but num_classes "
                            f"is {hp.num_classes}; set num_classes={len(names)}")
        for split in (train, validation):
            if split is not None:
                check_labels(split.items, hp.num_classes, hp.multi_label, split.name)
        mode = "L" if hp.image_shape[0] == 1 else "RGB"
        limit = int(os.environ.get(ENV_CACHE_LIMIT_MB, "2048")) << 20
        train_ds = ClassificationDataset(train.items, train.rec_files, mode, hp.num_classes, hp.multi_label,
                                         train_transform(hp.image_shape, hp.resize, hp.augmentation_type), limit)
        collate = _place_augmentation(hp, train_ds)
        val_ds = None
        if validation is not None:
            val_ds = ClassificationDataset(validation.items, validation.rec_files, mode, hp.num_classes, hp.multi_label,
                                           eval_transform(hp.image_shape, hp.resize), limit)
        if len(train_ds) != hp.num_training_samples:
            log.warning("num_training_samples is %d but the train channel holds %d images; using %d",
                        hp.num_training_samples, len(train_ds), len(train_ds))
        info = {"train_format": train.format, "train_samples": len(train_ds), "validation_samples": len(val_ds or [])}
        if hp.multi_label and hp.use_weighted_loss:
            info["pos_weight"] = positive_weights(train_ds, hp.num_classes)
        balance, weights = balance_data(train_ds, hp.num_classes, hp.multi_label, hp.class_balance)
        return PreparedData(train_ds, val_ds, collate, names, {**info, **balance}, sample_weights=weights)

    def build_model(self, hp: HyperParameters, data: PreparedData, channels: dict[str, Path],
                    weights: Optional[Path] = None) -> torch.nn.Module:
        """The ResNet, carrying its TrainingCriterion (normalisation, loss) for the training and validation steps."""
        model = build_resnet(hp.num_layers, hp.num_classes, hp.image_shape[0])
        weights = weights or self.resolve_pretrained(hp, channels)
        if weights is not None:
            state = adapt_first_conv(read_state_dict(weights), "conv1.weight", hp.image_shape[0])
            load_matching(model, state, skip=("fc.",), source=weights.name)
        normalize = GpuNormalize(*normalisation(hp.image_shape[0]))
        model.criterion = TrainingCriterion(normalize, hp.multi_label, data.info.get("pos_weight"),
                                            data.info.get("class_weights"), hp.test_time_flip)
        return model

    def stage_batch(self, batch: Any, device: torch.device) -> OnDevice:
        return OnDevice(staged_inputs(batch, device, _stage))

    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        criterion = criterion_of(model)
        images, targets = _normalised(staged_inputs(batch, device, _stage), criterion)
        return criterion(model(images), targets)

    def new_evaluator(self, hp: HyperParameters, data: PreparedData) -> Evaluator:
        return AccuracyEvaluator(hp.multi_label, hp.top_k)

    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device, evaluator: Evaluator) -> torch.Tensor:
        criterion = criterion_of(model)
        images, targets = _normalised(_stage(batch, device), criterion)
        logits = flip_averaged(model, images, criterion.test_time_flip, dense=False)
        evaluator.update(logits, (images, targets))
        return criterion(logits, targets)

    def advisor_facts(self, hp: HyperParameters, data: PreparedData) -> AdvisorFacts:
        sampled = data.info.get("class_counts_sample")
        return AdvisorFacts(
            train_samples=len(data.train), input_side=min(hp.image_shape[1:]), network_depth=hp.num_layers,
            network_stride=4 if hp.num_layers in SMALL_IMAGE_DEPTHS else 32,
            small_input_remedy="a small-image ResNet: num_layers=20, 32, 44, 56 or 110 (e.g. num_layers=20 or 56)",
            augmented=hp.augmentation_type is not None,
            augmentation_remedy="augmentation_type=crop (or crop_color, crop_color_transform)",
            class_counts=data.info.get("class_counts"), count_unit=f"images of a sample of {sampled}" if sampled else "images",
            balanced=hp.class_balance != "none", balance_remedy="class_balance=weights or class_balance=sampling",
            class_names=list(data.class_names))

    def new_report(self, hp: HyperParameters, data: PreparedData) -> Optional[Report]:
        return ClassificationReport(data.class_names, hp.multi_label, hp.top_k,
                                    (parse_setting(hp.decision_threshold), hp.threshold_rule, hp.target_sensitivity))

    def card_facts(self, hp: HyperParameters, data: PreparedData) -> CardFacts:
        c, h, w = hp.image_shape
        kind = "multi-label (an independent probability per class)" if hp.multi_label else "single-label (probabilities sum to 1)"
        size = (f"shorter side resized to {hp.resize}, then centre-cropped to {w}x{h}" if hp.resize
                else f"resized to {w}x{h} (aspect ratio not kept)")
        mean, std = normalisation(c)
        return CardFacts(
            description=f"Image classification into {hp.num_classes} classes, {kind}.",
            architecture=f"ResNet-{hp.num_layers}",
            preprocessing=f"decoded as {'greyscale' if c == 1 else 'RGB'} (EXIF orientation applied), {size}, "
                          f"scaled to 0-1 and normalised with mean {[round(m, 3) for m in mean]} and std {[round(v, 3) for v in std]}.",
            response_types=ClassificationPredictor.response_types)

    def manifest_fields(self, hp: HyperParameters, data: PreparedData) -> dict[str, Any]:
        mean, std = normalisation(hp.image_shape[0])
        return {"architecture": f"resnet{hp.num_layers}", "num_layers": hp.num_layers, "num_classes": hp.num_classes,
                "image_shape": list(hp.image_shape), "resize": hp.resize, "multi_label": hp.multi_label,
                "normalization": {"mean": mean, "std": std}, "data": data.info,
                "decision_threshold": fixed_entry(parse_setting(hp.decision_threshold)),
                "test_time_flip": hp.test_time_flip}

    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> Predictor:
        shape = tuple(manifest["image_shape"])
        model = build_resnet(int(manifest["num_layers"]), int(manifest["num_classes"]), shape[0])
        model.load_state_dict(state_dict)
        model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        mode = "L" if shape[0] == 1 else "RGB"
        norm = manifest.get("normalization") or dict(zip(("mean", "std"), normalisation(shape[0])))
        return ClassificationPredictor(model, shape, manifest.get("resize"), mode, bool(manifest.get("multi_label")),
                                       list(manifest.get("class_names") or []), device,
                                       input_side=max(int(manifest.get("resize") or 0), *shape[1:]),
                                       decision_threshold=(manifest.get("decision_threshold") or {}).get("value"),
                                       mean=norm["mean"], std=norm["std"],
                                       test_time_flip=bool(manifest.get("test_time_flip")))


def _read_splits(hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict],
                 pipe: dict[str, Path]) -> tuple[Split, Optional[Split]]:
    """The train split and the optional validation split, from File-mode folders or spooled Pipe-mode records."""
    if "train" not in channels and "train" not in pipe:
        raise DataError(f"the 'train' channel is missing (channels present: {sorted(channels) or 'none'}); "
                        "the classification algorithm needs 'train' and optionally 'validation' "
                        "(plus 'train_lst'/'validation_lst' for .lst input)")

    def read(name: str, class_names: Optional[list[str]] = None) -> Split:
        config = channel_config.get(name, {})
        rules = label_rules(hp.num_classes, hp.multi_label, hp.attribute_names, config)
        return read_split(name, channels, hp.data_format, class_names, rules=rules, pipe=pipe.get(name),
                          channel_config=config)

    train = read("train")
    has_validation = "validation" in channels or "validation" in pipe
    return train, read("validation", train.class_names) if has_validation else None


def _place_augmentation(hp: HyperParameters, dataset: ClassificationDataset) -> Optional[DeviceCropCollate]:
    """Where augmentation_type runs: on the training device (the dataset then gives uncropped images, or on a GPU
    the JPEGs still encoded for nvJPEG, and the returned collate draws each batch's plan) or per image in the
    DataLoader workers (None). With auto, decoded images far larger than the crop stay on the CPU path: cropping in
    the workers moves less data to the device; JPEGs the GPU decodes move as their bytes, whatever their size
    (SMCV_JPEG_DECODE: auto, device or pil)."""
    if hp.augmentation_type is None:
        return None
    device = on_device(hp.augmentation_device)
    uncropped = uncropped_transform(hp.image_shape, hp.resize)
    dataset.keep_jpeg = device and dataset.cache is None and decode_on_device(torch.cuda.is_available())
    why = ""
    if device and len(dataset) and (dataset.keep_jpeg or hp.augmentation_device == "auto"):
        dataset.transform = uncropped
        first = dataset[0][0]
        if isinstance(first, EncodedJpeg):
            why = f"; {DEVICE_DECODE_NOTE}"
        elif hp.augmentation_device == "auto":
            height, width = first["image"].shape[-2:]
            if not small_enough((int(height), int(width)), hp.image_shape):
                device = dataset.keep_jpeg = False
                why = (f" (its first image is {width}x{height} before the crop, over {MAX_UNCROPPED_AREA:g}x the "
                       "crop's area: the workers crop it first; augmentation_device=gpu moves whole images instead)")
    dataset.transform = uncropped if device else train_transform(hp.image_shape, hp.resize, hp.augmentation_type)
    log.info("training augmentation (%s) runs on the %s%s", hp.augmentation_type,
             "training device, a batch at a time" if device else "CPU, in the DataLoader workers", why)
    return device_collate(hp.image_shape, hp.augmentation_type, hp.resize) if device else None


def _stage(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and targets on the device (a CropBatch is augmented there first)."""
    images, targets = batch
    if isinstance(images, CropBatch):
        images = augment_batch(images, device)
    return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)


def _normalised(staged: tuple[torch.Tensor, torch.Tensor], criterion: TrainingCriterion) -> tuple[torch.Tensor, torch.Tensor]:
    """The staged images normalised on their device (channels-last on a GPU), beside the targets."""
    images, targets = staged
    images = criterion.normalize(images)
    if images.device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets
