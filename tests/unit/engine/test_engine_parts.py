"""Engine pieces: LR schedules, early stopping, checkpoints, metric lines, optimizers."""

import random
import re

import numpy as np
import pytest
import torch

from smcv.engine.checkpoint import list_checkpoints, load_latest, restore_rng_state, rng_state, save_checkpoint
from smcv.engine.early_stopping import EarlyStopping
from smcv.engine.metrics_log import format_metric_line, metric_definitions
from smcv.engine.optim import build_optimizer, build_scheduler, lr_factor, trainable_parameters
from smcv.errors import ConfigError
from smcv.task_api import TrainSettings


def settings(**kw):
    base = dict(epochs=10, batch_size=4, learning_rate=0.1)
    base.update(kw)
    return TrainSettings(**base)


def scheduled_rates(s, lr: float, steps_per_epoch: int, steps: int) -> list[float]:
    """The learning rate of each of the first `steps` optimizer steps under build_scheduler."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = build_scheduler(optimizer, s, steps_per_epoch=steps_per_epoch)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_step_schedule_multiplies_at_each_listed_epoch():
    s = settings(lr_scheduler_step=(3, 6), lr_scheduler_factor=0.1)
    assert [round(lr_factor(s, e), 6) for e in (0, 2.9, 3, 5.5, 6, 9)] == [1, 1, 0.1, 0.1, 0.01, 0.01]


def test_warmup_ramps_linearly_per_step_then_follows_the_schedule():
    s = settings(lr_warmup_epochs=1.5, lr_scheduler_step=(2,), lr_scheduler_factor=0.1)
    rates = scheduled_rates(s, lr=0.1, steps_per_epoch=4, steps=10)  # 6 warm-up steps
    expected = [0.1 * k / 6 for k in range(1, 7)] + [0.1, 0.1, 0.01, 0.01]  # the step at epoch 2 still applies
    assert rates == pytest.approx(expected)


def test_no_warmup_starts_at_the_full_rate():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    build_scheduler(optimizer, settings(), steps_per_epoch=4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_poly_and_cosine_schedules_end_at_zero():
    assert lr_factor(settings(lr_scheduler="poly"), 10) == 0
    assert lr_factor(settings(lr_scheduler="cosine"), 5) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="unknown lr_scheduler"):
        lr_factor(settings(lr_scheduler="linear"), 1)


def test_warmup_ramps_linearly_over_its_epochs_then_follows_the_cosine():
    # 4 steps an epoch, 10 epochs, warm-up 2 epochs (8 steps): step k takes (k + 1) / 8 of the cosine's value
    s = settings(lr_scheduler="cosine", lr_warmup_epochs=2.0)
    rates = scheduled_rates(s, lr=0.1, steps_per_epoch=4, steps=40)
    for step in range(8):
        assert rates[step] == pytest.approx(0.1 * (step + 1) / 8 * lr_factor(s, step / 4))
    assert rates[8] == pytest.approx(0.1 * lr_factor(s, 2.0))  # warm-up over: the cosine alone
    assert rates[20] == pytest.approx(0.05)  # half way: cos(pi/2)
    assert rates[:8] == sorted(rates[:8]) and rates[8:] == sorted(rates[8:], reverse=True)


def test_no_warmup_leaves_the_schedule_alone():
    s = settings(lr_scheduler_step=(1,), lr_scheduler_factor=0.5)
    rates = scheduled_rates(s, lr=0.2, steps_per_epoch=2, steps=4)
    assert rates == pytest.approx([0.2, 0.2, 0.1, 0.1])


def test_early_stopping_uses_relative_gain_after_min_epochs():
    es = EarlyStopping(min_epochs=3, patience=2, tolerance=0.1)
    decisions = [es.update(epoch, value) for epoch, value in enumerate([0.5, 0.6, 0.62, 0.63, 0.64], start=1)]
    # 0.6 is +20% (improved), 0.62 and 0.63 are < +10% of 0.6: two epochs without gain -> stop at epoch 4
    assert decisions == [False, False, False, True, True]


def test_early_stopping_waits_for_min_epochs():
    es = EarlyStopping(min_epochs=5, patience=1, tolerance=0.0)
    assert [es.update(e, 0.5) for e in range(1, 6)] == [False, False, False, False, True]


def test_checkpoints_keep_the_newest_two_and_skip_corrupt_ones(tmp_path):
    for epoch in (1, 2, 3):
        save_checkpoint(tmp_path, {"epoch": epoch}, epoch)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-epoch0002.pt", "checkpoint-epoch0003.pt"]
    (tmp_path / "checkpoint-epoch0004.pt").write_bytes(b"truncated by SIGKILL")
    assert load_latest(tmp_path)["epoch"] == 3


class Planted:
    """Unpickling this runs code (it creates the marker file)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_with_pickled_objects_is_refused_and_its_code_never_runs(tmp_path):
    save_checkpoint(tmp_path, {"epoch": 1}, 1)
    marker = tmp_path / "code-ran"
    torch.save({"epoch": 9999, "x": Planted(str(marker))}, tmp_path / "checkpoint-epoch9999.pt")
    with pytest.raises(ConfigError, match="refusing checkpoint checkpoint-epoch9999.pt.*pickled Python objects"):
        load_latest(tmp_path)
    assert not marker.exists()


