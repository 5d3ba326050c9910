"""Hyperparameters: the built-in semantic-segmentation names and defaults, smcv's (UNet, FCN's aux head), and their
errors."""

from __future__ import annotations

import pytest

from smcv.errors import ConfigError
from smcv.segmentation import params
from smcv.tasks.segmentation import SegmentationTask


def resolve(**raw):
    return SegmentationTask().schema().resolve({"num_classes": "2", **{k: str(v) for k, v in raw.items()}})


def test_builtin_defaults():
    hp = resolve()
    assert (hp.epochs, hp.learning_rate, hp.mini_batch_size, hp.validation_mini_batch_size) == (10, 0.001, 16, 16)
    assert (hp.optimizer, hp.lr_scheduler, hp.momentum, hp.weight_decay) == ("sgd", "poly", 0.9, 0.0001)
    assert (hp.crop_size, hp.base_size, hp.use_pretrained_model, hp.syncbn) == (240, 520, True, False)
    assert (hp.early_stopping, hp.early_stopping_min_epochs, hp.early_stopping_patience,
            hp.early_stopping_tolerance) == (False, 5, 4, 0.0)
    assert (hp.gamma1, hp.gamma2, hp.algorithm, hp.binary_mask_255) == (0.9, 0.9, "fcn", "auto")
    assert (params.architecture(hp), params.encoder_name(hp), params.aux_loss_weight(hp)) == ("fcn", "resnet50", 0.5)
    assert params.network(hp) == {"architecture": "fcn", "encoder_name": "resnet50", "num_classes": 2,
                                  "aux_classifier": True}


def test_builtin_only_names_keep_the_builtin_defaults():
    """Built-in names alone (algorithm, backbone) mean what they mean in the built-in: resnet-50 unless told."""
    hp = resolve(num_training_samples=100, algorithm="fcn", backbone="resnet-101", crop_size=240, base_size=520)
    assert (params.architecture(hp), params.encoder_name(hp)) == ("fcn", "resnet101")
    for algorithm, arch in (("psp", "pspnet"), ("deeplab", "deeplabv3")):
        hp = resolve(algorithm=algorithm)
        assert (params.architecture(hp), params.encoder_name(hp), params.aux_loss_weight(hp)) == (arch, "resnet50", 0)


def test_algorithm_unet_alone_is_unet_resnet34():
    hp = resolve(algorithm="unet")
    assert params.network(hp) == {"architecture": "unet", "encoder_name": "resnet34", "encoder_depth": 5,
                                  "num_classes": 2, "decoder_channels": [256, 128, 64, 32, 16]}
    assert params.encoder_name(resolve(algorithm="unet", backbone="resnet-50")) == "resnet50"
    assert params.encoder_name(resolve(algorithm="unet", encoder_name="efficientnet-b0")) == "efficientnet-b0"
    assert params.network(resolve(algorithm="unet", encoder_depth=3))["decoder_channels"] == [64, 32, 16]


def test_num_classes_required_and_in_builtin_range():
    with pytest.raises(ConfigError, match="num_classes"):
        SegmentationTask().schema().resolve({})
    for bad in ("1", "255"):
        with pytest.raises(ConfigError, match="num_classes"):
            resolve(num_classes=bad)


def test_lenient_decoding_like_the_sdks():
    hp = resolve(use_pretrained_model="False", optimizer='"adam"', syncbn="true", lr_scheduler_step="3, 6")
    assert hp.use_pretrained_model is False and hp.optimizer == "adam" and hp.syncbn is True
    assert hp.lr_scheduler_step == (3, 6)


def test_encoder_from_backbone_and_encoder_name():
    assert params.encoder_name(resolve()) == "resnet50"
    assert params.encoder_name(resolve(backbone="resnet-50")) == "resnet50"
    assert params.encoder_name(resolve(backbone="resnet-101")) == "resnet101"
    assert params.encoder_name(resolve(encoder_name="resnet101")) == "resnet101"  # FCN takes the smp spelling too
    hp = resolve(algorithm="unet", backbone="resnet-101", encoder_name="efficientnet-b0")
    assert params.encoder_name(hp) == "efficientnet-b0"


def test_unknown_encoder_is_a_clear_error():
    with pytest.raises(ConfigError, match="not a segmentation-models-pytorch encoder.*resnet34"):
        params.check(resolve(algorithm="unet", encoder_name="resnet-33"))


