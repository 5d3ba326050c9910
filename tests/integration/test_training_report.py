"""The end-of-training report of each task over a fake /opt/ml: plots, evaluation.json and the model card; a
broken plot never fails the job; a model directory with its card still serves."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from smcv import artifact
from smcv.local_predict import predict_file
from smcv.train import main as train_main
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders
from tests.helpers.detdata import TINY_HP as DET_HP
from tests.helpers.detdata import manifest_channel
from tests.helpers.segdata import TINY_HP as SEG_HP
from tests.helpers.segdata import builtin_layout

pytestmark = pytest.mark.integration

IC_PLOTS = {"training_curves.png", "confusion_matrix.png", "roc_per_class.png", "pr_per_class.png", "reliability.png"}
OD_PLOTS = {"training_curves.png", "pr_per_class.png", "detections_grid.png"}
SS_PLOTS = {"training_curves.png", "iou_per_class.png", "segmentation_grid.png"}


def output(opt_ml):
    return opt_ml.base / "output" / "data"


def assert_pngs(folder, names):
    for name in names:
        path = folder / name
        assert path.stat().st_size > 0, name
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100, name


def evaluation(opt_ml) -> dict:
    result = json.loads((output(opt_ml) / "evaluation.json").read_text())
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert result["epoch"] == manifest["selected_epoch"] and result["epochs_completed"] == manifest["epochs_completed"]
    assert result["metrics"] == pytest.approx(manifest["metrics"])
    assert result["class_names"] == manifest["class_names"]
    assert [row["name"] for row in result["per_class"]] == manifest["class_names"]
    return result


def card(opt_ml, task: str, objective: str, names) -> str:
    text = (opt_ml.model_dir / "README.md").read_text()
    assert text.startswith(f"# Model card: {task}")
    for needle in (objective, "output.tar.gz", "not a medical device", "trained from scratch", *names):
        assert needle in text, needle
    return text


def train_classification(opt_ml, **overrides) -> int:
    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 5)
    opt_ml.configure({**TINY_CLASSIFICATION, **overrides})
    return train_main()


def test_classification_report_and_model_card(opt_ml):
    assert train_classification(opt_ml) == 0, opt_ml.failure
    result = evaluation(opt_ml)
    assert set(result["plots"]) == IC_PLOTS and result["plot_failures"] == {}
    assert_pngs(output(opt_ml), IC_PLOTS)
    assert result["validation_samples"] == 10
    assert sum(map(sum, result["confusion_matrix"])) == 10
    assert [row["support"] for row in result["per_class"]] == [5, 5]
    assert 0.0 <= result["ece"] <= 1.0 and sum(b["count"] for b in result["calibration_bins"]) == 10
    for row in result["per_class"]:
        assert all(0.0 <= row[k] <= 1.0 for k in ("precision", "recall", "f1", "ap", "roc_auc"))
    accuracy = sum(result["confusion_matrix"][i][i] for i in range(2)) / 10
    assert accuracy == pytest.approx(result["metrics"]["validation:accuracy"])  # the pass used the selected weights
    text = card(opt_ml, "classification", "validation:accuracy", ["normal", "pneumonia"])
    assert "ResNet-18" in text and "| train | 16 |" in text and "| validation | 10 |" in text
    assert all(name in text for name in IC_PLOTS)
    chosen = artifact.load_manifest(opt_ml.model_dir)["decision_threshold"]  # binary job: chosen on validation
    assert f"probability is >= {chosen['value']:.4g}" in text and "## Decision threshold" in text


def test_a_failing_plot_is_a_warning_and_the_job_succeeds(opt_ml, monkeypatch, capsys):
    from smcv.report import plots

    def broken(*args, **kwargs):
        raise RuntimeError("no ink left")

    monkeypatch.setattr(plots, "reliability", broken)
    assert train_classification(opt_ml) == 0, opt_ml.failure
    assert (opt_ml.base / "output" / "success").exists() and not opt_ml.failure
    warnings = [line for line in capsys.readouterr().out.splitlines() if " WARNING smcv.report: " in line]
    assert any("reliability.png" in w and "no ink left" in w for w in warnings), warnings
    result = json.loads((output(opt_ml) / "evaluation.json").read_text())
    assert result["plot_failures"] == {"reliability.png": "RuntimeError: no ink left"}
    assert set(result["plots"]) == IC_PLOTS - {"reliability.png"} and not (output(opt_ml) / "reliability.png").exists()
    assert_pngs(output(opt_ml), IC_PLOTS - {"reliability.png"})
    assert "reliability.png" not in (opt_ml.model_dir / "README.md").read_text()


def test_a_model_directory_with_its_card_serves(opt_ml):
    from smcv.serving.model_holder import ModelHolder

    assert train_classification(opt_ml, epochs=1) == 0, opt_ml.failure
    assert (opt_ml.model_dir / "README.md").is_file()
    holder = ModelHolder(opt_ml.model_dir, device="cpu", max_batch_size=1).start()
    try:
        assert holder.wait(120) and holder.error is None
        body, _ = holder.infer(Image.open(opt_ml.channel("validation") / "normal" / "0.png"), "application/json")
    finally:
        holder.close()
    assert sum(json.loads(body)) == pytest.approx(1.0, abs=1e-5)
    body, _ = predict_file(opt_ml.model_dir, opt_ml.channel("validation") / "pneumonia" / "0.png")
    assert len(json.loads(body)) == 2


def test_detection_report_and_model_card(opt_ml, monkeypatch):
    data = opt_ml.base / "input" / "data"
    manifest_channel(data, "train", range(6))
    manifest_channel(data, "validation", range(6, 9))
    monkeypatch.setenv("SMCV_TASK", "detection")
    opt_ml.configure({**DET_HP, "num_training_samples": 6, "epochs": 2})
    assert train_main() == 0, opt_ml.failure
    result = evaluation(opt_ml)
    assert set(result["plots"]) == OD_PLOTS and result["plot_failures"] == {}
    assert_pngs(output(opt_ml), OD_PLOTS)
    assert result["validation_samples"] == 3 and result["iou_threshold"] == 0.5
    for row in result["per_class"]:
        assert 0.0 <= row["ap"] <= 1.0 and 0.0 <= row["ap_coco"] <= 1.0 and 0.0 <= row["f1"] <= 1.0
    assert sum(row["ground_truth"] for row in result["per_class"]) == 4  # scenes 6, 7, 8 hold 1 + 2 + 1 objects
    mean_ap = sum(row["ap"] for row in result["per_class"]) / 2
    assert mean_ap == pytest.approx(result["metrics"]["validation:mAP"])
    assert "SSD with a tiny base network" in card(opt_ml, "detection", "validation:mAP", ["red", "green"])


def test_segmentation_report_and_model_card(opt_ml, monkeypatch):
    builtin_layout(opt_ml.base / "input" / "data")
    monkeypatch.setenv("SMCV_TASK", "segmentation")
    opt_ml.configure({**SEG_HP, "num_training_samples": "6", "epochs": "2"})
    assert train_main() == 0, opt_ml.failure
    result = evaluation(opt_ml)
    assert set(result["plots"]) == SS_PLOTS and result["plot_failures"] == {}
    assert_pngs(output(opt_ml), SS_PLOTS)
    pixels = sum(map(sum, result["confusion_matrix"]))
    # counted at the images' original 40x48, not the 32x32 network input
    assert pixels == result["validation_samples"] * 40 * 48 and result["confusion_unit"] == "pixels"
    ious = [row["iou"] for row in result["per_class"] if row["iou"] is not None]
    assert all(0.0 <= v <= 1.0 for v in ious)
    assert sum(ious) / len(ious) == pytest.approx(result["metrics"]["validation:mIOU"])
    assert "unet" in card(opt_ml, "segmentation", "validation:mIOU", result["class_names"])
