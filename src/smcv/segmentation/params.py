"""Segmentation hyperparameters: the built-in semantic-segmentation names plus the UNet ones, and what they imply."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from smcv.balance import CLASS_BALANCE
from smcv.config import REQUIRED, HyperParameters, Param, Schema, common_training_params
from smcv.errors import ConfigError
from smcv.segmentation.model import check_encoder, size_divisor
from smcv.task_api import TrainSettings, train_settings_from

log = logging.getLogger(__name__)

TASK = "segmentation"
IGNORE_INDEX = 255
DEFAULT_ENCODER = "resnet34"
#: built-in `backbone` values and the smp encoder each one means
BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101", "resnet-18": "resnet18", "resnet-34": "resnet34",
             "resnet-152": "resnet152"}
#: built-in `algorithm` values (plus unet) and the smp architecture each one means; None = not available
ALGORITHMS = {"unet": "unet", "psp": "pspnet", "deeplab": "deeplabv3", "fcn": None}

_BUILTIN_DEFAULTS = {
    "epochs": 10, "learning_rate": 0.001, "mini_batch_size": 16, "momentum": 0.9, "weight_decay": 0.0001,
    "lr_scheduler_factor": 0.1, "early_stopping_min_epochs": 5, "early_stopping_patience": 4,
    "early_stopping_tolerance": 0.0,
}


def _own_params() -> list[Param]:
    return [
        Param("num_classes", "int", REQUIRED, low=2, high=254,
              help="classes including background; binary segmentation is num_classes=2 (softmax over 2 classes)"),
        Param("num_training_samples", "int", None, low=1, help="accepted as the built-in requires it; smcv counts the data itself"),
        Param("algorithm", "str", "unet", choices=tuple(ALGORITHMS), help="unet (default), psp (PSPNet) or deeplab (DeepLabV3)"),
        Param("backbone", "str", None, choices=tuple(BACKBONES), help="built-in encoder name; resnet-50 -> smp resnet50"),
        Param("encoder_name", "str", None, help="any segmentation-models-pytorch encoder (overrides backbone); default resnet34"),
        Param("encoder_depth", "int", 5, low=3, high=5, help="encoder stages used by the decoder"),
        Param("use_pretrained_model", "bool", True,
              help="start the encoder from ImageNet weights (pretrained channel, baked in, or downloaded)"),
        Param("optimizer", "str", "sgd", choices=("sgd", "adam", "adagrad", "nag", "rmsprop"), help="optimizer"),
        Param("lr_scheduler", "str", "poly", choices=("poly", "cosine", "step"), help="learning-rate schedule"),
        Param("gamma1", "float", 0.9, low=0, high=1, help="rmsprop decay (smoothing) factor"),
        Param("gamma2", "float", 0.9, low=0, high=1, help="rmsprop momentum"),
        Param("validation_mini_batch_size", "int", 16, low=1, help="validation batch size"),
        Param("crop_size", "int", 240, low=16, low_inclusive=False,
              help="random square training crop (rounded up to a multiple of 32) when image_size is not set"),
        Param("base_size", "int", 520, low=16, low_inclusive=False,
              help="long side before the random 0.5-2x scale of training and for validation/inference when image_size is not set"),
        Param("image_size", "int", None, low=32, help="train, validate and serve at image_size x image_size (resize, no crop)"),
        Param("syncbn", "bool", False, help="synchronise batch-norm statistics across GPUs"),
        Param("focal_loss_weight", "float", 1.0, low=0, help="weight of the focal loss term"),
        Param("dice_loss_weight", "float", 1.0, low=0, help="weight of the dice loss term"),
        Param("focal_gamma", "float", 2.0, low=0, high=10, help="focusing parameter of the focal loss"),
        Param("binary_mask_255", "str", "auto", choices=("auto", "true", "false"),
              help="with num_classes=2, read mask value 255 as foreground (true), as ignore (false), or decide from the masks (auto)"),
        Param("mask_attribute", "str", None, help="label attribute of an augmented manifest (e.g. 'city-streets-ref') when it holds several -ref keys"),
        Param("class_balance", "str", "none", choices=CLASS_BALANCE[:2],
              help="smcv: weights: weight the focal term by inverse class pixel frequency (from a sample of the "
                   "training masks); none: the built-in's behaviour"),
        Param("augment", "bool", True, help="random scale/crop, flip and brightness/contrast during training"),
        Param("horizontal_flip", "bool", True, help="random horizontal flips when augment is on"),
    ]


def segmentation_schema() -> Schema:
    """The schema: common training parameters with the built-in's defaults, then the segmentation ones."""
    return Schema(TASK, common_training_params(_BUILTIN_DEFAULTS) + _own_params())


