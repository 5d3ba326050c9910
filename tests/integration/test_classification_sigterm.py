"""A real training process stopped with SIGTERM checkpoints, and a restarted job resumes from the checkpoint."""

from __future__ import annotations

import pytest

from smcv import artifact
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders
from tests.helpers.training import metric_epochs, run_training, sigterm_when, start_training

pytestmark = pytest.mark.integration


def test_sigterm_then_resume(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 2)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 40, "mini_batch_size": 4})
    proc = start_training(opt_ml.env())
    log = sigterm_when(proc, lambda line: line.startswith("#metrics epoch=2;"))
    assert proc.returncode == 0, log
    assert "SIGTERM received" in log and "checkpoint saved" in log
    checkpoints = sorted(p.name for p in opt_ml.checkpoint_dir.glob("checkpoint-epoch*.pt"))
    assert checkpoints, log
    done = int(checkpoints[-1][len("checkpoint-epoch"):][:4])
    assert 2 <= done < 40
    assert (opt_ml.model_dir / "model.pt").exists() and not opt_ml.failure

    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": done + 2, "mini_batch_size": 4})
    second = run_training(opt_ml.env())
    assert second.returncode == 0, second.stdout
    assert f"resuming from checkpoint {checkpoints[-1]}" in second.stdout
    assert metric_epochs(second.stdout) == [done + 1, done + 2]
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["epochs_completed"] == done + 2
