"""SSD from scratch: group norm in base and extras when use_pretrained_model=0; saved models rebuild it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.helpers.detdata import TINY_HP
from torch import nn

from smcv.artifact import load_manifest, load_state_dict, save_artifact
from smcv.detection.model import build_detector, detector_spec
from smcv.task_api import PreparedData
from smcv.tasks.detection import DetectionTask


def resolve(**hp):
    values = {**TINY_HP, **hp}
    return DetectionTask().schema().resolve({k: str(v) for k, v in values.items()})


def scratch_model(base: str, **hp) -> tuple[nn.Module, dict]:
    data = PreparedData(train=[], validation=None)
    model = DetectionTask().build_model(resolve(base_network=base, use_pretrained_model=0, **hp), data, {})
    return model, data.info["detector"]


def head_inputs(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The feature map each level's classification convolution receives."""
    seen: list[torch.Tensor] = []
    hooks = [conv.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach()))
             for conv in model.head.classification_head.module_list]
    try:
        with torch.no_grad():
            model.head_outputs(images)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("base", ["vgg-16", "resnet-50"])
def test_every_prediction_level_carries_input_signal_at_initialisation(base):
    """Each level's map varies with the image (not a constant offset) and no level is much fainter than another.

    Without normalisation, a from-scratch VGG-16 fed its fc7 and extra levels maps that were mostly the same for any
    input (between-image std 17-19 % of their size; 26-51 % with group norm), and ResNet-50's last extra level was 7x
    fainter than layer3's (3.4x with group norm).
    """
    torch.manual_seed(0)
    model, _ = scratch_model(base)
    model.train()
    images = F.interpolate(torch.rand(4, 3, 10, 10), size=(300, 300), mode="bilinear", align_corners=False)
    levels = head_inputs(model, images)
    assert len(levels) == 6
    between = [float(f.std(dim=0).pow(2).mean().sqrt()) for f in levels]  # what differs from image to image
    rms = [float(f.pow(2).mean().sqrt()) for f in levels]
    assert all(0.1 < r < 10 for r in rms), rms
    assert all(b / r > 0.2 for b, r in zip(between, rms)), [round(b / r, 3) for b, r in zip(between, rms)]
    assert max(between) / min(between) < 4, between


@pytest.mark.parametrize("base", ["vgg-16", "resnet-50", "tiny"])
def test_from_scratch_builds_group_norm_everywhere_and_records_it(base):
    with torch.device("meta"):
        model, spec = scratch_model(base)
    assert spec["norm"] == "group"
    for extra in model.backbone.extras:
        assert sum(isinstance(m, nn.GroupNorm) for m in extra) == 2
        assert all(conv.bias is None for conv in extra if isinstance(conv, nn.Conv2d))
    if base == "vgg-16":
        convs = [m for m in model.backbone.features if isinstance(m, nn.Conv2d)]
        norms = [m for m in model.backbone.features if isinstance(m, nn.GroupNorm)]
        assert len(convs) == len(norms) == 13
        assert isinstance(model.backbone.fc6_norm, nn.GroupNorm) and isinstance(model.backbone.fc7_norm, nn.GroupNorm)
    if base == "resnet-50":
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # group norm: any batch per GPU


def test_plain_spec_and_specs_saved_before_the_variant_build_the_builtin_network():
    spec = detector_spec("vgg-16", 300, 2)
    assert spec["norm"] == "none"
    old = {k: v for k, v in spec.items() if k != "norm"}  # manifest.json of a model saved before "norm" existed
    with torch.device("meta"):
        model = build_detector(old)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in model.modules())
    assert set(model.state_dict()) == set(build_detector(spec).state_dict())
    assert "backbone.features.28.weight" in model.state_dict()  # conv5_3, torchvision's vgg16 numbering


def test_unknown_norm_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="use one of none, group"):
        detector_spec("tiny", 300, 2, norm="layer")


def test_norms_start_as_identity_convs_from_he_init_and_the_head_near_zero():
    torch.manual_seed(0)
    model, _ = scratch_model("tiny")
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and all(bool((m.weight == 1).all()) and bool((m.bias == 0).all()) for m in norms)
    conv = model.backbone.extras[0][0]  # 1x1, fan-in 128: He std sqrt(2 / 128) = 0.125
    assert abs(float(conv.weight.detach().std()) - 0.125) < 0.01
    head = model.head.classification_head.module_list[0]
    assert abs(float(head.weight.detach().std()) - 0.01) < 0.001 and not head.bias.detach().any()
    with torch.no_grad():
        logits = model.head_outputs(torch.rand(2, 3, 300, 300))[0]["cls_logits"]
    assert float(logits.abs().max()) < 2  # near-uniform class scores at the start


def test_a_saved_from_scratch_model_reloads_and_predicts_identically(tmp_path):
    torch.manual_seed(0)
    model, spec = scratch_model("tiny")
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images = torch.rand(2, 3, 300, 300)
    targets = [{"boxes": torch.tensor([[30.0, 40.0, 120.0, 150.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[100.0, 100.0, 200.0, 260.0]]), "labels": torch.tensor([0])}]
    for _ in range(2):  # moves the weights (group norm included) away from their start
        losses = model(images, targets)
        optimizer.zero_grad()
        (losses["classification"] + losses["bbox_regression"]).backward()
        optimizer.step()
    assert float((model.backbone.extras[0][1].weight.detach() - 1).abs().sum()) > 0
    model.eval()
    with torch.no_grad():
        expected = model(images)
    save_artifact(tmp_path, model.state_dict(), {"task": "detection", "detector": spec})
    predictor = DetectionTask().build_predictor(load_manifest(tmp_path), load_state_dict(tmp_path), torch.device("cpu"))
    assert load_manifest(tmp_path)["detector"]["norm"] == "group"
    assert isinstance(predictor.model.backbone.extras[0][1], nn.GroupNorm)
    predictor.model.score_thresh = model.score_thresh
    with torch.no_grad():
        got = predictor.model(images)
    for mine, theirs in zip(expected, got):
        for key in ("boxes", "scores", "labels"):
            torch.testing.assert_close(theirs[key], mine[key], rtol=0, atol=0)


def test_incremental_training_keeps_the_previous_models_variant(tmp_path):
    torch.manual_seed(0)
    model, spec = scratch_model("tiny")
    save_artifact(tmp_path, model.state_dict(), {"task": "detection", "detector": spec})
    data = PreparedData(train=[], validation=None)
    again = DetectionTask().build_model(resolve(base_network="tiny", use_pretrained_model=0), data, {"model": tmp_path})
    assert data.info["detector"]["norm"] == "group" and isinstance(again.backbone.extras[0][1], nn.GroupNorm)
    plain = {**spec, "norm": "none"}
    save_artifact(tmp_path, build_detector(plain).state_dict(), {"task": "detection", "detector": plain})
    data = PreparedData(train=[], validation=None)
    again = DetectionTask().build_model(resolve(base_network="tiny", use_pretrained_model=0), data, {"model": tmp_path})
    assert data.info["detector"]["norm"] == "none" and isinstance(again.backbone.extras[0][1], nn.ReLU)