def test_algorithms():
    assert params.architecture(resolve()) == "fcn"
    assert params.architecture(resolve(algorithm="unet")) == "unet"
    assert params.architecture(resolve(algorithm="psp")) == "pspnet"
    assert params.architecture(resolve(algorithm="deeplab")) == "deeplabv3"


@pytest.mark.parametrize("raw, fragment", [
    ({"encoder_name": "efficientnet-b0"}, "cannot use encoder_name='efficientnet-b0'; set backbone=resnet-50 or "
                                          "resnet-101 for FCN, or algorithm=unet"),
    ({"algorithm": "fcn", "backbone": "resnet-18"}, "cannot use backbone='resnet-18'.*or algorithm=unet"),
    ({"backbone": "resnet-152"}, "dilated ResNet-50 or ResNet-101 and cannot use backbone='resnet-152'"),
    ({"encoder_depth": 4}, "encoder_depth applies to algorithm=unet only.*remove it, or set algorithm=unet"),
    ({"algorithm": "unet", "aux_loss_weight": 0.4}, "aux_loss_weight applies to algorithm=fcn only"),
    ({"algorithm": "psp", "aux_loss_weight": 0}, "aux_loss_weight applies to algorithm=fcn only"),
])
def test_settings_of_another_algorithm_are_errors_saying_what_to_do(raw, fragment):
    hp = resolve(**raw)
    with pytest.raises(ConfigError, match=fragment):
        params.check(hp)
    with pytest.raises(ConfigError, match=fragment):
        SegmentationTask().pretrained_need(hp)  # before any data is read


def test_aux_loss_weight_zero_drops_the_aux_head():
    hp = resolve(aux_loss_weight=0)
    assert params.aux_loss_weight(hp) == 0 and params.network(hp)["aux_classifier"] is False
    assert params.aux_loss_weight(resolve(aux_loss_weight=0.2)) == 0.2


def test_step_scheduler_needs_steps():
    with pytest.raises(ConfigError, match="lr_scheduler_step"):
        params.check(resolve(lr_scheduler="step"))


def test_image_size_must_suit_the_encoder_stride():
    with pytest.raises(ConfigError, match="image_size=100 is not a multiple of 32.*encoder_depth=5 needs.*128"):
        params.geometry(resolve(algorithm="unet", image_size=100))
    assert params.geometry(resolve(algorithm="unet", image_size=96, encoder_depth=3)).size == 96  # depth 3: multiple of 8
    with pytest.raises(ConfigError, match="image_size=100 is not a multiple of 8, which the fcn network needs.*104"):
        params.geometry(resolve(image_size=100))
    assert params.geometry(resolve(image_size=72)).size == 72


def test_builtin_crop_and_base_rounded_to_the_stride():
    geo = params.geometry(resolve())  # fcn: multiples of 8, as the built-in
    assert (geo.mode, geo.crop, geo.base, geo.size, geo.divisor) == ("letterbox", 240, 520, 520, 8)
    geo = params.geometry(resolve(algorithm="unet"))
    assert (geo.mode, geo.crop, geo.base, geo.size, geo.divisor) == ("letterbox", 256, 520, 544, 32)


def test_train_settings_mapping():
    hp = resolve(optimizer="rmsprop", gamma1=0.8, gamma2=0.5, gradient_accumulation_steps=4,
                 validation_mini_batch_size=3, lr_scheduler="cosine", mini_batch_size=8)
    s = SegmentationTask().train_settings(hp)
    assert (s.optimizer, s.rho, s.rmsprop_momentum, s.gradient_accumulation_steps) == ("rmsprop", 0.8, 0.5, 4)
    assert (s.validation_batch_size, s.lr_scheduler, s.batch_size, s.epochs) == (3, "cosine", 8, 10)
    assert (s.early_stopping_min_epochs, s.early_stopping_patience) == (5, 4)


def test_zero_loss_weights_rejected():
    with pytest.raises(ConfigError, match="nothing to train"):
        params.check(resolve(focal_loss_weight=0, dice_loss_weight=0))


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ConfigError, match="unknown hyperparameter.*'num_layers'.*valid names"):
        resolve(num_layers=50)
