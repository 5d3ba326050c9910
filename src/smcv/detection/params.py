"""Detection hyperparameters: the built-in object-detection names plus smcv's documented extensions."""

from __future__ import annotations

from typing import Optional

from smcv.augmentation_device import AUGMENTATION_DEVICES
from smcv.config import REQUIRED, Param, Schema, common_training_params
from smcv.data.manifest import parse_attribute_names as manifest_attribute_names
from smcv.detection.backbones import BASE_NETWORKS
from smcv.detection.sources import DATA_FORMATS
from smcv.detection.transforms import AUGMENTATIONS

#: lr_warmup_epochs None = auto: warmup_epochs() picks 1 epoch from scratch, none with ImageNet weights
DEFAULTS = {"epochs": 30, "learning_rate": 0.001, "mini_batch_size": 32, "momentum": 0.9, "weight_decay": 0.0005,
            "lr_scheduler_factor": 0.1, "lr_warmup_epochs": None}


def detection_schema() -> Schema:
    """The built-in's hyperparameters (same names, defaults, ranges) plus smcv's documented extensions."""
    return Schema("object-detection", [
        Param("num_classes", "int", REQUIRED, low=1, help="number of object classes (background not counted)"),
        Param("num_training_samples", "int", REQUIRED, low=1, help="number of training images"),
        Param("base_network", "str", "vgg-16", choices=BASE_NETWORKS, help="'vgg-16' or 'resnet-50' ('tiny': smcv smoke-test network)"),
        Param("use_pretrained_model", "bool", True,
              help="start the base network from ImageNet weights (pretrained channel, baked in, or downloaded)"),
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
        Param("augmentation", "str", "ssd", choices=AUGMENTATIONS, help="smcv: ssd (distort, zoom out, IoU crop, flip), flip, or none"),
        Param("augmentation_device", "str", "auto", choices=AUGMENTATION_DEVICES,
              help="smcv: where training augmentation runs: gpu (the training device, a whole batch at once), "
                   "cpu (DataLoader workers, per image), auto (gpu when CUDA is present); on a GPU, JPEGs are decoded "
                   "there too (nvJPEG)"),
        Param("detections_per_image", "int", 200, low=1, high=1000, help="smcv: detections kept per image after NMS"),
    ])


#: warm-up when lr_warmup_epochs is not given and the network trains from scratch (group norm, He init)
SCRATCH_WARMUP_EPOCHS = 1.0


def warmup_epochs(warmup: Optional[float], use_pretrained_model: bool) -> float:
    """The warm-up to use: lr_warmup_epochs when given, else 1 epoch from scratch and none with ImageNet weights."""
    if warmup is not None:
        return float(warmup)
    return 0.0 if use_pretrained_model else SCRATCH_WARMUP_EPOCHS


def parse_attribute_names(value: Optional[str]) -> Optional[list[str]]:
    """The attribute_names hyperparameter: a JSON list or comma-separated names."""
    return manifest_attribute_names(value, label="bounding-box")
