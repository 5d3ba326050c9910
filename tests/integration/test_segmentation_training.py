"""Segmentation end to end over a fake /opt/ml in the built-in's layout: `python -m smcv.train`, metric lines,
artifact, prediction, Ground Truth manifests, incremental training and failures."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from smcv import artifact
from smcv.local_predict import predict_file
from smcv.train import main as train_main
from tests.helpers.segdata import TINY_HP, builtin_layout, ground_truth_manifest, png_bytes

pytestmark = pytest.mark.integration

HP = {**TINY_HP, "num_training_samples": "6", "epochs": "2"}


def layout(opt_ml) -> None:
    builtin_layout(opt_ml.base / "input" / "data")


def run_in_process(opt_ml, monkeypatch, **overrides) -> int:
    monkeypatch.setenv("SMCV_TASK", "segmentation")
    opt_ml.configure({**HP, **overrides})
    return train_main()


def test_python_m_smcv_train_builtin_layout(opt_ml):
    layout(opt_ml)
    opt_ml.configure(HP)
    proc = subprocess.run([sys.executable, "-m", "smcv.train"], env=opt_ml.env("segmentation"),
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    lines = [line for line in out.splitlines() if line.startswith("#metrics")]
    assert len(lines) == 2
    for name in ("train:loss", "validation:loss", "validation:mIOU", "validation:pixel_accuracy", "validation:dice"):
        assert re.search(re.escape(name) + r"=[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?;", lines[-1]), (name, lines[-1])
    manifest = artifact.load_manifest(opt_ml.model_dir)
    state = artifact.load_state_dict(opt_ml.model_dir)
    assert manifest["task"] == "segmentation" and manifest["architecture"] == "unet"
    assert manifest["num_classes"] == 2 and manifest["data"]["binary_mask_255"] is True
    assert state["segmentation_head.0.weight"].shape[0] == 2
    assert (opt_ml.base / "output" / "success").exists() and not opt_ml.failure
    image = opt_ml.base / "input" / "data" / "validation" / "img0.jpg"
    body, ctype = predict_file(opt_ml.model_dir, image)
    mask = Image.open(io.BytesIO(body))
    assert ctype == "image/png" and mask.size == Image.open(image).size and int(np.array(mask).max()) <= 1


def test_ground_truth_manifest_and_incremental_training(opt_ml, monkeypatch, capsys):
    ground_truth_manifest(opt_ml.channel("train"), 4)
    ground_truth_manifest(opt_ml.channel("validation"), 2)
    # augmentation_device=gpu runs the batch augmenter on the training device (the CPU here) through the engine
    assert run_in_process(opt_ml, monkeypatch, augmentation_device="gpu") == 0
    assert "training augmentation runs on the training device" in capsys.readouterr().out
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["class_names"] == ["BACKGROUND", "lesion"] and manifest["data"]["train"]["format"] == "manifest"
    opt_ml.model_as_channel()
    capsys.readouterr()
    assert run_in_process(opt_ml, monkeypatch, epochs=1, use_pretrained_model=1) == 0
    assert "initialised from the model channel" in capsys.readouterr().out


@pytest.mark.parametrize("problem, fragment", [
    ("bad_value", "img2.png: mask values 7 are not class ids for num_classes=2"),
    ("rgb_mask", "img0.png: the mask has 3 channels"),
    ("no_mask", "have no mask with the same basename"),
])
def test_failure_file_for_bad_masks(opt_ml, monkeypatch, problem, fragment):
    layout(opt_ml)
    annotations = opt_ml.channel("train_annotation")
    if problem == "bad_value":
        (annotations / "img2.png").write_bytes(png_bytes(np.full((40, 48), 7, np.uint8)))
    elif problem == "rgb_mask":
        (annotations / "img0.png").write_bytes(png_bytes(np.zeros((40, 48, 3), np.uint8)))
    else:
        (annotations / "img1.png").unlink()
    assert run_in_process(opt_ml, monkeypatch, binary_mask_255="false") == 2
    failure = opt_ml.failure
    assert failure.startswith("DataError: ") and fragment in failure and "Traceback" not in failure
    assert not (opt_ml.model_dir / "model.pt").exists()


def test_fcn_default_trains_saves_serves_and_continues_from_the_model_channel(opt_ml, monkeypatch, capsys):
    """The built-in's default network (FCN-ResNet50, aux head) through smcv.train, serving and incremental training."""
    layout(opt_ml)
    hp = {k: v for k, v in HP.items() if k not in ("algorithm", "encoder_name", "encoder_depth")}
    opt_ml.configure({**hp, "epochs": "1", "mini_batch_size": "3"})
    monkeypatch.setenv("SMCV_TASK", "segmentation")
    assert train_main() == 0, opt_ml.failure
    manifest = artifact.load_manifest(opt_ml.model_dir)
    state = artifact.load_state_dict(opt_ml.model_dir)
    assert (manifest["architecture"], manifest["encoder_name"], manifest["aux_classifier"]) == ("fcn", "resnet50", True)
    assert manifest["input"] == {"mode": "resize", "size": 32, "divisor": 8}
    assert state["classifier.4.weight"].shape[0] == 2 and "backbone.layer4.2.conv3.weight" in state
    assert "validation:mIOU" in manifest["metrics"]
    image = opt_ml.base / "input" / "data" / "validation" / "img0.jpg"
    body, ctype = predict_file(opt_ml.model_dir, image)
    mask = Image.open(io.BytesIO(body))
    assert ctype == "image/png" and mask.size == Image.open(image).size and int(np.array(mask).max()) <= 1
    opt_ml.model_as_channel()
    capsys.readouterr()
    opt_ml.configure({**hp, "epochs": "1", "mini_batch_size": "3", "use_pretrained_model": "1"})
    assert train_main() == 0, opt_ml.failure
    assert "initialised from the model channel" in capsys.readouterr().out
