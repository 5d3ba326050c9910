"""`smcv convert-detection`: manifests, VOC and JSON to .rec/.idx/.lst with im2rec's packed labels, read back."""

from __future__ import annotations

import numpy as np
from tests.helpers.detdata import TINY_HP, boxes_of, json_channels, manifest_channel, scene, voc_channel

from smcv.cli import main as cli_main
from smcv.data.lst import read_lst
from smcv.data.recordio import IndexedRecordReader, unpack
from smcv.detection.labels import parse_packed_label
from smcv.tasks.detection import DetectionTask


def labels_in(rec):
    reader = IndexedRecordReader(rec, rec.with_suffix(".idx"))
    return [unpack(reader.read_at(i))[0] for i in range(len(reader))]


def test_manifest_round_trip_shares_class_ids(tmp_path, capsys):
    train, val = manifest_channel(tmp_path, "train", range(5)), manifest_channel(tmp_path, "val", range(5, 8))
    out = tmp_path / "out"
    code = cli_main(["convert-detection", "--input", str(train / "output.manifest"), "--output", str(out / "train"),
                     "--input", str(val / "output.manifest"), "--output", str(out / "validation")])
    assert code == 0
    assert "train.rec: 4 images, 6 boxes; 1 images without boxes skipped" in capsys.readouterr().out
    headers = labels_in(out / "train.rec")
    kept = [i for i in range(5) if scene(i)]
    for header, i in zip(headers, kept):
        objects = parse_packed_label(header.label, "x")
        assert header.label[:2].tolist() == [2, 5] and objects.labels.tolist() == [c for c, *_ in scene(i)]
        np.testing.assert_allclose(objects.boxes, boxes_of(i), atol=1e-6)
    assert (out / "train.classes.txt").read_text() == "red\ngreen\n"
    entries = read_lst(out / "validation.lst")
    assert [e.path for e in entries] == ["img5.png", "img6.png", "img7.png"]
    assert entries[0].labels[:2] == (2.0, 5.0) and len(entries[0].labels) == 2 + 5 * len(scene(5))
    # the converted files train as the built-in's RecordIO channels, with the class names from classes.txt
    channels = {}
    for split in ("train", "validation"):
        channels[split] = tmp_path / "channels" / split
        channels[split].mkdir(parents=True)
        for suffix in (".rec", ".idx", ".classes.txt"):
            (channels[split] / (split + suffix)).write_bytes((out / (split + suffix)).read_bytes())
    task = DetectionTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, "num_training_samples": "4"})
    data = task.prepare_data(hp, channels, {})
    assert data.class_names == ["red", "green"] and len(data.train) == 4 and len(data.validation) == 3
    image, target = data.validation[0]
    np.testing.assert_allclose(target["boxes"].numpy() / 300, boxes_of(5), atol=2e-3)


def test_voc_and_json_inputs_with_options(tmp_path):
    voc = voc_channel(tmp_path, "voc", range(5))  # image 4 has no objects
    code = cli_main(["convert-detection", "--input", str(voc), "--output", str(tmp_path / "voc_out"),
                     "--classes", "red,green", "--resize", "32", "--keep-empty", "--encoding", ".png"])
    assert code == 0
    headers = labels_in(tmp_path / "voc_out.rec")
    assert len(headers) == 5 and headers[4].label.tolist() == [2, 5, -1, -1, -1, -1, -1]  # --keep-empty padding
    objects = parse_packed_label(headers[1].label, "x")
    np.testing.assert_allclose(objects.boxes, boxes_of(1), atol=1e-6)
    channels = json_channels(tmp_path, "imgs", range(2))
    code = cli_main(["convert-detection", "--format", "json", "--input", str(channels["imgs_annotation"]),
                     "--images", str(channels["imgs"]), "--output", str(tmp_path / "json_out"), "--pass-through"])
    assert code == 0
    reader = IndexedRecordReader(tmp_path / "json_out.rec", tmp_path / "json_out.idx")
    assert unpack(reader.read_at(0))[1] == (channels["imgs"] / "img0.jpg").read_bytes()


def test_user_errors_print_one_line(tmp_path, capsys):
    code = cli_main(["convert-detection", "--input", str(tmp_path / "missing.manifest"), "--output", str(tmp_path / "x")])
    assert code == 2 and "convert-detection:" in capsys.readouterr().out
    code = cli_main(["convert-detection", "--input", "a", "--input", "b", "--output", "x"])
    assert code == 2
