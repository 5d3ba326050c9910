"""Segmentation hyperparameters: the built-in semantic-segmentation names plus smcv's (UNet, loss), and what they imply."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from smcv.augmentation_device import AUGMENTATION_DEVICES
from smcv.balance import CLASS_BALANCE
from smcv.config import REQUIRED, HyperParameters, Param, Schema, common_training_params, test_time_flip_param
from smcv.errors import ConfigError
from smcv.segmentation.fcn import FCN_BUILDERS
from smcv.segmentation.model import check_encoder, network_spec, size_divisor
from smcv.task_api import TrainSettings, train_settings_from

log = logging.getLogger(__name__)

TASK = "segmentation"
IGNORE_INDEX = 255
#: built-in `backbone` values and the encoder name each one means
BACKBONES = {"resnet-50": "resnet50", "resnet-101": "resnet101", "resnet-18": "resnet18", "resnet-34": "resnet34",
             "resnet-152": "resnet152"}
#: `algorithm` values (the built-in's fcn, psp, deeplab, plus smcv's unet) and the network each one means
ALGORITHMS = {"fcn": "fcn", "unet": "unet", "psp": "pspnet", "deeplab": "deeplabv3"}
#: the built-in's default; smcv's recommended model is RECOMMENDED_ALGORITHM (UNet, ResNet-34 encoder)
DEFAULT_ALGORITHM = "fcn"
RECOMMENDED_ALGORITHM = "unet"
#: backbone when neither backbone nor encoder_name is given: the built-in's resnet-50, ResNet-34 for smcv's UNet
DEFAULT_BACKBONES = {"fcn": "resnet-50", "psp": "resnet-50", "deeplab": "resnet-50", "unet": "resnet-34"}
UNET_DEPTH = 5
#: weight of FCN's auxiliary head loss (layer3 features) when aux_loss_weight is not given, as torchvision's recipe
FCN_AUX_LOSS_WEIGHT = 0.5

_BUILTIN_DEFAULTS = {
    "epochs": 10, "learning_rate": 0.001, "mini_batch_size": 16, "momentum": 0.9, "weight_decay": 0.0001,
    "lr_scheduler_factor": 0.1, "early_stopping_min_epochs": 5, "early_stopping_patience": 4,
    "early_stopping_tolerance": 0.0, "lr_scheduler": "poly",
}


def _own_params() -> list[Param]:
    return [
        Param("num_classes", "int", REQUIRED, low=2, high=254,
              help="classes including background; binary segmentation is num_classes=2 (softmax over 2 classes)"),
        Param("num_training_samples", "int", None, low=1, help="accepted as the built-in requires it; smcv counts the data itself"),
        Param("algorithm", "str", DEFAULT_ALGORITHM, choices=tuple(ALGORITHMS),
              help="fcn (default, as the built-in), unet (smcv's recommended: UNet, ResNet-34 encoder by default), "
                   "psp (PSPNet) or deeplab (DeepLabV3)"),
        Param("backbone", "str", None, choices=tuple(BACKBONES),
              help="built-in encoder name; default resnet-50 (resnet-34 with algorithm=unet); fcn: resnet-50 or resnet-101"),
        Param("encoder_name", "str", None,
              help="unet/psp/deeplab: any segmentation-models-pytorch encoder (overrides backbone); fcn: resnet50 or resnet101"),
        Param("encoder_depth", "int", None, low=3, high=5, help=f"unet only: encoder stages used by the decoder (default {UNET_DEPTH})"),
        Param("aux_loss_weight", "float", None, low=0,
              help=f"fcn only: weight of the auxiliary head's loss during training (default {FCN_AUX_LOSS_WEIGHT}; 0: no auxiliary head)"),
        Param("use_pretrained_model", "bool", True,
              help="start the encoder from ImageNet weights (pretrained channel, baked in, or downloaded)"),
        Param("optimizer", "str", "sgd", choices=("sgd", "adam", "adagrad", "nag", "rmsprop"), help="optimizer"),
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
        Param("augmentation_device", "str", "auto", choices=AUGMENTATION_DEVICES,
              help="smcv: where training augmentation runs: gpu (the training device, a whole batch at once), "
                   "cpu (DataLoader workers, per pair), auto (gpu when CUDA is present)"),
        test_time_flip_param(),
    ]


def segmentation_schema() -> Schema:
    """The schema: common training parameters with the built-in's defaults, then the segmentation ones."""
    return Schema(TASK, common_training_params(_BUILTIN_DEFAULTS) + _own_params())


def architecture(hp: HyperParameters) -> str:
    """The network: 'fcn' (torchvision), or smp's 'unet', 'pspnet', 'deeplabv3'."""
    return ALGORITHMS[hp.algorithm]


