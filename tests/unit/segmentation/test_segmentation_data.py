"""Inputs: the built-in's four channels, label_map channel, Ground Truth manifests (File and Pipe mode), transforms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.helpers.segdata import TINY_HP, builtin_layout, ground_truth_manifest, jpeg_bytes, pair, png_bytes

from smcv.channels import canonical_config, discover_channels
from smcv.contract import Paths
from smcv.data.recordio import RecordWriter
from smcv.errors import ConfigError, DataError
from smcv.segmentation import params
from smcv.segmentation.transforms import build_transform
from smcv.tasks.segmentation import SegmentationTask


def prepare(channels, config=None, **hp):
    task = SegmentationTask()
    resolved = task.schema().resolve({**TINY_HP, **{k: str(v) for k, v in hp.items()}})
    return task.prepare_data(resolved, channels, config or {})


def test_builtin_layout_with_0_255_masks(tmp_path):
    data = prepare(builtin_layout(tmp_path))
    assert len(data.train) == 6 and len(data.validation) == 3 and data.info["binary_mask_255"] is True
    images, masks = data.collate_fn([data.train[0], data.train[1]])
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.uint8
    assert masks.shape == (2, 32, 32) and set(masks.unique().tolist()) <= {0, 1, 255}
    assert data.class_names == ["0", "1"]


def test_255_as_ignore_when_told(tmp_path):
    data = prepare(builtin_layout(tmp_path), binary_mask_255="false")
    _, mask, original = data.validation[0]
    assert set(mask.unique().tolist()) == {0, 255} and set(original.mask.unique().tolist()) == {0, 255}


def test_class_id_masks_and_subfolders(tmp_path):
    channels = builtin_layout(tmp_path, fg=2)
    (channels["train"] / "sub").mkdir()
    (channels["train_annotation"] / "sub").mkdir()
    image, mask = pair(50, fg=1)
    (channels["train"] / "sub" / "img0.jpg").write_bytes(jpeg_bytes(image))
    (channels["train_annotation"] / "sub" / "img0.png").write_bytes(png_bytes(mask))
    data = prepare(channels, num_classes=3)
    assert len(data.train) == 7 and data.info["binary_mask_255"] is False


def test_missing_mask_is_named(tmp_path):
    channels = builtin_layout(tmp_path)
    (channels["train_annotation"] / "img4.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) in the train channel have no mask .* img4\.jpg"):
        prepare(channels)


def test_size_mismatch_is_named(tmp_path):
    channels = builtin_layout(tmp_path)
    (channels["validation_annotation"] / "img1.png").write_bytes(png_bytes(np.zeros((10, 10), np.uint8)))
    with pytest.raises(DataError, match=r"img1\.png: the mask is 10x10 \(WxH\) but its image .*img1\.jpg is 48x40"):
        prepare(channels, binary_mask_255="true")


def test_unknown_value_found_at_startup(tmp_path):
    channels = builtin_layout(tmp_path, fg=1)
    (channels["train_annotation"] / "img0.png").write_bytes(png_bytes(np.full((40, 48), 9, np.uint8)))
    with pytest.raises(DataError, match=r"img0\.png: mask values 9 are not class ids for num_classes=2"):
        prepare(channels)


def test_label_map_channel_scale(tmp_path):
    channels = builtin_layout(tmp_path, fg=3)
    label_map = tmp_path / "label_map"
    label_map.mkdir()
    (label_map / "train_label_map.json").write_text(json.dumps({"scale": "3"}))
    channels["label_map"] = label_map
    data = prepare(channels)
    # validation falls back to train's map; 3 // 3 = class 1
    assert set(data.validation[0][1].unique().tolist()) <= {0, 1}
    assert data.info["validation"]["label_map"] == "label map scale 3"


def test_label_map_channel_map(tmp_path):
    channels = builtin_layout(tmp_path, fg=7)
    label_map = tmp_path / "label_map"
    label_map.mkdir()
    for split in ("train", "validation"):
        (label_map / f"{split}_label_map.json").write_text(json.dumps({"map": {"0": 0, "1": 7}}))
    channels["label_map"] = label_map
    data = prepare(channels)
    assert set(data.train.load(0)[1].unique().tolist()) == {0, 1}


def test_missing_annotation_and_manifest(tmp_path):
    channels = builtin_layout(tmp_path)
    del channels["train_annotation"]
    with pytest.raises(DataError, match="no 'train_annotation' channel beside it and no augmented manifest"):
        prepare(channels)


def test_ground_truth_manifest_file_mode_with_colour_map(tmp_path):
    train = tmp_path / "train"
    ground_truth_manifest(train, 4)
    data = prepare({"train": train})
    assert data.class_names == ["BACKGROUND", "lesion"] and data.info["train"]["format"] == "manifest"
    image, mask = data.train.load(0)
    assert set(mask.unique().tolist()) == {0, 1} and image.shape[-2:] == mask.shape
    assert data.validation is None


def test_manifest_with_several_mask_attributes(tmp_path):
    train = tmp_path / "train"
    path = ground_truth_manifest(train, 2)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        line["other-ref"] = line["lesion-ref"]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    with pytest.raises(DataError, match="several mask attributes lesion-ref, other-ref; choose one with the mask_attribute"):
        prepare({"train": train})
    assert len(prepare({"train": train}, mask_attribute="lesion-ref").train) == 2


def test_manifest_missing_file(tmp_path):
    train = tmp_path / "train"
    ground_truth_manifest(train, 2)
    (train / "images" / "x1.jpg").unlink()
    with pytest.raises(DataError, match="cannot find s3://bucket/data/images/x1.jpg locally"):
        prepare({"train": train})


def test_manifest_errors_name_the_real_line_after_blank_lines(tmp_path):
    train = tmp_path / "train"
    path = ground_truth_manifest(train, 2)
    first, second = path.read_text().splitlines()
    path.write_text(f"{first}\n\n\n{second.replace('source-ref', 'image-ref')}\n")  # the bad line is line 4
    with pytest.raises(DataError, match=r"train\.manifest, line 4: no 'source-ref'"):
        prepare({"train": train})


def _pipe(opt_ml, channel, records):
    fifo = opt_ml.base / "input" / "data" / f"{channel}_0"  # a plain file stands in for the FIFO
    with RecordWriter(fifo) as writer:
        for payload in records:
            writer.write(payload)


def test_pipe_mode_augmented_manifest_records(opt_ml):
    records = []
    for i in range(3):
        image, mask = pair(i)
        records += [jpeg_bytes(image), png_bytes(mask)]
    _pipe(opt_ml, "train", records)
    config = {"train": {"TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO"}}
    data = prepare({"train": opt_ml.base / "input" / "data" / "train"}, config)
    assert len(data.train) == 3 and data.info["train"]["format"] == "pipe" and data.info["binary_mask_255"] is True
    image, mask = data.train[2]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32)


def test_pipe_mode_with_aliased_channel_names(opt_ml):
    """'training'/'val' in Pipe mode: channel discovery maps them to train/validation and the FIFOs read are
    training_0 and val_0, the names SageMaker gives them."""
    for channel, count in (("training", 3), ("val", 2)):
        records = []
        for i in range(count):
            image, mask = pair(i)
            records += [jpeg_bytes(image), png_bytes(mask)]
        _pipe(opt_ml, channel, records)
    raw_config = {"training": {"TrainingInputMode": "Pipe"}, "val": {"TrainingInputMode": "Pipe"}}
    channels = discover_channels(Paths(opt_ml.base), raw_config)
    data = prepare(channels, canonical_config(raw_config))
    assert len(data.train) == 3 and len(data.validation) == 2


def test_pipe_mode_colour_masks_through_label_map_channel(opt_ml):
    records = []
    for i in range(2):
        image, mask = pair(i)
        rgb = np.where(mask[..., None] > 0, np.array([255, 0, 0], np.uint8), np.uint8(0)).astype(np.uint8)
        records += [jpeg_bytes(image), png_bytes(rgb)]
    _pipe(opt_ml, "train", records)
    label_map = opt_ml.channel("label_map")
    (label_map / "train_label_map.json").write_text(json.dumps({"color_map": {"#000000": 0, "#ff0000": 1}}))
    config = {"train": {"TrainingInputMode": "Pipe"}}
    data = prepare({"train": opt_ml.base / "input" / "data" / "train", "label_map": label_map}, config)
    assert set(data.train.load(1)[1].unique().tolist()) == {0, 1}


def test_pipe_mode_odd_record_count(opt_ml):
    image, mask = pair(0)
    _pipe(opt_ml, "train", [jpeg_bytes(image), png_bytes(mask), jpeg_bytes(image)])
    with pytest.raises(DataError, match="delivered 3 records; a segmentation augmented manifest gives two per image"):
        prepare({"train": opt_ml.base / "input" / "data" / "train"}, {"train": {"TrainingInputMode": "Pipe"}})


def test_binary_255_true_with_colour_map_rejected(tmp_path):
    train = tmp_path / "train"
    ground_truth_manifest(train, 2)
    with pytest.raises(ConfigError, match="binary_mask_255=true cannot be combined with a colour map"):
        prepare({"train": train}, binary_mask_255="true")


def _resolve(**raw):
    return SegmentationTask().schema().resolve({"num_classes": "3", **{k: str(v) for k, v in raw.items()}})


def _pair_tensors(height=40, width=60):
    from torchvision import tv_tensors

    image = tv_tensors.Image(torch.randint(0, 255, (3, height, width), dtype=torch.uint8))
    mask = tv_tensors.Mask(torch.randint(0, 3, (height, width), dtype=torch.uint8))
    return image, mask


def test_train_transform_moves_mask_with_image_nearest_and_fills_255():
    torch.manual_seed(0)
    geo = params.geometry(_resolve(base_size=40, crop_size=64))
    transform = build_transform(geo, training=True)
    image = torch.zeros(3, 40, 60, dtype=torch.uint8)
    image[:, :, :30] = 200  # left half bright, mask class 1 there
    mask = torch.zeros(40, 60, dtype=torch.uint8)
    mask[:, :30] = 1
    from torchvision import tv_tensors

    for _ in range(5):
        out_image, out_mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
        assert out_image.shape == (3, 64, 64) and out_mask.shape == (64, 64)
        assert set(out_mask.unique().tolist()) <= {0, 1, 255}  # nearest: no blended labels
        assert (out_mask == 255).any()  # the crop is larger than the scaled image: padded with ignore
        bright = out_image[0] > 100
        labelled = out_mask != 255
        agree = ((out_mask == 1) == bright)[labelled].float().mean()
        assert agree > 0.9  # the mask moved with the image (flip, scale, crop)


def test_validation_letterbox_pads_right_and_bottom_with_ignore():
    geo = params.geometry(_resolve(base_size=64))
    image, mask = _pair_tensors(40, 60)
    out_image, out_mask = build_transform(geo, training=False)(image, mask)
    assert out_image.shape == (3, 64, 64)
    assert (out_mask[43:, :] == 255).all() and (out_mask[:42, :] != 255).all()
    assert (out_image[:, 43:, :] == 0).all()


def test_image_size_mode_resizes_to_square():
    geo = params.geometry(_resolve(image_size=32))
    image, mask = _pair_tensors(40, 60)
    for training in (True, False):
        out_image, out_mask = build_transform(geo, training=training)(image, mask)
        assert out_image.shape == (3, 32, 32) and out_mask.shape == (32, 32)
        assert set(out_mask.unique().tolist()) <= {0, 1, 2}
