"""The SSD network: anchor counts per size, the loss on background-only images, freezing and pretrained weights."""

from __future__ import annotations

import pytest
import torch
from tests.helpers.detdata import TINY_HP

from smcv.detection.backbones import VGGBackbone
from smcv.detection.model import build_detector, detector_spec
from smcv.errors import ConfigError
from smcv.tasks.detection import DetectionTask


def resolve(**hp):
    return DetectionTask().schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, **{k: str(v) for k, v in hp.items()}})


@pytest.mark.parametrize("base, size, anchors", [
    ("vgg-16", 300, 8732), ("vgg-16", 512, 24564), ("vgg-16", 401, None), ("vgg-16", 700, None),
    ("resnet-50", 300, None), ("resnet-50", 512, None), ("tiny", 300, 8744)])
def test_anchor_count_matches_the_head(base, size, anchors):
    with torch.device("meta"):
        model = build_detector(detector_spec(base, size, 3))
    features = model.backbone(torch.empty(1, 3, size, size, device="meta"))
    predicted = model.head(features)["cls_logits"].shape[1]
    per_location = model.anchor_generator.num_anchors_per_location()
    expected = sum(f.shape[-2] * f.shape[-1] * k for f, k in zip(features, per_location))
    assert predicted == expected and all(min(f.shape[-2:]) >= 1 for f in features)
    if anchors is not None:  # SSD300 and SSD512 of the paper
        assert predicted == anchors
    heads = model.head.classification_head.module_list
    assert [conv.out_channels for conv in heads] == [k * 4 for k in per_location]  # 3 classes + background


@pytest.mark.parametrize("base", ["vgg-16", "resnet-50", "tiny"])
def test_fresh_backbones_keep_the_activation_scale(base):
    """From scratch, every feature map the head sees must carry signal (Xavier init left VGG's fc7 and extras ~1e-4)."""
    from smcv.detection.backbones import build_backbone

    torch.manual_seed(0)
    backbone = build_backbone(base, 300).train()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 300, 300))
    rms = [float(f.pow(2).mean().sqrt()) for f in features]
    assert all(0.1 < r < 10 for r in rms), rms


def test_forward_check_and_background_only_images_train():
    torch.manual_seed(0)
    model = build_detector(detector_spec("tiny", 300, 2)).train()
    images = torch.rand(2, 3, 300, 300)
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.int64)}
    losses = model(images, [empty, empty])
    assert losses["bbox_regression"].item() == 0.0
    assert losses["classification"].item() > 0  # hardest background anchors still count
    (losses["classification"] + losses["bbox_regression"]).backward()
    assert model.head.classification_head.module_list[0].weight.grad.abs().sum() > 0


def test_channels_last_forward_matches():
    torch.manual_seed(0)
    model = build_detector(detector_spec("tiny", 300, 2)).eval()
    images = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        plain, _ = model.head_outputs(images)
        model = model.to(memory_format=torch.channels_last)
        last, _ = model.head_outputs(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(plain["cls_logits"], last["cls_logits"], atol=1e-4, rtol=1e-4)


def test_freeze_layer_pattern_uses_builtin_vgg_names():
    from smcv.detection.model import freeze_base_network

    with torch.device("meta"):
        model = build_detector(detector_spec("vgg-16", 300, 2))
    frozen = freeze_base_network(model, "^(conv1_|conv2_).*")
    assert frozen == ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
                      "features.5.weight", "features.5.bias", "features.7.weight", "features.7.bias"]
    assert not model.backbone.features[0].weight.requires_grad and model.backbone.features[10].weight.requires_grad
    assert model.head.regression_head.module_list[0].weight.requires_grad


def test_freeze_layer_pattern_resnet_aliases_and_torch_names():
    from smcv.detection.model import freeze_base_network

    with torch.device("meta"):
        model = build_detector(detector_spec("resnet-50", 300, 2))
    assert freeze_base_network(model, "^conv0_") == ["conv1.weight"]
    frozen = freeze_base_network(model, r"^layer1\.")
    assert frozen and all(name.startswith("layer1.") for name in frozen)
    assert "stage1_unit1_conv1_weight" in {alias for _, alias, _ in model.backbone.base_parameters()}


def test_freeze_through_build_model(tmp_path):
    task = DetectionTask()
    model = task.build_model(resolve(freeze_layer_pattern="^stem"), _data(), {})
    assert not any(p.requires_grad for p in model.backbone.stem.parameters())
    assert all(p.requires_grad for p in model.backbone.stage2.parameters())


def _data():
    from smcv.task_api import PreparedData

    return PreparedData(train=[], validation=None)


def test_pretrained_vgg_weights_load_from_our_own_file(tmp_path):
    source = VGGBackbone(highres=False)
    torch.save({f"features.{k}": v for k, v in source.features.state_dict().items()}, tmp_path / "vgg16.pth")
    hp = resolve(base_network="vgg-16", use_pretrained_model=1)
    data = _data()
    model = DetectionTask().build_model(hp, data, {"pretrained": tmp_path})
    torch.testing.assert_close(model.backbone.features[28].weight, source.features[28].weight)
    assert data.info["detector"]["mean"] == [0.485, 0.456, 0.406]


def test_pretrained_resnet_weights_load_and_freeze_batch_norm(tmp_path):
    from torchvision.models import resnet50
    from torchvision.ops import FrozenBatchNorm2d

    reference = resnet50()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    data = _data()
    model = DetectionTask().build_model(resolve(base_network="resnet-50", use_pretrained_model=1), data,
                                        {"pretrained": tmp_path})
    torch.testing.assert_close(model.backbone.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert isinstance(model.backbone.bn1, FrozenBatchNorm2d) and data.info["detector"]["frozen_bn"] is True


def test_missing_pretrained_weights_tell_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SMCV_WEIGHTS_DIR", str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="use_pretrained_model is on but no pretrained weights"):
        DetectionTask().build_model(resolve(base_network="vgg-16", use_pretrained_model=1), _data(), {})
    with pytest.raises(ConfigError, match="set use_pretrained_model=0"):
        DetectionTask().build_model(resolve(use_pretrained_model=1), _data(), {})


def test_wrong_weights_file_is_rejected(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "vgg16.pth")
    with pytest.raises(ConfigError, match="share no layer names|fill only"):
        DetectionTask().build_model(resolve(base_network="vgg-16", use_pretrained_model=1), _data(), {"pretrained": tmp_path})


def test_schema_keeps_builtin_names_defaults_and_ranges():
    hp = DetectionTask().schema().resolve({"num_classes": "3", "num_training_samples": "10"})
    assert (hp.base_network, hp.use_pretrained_model, hp.image_shape, hp.epochs, hp.learning_rate) == ("vgg-16", True, 300, 30, 0.001)
    assert (hp.mini_batch_size, hp.optimizer, hp.weight_decay, hp.overlap_threshold, hp.nms_threshold, hp.label_width) == (32, "sgd", 0.0005, 0.5, 0.45, 350)
    assert hp.early_stopping_min_epochs == 10 and hp.early_stopping_patience == 5
    with pytest.raises(ConfigError, match="'image_shape' hyperparameter"):
        DetectionTask().schema().resolve({"num_classes": "3", "num_training_samples": "10", "image_shape": "256"})
    with pytest.raises(ConfigError, match="'optimizer'"):
        DetectionTask().schema().resolve({"num_classes": "3", "num_training_samples": "10", "optimizer": "nag"})
