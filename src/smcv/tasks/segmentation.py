"""Semantic segmentation (FCN by default as the built-in, UNet recommended) with the hyperparameters, channels,
metrics and responses of SageMaker's built-in semantic-segmentation algorithm."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Optional

import torch

from smcv.augmentation_device import on_device
from smcv.balance import inverse_frequency_weights
from smcv.config import HyperParameters, Schema
from smcv.errors import DataError
from smcv.flip_average import flip_averaged
from smcv.inputs import channel_inputs
from smcv.pretrained import WeightsNeed
from smcv.segmentation import datasets as ds
from smcv.segmentation import params
from smcv.segmentation.device_augment import PairBatch, augment_pairs
from smcv.segmentation.losses import SegmentationCriterion
from smcv.segmentation.metrics import METRIC_NAMES, MIOU, ConfusionEvaluator, labels_at_original_size
from smcv.segmentation.model import (IMAGENET_MEAN, IMAGENET_STD, build_network, convert_syncbn, load_initial_weights,
                                     split_outputs, weights_need)
from smcv.segmentation.predictor import SegmentationPredictor
from smcv.segmentation.report import SegmentationReport
from smcv.segmentation.transforms import build_transform, content_size, normalize
from smcv.task_api import (AdvisorFacts, CardFacts, Evaluator, OnDevice, PreparedData, Predictor, Report, Task, TrainSettings,
                           criterion_of, staged_inputs)

log = logging.getLogger(__name__)


class SegmentationTask(Task):
    """torchvision FCN-ResNet50 by default (as the built-in) or smp UNet-ResNet34 (algorithm=unet), trained with
    focal + dice loss; built-in compatible I/O."""

    name = "segmentation"
    objective_metric = MIOU
    channel_names = ("train", "validation", "train_annotation", "validation_annotation", "label_map", "pretrained", "model")
    metric_names = METRIC_NAMES

    def schema(self) -> Schema:
        return params.segmentation_schema()

    def train_settings(self, hp: HyperParameters) -> TrainSettings:
        return params.train_settings(hp)

    def pretrained_need(self, hp: HyperParameters) -> Optional[WeightsNeed]:
        params.check(hp)
        return weights_need(params.architecture(hp), params.encoder_name(hp)) if hp.use_pretrained_model else None

    def prepare_data(self, hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict]) -> PreparedData:
        params.check(hp)
        if "train" not in channels:
            raise DataError(f"the 'train' channel is missing (channels present: {sorted(channels) or 'none'}); "
                            "semantic segmentation needs 'train', 'train_annotation', 'validation' and "
                            "'validation_annotation' (or train/validation augmented manifests)")
        geometry = params.geometry(hp)
        pipe = channel_inputs(channels, channel_config).pipe
        train = ds.read_split("train", channels, pipe, hp.mask_attribute)
        validation = None
        if "validation" in channels:
            validation = ds.read_split("validation", channels, pipe, hp.mask_attribute)
        binary = ds.binary_255(hp.binary_mask_255, hp.num_classes, train)
        device_augmentation = on_device(hp.augmentation_device)
        if device_augmentation:
            train_ds = ds.DecodedPairs(train.source, ds.make_decoder(train, hp.num_classes, binary))
        else:
            train_ds = ds.SegmentationDataset(train.source, ds.make_decoder(train, hp.num_classes, binary),
                                              build_transform(geometry, True, hp.augment, hp.horizontal_flip))
        log.info("training augmentation runs on the %s", "training device, a batch at a time" if device_augmentation
                 else "CPU, in the DataLoader workers")
        ds.check_pairs(train_ds)
        val_ds = None
        if validation is not None:
            val_ds = ds.SegmentationDataset(validation.source, ds.make_decoder(validation, hp.num_classes, binary),
                                            build_transform(geometry, False),
                                            functools.partial(content_size, geometry.mode, geometry.size))
            ds.check_pairs(val_ds)
        else:
            log.warning("no validation channel: the metrics %s are not computed and the last epoch's model is kept",
                        ", ".join(METRIC_NAMES))
        if hp.num_training_samples is not None and hp.num_training_samples != len(train_ds):
            log.warning("num_training_samples is %d but the train channel holds %d pairs; using %d",
                        hp.num_training_samples, len(train_ds), len(train_ds))
        info: dict[str, Any] = {"train": ds.describe(train, train_ds), "binary_mask_255": binary}
        info["class_pixel_counts"], info["class_pixel_counts_masks"] = ds.pixel_counts(train_ds, hp.num_classes)
        if hp.class_balance == "weights":
            info["class_weights"] = inverse_frequency_weights(info["class_pixel_counts"])
            log.info("class_balance=weights: focal-loss class weights %s", [round(w, 4) for w in info["class_weights"]])
        if validation is not None and val_ds is not None:
            info["validation"] = ds.describe(validation, val_ds)
        names = ds.class_names(hp.num_classes, train.class_names)
        collate = ds.DeviceCollate(geometry, hp.augment, hp.horizontal_flip) if device_augmentation else ds.collate
        return PreparedData(train_ds, val_ds, collate, names, info)

    def build_model(self, hp: HyperParameters, data: PreparedData, channels: dict[str, Path],
                    weights: Optional[Path] = None) -> torch.nn.Module:
        params.check_network(hp)
        spec = params.network(hp)
        model = build_network(spec)
        source = load_initial_weights(model, weights or self.resolve_pretrained(hp, channels), channels)
        log.info("segmentation network: %s with %s encoder, weights from %s", spec["architecture"], spec["encoder_name"],
                 source)
        model = convert_syncbn(model) if hp.syncbn else model
        model.criterion = SegmentationCriterion(hp.focal_loss_weight, hp.dice_loss_weight, hp.focal_gamma,
                                                data.info.get("class_weights") if data is not None else None,
                                                params.aux_loss_weight(hp), hp.test_time_flip)
        return model

    def _forward(self, model: torch.nn.Module, batch: Any, device: torch.device,
                 flip: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Loss, logits and masks of a batch; flip (validation with test_time_flip) averages the logits with the
        mirrored images' (the network then runs in eval mode, without auxiliary logits)."""
        images, masks = staged_inputs(batch, device, _stage)
        if flip:
            logits, aux = flip_averaged(lambda x: split_outputs(model(x))[0], images, True, dense=True), None
        else:
            logits, aux = split_outputs(model(images))
        return criterion_of(model)(logits, masks, aux), logits, masks

    def stage_batch(self, batch: Any, device: torch.device) -> OnDevice:
        return OnDevice(staged_inputs(batch, device, _stage))

    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        return self._forward(model, batch, device)[0]

    def new_evaluator(self, hp: HyperParameters, data: PreparedData) -> Evaluator:
        return ConfusionEvaluator(hp.num_classes)

    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device, evaluator: Evaluator) -> torch.Tensor:
        """The loss at the network's input size; the metrics at each image's original size, as serving answers."""
        loss, logits, _ = self._forward(model, batch, device, criterion_of(model).test_time_flip)
        originals = batch[2]
        masks = [original.mask.to(device, non_blocking=True) for original in originals]
        predicted = labels_at_original_size(logits, [o.content for o in originals], [m.shape for m in masks])
        evaluator.update(predicted, masks)
        return loss

    def advisor_facts(self, hp: HyperParameters, data: PreparedData) -> AdvisorFacts:
        masks = data.info.get("class_pixel_counts_masks", 0)
        return AdvisorFacts(train_samples=len(data.train), augmented=bool(hp.augment), augmentation_remedy="augment=1",
                            class_counts=data.info.get("class_pixel_counts"),
                            count_unit=f"pixels of {masks} masks spread over the set",
                            balanced=hp.class_balance != "none", balance_remedy="class_balance=weights",
                            class_names=list(data.class_names))

    def new_report(self, hp: HyperParameters, data: PreparedData) -> Optional[Report]:
        return SegmentationReport(hp.num_classes, data.class_names)

    def card_facts(self, hp: HyperParameters, data: PreparedData) -> CardFacts:
        geometry = params.geometry(hp)
        size = (f"resized to {geometry.size}x{geometry.size} (aspect ratio not kept)" if geometry.mode == "resize" else
                f"the longer side resized to {geometry.size} and padded to a {geometry.size}x{geometry.size} square")
        return CardFacts(
            description=f"Semantic segmentation into {hp.num_classes} classes: a class id per pixel.",
            architecture=f"{params.architecture(hp)} with a {params.encoder_name(hp)} "
                         f"{'backbone' if params.architecture(hp) == 'fcn' else 'encoder'}"
                         + (f" (depth {hp.encoder_depth})" if hp.encoder_depth else ""),
            preprocessing=f"decoded as RGB, {size}, normalised with ImageNet mean/std; the mask comes back at the "
                          "original image size.",
            response_types=SegmentationPredictor.response_types,
            notes=["Thin or small structures below the input resolution are lost by the resize."])

    def manifest_fields(self, hp: HyperParameters, data: PreparedData) -> dict[str, Any]:
        return {**params.network(hp), "input": params.geometry(hp).as_manifest(), "ignore_index": params.IGNORE_INDEX,
                "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}, "data": data.info,
                "test_time_flip": hp.test_time_flip}

    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> Predictor:
        model = build_network(manifest)
        model.load_state_dict(state_dict)
        model.to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        norm = manifest["normalization"]
        names = list(manifest.get("class_names") or [])
        return SegmentationPredictor(model, manifest["input"], norm["mean"], norm["std"], names, device,
                                     test_time_flip=bool(manifest.get("test_time_flip")))


def _stage(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images (channels-last on a GPU) and long masks on the device; a PairBatch (decoded only) is
    augmented there first."""
    if isinstance(batch, PairBatch):
        batch = augment_pairs(batch, device)
    images, masks = batch[0], batch[1]
    images = normalize(images.to(device, non_blocking=True), IMAGENET_MEAN, IMAGENET_STD)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks.to(device, non_blocking=True).long()