def encoder_name(hp: HyperParameters) -> str:
    """The encoder: encoder_name, else the mapped built-in backbone, else the algorithm's default backbone."""
    if hp.encoder_name:
        return hp.encoder_name
    return BACKBONES[hp.backbone or DEFAULT_BACKBONES[hp.algorithm]]


def encoder_depth(hp: HyperParameters) -> int:
    """UNet's encoder depth: encoder_depth, else 5."""
    return UNET_DEPTH if hp.encoder_depth is None else hp.encoder_depth


def aux_loss_weight(hp: HyperParameters) -> float:
    """The auxiliary loss weight: FCN's aux_loss_weight (default 0.5); 0 for the other networks (no auxiliary head)."""
    if hp.algorithm != "fcn":
        return 0.0
    return FCN_AUX_LOSS_WEIGHT if hp.aux_loss_weight is None else hp.aux_loss_weight


def network(hp: HyperParameters) -> dict[str, Any]:
    """The network spec (as stored in the manifest) the hyperparameters ask for."""
    return network_spec(architecture(hp), encoder_name(hp), encoder_depth(hp), hp.num_classes, aux_loss_weight(hp) > 0)


def check_network(hp: HyperParameters) -> None:
    """Each algorithm takes its own settings: FCN a torchvision ResNet-50/101, the smp networks smp encoders."""
    if hp.algorithm == "fcn":
        _check_fcn(hp)
        return
    if hp.aux_loss_weight is not None:
        raise ConfigError(f"aux_loss_weight applies to algorithm=fcn only (its auxiliary head); remove it for "
                          f"algorithm={hp.algorithm}")
    if hp.encoder_name:
        check_encoder(hp.encoder_name)


def _check_fcn(hp: HyperParameters) -> None:
    """FCN takes ResNet-50/101 and no UNet-only setting."""
    if encoder_name(hp) not in FCN_BUILDERS:
        given = f"encoder_name={hp.encoder_name!r}" if hp.encoder_name else f"backbone={hp.backbone!r}"
        raise ConfigError(f"algorithm=fcn (the default, as in the built-in) is torchvision's FCN on a dilated "
                          f"ResNet-50 or ResNet-101 and cannot use {given}; set backbone=resnet-50 or resnet-101 for "
                          f"FCN, or algorithm={RECOMMENDED_ALGORITHM} (smcv's recommended UNet, which takes any "
                          f"segmentation-models-pytorch encoder)")
    if hp.encoder_depth is not None:
        raise ConfigError(f"encoder_depth applies to algorithm={RECOMMENDED_ALGORITHM} only (FCN always uses the "
                          f"whole dilated ResNet); remove it, or set algorithm={RECOMMENDED_ALGORITHM}")


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
    arch, depth = architecture(hp), encoder_depth(hp)
    divisor = size_divisor(arch, depth)
    if hp.image_size is not None:
        if hp.image_size % divisor:
            network_name = f"{arch} network" + (f" with encoder_depth={depth}" if arch == "unet" else "")
            raise ConfigError(f"image_size={hp.image_size} is not a multiple of {divisor}, which the {network_name} "
                              f"needs; use e.g. {round_up(hp.image_size, divisor)}")
        return Geometry("resize", hp.image_size, hp.image_size, hp.image_size, divisor)
    crop = round_up(hp.crop_size, divisor)
    if crop != hp.crop_size:
        log.info("crop_size %d rounded up to %d (a multiple of %d)", hp.crop_size, crop, divisor)
    return Geometry("letterbox", round_up(hp.base_size, divisor), crop, hp.base_size, divisor)


def check(hp: HyperParameters) -> None:
    """Cross-parameter rules the schema cannot express."""
    check_network(hp)
    if hp.lr_scheduler == "step" and not hp.lr_scheduler_step:
        raise ConfigError("lr_scheduler='step' needs lr_scheduler_step, the epochs at which to reduce the learning "
                          "rate, e.g. '10,20'; or use lr_scheduler='poly' or 'cosine'")
    if hp.focal_loss_weight == 0 and hp.dice_loss_weight == 0:
        raise ConfigError("focal_loss_weight and dice_loss_weight are both 0, so there is nothing to train on; set one above 0")
    if hp.class_balance == "weights" and hp.focal_loss_weight == 0:
        raise ConfigError("class_balance=weights weights the focal loss term, but focal_loss_weight is 0; set "
                          "focal_loss_weight above 0 or leave class_balance unset")
    geometry(hp)


def train_settings(hp: HyperParameters) -> TrainSettings:
    """Engine settings from the built-in names (gamma1/gamma2 are rmsprop's rho and momentum)."""
    check(hp)
    return train_settings_from(hp, rho=hp.gamma1, rmsprop_momentum=hp.gamma2,
                               validation_batch_size=hp.validation_mini_batch_size)
