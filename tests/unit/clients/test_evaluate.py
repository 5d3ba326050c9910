"""`smcv evaluate`: the metric functions on hand-worked examples, segmentation at the original size through a
transport, and --model-dir on a tiny model against the answers `smcv predict` gives."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from smcv import artifact
from smcv.cli import main as cli_main
from smcv.detection.metrics import ImageResult
from smcv.evaluate import evaluate
from smcv.evaluate_metrics import classification_scores, detection_scores, segmentation_scores
from smcv.local_predict import predict_file
from smcv.report.metrics import confusion
from tests.helpers.exportmodels import write_tiny_model


def test_classification_scores_by_hand():
    probabilities = [[0.9, 0.1], [0.4, 0.6], [0.7, 0.3], [0.2, 0.8]]
    scores = classification_scores(np.array(probabilities), np.array([0, 0, 1, 1]), threshold=0.25)
    assert scores["accuracy"] == 0.5 and scores["balanced_accuracy"] == 0.5
    assert scores["auc"] == pytest.approx(0.75)  # of the 4 positive/negative pairs, 3 are ranked right
    at = scores["at_threshold"]  # class 1 when p1 >= 0.25: predictions 0, 1, 1, 1
    assert at["sensitivity"] == 1.0 and at["specificity"] == 0.5 and at["balanced_accuracy"] == 0.75


def test_multi_class_auc_is_the_macro_one_vs_rest_mean():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.5, 0.1, 0.4], [0.1, 0.2, 0.7]])
    scores = classification_scores(probabilities, np.array([0, 1, 2, 2]), threshold=0.3)
    assert scores["accuracy"] == 0.75 and scores["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert scores["auc"] == pytest.approx((1 + 1 + 1) / 3) and "at_threshold" not in scores


def test_detection_two_boxes_one_hit_one_miss():
    box = lambda *v: np.array([v], np.float64)  # noqa: E731
    hit = ImageResult(box(0, 0, .5, .5), np.array([.9]), np.array([0]), box(0, 0, .5, .5), np.array([0]), np.zeros(1, bool))
    miss = ImageResult(box(0, 0, .5, .5), np.array([.8]), np.array([1]), box(.5, .5, 1, 1), np.array([1]), np.zeros(1, bool))
    scores = detection_scores([hit, miss], 2)
    assert scores["mAP"] == pytest.approx(0.5) and scores["mAP_coco"] == pytest.approx(0.5)  # AP 1 and AP 0


TRUTH = np.array([[0, 0, 0, 255], [1, 1, 1, 1]], np.uint8)
PREDICTED = np.array([[0, 1, 0, 1], [1, 1, 1, 1]], np.uint8)
# without the ignored pixel: class 0 tp 2, fn 1 -> IoU 2/3, Dice 4/5; class 1 tp 4, fp 1 -> IoU 4/5, Dice 8/9


def test_segmentation_scores_of_one_mask():
    valid = TRUTH != 255
    scores = segmentation_scores(confusion(TRUTH[valid], PREDICTED[valid], 2))
    assert scores["mean_iou"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert scores["mean_dice"] == pytest.approx((4 / 5 + 8 / 9) / 2) and scores["pixel_accuracy"] == pytest.approx(6 / 7)
    assert scores["dice"] == pytest.approx(8 / 9)  # training's validation:dice: the foreground class of 2


def _png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def test_segmentation_through_a_transport_at_the_mask_size(tmp_path):
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation_annotation").mkdir()
    Image.new("RGB", (4, 2)).save(tmp_path / "validation" / "a.jpg")
    (tmp_path / "validation_annotation" / "a.png").write_bytes(_png(TRUTH))
    asked = []
    transport = lambda data, content_type, accept: (asked.append(accept) or (_png(PREDICTED), "image/png"))  # noqa: E731
    scores = evaluate("segmentation", tmp_path, transport, ["background", "road"])
    assert asked == ["image/png"] and scores["mean_iou"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_a_mask_of_another_size_than_its_answer_is_a_data_error_naming_it(tmp_path):
    from smcv.errors import DataError

    (tmp_path / "validation").mkdir()
    (tmp_path / "validation_annotation").mkdir()
    Image.new("RGB", (4, 2)).save(tmp_path / "validation" / "a.jpg")
    (tmp_path / "validation_annotation" / "a.png").write_bytes(_png(TRUTH))
    transport = lambda data, content_type, accept: (_png(np.zeros((3, 5), np.uint8)), "image/png")  # noqa: E731
    with pytest.raises(DataError, match=r"a\.png is 4x2 but the model answered 5x3"):
        evaluate("segmentation", tmp_path, transport, ["background", "road"])


BINARY_TRUTH = np.array([[0, 0, 255, 255], [0, 255, 255, 255]], np.uint8)  # 0/255 masks, as DSB 2018 ships them
BINARY_PREDICTED = np.array([[0, 1, 1, 1], [0, 0, 1, 1]], np.uint8)
# 255 read as class 1: class 0 tp 2, fp 1, fn 1 -> IoU 2/4; class 1 tp 4, fp 1, fn 1 -> IoU 4/6, Dice 8/10


def test_two_class_masks_of_0_and_255_are_read_as_training_reads_them(tmp_path):
    """binary_mask_255=auto in training reads 255 as the foreground of a 2-class job; evaluate must agree (it
    scored every nucleus pixel as 'ignore' before, so Dice was 0)."""
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation_annotation").mkdir()
    Image.new("RGB", (4, 2)).save(tmp_path / "validation" / "a.jpg")
    (tmp_path / "validation_annotation" / "a.png").write_bytes(_png(BINARY_TRUTH))
    transport = lambda data, content_type, accept: (_png(BINARY_PREDICTED), "image/png")  # noqa: E731
    scores = evaluate("segmentation", tmp_path, transport, ["background", "nuclei"])
    assert scores["pixels"] == 8 and scores["mean_iou"] == pytest.approx((2 / 4 + 4 / 6) / 2)
    assert scores["dice"] == pytest.approx(8 / 10)
    ignored = evaluate("segmentation", tmp_path, transport, ["background", "nuclei"], binary_mask_255="false")
    assert ignored["pixels"] == 3  # 255 = ignore, as asked
    assert evaluate("segmentation", tmp_path, transport, ["a", "b", "c"])["pixels"] == 3  # auto: 2-class models only


def test_binary_masks_with_other_values_are_a_data_error_naming_the_mask(tmp_path, capsys):
    """--binary-mask-255 true reads 0 and 255 only: another value fails naming the file and the fix; a bad choice
    of the flag is refused by the command line."""
    from smcv.errors import DataError

    (tmp_path / "validation").mkdir()
    (tmp_path / "validation_annotation").mkdir()
    Image.new("RGB", (4, 2)).save(tmp_path / "validation" / "a.jpg")
    (tmp_path / "validation_annotation" / "a.png").write_bytes(_png(np.where(BINARY_TRUTH == 255, 7, 0).astype(np.uint8)))
    transport = lambda data, content_type, accept: (_png(BINARY_PREDICTED), "image/png")  # noqa: E731
    with pytest.raises(DataError, match=r"a\.png: mask values 7 found.*binary_mask_255=false"):
        evaluate("segmentation", tmp_path, transport, ["background", "nuclei"], binary_mask_255="true")
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--task", "segmentation", "--data", str(tmp_path), "--binary-mask-255", "yes"])
    assert "invalid choice: 'yes'" in capsys.readouterr().err


def _class_folders(root, names=("cat", "dog"), per_class=3):
    rng = np.random.default_rng(5)
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (30 + 4 * i, 36, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return sorted(root.glob("*/*.png"))


@pytest.fixture(scope="module")
def binary_model(tmp_path_factory):
    model_dir = write_tiny_model("classification", tmp_path_factory.mktemp("model"), num_classes="2")
    artifact.update_manifest(model_dir, {"class_names": ["cat", "dog"], "decision_threshold": {
        "value": 0.3, "rule": "youden", "positive_class": 1}})
    return model_dir


def test_evaluate_model_dir_matches_predict_answers(binary_model, tmp_path, capsys):
    images = _class_folders(tmp_path / "data")
    assert cli_main(["evaluate", "--task", "classification", "--data", str(tmp_path / "data"),
                     "--model-dir", str(binary_model)]) == 0
    printed = json.loads(capsys.readouterr().out)
    probabilities = [json.loads(predict_file(binary_model, path)[0]) for path in images]
    labels = [0 if path.parent.name == "cat" else 1 for path in images]
    expected = np.mean([int(np.argmax(p)) == y for p, y in zip(probabilities, labels)])
    at_threshold = np.mean([int(p[1] >= 0.3) == y for p, y in zip(probabilities, labels)])
    assert printed["task"] == "classification" and printed["images"] == 6
    assert printed["accuracy"] == pytest.approx(expected)
    assert printed["at_threshold"]["threshold"] == 0.3 and printed["at_threshold"]["accuracy"] == pytest.approx(at_threshold)


def test_limit_and_a_missing_folder(binary_model, tmp_path, capsys):
    _class_folders(tmp_path / "data")
    assert cli_main(["evaluate", "--task", "classification", "--data", str(tmp_path / "data"), "--limit", "2",
                     "--model-dir", str(binary_model)]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 2
    assert cli_main(["evaluate", "--task", "classification", "--data", str(tmp_path / "nope"),
                     "--model-dir", str(binary_model)]) == 2
    assert "give the labelled data folder" in capsys.readouterr().err
