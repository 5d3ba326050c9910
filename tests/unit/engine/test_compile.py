"""compile=1: a real inductor compile on CPU, the compile time kept out of the rates, and the eager fallback."""

from __future__ import annotations

import logging
import shutil
import time

import pytest
import torch

from smcv.engine.compile import fallback_message
from tests.unit.engine.test_trainer import LinearTask, make_trainer


class Wrapper(torch.nn.Module):
    """Stands in for torch.compile's wrapper: holds the network as _orig_mod, as torch's does."""

    def __init__(self, network: torch.nn.Module, first_call=None) -> None:
        super().__init__()
        self._orig_mod, self.first_call = network, first_call

    def forward(self, *args, **kwargs):
        if self.first_call is not None:
            call, self.first_call = self.first_call, None
            call()
        return self._orig_mod(*args, **kwargs)


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="inductor needs a C compiler on the CPU")
def test_compiled_training_saves_a_plain_state_dict_reports_the_compile_time_and_resumes(tmp_path):
    torch._dynamo.reset()
    trainer, lines = make_trainer(tmp_path, epochs=1, compile=True)
    assert trainer.compiled and type(trainer.model).__name__ == "OptimizedModule"
    result = trainer.fit()
    assert trainer.compiled, "the inductor compile fell back to eager"
    assert all(not key.startswith("_orig_mod") for key in result.state_dict)
    plain = torch.nn.Linear(3, 1)
    plain.load_state_dict(result.state_dict)  # strict: same names as the uncompiled network
    compile_lines = [line for line in lines if line.startswith("compile: ")]
    assert len(compile_lines) == 1 and "(first training step" in compile_lines[0]
    assert result.history[0]["train:compile_seconds"] > 0
    assert "train:compile_seconds" in next(line for line in lines if line.startswith("#metrics epoch=1"))
    resumed, lines2 = make_trainer(tmp_path, epochs=2, compile=True)
    result2 = resumed.fit()
    assert any("resuming from checkpoint checkpoint-epoch0001.pt" in line for line in lines2)
    assert [h["epoch"] for h in result2.history] == [1, 2]
    torch.nn.Linear(3, 1).load_state_dict(result2.state_dict)


def test_the_compiling_step_is_left_out_of_the_throughput(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda network, **kw: Wrapper(network, lambda: time.sleep(1.0)))
    trainer, _ = make_trainer(tmp_path, epochs=1, compile=True)
    stats = trainer.fit().history[0]
    assert stats["train:compile_seconds"] >= 1.0
    # 2 steps of 8 images: with the 1 s step included the rate would be below 16 images/s
    assert stats["train:throughput"] > 5 * 16 / stats["train:compile_seconds"]


def test_a_failing_compile_falls_back_to_eager_with_one_warning(tmp_path, monkeypatch, caplog):
    def fail():
        raise RuntimeError("CppCompileError: no C compiler found")

    monkeypatch.setattr(torch, "compile", lambda network, **kw: Wrapper(network, fail))
    reference, _ = make_trainer(tmp_path / "eager", epochs=2)
    expected = reference.fit().state_dict
    trainer, lines = make_trainer(tmp_path / "compiled", epochs=2, compile=True)
    with caplog.at_level(logging.WARNING):
        result = trainer.fit()
    warnings = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(warnings) == 1 and "no C compiler found" in warnings[0] and "compile=0" in warnings[0]
    assert not trainer.compiled and trainer.model is trainer.network
    assert not any(line.startswith("compile: ") for line in lines)
    assert "train:compile_seconds" not in result.history[0]
    for name, tensor in expected.items():  # the failed attempt left no trace in the weights
        torch.testing.assert_close(result.state_dict[name], tensor)


def test_torch_refusing_to_compile_at_once_falls_back(tmp_path, monkeypatch, caplog):
    def refuse(network, **kw):
        raise RuntimeError("Python 3.99 is not supported by torch.compile")

    monkeypatch.setattr(torch, "compile", refuse)
    trainer, _ = make_trainer(tmp_path, epochs=1, compile=True)
    assert not trainer.compiled and "Python 3.99" in caplog.text and "compile=0" in caplog.text
    assert trainer.fit().epochs_completed == 1


def test_an_error_eager_mode_repeats_is_raised_not_hidden(tmp_path, monkeypatch):
    class BadData(LinearTask):
        def training_loss(self, model, batch, device):
            model(batch[0])
            raise ValueError("label 7 is out of range")

    monkeypatch.setattr(torch, "compile", lambda network, **kw: Wrapper(network))
    trainer, _ = make_trainer(tmp_path, task=BadData(), epochs=1, compile=True)
    with pytest.raises(ValueError, match="label 7"):
        trainer.fit()


def test_fallback_message_names_the_cause_on_one_line():
    message = fallback_message(RuntimeError("InductorError: gcc failed\n  long traceback\n"))
    assert "\n" not in message and "RuntimeError: InductorError: gcc failed" in message and "compile=0" in message
