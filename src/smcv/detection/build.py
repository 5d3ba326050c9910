"""The training network: spec from hyperparameters, weights from a previous model or ImageNet, frozen layers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from smcv.artifact import load_manifest
from smcv.config import HyperParameters
from smcv.detection.model import (SSDDetector, build_detector, count_parameters, detector_spec, freeze_base_network,
                                  is_caffe_style, load_base_weights)
from smcv.errors import ConfigError
from smcv.inputs import channel_inputs

log = logging.getLogger(__name__)


def previous_manifest(channels: dict[str, Path]) -> Optional[dict[str, Any]]:
    """The manifest of an smcv detection model given in the 'model' channel (incremental training).

    Only the network spec comes from here; smcv.train loads the weights from the same artifact."""
    folder = channel_inputs(channels).model_artifact
    if folder is None:
        return None
    manifest = load_manifest(folder)
    if manifest.get("task") != "detection" or not isinstance(manifest.get("detector"), dict):
        raise ConfigError(f"the model channel holds a {manifest.get('task')!r} model; incremental training needs "
                          f"a model.tar.gz from an smcv object-detection job")
    return manifest


def _spec(hp: HyperParameters, weights: Optional[Path], previous: Optional[dict[str, Any]]) -> dict[str, Any]:
    base = hp.base_network
    spec = detector_spec(base, hp.image_shape, hp.num_classes, nms_threshold=hp.nms_threshold,
                         detections_per_image=hp.detections_per_image,
                         frozen_bn=base == "resnet-50" and weights is not None,
                         caffe_norm=base == "vgg-16" and weights is not None and is_caffe_style(weights),
                         norm=scratch_norm(weights))
    if previous is not None:
        if previous["base_network"] != base:
            raise ConfigError(f"the model channel holds a {previous['base_network']} model but base_network is "
                              f"{base}; set base_network to {previous['base_network']}")
        spec.update({k: previous[k] for k in ("mean", "std", "frozen_bn")})
        spec["norm"] = previous.get("norm", "none")  # models saved before the from-scratch variant are plain
    return spec


def scratch_norm(weights: Optional[Path]) -> str:
    """The architecture variant: group norm in base and extras when training from scratch, else the plain network."""
    return "none" if weights is not None else "group"


def build_training_model(hp: HyperParameters, channels: dict[str, Path],
                         weights: Optional[Path]) -> tuple[SSDDetector, dict[str, Any]]:
    """The SSD to train and the spec that rebuilds it for serving; `weights`: the base network's ImageNet file."""
    previous = previous_manifest(channels)
    weights = weights if previous is None else None
    spec = _spec(hp, weights, previous["detector"] if previous else None)
    model = build_detector(spec)
    if previous is not None:
        log.info("incremental training from the model channel: the network keeps the previous model's base network "
                 "and normalisation; smcv.train loads its weights")
    elif weights is not None:
        load_base_weights(model, weights)
    if hp.freeze_layer_pattern:
        freeze_base_network(model, hp.freeze_layer_pattern)
    log.info("SSD %s at %d px, %d classes, %s: %d trainable parameters", hp.base_network, hp.image_shape,
             hp.num_classes, "group norm in base and extras (from scratch)" if spec["norm"] == "group"
             else "plain base network", count_parameters(model))
    return model, spec
