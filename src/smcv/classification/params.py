"""Classification hyperparameters: the built-in image-classification names plus smcv's documented extensions."""

from __future__ import annotations

import logging

from smcv.augmentation_device import AUGMENTATION_DEVICES
from smcv.balance import CLASS_BALANCE
from smcv.classification.model import NUM_LAYERS
from smcv.classification.sources import FORMATS
from smcv.classification.threshold import RULES, applies, parse_setting
from smcv.classification.transforms import AUGMENTATIONS
from smcv.config import REQUIRED, HyperParameters, Param, Schema, common_training_params, test_time_flip_param
from smcv.data.manifest import parse_attribute_names
from smcv.errors import ConfigError

log = logging.getLogger(__name__)
TASK = "classification"


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
        Param("augmentation_device", "str", "auto", choices=AUGMENTATION_DEVICES,
              help="smcv: where augmentation_type runs: gpu (the training device, a whole batch at once), cpu "
                   "(DataLoader workers, per image), auto (gpu when CUDA is present); on a GPU, JPEGs are decoded "
                   "there too (nvJPEG)"),
        Param("use_pretrained_model", "bool", False, help="start from ImageNet weights (only the last layer is re-initialised)"),
        Param("multi_label", "bool", False, help="several labels per image (multi-hot or class-id list)"),
        Param("use_weighted_loss", "bool", False, help="multi_label only: weight positives by inverse frequency"),
        Param("class_balance", "str", "none", choices=CLASS_BALANCE,
              help="smcv: against class imbalance: weights (inverse-frequency cross-entropy weights), sampling "
                   "(draw images so every class comes equally often) or none (the built-in's behaviour)"),
        Param("top_k", "int", None, low=2, help="also report validation top-k accuracy"),
        Param("decision_threshold", "str", "auto",
              help="smcv, binary single-label only: class 1 when its probability >= this, in verbose answers; auto "
                   "(chosen on the validation channel by threshold_rule), none (highest probability, the built-in's "
                   "behaviour) or a number in (0, 1)"),
        Param("threshold_rule", "str", "youden", choices=RULES,
              help="smcv: how decision_threshold=auto chooses: youden (max sensitivity + specificity - 1) or "
                   "sensitivity (the highest threshold that reaches target_sensitivity)"),
        Param("target_sensitivity", "float", 0.95, low=0, high=1, low_inclusive=False,
              help="smcv: the validation sensitivity threshold_rule=sensitivity must reach"),
        test_time_flip_param(),
        Param("data_format", "str", "auto", choices=FORMATS, help="smcv: input format, sniffed by default"),
        Param("attribute_names", "str", None,
              help="smcv: augmented-manifest attributes, the image then the label, e.g. '[\"source-ref\", \"class\"]' "
                   "(default: the channel's AttributeNames, else source-ref and class)"),
    ]


def classification_schema() -> Schema:
    """The schema: the built-in's names, defaults and ranges, plus smcv's extensions."""
    return Schema(TASK, _params())


def check(hp: HyperParameters) -> None:
    """Cross-parameter rules the schema cannot express."""
    if hp.image_shape[0] not in (1, 3):
        raise ConfigError(f"image_shape {hp.image_shape}: the number of channels must be 1 (grey) or 3 (RGB)")
    parse_attribute_names(hp.attribute_names)
    if isinstance(parse_setting(hp.decision_threshold), float) and not applies(hp.num_classes, hp.multi_label):
        raise ConfigError(f"decision_threshold={hp.decision_threshold} needs a binary single-label job (num_classes=2, "
                          "multi_label=0); leave it unset (auto) for other jobs")
    if hp.multi_label and hp.class_balance != "none":
        raise ConfigError(f"class_balance={hp.class_balance} works on single-label data; with multi_label=1 use "
                          "use_weighted_loss=1 (positive weights per class) and leave class_balance unset")


def warn_upscaling(hp: HyperParameters) -> None:
    """A resize below the crop size is allowed (as in the built-in) but worth a warning."""
    if hp.resize and hp.resize < max(hp.image_shape[1:]):
        log.warning("resize %d is smaller than image_shape %s: images are upscaled before cropping", hp.resize, hp.image_shape)
