"""A short training of a tiny UNet through the Task methods; pretrained and incremental weights; the artifact."""

from __future__ import annotations

import json
import tarfile

import pytest
import torch
from tests.helpers.segdata import TINY_HP, builtin_layout

from smcv import artifact
from smcv.errors import ConfigError
from smcv.segmentation.metrics import METRIC_NAMES
from smcv.segmentation.model import build_network
from smcv.tasks.segmentation import SegmentationTask

CPU = torch.device("cpu")


def setup(tmp_path, **overrides):
    torch.manual_seed(0)
    task = SegmentationTask()
    hp = task.schema().resolve({**TINY_HP, **{k: str(v) for k, v in overrides.items()}})
    channels = builtin_layout(tmp_path / "data", counts=(("train", 8), ("validation", 4)))
    return task, hp, channels


def evaluate(task, hp, data, model):
    model.eval()
    evaluator = task.new_evaluator(hp, data)
    loader = torch.utils.data.DataLoader(data.validation, batch_size=2, collate_fn=data.collate_fn)
    with torch.inference_mode():
        losses = [task.validation_step(model, batch, CPU, evaluator) for batch in loader]
    return float(torch.stack(losses).mean()), evaluator.compute()


def test_short_training_learns_and_round_trips(tmp_path):
    task, hp, channels = setup(tmp_path)
    data = task.prepare_data(hp, channels, {})
    model = task.build_model(hp, data, channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loader = torch.utils.data.DataLoader(data.train, batch_size=4, shuffle=True, collate_fn=data.collate_fn)
    first = None
    for _ in range(4):
        model.train()
        for batch in loader:
            loss = task.training_loss(model, batch, CPU)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            first = first if first is not None else loss.item()
    assert loss.item() < first
    _, metrics = evaluate(task, hp, data, model)
    assert set(metrics) == set(METRIC_NAMES) and all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["validation:pixel_accuracy"] > 0.5

    manifest = json.loads(json.dumps({"task": task.name, "class_names": data.class_names, "hyperparameters": hp,
                                      **task.manifest_fields(hp, data)}))
    assert manifest["architecture"] == "unet" and manifest["encoder_name"] == "resnet18"
    assert manifest["input"] == {"mode": "resize", "size": 32, "divisor": 8}
    predictor = task.build_predictor(manifest, model.state_dict(), CPU)
    image = data.validation.source.get(0)[0]
    from PIL import Image
    import io
    pil = Image.open(io.BytesIO(image)).convert("RGB")
    from smcv.serving import direct

    mask = Image.open(io.BytesIO(direct.answer(predictor, pil, "image/png")))
    assert mask.size == pil.size


def test_pretrained_encoder_weights_from_the_pretrained_channel(tmp_path):
    import torchvision

    task, hp, channels = setup(tmp_path, use_pretrained_model=1)
    data = task.prepare_data(hp, channels, {})
    with pytest.raises(ConfigError, match="no pretrained weights for the resnet18 encoder.*'pretrained' input channel"):
        task.build_model(hp, data, channels)
    torch.manual_seed(123)
    reference = torchvision.models.resnet18()  # torchvision layout, like the ImageNet file users supply
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    torch.save(reference.state_dict(), pretrained / "resnet18.pth")  # no -<sha256> suffix: not hash checked
    model = task.build_model(hp, data, {**channels, "pretrained": pretrained})
    assert torch.equal(model.encoder.conv1.weight, reference.conv1.weight)
    assert torch.equal(model.encoder.layer2[0].bn1.running_mean, reference.layer2[0].bn1.running_mean)


def test_weights_that_do_not_fit_are_an_error(tmp_path):
    task, hp, channels = setup(tmp_path, use_pretrained_model=1)
    data = task.prepare_data(hp, channels, {})
    pretrained = tmp_path / "pretrained"
    pretrained.mkdir()
    torch.save({"something.else": torch.zeros(3)}, pretrained / "resnet18.pth")
    with pytest.raises(ConfigError, match="share no layer names"):
        task.build_model(hp, data, {**channels, "pretrained": pretrained})


def test_model_channel_artifact_needs_no_imagenet_file(tmp_path):
    # smcv.train loads the whole network from the artifact after build_model (incremental training)
    task, hp, channels = setup(tmp_path, use_pretrained_model=1)
    data = task.prepare_data(hp, channels, {})
    model_channel = tmp_path / "model"
    model_channel.mkdir()
    artifact_dir = tmp_path / "artifact"
    artifact.save_artifact(artifact_dir, {"w": torch.zeros(1)}, {"task": "segmentation"})
    with tarfile.open(model_channel / "model.tar.gz", "w:gz") as tar:
        for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
            tar.add(artifact_dir / name, arcname=name)
    assert isinstance(task.build_model(hp, data, {**channels, "model": model_channel}), torch.nn.Module)


def test_unreadable_model_tar_is_a_clear_error(tmp_path):
    task, hp, channels = setup(tmp_path, use_pretrained_model=1)
    data = task.prepare_data(hp, channels, {})
    model_channel = tmp_path / "model"
    model_channel.mkdir()
    (model_channel / "model.tar.gz").write_bytes(b"")
    with pytest.raises(ConfigError, match="model.tar.gz cannot be extracted"):
        task.build_model(hp, data, {**channels, "model": model_channel})


def test_psp_and_deeplab_build(tmp_path):
    for algorithm, arch in (("psp", "pspnet"), ("deeplab", "deeplabv3")):
        task, hp, channels = setup(tmp_path / algorithm, algorithm=algorithm)
        data = task.prepare_data(hp, channels, {})
        model = task.build_model(hp, data, channels).eval()
        batch = data.collate_fn([data.validation[0]])
        with torch.inference_mode():
            assert task.validation_step(model, batch, CPU, task.new_evaluator(hp, data)).ndim == 0
        assert task.manifest_fields(hp, data)["architecture"] == arch


def test_syncbn_keeps_state_dict_names(tmp_path):
    task, hp, channels = setup(tmp_path, syncbn="true")
    data = task.prepare_data(hp, channels, {})
    model = task.build_model(hp, data, channels)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    plain = build_network(task.manifest_fields(hp, data))
    assert set(plain.state_dict()) == set(model.state_dict())
