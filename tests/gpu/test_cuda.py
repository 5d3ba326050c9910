"""CUDA checks (run on a GPU machine: pytest tests/gpu): training with BF16 autocast and GPU/CPU prediction parity."""

from __future__ import annotations

import pytest
import torch

from smcv import artifact
from smcv.train import main as train_main
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_training_on_cuda_uses_bf16_and_channels_last(opt_ml, capsys):
    write_class_folders(opt_ml.channel("train"), 8, mode="RGB")
    write_class_folders(opt_ml.channel("validation"), 2, mode="RGB")
    opt_ml.configure({**TINY_CLASSIFICATION, "image_shape": "3,32,32", "epochs": 3})
    assert train_main() == 0
    out = capsys.readouterr().out
    assert "on cuda:0" in out and "#metrics epoch=3;" in out
    manifest = artifact.load_manifest(opt_ml.model_dir)
    assert manifest["metrics"]["validation:accuracy"] >= 0.5


def test_gpu_and_cpu_predictions_agree(opt_ml):
    from PIL import Image

    from smcv.serving import direct
    from smcv.tasks.classification import ClassificationTask

    write_class_folders(opt_ml.channel("train"), 4, mode="RGB")
    opt_ml.configure({**TINY_CLASSIFICATION, "image_shape": "3,32,32", "epochs": 1})
    assert train_main() == 0
    manifest, state = artifact.load_manifest(opt_ml.model_dir), artifact.load_state_dict(opt_ml.model_dir)
    image = Image.new("RGB", (40, 40), (120, 90, 60))
    outputs = []
    for device in (torch.device("cpu"), torch.device("cuda")):
        predictor = ClassificationTask().build_predictor(manifest, state, device)
        outputs.append(direct.predict(predictor, [image], "application/json")[0][0])
    # the GPU runs inference under BF16 autocast: about three significant digits
    assert outputs[0] == pytest.approx(outputs[1], abs=2e-2)
    assert max(range(2), key=outputs[0].__getitem__) == max(range(2), key=outputs[1].__getitem__)


def test_precision_choice_on_this_gpu():
    from smcv.engine.precision import choose_precision

    device = torch.device("cuda")
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert choose_precision("float32", True, device).dtype == expected
    assert choose_precision("float16", True, device).needs_scaler
    assert choose_precision("float32", False, device).dtype is None


def test_prefetched_batches_train_as_batches_staged_in_line(tmp_path):
    """The side-stream staging hands the step the same tensors as staging in line would (augmentation on the GPU)."""
    from smcv.engine.prefetch import prefetched
    from smcv.tasks.classification import ClassificationTask

    torch.manual_seed(0)
    task, cuda = ClassificationTask(), torch.device("cuda")
    write_class_folders(tmp_path / "train", 8, mode="RGB")
    hp = task.schema().resolve({**TINY_CLASSIFICATION, "image_shape": "3,16,16", "resize": "20",
                                "augmentation_type": "crop_color_transform", "augmentation_device": "gpu"})
    data = task.prepare_data(hp, {"train": tmp_path / "train"}, {})
    batches = [data.collate_fn([data.train[i] for i in range(k, k + 4)]) for k in (0, 4)]
    batches = [(images.pin_memory(), targets.pin_memory()) for images, targets in batches]
    staged = list(prefetched(batches, task.stage_batch, cuda))
    for batch, ahead in zip(batches, staged):
        inline = task.stage_batch(batch, cuda).inputs
        assert ahead.inputs[0].is_cuda and torch.equal(ahead.inputs[0], inline[0])
        assert torch.equal(ahead.inputs[1], inline[1])


def test_nvjpeg_training_batches_match_the_workers_pillow_path(tmp_path):
    """JPEG rows decoded by nvJPEG and resized on the GPU give the pixels the workers' Pillow path gives (nvJPEG's
    IDCT rounds a little differently: compared on average)."""
    from smcv.classification.device_augment import CropBatch, augment_batch, device_collate
    from smcv.classification.samples import FileItem
    from tests.unit.classification.test_classification_device_decode import dataset, jpeg_file

    items = [FileItem(jpeg_file(tmp_path / f"{n}.jpg", w, h, seed=n), (n % 2,))
             for n, (w, h) in enumerate([(640, 480), (480, 640), (300, 300)])]
    collate = device_collate((3, 224, 224), "crop_color", 256)
    torch.manual_seed(0)
    kept, _ = collate([dataset(items, "RGB", True, 256, (3, 224, 224))[i] for i in range(3)])
    decoded, _ = collate([dataset(items, "RGB", False, 256, (3, 224, 224))[i] for i in range(3)])
    shared = CropBatch(kept.images, kept.sizes, decoded.plan, kept.crop, kept.colour, kept.affine, kept.pending)
    on_gpu = augment_batch(shared.pin_memory(), torch.device("cuda")).cpu()
    assert (on_gpu - augment_batch(decoded, torch.device("cpu"))).abs().mean() < 1.5


def test_nvjpeg_detection_batches_match_the_workers_pillow_path(tmp_path, monkeypatch):
    """SSD training rows decoded by nvJPEG give the Pillow path's boxes exactly and its pixels on average."""
    from smcv.detection.device_augment import augment_on_device
    from tests.unit.detection.test_detection_device_decode import batches, prepared

    data = prepared(tmp_path, monkeypatch)
    found = []
    for keep in (True, False):
        batch = batches(data, keep).pin_memory()
        torch.manual_seed(1)
        found.append(augment_on_device(batch, torch.device("cuda")))
    (x_kept, t_kept), (x_decoded, t_decoded) = found
    assert (x_kept - x_decoded).abs().mean() < 1.5 / 255
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(t_kept, t_decoded))