def architecture(hp: HyperParameters) -> str:
    """The smp architecture ('unet', 'pspnet', 'deeplabv3'); 'fcn' is refused with what to use instead."""
    arch = ALGORITHMS[hp.algorithm]
    if arch is None:
        raise ConfigError("algorithm 'fcn' is not available in smcv; use algorithm='unet' (default), 'psp' (PSPNet) "
                          "or 'deeplab' (DeepLabV3), or leave algorithm unset")
    return arch


def encoder_name(hp: HyperParameters) -> str:
    """The smp encoder: encoder_name, else the mapped built-in backbone, else resnet34."""
    if hp.encoder_name:
        return hp.encoder_name
    if hp.backbone:
        return BACKBONES[hp.backbone]
    return DEFAULT_ENCODER


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` not below value."""
    return int(math.ceil(value / multiple) * multiple)


@dataclass(frozen=True)
class Geometry:
    """Sizes the transforms and the predictor work with."""

    mode: str  # "resize": image_size x image_size | "letterbox": long side base, padded square
    size: int  # side of the square network input for validation and serving
    crop: int  # training crop (letterbox mode) or image_size
    base: int  # long side before the random scale (letterbox mode)
    divisor: int

    def as_manifest(self) -> dict[str, Any]:
        """The serving half of the geometry."""
        return {"mode": self.mode, "size": self.size, "divisor": self.divisor}


def geometry(hp: HyperParameters) -> Geometry:
    """Input sizes from image_size, or the built-in's base_size/crop_size, checked against the encoder's stride."""
    divisor = size_divisor(architecture(hp), hp.encoder_depth)
    if hp.image_size is not None:
        if hp.image_size % divisor:
            raise ConfigError(f"image_size={hp.image_size} is not a multiple of {divisor}, which the "
                              f"{architecture(hp)} network with encoder_depth={hp.encoder_depth} needs; use e.g. "
                              f"{round_up(hp.image_size, divisor)}")
        return Geometry("resize", hp.image_size, hp.image_size, hp.image_size, divisor)
    crop = round_up(hp.crop_size, divisor)
    if crop != hp.crop_size:
        log.info("crop_size %d rounded up to %d (a multiple of %d)", hp.crop_size, crop, divisor)
    return Geometry("letterbox", round_up(hp.base_size, divisor), crop, hp.base_size, divisor)


def check(hp: HyperParameters) -> None:
    """Cross-parameter rules the schema cannot express."""
    architecture(hp)
    if hp.lr_scheduler == "step" and not hp.lr_scheduler_step:
        raise ConfigError("lr_scheduler='step' needs lr_scheduler_step, the epochs at which to reduce the learning "
                          "rate, e.g. '10,20'; or use lr_scheduler='poly' or 'cosine'")
    if hp.focal_loss_weight == 0 and hp.dice_loss_weight == 0:
        raise ConfigError("focal_loss_weight and dice_loss_weight are both 0, so there is nothing to train on; set one above 0")
    if hp.class_balance == "weights" and hp.focal_loss_weight == 0:
        raise ConfigError("class_balance=weights weights the focal loss term, but focal_loss_weight is 0; set "
                          "focal_loss_weight above 0 or leave class_balance unset")
    if hp.encoder_name:
        check_encoder(hp.encoder_name)
    geometry(hp)


def train_settings(hp: HyperParameters) -> TrainSettings:
    """Engine settings from the built-in names (gamma1/gamma2 are rmsprop's rho and momentum)."""
    check(hp)
    return train_settings_from(hp, rho=hp.gamma1, rmsprop_momentum=hp.gamma2, lr_scheduler=hp.lr_scheduler,
                               validation_batch_size=hp.validation_mini_batch_size)
