"""test_time_flip: the averaging on a hand-made asymmetric network, the manifest flag, validation and serving."""

from __future__ import annotations

import pytest
import torch

from smcv.classification.model import build_resnet
from smcv.errors import ConfigError
from smcv.export_graphs import ClassifierGraph, SegmenterGraph
from smcv.flip_average import flip_averaged
from smcv.segmentation.datasets import Original
from smcv.segmentation.losses import SegmentationCriterion
from smcv.segmentation.metrics import PIXEL_ACCURACY, ConfusionEvaluator
from smcv.segmentation.predictor import PROTOBUF
from smcv.segmentation.transforms import content_size
from smcv.task_api import Evaluator, PreparedData
from smcv.tasks.classification import ClassificationTask
from smcv.tasks.detection import DetectionTask
from smcv.tasks.segmentation import SegmentationTask
from tests.helpers.classdata import TINY_CLASSIFICATION

CPU = torch.device("cpu")
IMAGE = torch.tensor([[[[1.0, 3.0]]]])  # one 1x1x2 image: left pixel 1, right pixel 3
WEIGHTS = torch.tensor([1.0, 10.0])


def per_image(x: torch.Tensor) -> torch.Tensor:
    """Two logits: the left pixel, 10 x the right one."""
    return x.reshape(len(x), -1) * WEIGHTS


def per_pixel(x: torch.Tensor) -> torch.Tensor:
    """One logit per pixel: the left one as is, the right one x 10."""
    return x * WEIGHTS


def test_image_logits_are_averaged_with_the_mirrored_images():
    # image [1, 3] -> [1, 30]; mirrored [3, 1] -> [3, 10]; mean [2, 20]
    torch.testing.assert_close(flip_averaged(per_image, IMAGE, True, dense=False), torch.tensor([[2.0, 20.0]]))


def test_pixel_logits_are_mirrored_back_before_averaging():
    # image [1, 3] -> [1, 30]; mirrored [3, 1] -> [3, 10], mirrored back [10, 3]; mean [5.5, 16.5]
    torch.testing.assert_close(flip_averaged(per_pixel, IMAGE, True, dense=True), torch.tensor([[[[5.5, 16.5]]]]))


def test_without_flip_the_network_runs_once_in_float32():
    calls = []

    def forward(x):
        calls.append(x)
        return per_image(x).half()

    out = flip_averaged(forward, IMAGE, False, dense=False)
    assert len(calls) == 1 and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[1.0, 30.0]]))


def classification(**overrides):
    task = ClassificationTask()
    return task, task.schema().resolve({k: str(v) for k, v in {**TINY_CLASSIFICATION, **overrides}.items()})


