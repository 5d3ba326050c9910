"""Ground Truth augmented manifests for classification: File and Pipe mode, label formats, class names, errors."""

from __future__ import annotations

import json

import pytest
import torch

from smcv.channels import canonical_config, discover_channels
from smcv.classification.manifest import LabelRules, label_format_of, parse_label
from smcv.classification.sources import detect_format
from smcv.contract import Paths
from smcv.errors import ConfigError, DataError
from smcv.tasks.classification import ClassificationTask
from tests.helpers.classdata import TINY_CLASSIFICATION, write_image, write_manifest, write_pipe_manifest

CLASS_ID = {"ContentType": "application/x-recordio; label-format=class-id", "TrainingInputMode": "File"}
PIPE = {"ContentType": "application/x-recordio", "TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO",
        "AttributeNames": ["source-ref", "class"]}


def prepare(channels, config=None, **overrides):
    task = ClassificationTask()
    hp = task.schema().resolve({k: str(v) for k, v in {**TINY_CLASSIFICATION, **overrides}.items()})
    return task.prepare_data(hp, channels, config or {})


def multi_label_manifest(channel, labels, key="class"):
    """Images and a manifest whose lines carry the given label values (image-ref, as in the AWS docs)."""
    lines = []
    for i, label in enumerate(labels):
        write_image(channel / "sample" / f"image{i}.jpg", 100, seed=i)
        lines.append(json.dumps({"image-ref": f"s3://mybucket/sample/image{i}.jpg", key: label}))
    (channel / "train.manifest").write_text("\n".join(lines) + "\n")
    return {"train": channel}


def test_single_label_manifest_with_class_names(tmp_path):
    write_manifest(tmp_path / "train", 3)
    write_manifest(tmp_path / "validation", 1, name="validation.jsonl")
    data = prepare({"train": tmp_path / "train", "validation": tmp_path / "validation"})
    assert data.info["train_format"] == "manifest" and len(data.train) == 6 and len(data.validation) == 2
    assert data.class_names == ["cat", "dog"]
    assert [int(t) for t in data.train.targets()] == [0, 0, 0, 1, 1, 1]


def test_multi_hot_and_class_id_give_the_same_targets(tmp_path):
    hot = prepare(multi_label_manifest(tmp_path / "hot", [[1, 0, 1], [0, 0, 1], "[0, 1, 0]"]),
                  multi_label=1, num_classes=3, num_training_samples=3)
    ids = prepare(multi_label_manifest(tmp_path / "ids", [[0, 2], [2], "[1]"]), {"train": CLASS_ID},
                  multi_label=1, num_classes=3, num_training_samples=3)
    expected = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    torch.testing.assert_close(torch.stack(hot.train.targets()), expected)
    torch.testing.assert_close(torch.stack(ids.train.targets()), expected)


def test_class_ids_without_label_format_are_read_as_multi_hot_as_the_builtin_does(tmp_path):
    """[0, 1] with 2 classes: multi-hot by default (class 1 only); label-format=class-id makes it classes 0 and 1."""
    channels = multi_label_manifest(tmp_path / "train", [[0, 1]])
    default = prepare(channels, multi_label=1, num_training_samples=1)
    class_id = prepare(channels, {"train": CLASS_ID}, multi_label=1, num_training_samples=1)
    assert default.train.targets()[0].tolist() == [0.0, 1.0]
    assert class_id.train.targets()[0].tolist() == [1.0, 1.0]


def test_a_list_that_cannot_be_multi_hot_names_the_line_and_label_format(tmp_path):
    channels = multi_label_manifest(tmp_path / "train", [[1, 0, 1], [0, 2]])
    with pytest.raises(DataError, match=r"train\.manifest, line 2: label \[0, 2\] has 2 values.*num_classes=3.*"
                                        r"label-format=class-id"):
        prepare(channels, multi_label=1, num_classes=3)
    channels = multi_label_manifest(tmp_path / "other", [[0, 2, 1]])
    with pytest.raises(DataError, match=r"line 1: multi-hot label \[0, 2, 1\] holds values other than 0 and 1"):
        prepare(channels, multi_label=1, num_classes=3)


def test_label_out_of_range_names_the_line(tmp_path):
    channel = tmp_path / "train"
    manifest = write_manifest(channel, 2, metadata=False)
    lines = manifest.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "class": "5"})
    manifest.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")  # a blank line: real line numbers
    with pytest.raises(DataError, match=r"train\.manifest, line 4: label 5 is not a class id in 0\.\.1"):
        prepare({"train": channel})
    with pytest.raises(DataError, match=r"line 1: label \[0, 1\] holds 2 values.*set multi_label=1"):
        prepare(multi_label_manifest(tmp_path / "single", [[0, 1]]))


def test_missing_image_names_the_line(tmp_path):
    channel = tmp_path / "train"
    write_manifest(channel, 2)
    (channel / "images" / "dog1.png").unlink()
    with pytest.raises(DataError, match=r"train\.manifest, line 4: cannot find s3://bucket/job/images/dog1\.png locally"):
        prepare({"train": channel})


