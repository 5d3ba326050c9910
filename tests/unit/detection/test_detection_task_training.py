"""A short end-to-end run of a tiny SSD through the Task methods: data, model, loss, validation, artifact, serving."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.helpers.detdata import TINY_HP, draw, json_channels, scene

from smcv.detection.metrics import box_iou
from smcv.task_api import OnDevice
from smcv.tasks.detection import DetectionTask


@pytest.mark.slow
def test_tiny_ssd_learns_coloured_squares(tmp_path):
    torch.manual_seed(0)
    channels = {**json_channels(tmp_path, "train", range(8)), **json_channels(tmp_path, "validation", range(8))}
    task = DetectionTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, "num_training_samples": "8",
                                "optimizer": "adam", "learning_rate": "0.003", "augmentation": "flip"})
    data = task.prepare_data(hp, channels, {})
    model = task.build_model(hp, data, channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate)
    loader = torch.utils.data.DataLoader(data.train, batch_size=4, shuffle=True, collate_fn=data.collate_fn)
    device = torch.device("cpu")

    def validate():
        model.eval()
        evaluator = task.new_evaluator(hp, data)
        with torch.inference_mode():
            losses = [float(task.validation_step(model, batch, device, evaluator))
                      for batch in torch.utils.data.DataLoader(data.validation, batch_size=4, collate_fn=data.collate_fn)]
        return float(np.mean(losses)), evaluator.compute()

    first_loss, _ = validate()
    for _ in range(7):
        model.train()
        for batch in loader:
            loss = task.training_loss(model, batch, device)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    last_loss, metrics = validate()
    assert last_loss < first_loss
    assert metrics["validation:mAP"] > 0.3 and 0 < metrics["validation:mAP_coco"] <= metrics["validation:mAP"]
    assert task.extra_metric_lines(metrics)[0].startswith("#quality_metric: validation mAP <score>=(0.")

    manifest = json.loads(json.dumps({"task": "detection", "class_names": data.class_names,
                                      **task.manifest_fields(hp, data)}))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    predictor = task.build_predictor(manifest, state, device)
    objects = scene(1)  # two squares
    from smcv.serving import direct

    rows = json.loads(direct.answer(predictor, draw(objects, 64, seed=1).resize((128, 96)), "application/json"))["prediction"]
    truth = np.array([[l / 64, t / 64, (l + w) / 64, (t + h) / 64] for _, l, t, w, h in objects])
    best = np.array(rows[0][2:])[None]
    assert box_iou(best, truth).max() > 0.5


def test_training_loss_with_augmentation_on_the_device(tmp_path):
    torch.manual_seed(0)
    channels = json_channels(tmp_path, "train", range(8))
    task = DetectionTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, "num_training_samples": "8",
                                "augmentation": "ssd", "augmentation_device": "gpu"})
    data = task.prepare_data(hp, channels, {})
    model = task.build_model(hp, data, channels)
    batch = data.collate_fn([data.train[i] for i in range(4)])
    assert len(batch) == 4 and batch.images.dtype == torch.uint8  # the loader only decoded
    loss = task.training_loss(model, batch, torch.device("cpu"))
    assert torch.isfinite(loss) and loss.item() > 0
    staged = task.stage_batch(batch, torch.device("cpu"))  # what the trainer's prefetcher hands the step on a GPU
    assert isinstance(staged, OnDevice) and staged.inputs[0].dtype == torch.float32
    assert torch.allclose(task.training_loss(model, staged, torch.device("cpu")), loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