def asymmetric_batch(channels: int = 1, side: int = 16) -> torch.Tensor:
    images = torch.zeros(2, channels, side, side, dtype=torch.uint8)
    images[:, :, :, : side // 4] = 255
    images[1, :, : side // 2] = 90
    return images


def test_classification_manifest_and_predictor_carry_the_flag():
    task, hp = classification(test_time_flip=1)
    assert classification()[1].test_time_flip is False
    data = PreparedData([], None, class_names=["a", "b"])
    manifest = {**task.manifest_fields(hp, data), "class_names": ["a", "b"]}
    assert manifest["test_time_flip"] is True
    torch.manual_seed(0)
    state = build_resnet(18, 2, 1).state_dict()
    flipped = task.build_predictor(manifest, state, CPU)
    plain = task.build_predictor({**manifest, "test_time_flip": False}, state, CPU)
    images = list(asymmetric_batch())  # uint8 request images; prepare resizes and normalises them on the device
    with torch.no_grad():
        x = flipped.prepare(images)
        expected = torch.softmax((flipped.model(x) + flipped.model(x.flip(-1))) / 2, dim=1)
    torch.testing.assert_close(torch.tensor(flipped.predict_images(images, [{}, {}])), expected)
    assert not torch.allclose(torch.tensor(plain.predict_images(images, [{}, {}])), expected, atol=1e-6)


class Keep(Evaluator):
    def update(self, outputs, batch):
        self.outputs = outputs

    def compute(self):
        return {}


def test_classification_validation_averages_when_the_flag_is_on():
    torch.manual_seed(0)
    task, hp = classification(test_time_flip=1)
    data = PreparedData([], None, class_names=["a", "b"])
    model = task.build_model(hp, data, {}).eval()
    evaluator = Keep()
    batch = (asymmetric_batch(), torch.tensor([0, 1]))
    with torch.no_grad():
        task.validation_step(model, batch, CPU, evaluator)
        x = model.criterion.normalize(batch[0])
        torch.testing.assert_close(evaluator.outputs, (model(x) + model(x.flip(-1))) / 2)
        model.criterion.test_time_flip = False
        task.validation_step(model, batch, CPU, evaluator)
        torch.testing.assert_close(evaluator.outputs, model(x))


def test_segmentation_manifest_and_predictor_carry_the_flag():
    task = SegmentationTask()
    hp = task.schema().resolve({"num_classes": "2", "test_time_flip": "1", "image_size": "32",
                                "use_pretrained_model": "0"})
    manifest = {**task.manifest_fields(hp, PreparedData([], None)), "class_names": ["bg", "fg"]}
    assert manifest["test_time_flip"] is True
    torch.manual_seed(0)
    network = task.build_model(hp, PreparedData([], None, info={}), {})
    state = network.state_dict()
    predictor = task.build_predictor(manifest, state, CPU)
    assert predictor.test_time_flip is True
    batch = torch.rand(1, 3, 32, 32)
    batch[..., :8] += 2.0
    with torch.no_grad():
        logits = predictor.model(batch)
        expected = torch.softmax((logits + predictor.model(batch.flip(-1)).flip(-1)) / 2, dim=1)
    meta = {**predictor.request_meta((32, 32), (32, 32)), "accept": PROTOBUF}  # full probabilities at the sent size
    torch.testing.assert_close(predictor.predict_batch(batch, [meta])[0].probabilities, expected[0])


def test_detection_does_not_take_the_flag():
    schema = DetectionTask().schema()
    with pytest.raises(ConfigError, match="test_time_flip"):
        schema.resolve({"num_classes": "2", "num_training_samples": "4", "test_time_flip": "1"})


class PositionLogits(torch.nn.Module):
    """Answers the same logits whatever the image: class 1 at +6 in the left column, -2 in the right one."""

    def __init__(self, flip: bool) -> None:
        super().__init__()
        self.criterion = SegmentationCriterion(1.0, 1.0, 2.0, test_time_flip=flip)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(images.shape[0], 2, 2, 2)
        logits[:, 1, :, 0], logits[:, 1, :, 1] = 6.0, -2.0
        return logits


@pytest.mark.parametrize("flip, accuracy", [(False, 1.0), (True, 0.5)])
def test_segmentation_validation_mirrors_the_logits_back(flip, accuracy):
    # mask: class 1 in the left column. Without flip the answer is exact. With flip: the mirrored pass mirrored back
    # says -2 left, +6 right; the mean is +2 in both columns, so class 1 everywhere: half the pixels right.
    mask = torch.tensor([[1, 0], [1, 0]], dtype=torch.uint8)
    batch = (torch.zeros(1, 3, 2, 2, dtype=torch.uint8), mask[None], [Original(mask, content_size("resize", 2, 2, 2))])
    evaluator = ConfusionEvaluator(2)
    SegmentationTask().validation_step(PositionLogits(flip), batch, CPU, evaluator)
    assert evaluator.compute()[PIXEL_ACCURACY] == pytest.approx(accuracy)


def test_export_graphs_apply_the_flag_as_the_endpoint_does():
    image = torch.tensor([[[[51.0, 153.0]]]])  # 0.2 and 0.6 after / 255 with mean 0, std 1
    classifier = ClassifierGraph(per_image, [0.0], [1.0], multi_label=False, flip=True)
    # logits [0.2, 6] and mirrored [0.6, 2]: mean [0.4, 4]
    torch.testing.assert_close(classifier(image), torch.softmax(torch.tensor([[0.4, 4.0]]), dim=1))

    def two_class_pixels(x):  # class 0 at 0, class 1 at per_pixel(x)
        return torch.cat([torch.zeros_like(x), per_pixel(x)], dim=1)

    segmenter = SegmenterGraph(two_class_pixels, [0.0], [1.0], flip=True)
    # class 1: [0.2, 6]; mirrored [0.6, 2] mirrored back [2, 0.6]; mean [1.1, 3.3]
    expected = torch.softmax(torch.tensor([[[[0.0, 0.0]], [[1.1, 3.3]]]]), dim=1)
    torch.testing.assert_close(segmenter(image), expected)
