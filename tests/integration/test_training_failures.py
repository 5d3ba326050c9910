"""Training processes that fail end promptly with one failure line: data errors in DataLoader workers, planted checkpoints."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

pytestmark = pytest.mark.integration
#: a guard against a hung process only (the run takes seconds); not a performance limit
HANG_GUARD_SECONDS = 300


def train(opt_ml, **env) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "smcv.train"], env={**opt_ml.env(), **env}, capture_output=True,
                              text=True, timeout=HANG_GUARD_SECONDS)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"training did not exit within {HANG_GUARD_SECONDS} s after its error:\n{exc.stdout}{exc.stderr}")


def test_data_error_in_a_dataloader_worker_exits(opt_ml):
    write_class_folders(opt_ml.channel("train"), 6)
    (opt_ml.channel("train") / "normal" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    opt_ml.configure({**TINY_CLASSIFICATION, "num_training_samples": 13, "mini_batch_size": 2, "num_workers": 2})
    done = train(opt_ml, SMCV_CACHE_LIMIT_MB="0")  # no decode cache: images are decoded lazily, in the workers
    log = done.stdout + done.stderr
    assert done.returncode == 2, log
    failure = opt_ml.failure
    assert failure.startswith("DataError: ") and "bad.png" in failure, log
    assert len(failure.strip().splitlines()) == 1 and "Traceback" not in failure


class PlantedPayload:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_checkpoint_is_refused_without_running_its_code(opt_ml, tmp_path):
    import torch

    write_class_folders(opt_ml.channel("train"), 4)
    opt_ml.configure({**TINY_CLASSIFICATION, "num_training_samples": 8})
    marker = tmp_path / "code-ran"
    opt_ml.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 9999, "payload": PlantedPayload(str(marker))}, opt_ml.checkpoint_dir / "checkpoint-epoch9999.pt")
    done = train(opt_ml)
    log = done.stdout + done.stderr
    assert not marker.exists(), "the planted checkpoint's code ran"
    assert done.returncode == 2, log
    assert opt_ml.failure.startswith("ConfigError: refusing checkpoint checkpoint-epoch9999.pt"), log
    assert "pickled Python objects" in opt_ml.failure and len(opt_ml.failure.strip().splitlines()) == 1
