"""ema_decay: hand-worked averages, the warm-up, what the Trainer validates and saves, and exact resume."""

from __future__ import annotations

import pytest
import torch

from smcv.engine.ema import WeightAverage, decay_at
from tests.unit.engine.test_trainer import make_trainer


class Tiny(torch.nn.Module):
    """One weight, one float buffer, one integer buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([0.0, 10.0]))
        self.register_buffer("running", torch.tensor([4.0]))
        self.register_buffer("count", torch.tensor(0, dtype=torch.long))


def test_decay_warms_up_then_stays_at_the_setting():
    assert decay_at(0.999, 0) == pytest.approx(0.1)
    assert decay_at(0.999, 1) == pytest.approx(2 / 11)
    assert decay_at(0.5, 10) == 0.5  # (1 + 10) / (10 + 10) = 0.55 > 0.5


def test_hand_worked_average_of_parameters_and_buffers():
    net = Tiny()
    ema = WeightAverage(net, 0.5)
    with torch.no_grad():
        net.w.copy_(torch.tensor([1.0, 0.0]))
        net.running.fill_(14.0)
        net.count.fill_(3)
    ema.update()  # decay 0.1: 0.1 * old + 0.9 * new
    torch.testing.assert_close(ema.module.w, torch.tensor([0.9, 1.0]))
    torch.testing.assert_close(ema.module.running, torch.tensor([13.0]))
    assert int(ema.module.count) == 3  # integer buffers are copied
    with torch.no_grad():
        net.w.copy_(torch.tensor([2.0, 2.0]))
    ema.update()  # decay 2/11: 2/11 * 0.9 + 9/11 * 2 = 1.8; 2/11 * 1 + 9/11 * 2 = 20/11
    torch.testing.assert_close(ema.module.w, torch.tensor([1.8, 20 / 11]))
    assert ema.updates == 2 and not ema.module.w.requires_grad
    torch.testing.assert_close(net.w, torch.tensor([2.0, 2.0]))  # the live weights are untouched


def test_state_round_trip_keeps_updating_the_same_tensors():
    net = Tiny()
    first = WeightAverage(net, 0.9)
    with torch.no_grad():
        net.w.add_(1.0)
    first.update()
    second = WeightAverage(net, 0.9)
    second.load_state_dict(first.state_dict())
    first.update(), second.update()
    torch.testing.assert_close(second.module.w, first.module.w)
    assert second.updates == 2


def test_decay_outside_the_open_interval_is_refused():
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(Tiny(), 1.0)


def test_trainer_validates_and_saves_the_average(tmp_path):
    trainer, _ = make_trainer(tmp_path, epochs=1, ema_decay=0.9)
    result = trainer.fit()
    assert trainer.ema.updates == 2  # 16 samples, batch 8: 2 optimizer steps
    average = trainer.ema.module
    assert not torch.equal(average.weight, trainer.network.weight)
    torch.testing.assert_close(result.state_dict["weight"], average.weight.detach())
    torch.testing.assert_close(result.state_dict["bias"], average.bias.detach())
    x, y = trainer.data.validation.tensors
    with torch.no_grad():
        expected = -float(((average(x) - y) ** 2).sum()) / len(y)
    assert result.history[0]["validation:score"] == pytest.approx(expected)


def test_ema_off_changes_nothing(tmp_path):
    trainer, _ = make_trainer(tmp_path, epochs=1)
    result = trainer.fit()
    assert trainer.ema is None and trainer.evaluation_network() is trainer.network
    torch.testing.assert_close(result.state_dict["weight"], trainer.network.weight.detach())
    state = torch.load(tmp_path / "ckpt" / "checkpoint-epoch0001.pt", weights_only=True)
    assert state["ema"] is None


def test_resume_restores_the_average_exactly(tmp_path):
    first, _ = make_trainer(tmp_path, epochs=2, ema_decay=0.8)
    first.fit()
    resumed, _ = make_trainer(tmp_path, epochs=4, ema_decay=0.8)
    assert resumed.ema.updates == 0
    resumed.resume()
    assert resumed.ema.updates == first.ema.updates == 4  # the warm-up continues where it was, not from 0
    for name, tensor in first.ema.module.state_dict().items():
        assert torch.equal(resumed.ema.module.state_dict()[name], tensor), name
    assert not torch.equal(resumed.ema.module.weight, resumed.network.weight)
    resumed.fit()
    assert resumed.ema.updates == 8


def test_resume_without_an_average_in_the_checkpoint_starts_it_from_the_weights(tmp_path, caplog):
    make_trainer(tmp_path, epochs=1)[0].fit()
    resumed, _ = make_trainer(tmp_path, epochs=2, ema_decay=0.9)
    resumed.resume()
    assert resumed.ema.updates == 0 and "no weight average" in caplog.text
    torch.testing.assert_close(resumed.ema.module.weight, resumed.network.weight.detach())
