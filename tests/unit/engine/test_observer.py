"""TensorBoard event files and health rules from the Trainer: tags, intervals, closing on every way out."""

from __future__ import annotations

import logging

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from smcv.engine import observer
from smcv.engine.loop import Trainer, TrainingDiverged
from smcv.engine.progress import Progress
from smcv.engine.signals import StopRequest
from smcv.engine.tensorboard import open_board, tensorboard_enabled
from smcv.task_api import TrainSettings
from tests.unit.engine.test_progress import FakeClock
from tests.unit.engine.test_trainer import LinearTask, make_data, make_trainer


def scalars(directory):
    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_enabled_by_setting_or_by_the_sagemaker_folder(tmp_path):
    missing, present = tmp_path / "missing", tmp_path
    assert tensorboard_enabled("auto", present) and not tensorboard_enabled("auto", missing)
    assert tensorboard_enabled("1", missing) and tensorboard_enabled("true", missing)
    assert not tensorboard_enabled("0", present) and not tensorboard_enabled("false", present)
    assert not tensorboard_enabled("1", None)
    assert not open_board("1", tmp_path / "tb", main_process=False).enabled
    assert not (tmp_path / "tb").exists()


def test_fit_writes_step_epoch_and_norm_scalars(tmp_path, monkeypatch):
    monkeypatch.setattr(observer, "INTERVAL_STEPS", 1)
    board_dir = tmp_path / "tensorboard"
    trainer, _ = make_trainer(tmp_path, epochs=3, tensorboard="1")
    trainer.observer = observer.Observer(open_board("1", board_dir, True), trainer.model, trainer.steps_per_epoch,
                                         trainer.device, False, [], active=True)
    trainer.fit()
    assert trainer.observer.board.writer is None  # closed by fit
    found = scalars(board_dir)
    steps = trainer.steps_per_epoch * 3
    for tag in ("step/loss", "step/learning_rate", "step/images_per_second", "grad_norm/total"):
        assert [s for s, _ in found[tag]] == list(range(1, steps + 1)), tag
    # a bare Linear has no child modules: its parameters form one group named after the parameters
    assert {"grad_norm/weight", "grad_norm/bias", "weight_norm/weight", "weight_norm/bias"} <= set(found)
    for tag in ("epoch/train:loss", "epoch/validation:loss", "epoch/validation:score", "epoch/data_wait_share"):
        assert [s for s, _ in found[tag]] == [1, 2, 3], tag
    assert found["step/learning_rate"][0][1] == pytest.approx(0.05)


def test_the_trainer_opens_the_board_only_when_enabled(tmp_path):
    trainer, _ = make_trainer(tmp_path, epochs=1, tensorboard="0")
    assert not trainer.observer.board.enabled
    on = Trainer(LinearTask(), {}, TrainSettings(epochs=1, batch_size=8, learning_rate=0.05, num_workers=0, amp=False,
                                                 tensorboard="auto"),
                 make_data(), torch.nn.Linear(3, 1), torch.device("cpu"), None, StopRequest(), emit=lambda _: None,
                 tensorboard_dir=tmp_path)
    assert on.observer.board.enabled and on.observer.board.directory == tmp_path
    on.fit()
    assert list(tmp_path.glob("events.out.tfevents.*")) and not on.observer.board.enabled


def test_a_diverging_loss_reports_the_rule_closes_the_board_and_stops(tmp_path, caplog):
    task = LinearTask()
    task.training_loss = lambda model, batch, device: (model(batch[0]) * float("nan")).mean()
    trainer, _ = make_trainer(tmp_path, task=task, epochs=1, tensorboard="1")
    trainer.observer.board = open_board("1", tmp_path / "tb", True)
    with caplog.at_level(logging.WARNING), pytest.raises(TrainingDiverged):
        trainer.fit()
    assert any(r.getMessage().startswith("health rule NonFiniteLoss: the training loss became nan")
               for r in caplog.records)
    assert trainer.observer.board.writer is None
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "health/NonFiniteLoss/text_summary" in events.Tags()["tensors"]


def test_only_the_main_process_measures(tmp_path):
    trainer, _ = make_trainer(tmp_path, epochs=1)
    quiet = observer.Observer(open_board("1", tmp_path / "tb", False), trainer.model, 2, trainer.device, False, [],
                              active=False)
    assert not quiet.measuring()
    quiet.after_step(0.1)
    assert quiet.step == 0 and not (tmp_path / "tb").exists()


def test_gradient_norms_are_measured_unscaled_with_loss_scaling(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(4, 3)
    model(x).pow(2).mean().backward()
    expected = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()])).item()
    optimizer.zero_grad()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(model(x).pow(2).mean()).backward()
    watcher = observer.Observer(open_board("0", None, True), model, 1, torch.device("cpu"), True, [])
    watcher.gradients(scaler, optimizer)
    assert observer.total_norm(watcher.grad_norms) == pytest.approx(expected, rel=1e-5)
    before = model.weight.detach().clone()
    scaler.step(optimizer)  # not unscaled a second time
    torch.testing.assert_close(before - model.weight.detach(), 0.1 * model.weight.grad)


def test_data_wait_rule_on_gpus_from_the_second_epoch(caplog):
    model = torch.nn.Linear(3, 1)
    on_gpu = observer.Observer(open_board("0", None, True), model, 2, torch.device("cuda"), False, [])
    on_cpu = observer.Observer(open_board("0", None, True), model, 2, torch.device("cpu"), False, [])
    with caplog.at_level(logging.WARNING):
        for watcher in (on_gpu, on_cpu):
            watcher.start_epoch(1, 0)
            watcher.epoch_end(1, {"train:loss": 1.0}, 0.9, None, final=False)
        assert not caplog.records  # the first epoch includes worker start-up
        for watcher in (on_gpu, on_cpu):
            watcher.start_epoch(2, 2)
            watcher.epoch_end(2, {"train:loss": 0.9}, 0.9, None, final=False)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["health rule DataWait"]


def test_progress_reports_the_data_wait_share():
    clock = FakeClock()
    progress = Progress(0, 1, 4, lambda line: None, clock=clock)
    progress.start_epoch(1)
    for step in range(1, 5):
        clock.now += 3.0
        progress.batch_arrived()
        clock.now += 1.0
        progress.step_done(step, 8, lambda: 0.0)
    assert progress.data_wait_share() == pytest.approx(0.75)


def test_compile_time_is_a_scalar_and_the_compiling_step_leaves_the_interval_rate(tmp_path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(observer.time, "perf_counter", clock)
    board_dir = tmp_path / "tensorboard"
    trainer, _ = make_trainer(tmp_path, epochs=1)
    watcher = observer.Observer(open_board("1", board_dir, True), trainer.model, 2, trainer.device, False, [])
    watcher.start_epoch(1, 0)
    watcher.micro_batch(torch.tensor(1.0), 8)
    clock.now += 3600.0  # the first step compiles for an hour
    watcher.exclude(3600.0, 8)
    watcher.compile_time(3600.0)
    watcher.after_step(0.1)
    watcher.micro_batch(torch.tensor(1.0), 8)
    clock.now += 1.0
    watcher.after_step(0.1)
    watcher.close()
    found = scalars(board_dir)
    assert found["compile/seconds"] == [(1, 3600.0)]
    assert found["step/images_per_second"] == [(2, 8.0)]  # with the hour: 16 images / 3601 s
