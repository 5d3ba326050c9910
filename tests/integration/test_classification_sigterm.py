"""A real training process stopped with SIGTERM checkpoints, and a restarted job resumes from the checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from smcv import artifact
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

pytestmark = pytest.mark.integration
WAIT_SECONDS = 300


def start(opt_ml) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smcv.train"], env=opt_ml.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_sigterm_then_resume(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 2)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 40, "mini_batch_size": 4})
    proc = start(opt_ml)
    seen, deadline = [], time.monotonic() + WAIT_SECONDS
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("#metrics epoch=2;") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=WAIT_SECONDS)
    log = "".join(seen) + rest
    assert proc.returncode == 0, log
    assert "SIGTERM received" in log and "checkpoint saved" in log
    checkpoints = sorted(p.name for p in opt_ml.checkpoint_dir.glob("checkpoint-epoch*.pt"))
    assert checkpoints, log
    done = int(checkpoints[-1][len("checkpoint-epoch"):][:4])
    assert 2 <= done < 40
    assert (opt_ml.model_dir / "model.pt").exists() and not opt_ml.failure

    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": done + 2, "mini_batch_size": 4})
    second = subprocess.run([sys.executable, "-m", "smcv.train"], env=opt_ml.env(), capture_output=True, text=True,
                            timeout=WAIT_SECONDS)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"resuming from checkpoint {checkpoints[-1]}" in second.stdout
    epochs = [line.split(";")[0] for line in second.stdout.splitlines() if line.startswith("#metrics")]
    assert epochs == [f"#metrics epoch={done + 1}", f"#metrics epoch={done + 2}"]
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["epochs_completed"] == done + 2
