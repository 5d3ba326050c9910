"""JPEG training images decoded on the training device (nvJPEG on a GPU; torchvision's CPU decoder here) agree with
the DataLoader workers' Pillow path, keep their rows, and name a broken file."""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from smcv.classification.datasets import ClassificationDataset
from smcv.classification.device_augment import CropBatch, augment_batch, device_collate
from smcv.classification.samples import FileItem
from smcv.classification.transforms import uncropped_geometry, uncropped_transform
from smcv.contract import ENV_CACHE_LIMIT_MB
from smcv.data.jpeg import EncodedJpeg
from smcv.data.recordio import IRHeader, RecordWriter, pack
from smcv.errors import DataError
from smcv.tasks.classification import ClassificationTask
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

CPU = torch.device("cpu")


def photo(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A smooth gradient with noise: JPEG-friendly content with structure to resize."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    array = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype("uint8")
    image = Image.fromarray(array, "RGB")
    return image.convert("L") if mode == "L" else image


def jpeg_file(path, width: int, height: int, mode: str = "RGB", seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    photo(width, height, mode, seed).save(path, format="JPEG", quality=90)
    return path


def dataset(items, mode: str, keep_jpeg: bool, resize=None, shape=(3, 24, 24)) -> ClassificationDataset:
    ds = ClassificationDataset(items, [], mode, 2, False, uncropped_transform(shape, resize))
    ds.keep_jpeg = keep_jpeg
    return ds


def both_paths(ds_keep: ClassificationDataset, ds_pillow: ClassificationDataset, collate) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented batch from device-decoded JPEGs and from Pillow-decoded ones, with one shared plan."""
    kept, _ = collate([ds_keep[i] for i in range(len(ds_keep))])
    decoded, _ = collate([ds_pillow[i] for i in range(len(ds_pillow))])
    assert torch.equal(kept.sizes, decoded.sizes)  # the header's geometry is the workers' resize
    shared = CropBatch(kept.images, kept.sizes, decoded.plan, kept.crop, kept.colour, kept.affine, kept.pending)
    return augment_batch(shared, CPU), augment_batch(decoded, CPU)


@pytest.mark.parametrize("resize", [None, 30, 20])  # no resize; shorter side to 30; to 20, then upscaled to the crop
def test_device_decoded_jpegs_train_as_the_workers_pillow_path(tmp_path, resize):
    sizes = [(40, 32), (27, 51), (64, 64), (24, 24)]
    items = [FileItem(jpeg_file(tmp_path / f"{n}.jpg", w, h, seed=n), (n % 2,)) for n, (w, h) in enumerate(sizes)]
    ds_keep, ds_pillow = dataset(items, "RGB", True, resize), dataset(items, "RGB", False, resize)
    assert all(isinstance(ds_keep[i][0], EncodedJpeg) for i in range(len(items)))
    collate = device_collate((3, 24, 24), "crop_color_transform", resize)
    torch.manual_seed(0)
    on_device, in_workers = both_paths(ds_keep, ds_pillow, collate)
    assert on_device.shape == in_workers.shape == (4, 3, 24, 24)
    difference = (on_device - in_workers).abs()
    assert difference.max() <= 2 and difference.mean() < 0.1  # the same libjpeg decode and resize, up to rounding


def test_grey_jpegs_and_png_rows_keep_their_places(tmp_path):
    """A grey job: grey JPEGs stay encoded, a PNG is decoded by the workers, each lands in its own row."""
    items = [FileItem(jpeg_file(tmp_path / "0.jpg", 30, 26, "L", seed=1), (0,)),
             FileItem(tmp_path / "1.png", (1,)),
             FileItem(jpeg_file(tmp_path / "2.jpg", 26, 34, "L", seed=2), (0,))]
    photo(28, 28, "L", seed=3).save(tmp_path / "1.png")
    ds_keep, ds_pillow = dataset(items, "L", True, shape=(1, 24, 24)), dataset(items, "L", False, shape=(1, 24, 24))
    assert [type(ds_keep[i][0]).__name__ for i in range(3)] == ["EncodedJpeg", "Uncropped", "EncodedJpeg"]
    collate = device_collate((1, 24, 24), "crop", None)
    batch, targets = collate([ds_keep[i] for i in range(3)])
    assert [p.row for p in batch.pending] == [0, 2] and batch.images.shape[0] == 1 and targets.tolist() == [0, 1, 0]
    on_device, in_workers = both_paths(ds_keep, ds_pillow, collate)
    assert on_device.shape == (3, 1, 24, 24) and (on_device - in_workers).abs().max() <= 2


def test_colour_jpegs_in_a_grey_job_and_rotated_jpegs_are_decoded_by_pillow(tmp_path):
    """The device decoder only gets JPEGs stored in the job's mode and needing no EXIF rotation."""
    colour = FileItem(jpeg_file(tmp_path / "c.jpg", 30, 30, "RGB"), (0,))
    rotated_path = tmp_path / "r.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    photo(40, 30).save(rotated_path, format="JPEG", exif=exif.tobytes())
    assert not isinstance(dataset([colour], "L", True)[0][0], EncodedJpeg)
    image = dataset([FileItem(rotated_path, (0,))], "RGB", True)[0][0]
    assert not isinstance(image, EncodedJpeg) and tuple(image["image"].shape[-2:]) == (40, 30)  # rotated by Pillow


def test_a_broken_jpeg_fails_naming_its_file(tmp_path):
    """A scrambled Huffman table: the header passes, both decoders refuse the image; the error names the file."""
    good = jpeg_file(tmp_path / "good.jpg", 96, 96)
    data = bytearray(good.read_bytes())
    table = data.index(b"\xff\xc4")  # DHT marker, then its 2-byte length
    length = int.from_bytes(data[table + 2:table + 4], "big")
    data[table + 5:table + 2 + length] = b"\xff" * (length - 3)
    (tmp_path / "broken.jpg").write_bytes(bytes(data))
    ds = dataset([FileItem(good, (0,)), FileItem(tmp_path / "broken.jpg", (1,))], "RGB", True)
    assert isinstance(ds[1][0], EncodedJpeg)  # the workers only read its header
    batch, _ = device_collate((3, 24, 24), "crop", None)([ds[0], ds[1]])
    with pytest.raises(DataError, match=r"broken\.jpg.*replace or remove this file"):
        augment_batch(batch, CPU)


def test_recordio_jpeg_records_take_the_same_path(tmp_path):
    with RecordWriter(tmp_path / "train.rec", tmp_path / "train.idx") as writer:
        for n, (w, h) in enumerate([(30, 26), (26, 30)]):
            buffer = io.BytesIO()
            photo(w, h, seed=n).save(buffer, format="JPEG", quality=90)
            writer.write(pack(IRHeader(0, float(n), n, 0), buffer.getvalue()), key=n)
    ds = ClassificationDataset([], [tmp_path / "train.rec"], "RGB", 2, False, uncropped_transform((3, 24, 24), None))
    ds.keep_jpeg = True
    first = ds[0][0]
    assert isinstance(first, EncodedJpeg) and (first.height, first.width) == (26, 30)
    assert first.source == "train.rec record 0"
    batch, targets = device_collate((3, 24, 24), "crop", None)([ds[0], ds[1]])
    assert augment_batch(batch, CPU).shape == (2, 3, 24, 24) and targets.tolist() == [0, 1]


def test_uncropped_geometry_is_the_workers_transform(tmp_path):
    for (h, w), resize in [((40, 32), None), ((27, 51), 30), ((90, 30), 20), ((10, 50), None)]:
        size, _ = uncropped_geometry((3, 24, 24), resize, h, w)
        assert size == tuple(uncropped_transform((3, 24, 24), resize)(torch.zeros(3, h, w, dtype=torch.uint8))["image"]
                             .shape[-2:])


def test_a_gpu_job_keeps_jpegs_encoded_whatever_their_size(tmp_path, monkeypatch, caplog):
    """With CUDA present and no decode-once cache, auto keeps large JPEGs encoded for the device (bytes move, not
    pixels); the PNG path still crops far larger images in the workers; augmentation_device=cpu never keeps them."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(ENV_CACHE_LIMIT_MB, "0")
    task = ClassificationTask()
    write_class_folders(tmp_path / "jpeg", 2, size=64, mode="RGB", suffix=".jpg")
    write_class_folders(tmp_path / "png", 2, size=64, mode="RGB")

    def prepared(folder: str, **extra):
        hp = task.schema().resolve({**TINY_CLASSIFICATION, "num_training_samples": 4, "augmentation_type": "crop",
                                    "image_shape": "3,16,16", **extra})
        return task.prepare_data(hp, {"train": tmp_path / folder}, {})

    with caplog.at_level(logging.INFO, logger="smcv.tasks.classification"):
        jpeg = prepared("jpeg")  # 64x64 is 16x the crop: the decoded path would crop in the workers
    assert jpeg.collate_fn is not None and isinstance(jpeg.train[0][0], EncodedJpeg)
    assert any("nvJPEG" in r.getMessage() for r in caplog.records)
    png = prepared("png")
    assert png.collate_fn is None and not png.train.keep_jpeg
    cpu = prepared("jpeg", augmentation_device="cpu")
    assert cpu.collate_fn is None and not cpu.train.keep_jpeg and cpu.train[0][0].shape == (3, 16, 16)
    monkeypatch.setenv(ENV_CACHE_LIMIT_MB, "64")  # small enough to decode once: cached pixels, nothing kept encoded
    cached = prepared("jpeg")
    assert cached.train.cache is not None and not cached.train.keep_jpeg


def test_smcv_jpeg_decode_chooses_where_training_jpegs_are_decoded(tmp_path, monkeypatch):
    """pil keeps the workers' decode on a GPU; device keeps JPEGs encoded even without one; a typo is a ConfigError
    naming the choices."""
    from smcv.errors import ConfigError

    monkeypatch.setenv(ENV_CACHE_LIMIT_MB, "0")
    task = ClassificationTask()
    write_class_folders(tmp_path / "jpeg", 2, size=32, mode="RGB", suffix=".jpg")

    def kept(setting: str, cuda: bool) -> bool:
        monkeypatch.setenv("SMCV_JPEG_DECODE", setting)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        hp = task.schema().resolve({**TINY_CLASSIFICATION, "num_training_samples": 4, "augmentation_type": "crop",
                                    "image_shape": "3,16,16", "augmentation_device": "gpu"})
        return task.prepare_data(hp, {"train": tmp_path / "jpeg"}, {}).train.keep_jpeg

    assert kept("auto", True) and not kept("auto", False)
    assert not kept("pil", True) and kept("device", False)
    with pytest.raises(ConfigError, match="SMCV_JPEG_DECODE='nvjpeg' is not one of auto, device, pil"):
        kept("nvjpeg", True)
