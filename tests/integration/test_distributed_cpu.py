"""Data-parallel training with two CPU processes (torchrun + gloo): the same code path as multi-GPU/multi-host."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch

from smcv import artifact
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_with_two_processes(opt_ml) -> tuple[subprocess.CompletedProcess, str]:
    """`python -m smcv.train` on this host with two processes (gloo on loopback); the result and all its output."""
    env = {**opt_ml.env(), "SMCV_NPROC_PER_NODE": "2", "SMCV_MASTER_PORT": str(free_port())}
    for name in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        env.pop(name, None)
    proc = subprocess.run([sys.executable, "-m", "smcv.train"], env=env, capture_output=True, text=True, timeout=600)
    return proc, proc.stdout + proc.stderr


def test_two_processes_train_and_rank0_writes_once(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 3)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 2})
    proc, out = train_with_two_processes(opt_ml)
    assert proc.returncode == 0, out
    assert "2 process(es)" in out
    metric_lines = [l for l in proc.stdout.splitlines() if l.startswith("#metrics")]
    assert [l.split(";")[0] for l in metric_lines] == ["#metrics epoch=1", "#metrics epoch=2"]
    assert "validation:accuracy=" in metric_lines[-1]
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["epochs_completed"] == 2 and not opt_ml.failure
    # the report: rank 0 alone runs the selected model over the whole validation set (not its shard) and writes once
    assert out.count("smcv.report: report: evaluation.json") == 1 and "[rank 0] smcv.report" in out
    evaluation = json.loads((opt_ml.base / "output" / "data" / "evaluation.json").read_text())
    assert sum(map(sum, evaluation["confusion_matrix"])) == 6 and evaluation["epoch"] == manifest["selected_epoch"]
    assert (opt_ml.model_dir / "README.md").is_file()


def test_two_processes_with_class_balance_sampling_and_tensorboard(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 2, "class_balance": "sampling", "tensorboard": 1})
    proc, out = train_with_two_processes(opt_ml)
    assert proc.returncode == 0, out
    assert len(list((opt_ml.base / "output" / "tensorboard").glob("events.out.tfevents.*"))) == 1  # rank 0 only
    advisor_lines = [line for line in out.splitlines() if "advisor: " in line]
    assert advisor_lines and all("[rank 0]" in line for line in advisor_lines)
    assert artifact.load_manifest(opt_ml.model_dir)["epochs_completed"] == 2


def test_two_processes_average_the_unwrapped_network(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 3)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 1, "ema_decay": 0.9, "test_time_flip": 1})
    proc, out = train_with_two_processes(opt_ml)
    assert proc.returncode == 0, out
    saved = torch.load(opt_ml.base / "checkpoints" / "checkpoint-epoch0001.pt", weights_only=True)
    assert saved["ema"]["updates"] == 2  # 16 images, 8 per host split over 2 processes: 2 steps
    assert not any(key.startswith(("module.", "_orig_mod.")) for key in saved["ema"]["weights"])
    state = artifact.load_state_dict(opt_ml.model_dir)
    torch.testing.assert_close(state["fc.weight"], saved["ema"]["weights"]["fc.weight"])
    assert artifact.load_manifest(opt_ml.model_dir)["test_time_flip"] is True
