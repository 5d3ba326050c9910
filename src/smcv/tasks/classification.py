"""Image classification with the hyperparameters, channels and responses of SageMaker's built-in algorithm."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as nnf

from smcv.classification.dataset import ClassificationDataset
from smcv.classification.metrics import AccuracyEvaluator
from smcv.classification.models import NUM_LAYERS, adapt_first_conv, build_resnet
from smcv.classification.predictor import ClassificationPredictor
from smcv.classification.sources import FORMATS, check_labels, read_split
from smcv.classification.transforms import AUGMENTATIONS, GpuNormalize, eval_transform, normalisation, train_transform
from smcv.contract import Paths
from smcv.data.pipe import is_pipe_mode
from smcv.data.spool import spool_pipe_channel
from smcv.config import REQUIRED, HyperParameters, Param, Schema, common_training_params
from smcv.errors import ConfigError, DataError
from smcv.pretrained import load_matching, model_channel_artifact, read_state_dict, require_pretrained
from smcv.tasks.base import Evaluator, PreparedData, Predictor, Task, TrainSettings

log = logging.getLogger(__name__)
CACHE_LIMIT_ENV = "SMCV_CACHE_LIMIT_MB"


def _params() -> list[Param]:
    return [
        Param("num_classes", "int", REQUIRED, low=1, help="number of output classes"),
        Param("num_training_samples", "int", REQUIRED, low=1, help="number of training images"),
        *common_training_params({"epochs": 30, "learning_rate": 0.1, "mini_batch_size": 32, "momentum": 0.9,
                                 "weight_decay": 0.0001, "lr_scheduler_factor": 0.1, "early_stopping_min_epochs": 10,
                                 "early_stopping_patience": 5}),
        Param("num_layers", "int", 152, choices=NUM_LAYERS, help="ResNet depth"),
        Param("image_shape", "shape", (3, 224, 224), low=1, help="input 'channels,height,width'"),
        Param("resize", "int", None, low=1, help="shorter side of the image before cropping"),
        Param("optimizer", "str", "sgd", choices=("sgd", "adam", "rmsprop", "nag"), help="optimizer"),
        Param("beta_1", "float", 0.9, low=0, high=1, help="adam beta1"),
        Param("beta_2", "float", 0.999, low=0, high=1, help="adam beta2"),
        Param("eps", "float", 1e-8, low=0, high=1, help="adam/rmsprop epsilon"),
        Param("gamma", "float", 0.9, low=0, high=1, help="rmsprop decay"),
        Param("augmentation_type", "str", None, choices=AUGMENTATIONS, help="data augmentation"),
        Param("use_pretrained_model", "bool", False, help="start from ImageNet weights (only the last layer is re-initialised)"),
        Param("precision_dtype", "str", "float32", choices=("float32", "float16", "bfloat16"), help="training precision"),
        Param("multi_label", "bool", False, help="several labels per image (multi-hot or class-id list)"),
        Param("use_weighted_loss", "bool", False, help="multi_label only: weight positives by inverse frequency"),
        Param("top_k", "int", None, low=2, help="also report validation top-k accuracy"),
        Param("checkpoint_frequency", "int", None, low=1, help="also save the model every N epochs under model/snapshots"),
        Param("data_format", "str", "auto", choices=FORMATS, help="smcv: input format, sniffed by default"),
        Param("amp", "bool", True, help="smcv: BF16 autocast on GPUs that support it"),
        Param("gradient_accumulation_steps", "int", 1, low=1, help="smcv: optimizer step every N mini-batches"),
    ]


class ClassificationTask(Task):
    """ResNet image classification (torchvision), compatible with the built-in image-classification algorithm."""

    name = "classification"
    objective_metric = "validation:accuracy"
    channel_names = ("train", "validation", "train_lst", "validation_lst", "pretrained", "model")
    metric_names = ("validation:accuracy", "validation:top_5_accuracy")

    def schema(self) -> Schema:
        return Schema(self.name, _params())

    def train_settings(self, hp: HyperParameters) -> TrainSettings:
        if hp.checkpoint_frequency and hp.checkpoint_frequency > hp.epochs:
            raise ConfigError(f"checkpoint_frequency ({hp.checkpoint_frequency}) must not exceed epochs ({hp.epochs})")
        if hp.resize and hp.resize < max(hp.image_shape[1:]):
            log.warning("resize %d is smaller than image_shape %s: images are upscaled before cropping", hp.resize, hp.image_shape)
        return TrainSettings(
            epochs=hp.epochs, batch_size=hp.mini_batch_size, learning_rate=hp.learning_rate, optimizer=hp.optimizer,
            momentum=hp.momentum, weight_decay=hp.weight_decay, beta_1=hp.beta_1, beta_2=hp.beta_2, eps=hp.eps,
            rho=hp.gamma, lr_scheduler="step", lr_scheduler_step=hp.lr_scheduler_step,
            lr_scheduler_factor=hp.lr_scheduler_factor, precision=hp.precision_dtype, amp=hp.amp,
            gradient_accumulation_steps=hp.gradient_accumulation_steps, early_stopping=hp.early_stopping,
            early_stopping_min_epochs=hp.early_stopping_min_epochs, early_stopping_patience=hp.early_stopping_patience,
            early_stopping_tolerance=hp.early_stopping_tolerance, checkpoint_frequency=hp.checkpoint_frequency,
            num_workers=hp.num_workers, seed=hp.seed,
        )

    def prepare_data(self, hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict]) -> PreparedData:
        if hp.image_shape[0] not in (1, 3):
            raise ConfigError(f"image_shape {hp.image_shape}: the number of channels must be 1 (grey) or 3 (RGB)")
        channels = _spool_pipe_channels(channels, channel_config)
        if "train" not in channels:
            raise DataError(f"the 'train' channel is missing (channels present: {sorted(channels) or 'none'}); "
                            "the classification algorithm needs 'train' and optionally 'validation' "
                            "(plus 'train_lst'/'validation_lst' for .lst input)")
        train = read_split("train", channels, hp.data_format)
        validation = read_split("validation", channels, hp.data_format, train.class_names) if "validation" in channels else None
        names = train.class_names or [str(i) for i in range(hp.num_classes)]
        if train.format == "folders" and len(names) != hp.num_classes:
            raise DataError(f"the train channel has {len(names)} class folders ({', '.join(names)}) but num_classes "
                            f"is {hp.num_classes}; set num_classes={len(names)}")
        for split in (train, validation):
            if split is not None:
                check_labels(split.items, hp.num_classes, hp.multi_label, split.name)
        mode = "L" if hp.image_shape[0] == 1 else "RGB"
        limit = int(os.environ.get(CACHE_LIMIT_ENV, "2048")) << 20
        train_ds = ClassificationDataset(train.items, train.rec_files, mode, hp.num_classes, hp.multi_label,
                                         train_transform(hp.image_shape, hp.resize, hp.augmentation_type), limit)
        val_ds = None
        if validation is not None:
            val_ds = ClassificationDataset(validation.items, validation.rec_files, mode, hp.num_classes, hp.multi_label,
                                           eval_transform(hp.image_shape, hp.resize), limit)
        if len(train_ds) != hp.num_training_samples:
            log.warning("num_training_samples is %d but the train channel holds %d images; using %d",
                        hp.num_training_samples, len(train_ds), len(train_ds))
        info = {"train_format": train.format, "train_samples": len(train_ds), "validation_samples": len(val_ds or [])}
        data = PreparedData(train_ds, val_ds, None, names, info)
        if hp.multi_label and hp.use_weighted_loss:
            data.info["pos_weight"] = _pos_weight(train_ds, hp.num_classes)
        return data

    def build_model(self, hp: HyperParameters, data: PreparedData, channels: dict[str, Path]) -> torch.nn.Module:
        model = build_resnet(hp.num_layers, hp.num_classes, hp.image_shape[0])
        if hp.use_pretrained_model and model_channel_artifact(channels.get("model")) is None:
            path = require_pretrained([f"resnet{hp.num_layers}", "resnet"], channels, f"ResNet-{hp.num_layers}")
            state = adapt_first_conv(read_state_dict(path), "conv1.weight", hp.image_shape[0])
            load_matching(model, state, skip=("fc.",), source=path.name)
        self._pos_weight = data.info.get("pos_weight")
        self._multi_label = hp.multi_label
        self._normalize = GpuNormalize(*normalisation(hp.image_shape[0]))
        return model

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if getattr(self, "_multi_label", False):
            weight = getattr(self, "_pos_weight", None)
            pos_weight = torch.tensor(weight, device=logits.device) if weight is not None else None
            return nnf.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
        return nnf.cross_entropy(logits, targets)

    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        images, targets = _to_device(batch, device, self._normalize)
        return self._loss(model(images), targets)

    def new_evaluator(self, hp: HyperParameters, data: PreparedData) -> Evaluator:
        self._multi_label = hp.multi_label
        return AccuracyEvaluator(hp.multi_label, hp.top_k)

    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device, evaluator: Evaluator) -> torch.Tensor:
        images, targets = _to_device(batch, device, self._normalize)
        logits = model(images).float()
        evaluator.update(logits, (images, targets))
        return self._loss(logits, targets)

    def manifest_fields(self, hp: HyperParameters, data: PreparedData) -> dict[str, Any]:
        mean, std = normalisation(hp.image_shape[0])
        return {"architecture": f"resnet{hp.num_layers}", "num_layers": hp.num_layers, "num_classes": hp.num_classes,
                "image_shape": list(hp.image_shape), "resize": hp.resize, "multi_label": hp.multi_label,
                "normalization": {"mean": mean, "std": std}, "data": data.info}

    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> Predictor:
        shape = tuple(manifest["image_shape"])
        model = build_resnet(int(manifest["num_layers"]), int(manifest["num_classes"]), shape[0])
        model.load_state_dict(state_dict)
        model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        mode = "L" if shape[0] == 1 else "RGB"
        norm = manifest.get("normalization") or dict(zip(("mean", "std"), normalisation(shape[0])))
        return ClassificationPredictor(model, eval_transform(shape, manifest.get("resize")),
                                       GpuNormalize(norm["mean"], norm["std"]), mode, bool(manifest.get("multi_label")),
                                       list(manifest.get("class_names") or []), device,
                                       input_side=max(int(manifest.get("resize") or 0), *shape[1:]))


def _spool_pipe_channels(channels: dict[str, Path], channel_config: dict[str, dict]) -> dict[str, Path]:
    """Pipe-mode RecordIO channels are copied once to local disk, then read like File mode."""
    channels = dict(channels)
    for split in ("train", "validation"):
        if is_pipe_mode(channel_config.get(split, {})):
            channels[split] = spool_pipe_channel(Paths.from_env(), split).parent
    return channels


def _to_device(batch: Any, device: torch.device, normalize: GpuNormalize) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images go to the device as they are and are normalised there."""
    images, targets = batch
    images = normalize(images.to(device, non_blocking=True))
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(device, non_blocking=True)


def _pos_weight(dataset: ClassificationDataset, num_classes: int) -> list[float]:
    targets = torch.stack(dataset.targets())
    positives = targets.sum(dim=0).clamp(min=1)
    return ((len(targets) - positives) / positives).tolist()