def test_random_states_survive_a_weights_only_checkpoint(tmp_path):
    random.seed(5), np.random.seed(6), torch.manual_seed(7)
    np.random.normal()  # numpy then holds a cached gaussian, part of its state
    save_checkpoint(tmp_path, {"epoch": 1, "rng": rng_state()}, 1)
    expected = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    state = torch.load(list_checkpoints(tmp_path)[-1], weights_only=True)
    restore_rng_state(state["rng"])
    again = (random.random(), np.random.normal(), np.random.rand(), torch.rand(3))
    assert again[:3] == expected[:3] and torch.equal(again[3], expected[3])


def test_partial_checkpoint_sorts_after_complete_one(tmp_path):
    save_checkpoint(tmp_path, {"epoch": 2, "partial": False}, 2)
    save_checkpoint(tmp_path, {"epoch": 2, "partial": True}, 2, partial=True)
    assert load_latest(tmp_path)["partial"] is True


def test_metric_line_and_definitions_agree():
    line = format_metric_line(3, {"train:loss": 0.25, "validation:accuracy": 0.8125, "validation:mAP": float("nan")})
    assert line == "#metrics epoch=3; train:loss=0.25; validation:accuracy=0.8125;"
    assert "\t" not in line
    defs = {d["Name"]: d["Regex"] for d in metric_definitions(["validation:accuracy"])}
    assert re.search(defs["validation:accuracy"], line).group(1) == "0.8125"
    assert re.search(defs["train:loss"], line).group(1) == "0.25"
    assert re.search(defs["validation:loss"], line) is None


def test_metric_regex_reads_exponents():
    line = format_metric_line(1, {"train:loss": 1.5e-7})
    assert float(re.search(metric_definitions([])[0]["Regex"], line).group(1)) == pytest.approx(1.5e-7)


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("nag", torch.optim.SGD), ("adam", torch.optim.Adam),
                                       ("rmsprop", torch.optim.RMSprop), ("adadelta", torch.optim.Adadelta),
                                       ("adagrad", torch.optim.Adagrad)])
def test_optimizers(name, cls):
    opt = build_optimizer(torch.nn.Linear(2, 2).parameters(), settings(optimizer=name))
    assert isinstance(opt, cls)
    if name == "nag":
        assert opt.param_groups[0]["nesterov"] is True


def test_freeze_pattern_freezes_matching_parameters():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    params = trainable_parameters(model, r"^0\.")
    assert len(params) == 2 and not model[0].weight.requires_grad and model[1].weight.requires_grad
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        trainable_parameters(model, "([")
    with pytest.raises(ConfigError, match="froze every layer"):
        trainable_parameters(torch.nn.Linear(2, 2), ".*")


def test_validation_shards_cover_every_sample_once():
    from smcv.engine.loader import ShardSampler

    shards = [list(ShardSampler(10, rank, 3)) for rank in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(10))


def test_dataloader_workers_ignore_sigterm_and_trainer_sees_it(tmp_path):
    import os
    import signal

    from smcv.engine.loader import make_loader
    from smcv.engine.signals import StopRequest

    class PidDataset(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.tensor([signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, os.getpid()])

    loader = make_loader(PidDataset(), 2, train=False, collate_fn=None, num_workers=1, device=torch.device("cpu"), seed=0)
    ignored = torch.cat([b[:, 0] for b in loader])
    assert bool(ignored.all()) and int(torch.cat([b[:, 1] for b in loader])[0]) != os.getpid()
    stop = StopRequest()
    stop._handle(signal.SIGTERM, None)
    stop._handle(signal.SIGTERM, None)  # the same stop delivered twice (tini -g and torchrun): no abort
    assert stop.requested and stop.signal_name == "SIGTERM"


@pytest.mark.parametrize("world, local, host_batch, expected", [
    (1, 1, 32, 32), (4, 4, 32, 8), (8, 4, 32, 8), (16, 8, 32, 4), (2, 1, 32, 32), (8, 8, 4, 1)])
def test_mini_batch_size_is_per_host_and_split_across_its_gpus(monkeypatch, world, local, host_batch, expected):
    """As the built-ins: two hosts with 4 GPUs and mini_batch_size 32 give each GPU 8 (not 4) images."""
    from smcv.engine import distributed

    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local))
    assert distributed.per_process_batch(host_batch) == expected