def test_ground_truth_job_attribute_and_attribute_names(tmp_path):
    """A labelling job's own attribute name is found from its metadata type; attribute_names picks one explicitly."""
    channel = tmp_path / "train"
    write_image(channel / "a.png", 50)
    meta = {"class-name": "bird", "type": "groundtruth/image-classification"}
    line = {"source-ref": "s3://b/a.png", "my-job": 1, "my-job-metadata": meta, "other": 0}
    (channel / "x.manifest").write_text(json.dumps(line) + "\n")
    data = prepare({"train": channel}, num_training_samples=1)
    assert data.class_names == ["0", "bird"] and data.train.targets()[0].item() == 1
    data = prepare({"train": channel}, num_training_samples=1, attribute_names='["source-ref", "other"]')
    assert data.train.targets()[0].item() == 0
    with pytest.raises(DataError, match=r"x\.manifest, line 1: no label attribute 'nope'.*attribute_names"):
        prepare({"train": channel}, attribute_names="source-ref,nope")
    failed = {"source-ref": "s3://b/a.png", "my-job-metadata": {"failure-reason": "ClientError: timed out"}}
    (channel / "x.manifest").write_text(json.dumps(failed) + "\n")
    with pytest.raises(DataError, match=r"line 1: no label attribute .*labelling failed \(ClientError: timed out\)"):
        prepare({"train": channel}, num_training_samples=1)


def test_conflicting_class_names_are_an_error(tmp_path):
    channel = tmp_path / "train"
    write_manifest(channel, 1)
    lines = [json.loads(line) for line in (channel / "train.manifest").read_text().splitlines()]
    lines.append({**lines[0], "class-metadata": {"class-name": "kitten"}})
    (channel / "train.manifest").write_text("\n".join(map(json.dumps, lines)) + "\n")
    with pytest.raises(DataError, match=r"line 3: class 0 is named 'kitten' here but 'cat' before"):
        prepare({"train": channel})


def test_format_detection_and_the_layouts_error(tmp_path):
    channel = tmp_path / "train"
    write_manifest(channel, 1)
    assert detect_format("train", {"train": channel}) == "manifest"
    bare = tmp_path / "bare"
    write_image(bare / "lonely.png", 10)
    assert detect_format("train", {"train": bare}, {"AttributeNames": ["source-ref", "class"]}) == "manifest"
    with pytest.raises(DataError, match=r"no \.manifest/\.jsonl file.*Ground Truth augmented manifest"):
        detect_format("train", {"train": bare})


def test_label_format_from_content_type():
    assert label_format_of("application/x-recordio; label-format=class-id") == "class-id"
    assert label_format_of("application/x-recordio;label-format=\"multi-hot\"") == "multi-hot"
    assert label_format_of("application/x-recordio") is None and label_format_of(None) is None
    with pytest.raises(ConfigError, match="label-format 'ids' is not one of multi-hot, class-id"):
        label_format_of("application/x-recordio; label-format=ids")
    rules = LabelRules(3, True, "class-id")
    assert parse_label("[0, 2]", rules, "x") == parse_label([0, 2], rules, "x") == (1.0, 0.0, 1.0)
    with pytest.raises(DataError, match="x: label true is not a class id"):
        parse_label(True, LabelRules(3, False), "x")


def test_pipe_mode_single_label_with_metadata_attribute(opt_ml):
    data_dir = opt_ml.base / "input" / "data"
    meta = [{"class-name": name} for name in ("cat", "dog", "cat", "dog")]
    write_pipe_manifest(data_dir / "train_0", ["0", "1", "0", "1"], meta)
    config = {"train": {**PIPE, "AttributeNames": ["source-ref", "class", "class-metadata"]}}
    data = prepare({"train": data_dir / "train"}, config, num_training_samples=4)
    assert data.info["train_format"] == "manifest" and data.class_names == ["cat", "dog"]
    assert [int(t) for t in data.train.targets()] == [0, 1, 0, 1]
    image, _ = data.train[1]
    assert image.shape == (1, 16, 16)


def test_pipe_mode_multi_label_class_ids_through_aliased_channels(opt_ml):
    """'training'/'val': the FIFOs are training_0 and val_0; no AttributeNames: the first record, an image, tells."""
    data_dir = opt_ml.base / "input" / "data"
    write_pipe_manifest(data_dir / "training_0", [[0, 2], [1], [2]])
    write_pipe_manifest(data_dir / "val_0", [[1, 2]])
    pipe = {"ContentType": "application/x-recordio; label-format=class-id", "TrainingInputMode": "Pipe"}
    raw = {"training": pipe, "val": pipe}
    data = prepare(discover_channels(Paths(opt_ml.base), raw), canonical_config(raw), multi_label=1, num_classes=3,
                   num_training_samples=3)
    assert [t.tolist() for t in data.train.targets()] == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert data.validation.targets()[0].tolist() == [0, 1, 1]


def test_pipe_mode_errors(opt_ml):
    data_dir = opt_ml.base / "input" / "data"
    write_pipe_manifest(data_dir / "train_0", ["0", "7"])
    with pytest.raises(DataError, match=r"Pipe object 2 \(manifest line 2\): label 7 is not a class id"):
        prepare({"train": data_dir / "train"}, {"train": PIPE})
    with pytest.raises(DataError, match="delivered 4 Pipe records.*gives 3 per image"):
        prepare({"train": data_dir / "train"}, {"train": {**PIPE, "AttributeNames": ["source-ref", "class", "x"]}})
    write_pipe_manifest(data_dir / "train_0", ["0", "1", "0"])
    with pytest.raises(DataError, match="record 4 is an image/png image where the label should be"):
        prepare({"train": data_dir / "train"}, {"train": PIPE}, attribute_names='["source-ref", "class", "c-metadata"]',
                data_format="manifest")
