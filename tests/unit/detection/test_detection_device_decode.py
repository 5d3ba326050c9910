"""Detection training JPEGs decoded on the training device (nvJPEG on a GPU; torchvision's CPU decoder here) give the
batch the workers' Pillow path gives: same boxes, same pixels up to rounding."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from smcv.data.jpeg import EncodedJpeg
from smcv.detection.datasets import DeviceCollate
from smcv.detection.device_augment import RawBatch, augment_on_device
from smcv.tasks.detection import DetectionTask
from tests.helpers.detdata import TINY_HP, json_channels

CPU = torch.device("cpu")


def prepared(tmp_path, monkeypatch, size: int = 64):
    """The detection task's training data with augmentation on a (pretended) GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    channels = json_channels(tmp_path, "train", range(4), size=size)
    task = DetectionTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, "num_training_samples": "4",
                                "augmentation": "ssd", "augmentation_device": "auto"})
    return task.prepare_data(hp, channels, {})


def batches(data, keep_jpeg: bool, seed: int = 0) -> RawBatch:
    data.train.keep_jpeg = keep_jpeg
    torch.manual_seed(seed)  # the plan is drawn from the sizes and boxes alone: the same seed draws the same plan
    return data.collate_fn([data.train[i] for i in range(4)])


def test_a_gpu_job_keeps_jpegs_encoded_and_says_so(tmp_path, monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="smcv.detection.prepare"):
        data = prepared(tmp_path, monkeypatch)
    assert data.train.keep_jpeg and isinstance(data.train[0][0], EncodedJpeg)
    assert any("nvJPEG" in r.getMessage() for r in caplog.records)


def test_device_decoded_jpegs_give_the_workers_batch(tmp_path, monkeypatch):
    data = prepared(tmp_path, monkeypatch)
    kept, decoded = batches(data, True), batches(data, False)
    assert len(kept.pending) == 4 and kept.images.shape[0] == 0 and decoded.images.shape[0] == 4
    assert torch.equal(kept.decoded, decoded.decoded) and torch.equal(kept.boxes, decoded.boxes)
    torch.manual_seed(1)
    x_kept, t_kept = augment_on_device(kept, CPU)
    torch.manual_seed(1)
    x_decoded, t_decoded = augment_on_device(decoded, CPU)
    assert x_kept.shape == x_decoded.shape and (x_kept - x_decoded).abs().max() <= 2 / 255
    for a, b in zip(t_kept, t_decoded):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])


def test_large_jpegs_are_shrunk_on_the_device_as_the_workers_would(tmp_path, monkeypatch):
    """Over decode_cap a side (1000 pixels for a 300-pixel output), the device shrinks the decoded JPEG as DecodeOnly
    does in the workers."""
    data = prepared(tmp_path, monkeypatch)
    path = data.train.samples[0].source
    y, x = np.mgrid[0:700, 0:1200]
    gradient = np.stack([x * 255 / 1200, y * 255 / 700, ((x // 40 + y // 40) % 2) * 200], axis=-1).astype("uint8")
    Image.fromarray(gradient, "RGB").save(path, format="JPEG", quality=90)
    collate, found = DeviceCollate(300, "ssd"), []
    for keep in (True, False):
        data.train.transform.cap = 1000  # DecodeOnly of a 300-pixel output
        data.train.keep_jpeg = keep
        torch.manual_seed(0)
        batch = collate([data.train[0]])
        assert batch.decoded.tolist() == [[700, 1000]]
        torch.manual_seed(1)
        found.append(augment_on_device(batch, CPU)[0])
    assert found[0].shape == (1, 3, 300, 300) and (found[0] - found[1]).abs().max() <= 2 / 255
