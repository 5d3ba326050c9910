"""A real classification training job stopped with SIGTERM in the middle of an epoch (once, or again after the
restart) exits 0 with a checkpoint, and the restarted jobs finish every epoch without losing a completed one."""

from __future__ import annotations

import re
import time

import pytest

from smcv import artifact
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders
from tests.helpers.figures import report
from tests.helpers.training import metric_epochs, run_training, sigterm_when, start_training

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_CLASS = 40  # 80 training images at 2 per step: 40 steps an epoch, progress lines from step 10 on
HYPERPARAMETERS = {**TINY_CLASSIFICATION, "num_training_samples": 2 * PER_CLASS, "mini_batch_size": 2,
                   "log_interval_seconds": 0.001}
_PROGRESS = re.compile(r"^progress epoch=(\d+)/\d+ step=(\d+)/(\d+) ")


def mid_epoch(epoch: int):
    """True for the progress line of `epoch` that shows it at least 10 steps in and not at its end."""
    def check(line: str) -> bool:
        match = _PROGRESS.match(line)
        return bool(match) and int(match.group(1)) == epoch and int(match.group(2)) < int(match.group(3))
    return check


@pytest.mark.parametrize("epochs, stop_in", [
    pytest.param(3, [2], id="quick"),
    pytest.param(6, [2, 4], id="long", marks=pytest.mark.reliability_long),
])
def test_sigterm_mid_epoch_then_resume(opt_ml, epochs, stop_in):
    write_class_folders(opt_ml.channel("train"), PER_CLASS)
    write_class_folders(opt_ml.channel("validation"), 2)
    opt_ml.configure({**HYPERPARAMETERS, "epochs": epochs})
    finished, runs, started = [], [], time.monotonic()
    for epoch in stop_in:
        proc = start_training(opt_ml.env())
        log = sigterm_when(proc, mid_epoch(epoch))
        assert proc.returncode == 0, log
        assert f"stopped by SIGTERM during epoch {epoch}; checkpoint saved" in log, log
        partial = opt_ml.checkpoint_dir / f"checkpoint-epoch{epoch - 1:04d}-partial.pt"
        assert partial.exists(), sorted(p.name for p in opt_ml.checkpoint_dir.iterdir())
        if finished:  # a restarted job resumed where the previous one stopped
            assert f"resuming from checkpoint checkpoint-epoch{finished[-1]:04d}-partial.pt" in log, log
        assert not opt_ml.failure and (opt_ml.model_dir / "model.pt").exists()
        finished += metric_epochs(log)
        runs.append({"stopped_in_epoch": epoch, "epochs_finished": metric_epochs(log)})
    last = run_training(opt_ml.env())
    assert last.returncode == 0, last.stdout
    assert f"resuming from checkpoint checkpoint-epoch{stop_in[-1] - 1:04d}-partial.pt" in last.stdout, last.stdout
    finished += metric_epochs(last.stdout)
    runs.append({"stopped_in_epoch": None, "epochs_finished": metric_epochs(last.stdout)})
    manifest = artifact.load_manifest(opt_ml.model_dir)
    report({"test": "training_sigterm", "task": "classification", "epochs": epochs, "steps_per_epoch": PER_CLASS,
            "runs": runs, "epochs_finished": finished, "epochs_completed": manifest["epochs_completed"],
            "seconds": round(time.monotonic() - started, 1)})
    assert finished == list(range(1, epochs + 1))  # every epoch finished once: none lost, none repeated
    assert manifest["epochs_completed"] == epochs and manifest.get("trained", True)
