"""FCN (the built-in's default): the network, its aux loss, ImageNet backbone weights, the model channel, serving."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from smcv import artifact
from smcv.data.recordio import MAGIC
from smcv.segmentation.fcn import FCNLogits
from smcv.segmentation.losses import SegmentationCriterion
from smcv.segmentation.model import build_network
from smcv.serving import direct
from smcv.task_api import PreparedData
from smcv.tasks.segmentation import SegmentationTask
from smcv.train import init_from_model_channel

CPU = torch.device("cpu")
NAMES = ["background", "road", "sky"]


def resolve(**raw):
    return SegmentationTask().schema().resolve({"num_classes": "3", "use_pretrained_model": "0", "image_size": "64",
                                                **{k: str(v) for k, v in raw.items()}})


def build(channels=None, **raw):
    torch.manual_seed(0)
    task, hp = SegmentationTask(), resolve(**raw)
    data = PreparedData(train=[], validation=None, class_names=NAMES, info={})
    return task, hp, data, task.build_model(hp, data, channels or {})


@pytest.mark.parametrize("backbone, blocks", [("resnet-50", 6), ("resnet-101", 23)])
def test_fcn_builds_with_classes_and_input_sized_outputs(backbone, blocks):
    _, _, _, model = build(backbone=backbone)
    assert isinstance(model, FCNLogits) and len(model.backbone.layer3) == blocks
    assert model.backbone.layer4[0].conv2.dilation == (2, 2)  # layers 3-4 dilated as torchvision's fcn_resnet50
    assert model.classifier[4].out_channels == 3 and model.aux_classifier[4].out_channels == 3
    x = torch.rand(1, 3, 24, 40)  # any size: the logits are upsampled to it
    with torch.no_grad():
        logits = model.eval()(x)
        assert logits.shape == (1, 3, 24, 40)
        out, aux = model.train()(x)
    assert out.shape == aux.shape == (1, 3, 24, 40)


def test_aux_head_only_in_training_and_weighted_in_the_loss():
    _, hp, _, model = build(aux_loss_weight=0)
    assert model.aux_classifier is None and "aux_classifier.0.weight" not in model.state_dict()
    assert model.train()(torch.rand(1, 3, 32, 32)).shape == (1, 3, 32, 32)  # a tensor, not a pair
    criterion = SegmentationCriterion(1.0, 1.0, 2.0, aux_weight=0.5)
    logits, aux, target = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    expected = criterion(logits, target) + 0.5 * criterion(aux, target)
    assert torch.allclose(criterion(logits, target, aux), expected)


def test_backbone_loads_a_torchvision_resnet50_state_dict_from_the_pretrained_channel(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.resnet50()
    channel = tmp_path / "pretrained"
    channel.mkdir()
    torch.save(reference.state_dict(), channel / "resnet50.pth")
    task, hp, data, _ = build()
    hp = resolve(use_pretrained_model=1)
    assert task.resolve_pretrained(hp, {"pretrained": channel}) == channel / "resnet50.pth"
    model = task.build_model(hp, data, {"pretrained": channel})
    own = model.backbone.state_dict()
    for name in ("conv1.weight", "bn1.running_mean", "layer3.5.conv2.weight", "layer4.2.bn3.weight"):
        assert torch.equal(own[name], reference.state_dict()[name]), name


def test_model_channel_artifact_initialises_the_whole_fcn(tmp_path):
    task, hp, data, trained = build()
    with torch.no_grad():
        trained.classifier[4].bias.fill_(0.25)
    model_dir = tmp_path / "model"
    artifact.save_artifact(model_dir, trained.state_dict(), {"task": "segmentation", **task.manifest_fields(hp, data)})
    fresh = task.build_model(resolve(use_pretrained_model=1), data, {"model": model_dir})  # no ImageNet file needed
    init_from_model_channel("segmentation", fresh, {"model": model_dir})
    for name, tensor in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name


def test_manifest_rebuilds_the_served_fcn_with_builtin_answers():
    task, hp, data, model = build(num_classes=3)
    manifest = json.loads(json.dumps({"task": "segmentation", "class_names": NAMES, **task.manifest_fields(hp, data)}))
    assert (manifest["architecture"], manifest["encoder_name"], manifest["aux_classifier"]) == ("fcn", "resnet50", True)
    assert "encoder_depth" not in manifest and isinstance(build_network(manifest), FCNLogits)
    predictor = task.build_predictor(manifest, model.state_dict(), CPU)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8), "RGB")
    mask = Image.open(io.BytesIO(direct.answer(predictor, image, "image/png")))
    assert mask.mode == "P" and mask.size == (70, 50) and int(np.array(mask).max()) <= 2
    body = json.loads(direct.answer(predictor, image, "application/json"))
    assert body["shape"] == [50, 70] and sum(body["class_counts"].values()) == 50 * 70
    record = direct.answer(predictor, image, "application/x-recordio-protobuf")
    assert record[:4] == struct.pack("<I", MAGIC) and len(record) > 3 * 50 * 70 * 4  # one record: C x H x W float32 values
