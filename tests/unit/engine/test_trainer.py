"""The Trainer with a tiny regression task: accumulation equivalence, resume, stop requests, best model."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import TensorDataset

from smcv.engine.loop import Trainer
from smcv.engine.signals import StopRequest
from smcv.task_api import Evaluator, PreparedData, Task, TrainSettings


class NegLossEvaluator(Evaluator):
    def __init__(self):
        self.total, self.count = 0.0, 0

    def update(self, outputs, batch):
        self.total += float(((outputs - batch[1]) ** 2).sum())
        self.count += len(batch[1])

    def compute(self):
        return {"validation:score": -self.total / self.count}


class LinearTask(Task):
    name = "linear"
    objective_metric = "validation:score"

    def __init__(self, on_step=None):
        self.on_step = on_step

    def schema(self):
        raise NotImplementedError

    def train_settings(self, hp):
        raise NotImplementedError

    def prepare_data(self, hp, channels, channel_config):
        raise NotImplementedError

    def build_model(self, hp, data, channels):
        raise NotImplementedError

    def training_loss(self, model, batch, device):
        if self.on_step:
            self.on_step()
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def new_evaluator(self, hp, data):
        return NegLossEvaluator()

    def validation_step(self, model, batch, device, evaluator):
        out = model(batch[0])
        evaluator.update(out, batch)
        return ((out - batch[1]) ** 2).mean()

    def manifest_fields(self, hp, data):
        return {}

    def build_predictor(self, manifest, state_dict, device):
        raise NotImplementedError


def make_data(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    return PreparedData(TensorDataset(x, y), TensorDataset(x[:8], y[:8]))


def make_trainer(tmp_path, task=None, **kw):
    torch.manual_seed(0)
    s = dict(epochs=3, batch_size=8, learning_rate=0.05, optimizer="sgd", momentum=0.0, weight_decay=0.0,
             num_workers=0, amp=False)
    s.update(kw)
    lines: list[str] = []
    trainer = Trainer(task or LinearTask(), {}, TrainSettings(**s), make_data(), torch.nn.Linear(3, 1), torch.device("cpu"),
                      tmp_path / "ckpt", StopRequest(), emit=lines.append)
    return trainer, lines


def test_gradient_accumulation_equals_the_larger_batch(tmp_path):
    # one step on a batch of 16 == accumulating two batches of 8 (mean losses, no batch norm, no shuffling effect)
    big, _ = make_trainer(tmp_path / "a", epochs=1, batch_size=16)
    small, _ = make_trainer(tmp_path / "b", epochs=1, batch_size=8, gradient_accumulation_steps=2)
    big.train_loader = torch.utils.data.DataLoader(big.data.train, batch_size=16, shuffle=False)
    small.train_loader = torch.utils.data.DataLoader(small.data.train, batch_size=8, shuffle=False)
    assert torch.equal(big.model.weight, small.model.weight)
    big.train_epoch(1)
    small.train_epoch(1)
    assert small.optimizer.state_dict()["state"] == {} and big.scheduler.last_epoch == small.scheduler.last_epoch == 1
    torch.testing.assert_close(big.model.weight, small.model.weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(big.model.bias, small.model.bias, rtol=1e-6, atol=1e-7)


def test_fit_logs_one_metric_line_per_epoch_and_keeps_the_best(tmp_path):
    trainer, lines = make_trainer(tmp_path, epochs=3)
    result = trainer.fit()
    metric_lines = [l for l in lines if l.startswith("#metrics")]
    assert [l.split(";")[0] for l in metric_lines] == ["#metrics epoch=1", "#metrics epoch=2", "#metrics epoch=3"]
    scores = [h["validation:score"] for h in result.history]
    assert result.metrics["validation:score"] == max(scores)
    assert result.selected_epoch == scores.index(max(scores)) + 1


def test_resume_continues_after_the_last_checkpoint(tmp_path):
    first, _ = make_trainer(tmp_path, epochs=2)
    first.fit()
    second, lines = make_trainer(tmp_path, epochs=4)
    result = second.fit()
    assert any("resuming from checkpoint checkpoint-epoch0002.pt" in l for l in lines)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert [l.split(";")[0] for l in lines if l.startswith("#metrics")] == ["#metrics epoch=3", "#metrics epoch=4"]
    torch.testing.assert_close(second.optimizer.param_groups[0]["lr"], 0.05)


def test_stop_request_mid_epoch_saves_a_partial_checkpoint(tmp_path):
    calls = {"n": 0}
    holder: dict[str, Any] = {}

    def on_step():
        calls["n"] += 1
        if calls["n"] == 3:  # second epoch, first batch
            holder["trainer"].stop.request("SIGTERM")

    trainer, lines = make_trainer(tmp_path, task=LinearTask(on_step), epochs=5)
    holder["trainer"] = trainer
    result = trainer.fit()
    assert result.stopped_by_signal and result.epochs_completed == 1
    assert (tmp_path / "ckpt" / "checkpoint-epoch0001-partial.pt").exists()
    assert any("stopped by SIGTERM during epoch 2" in l for l in lines)
    resumed, lines2 = make_trainer(tmp_path, epochs=5)
    result2 = resumed.fit()
    assert [h["epoch"] for h in result2.history] == [1, 2, 3, 4, 5]
    assert lines2[0].startswith("resuming from checkpoint checkpoint-epoch0001-partial.pt")


def test_early_stopping_stops_training(tmp_path):
    trainer, lines = make_trainer(tmp_path, epochs=20, learning_rate=1e-9, early_stopping=True,
                                  early_stopping_min_epochs=2, early_stopping_patience=1, early_stopping_tolerance=0.5)
    result = trainer.fit()
    assert result.early_stopped and result.epochs_completed == 2
    assert any(l.startswith("early stopping after epoch 2") for l in lines)


def test_diverging_loss_is_a_clear_error(tmp_path):
    from smcv.engine.loop import TrainingDiverged

    trainer, _ = make_trainer(tmp_path, learning_rate=1.0, epochs=1)
    with torch.no_grad():
        trainer.model.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="lower learning_rate"):
        trainer.fit()
