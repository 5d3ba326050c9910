"""Detection end to end over a fake /opt/ml: `python -m smcv.train` from a Ground Truth manifest, Pipe mode,
incremental training, serving the artifact, and the failure file for malformed labels."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from smcv import artifact
from smcv.local_predict import predict_file
from smcv.train import main as train_main
from tests.helpers.detdata import (TINY_HP, manifest_channel, pipe_manifest, rec_channel)

pytestmark = pytest.mark.integration

HP = {**TINY_HP, "num_training_samples": 6, "epochs": 2, "augmentation": "ssd"}
NUMBER = r"[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"


def run_in_process(opt_ml, monkeypatch, channels=None, **overrides) -> int:
    monkeypatch.setenv("SMCV_TASK", "detection")
    opt_ml.configure({**HP, **overrides}, channels)
    return train_main()


def test_python_m_smcv_train_from_ground_truth_manifest(opt_ml):
    data = opt_ml.base / "input" / "data"
    manifest_channel(data, "train", range(6))
    manifest_channel(data, "validation", range(6, 9))
    opt_ml.configure(HP)
    proc = subprocess.run([sys.executable, "-m", "smcv.train"], env=opt_ml.env("detection"), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("#metrics")]
    assert len(lines) == 2
    for name in ("train:loss", "validation:loss", "validation:mAP", "validation:mAP_coco"):
        assert re.search(re.escape(name) + "=" + NUMBER + ";", lines[-1]), (name, lines[-1])
    assert len(re.findall(r"validation mAP <score>=\((" + NUMBER + r")\)", out)) == 2
    manifest = artifact.load_manifest(opt_ml.model_dir)
    state = artifact.load_state_dict(opt_ml.model_dir)
    assert manifest["task"] == "detection" and manifest["class_names"] == ["red", "green"]
    assert manifest["source_class_ids"] == [3, 7] and manifest["detector"]["base_network"] == "tiny"
    assert state["head.classification_head.module_list.0.weight"].shape[0] == 4 * 3  # 4 boxes x (2 classes + bg)
    assert (opt_ml.base / "output" / "success").exists() and not opt_ml.failure
    body, ctype = predict_file(opt_ml.model_dir, data / "validation" / "images" / "img6.png")
    rows = json.loads(body)["prediction"]
    assert ctype == "application/json" and rows and len(rows[0]) == 6


def test_pipe_mode_manifest_and_incremental_training(opt_ml, monkeypatch, capsys):
    data = opt_ml.base / "input" / "data"
    pipe_manifest(data, "train", range(6))
    pipe_manifest(data, "validation", range(6, 9))
    pipe = {"TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO", "ContentType": "application/x-recordio"}
    # augmentation_device=gpu runs the batch augmenter on the training device (the CPU here) through the engine
    assert run_in_process(opt_ml, monkeypatch, {"train": pipe, "validation": pipe}, epochs=1,
                          augmentation_device="gpu") == 0, opt_ml.failure
    assert "training augmentation (ssd) runs on the training device" in capsys.readouterr().out
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["class_names"] == ["class_0", "class_1"] and manifest["source_class_ids"] == [3, 7]
    opt_ml.model_as_channel()
    channels = {"train": pipe, "validation": pipe, "model": {"TrainingInputMode": "File"}}
    assert run_in_process(opt_ml, monkeypatch, channels, epochs=1, use_pretrained_model=1) == 0, opt_ml.failure
    assert "incremental training from the model channel" in capsys.readouterr().out


def test_malformed_recordio_label_fails_the_job_with_the_record_named(opt_ml, monkeypatch):
    data = opt_ml.base / "input" / "data"
    rec_channel(data, "train", range(6), labels={3: [2, 5, 1, 0.2, 0.2, 0.6]})
    assert run_in_process(opt_ml, monkeypatch) == 2
    assert "DataError: train.rec record 3 (id 3): the detection label has 6 values" in opt_ml.failure
