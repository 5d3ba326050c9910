"""smcv convert-classification: class folders -> .lst/.rec/.idx as MXNet's im2rec lists and packs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smcv.classification.convert import list_class_folders, split_entries
from smcv.cli import main
from smcv.data.lst import read_lst
from smcv.data.recordio import IndexedRecordReader, unpack
from smcv.errors import UserError
from tests.helpers.classdata import write_class_folders, write_image, write_manifest


def _folders(root: Path) -> None:
    write_class_folders(root, per_class=5, classes=("pneumonia", "normal", "effusion"), suffix=".png")
    (root / "normal" / "readme.txt").write_text("x")  # not an image extension: not listed


def test_folders_are_numbered_in_sorted_order(tmp_path):
    _folders(tmp_path)
    entries, classes = list_class_folders(tmp_path)
    assert classes == ["effusion", "normal", "pneumonia"]
    assert len(entries) == 15
    assert [e.index for e in entries] == list(range(15))
    assert {e.path.split("/")[0]: e.labels[0] for e in entries} == {"effusion": 0.0, "normal": 1.0, "pneumonia": 2.0}


def test_split_is_deterministic_and_partitions(tmp_path):
    _folders(tmp_path)
    entries, _ = list_class_folders(tmp_path)
    a = split_entries(entries, 0.6, 0.2, shuffle=True)
    b = split_entries(entries, 0.6, 0.2, shuffle=True)
    assert a == b
    assert [len(a[k]) for k in ("_train", "_val", "_test")] == [9, 3, 3]
    assert sorted(e.index for part in a.values() for e in part) == list(range(15))
    assert a["_train"] != entries[:9]  # shuffled
    assert split_entries(entries, 1.0, 0.0, shuffle=False) == {"": entries}


@pytest.mark.parametrize("train,test", [(0.0, 0.0), (0.8, 0.3), (1.2, 0.0), (0.5, -0.1)])
def test_bad_ratios_are_refused(train, test):
    with pytest.raises(UserError, match="--train-ratio"):
        split_entries([], train, test, shuffle=True)


def test_cli_writes_readable_record_files(tmp_path, capsys):
    _folders(tmp_path / "in")
    out = tmp_path / "out" / "xray"
    assert main(["convert-classification", "--root", str(tmp_path / "in"), "--output", str(out),
                 "--train-ratio", "0.8", "--resize", "12"]) == 0
    printed = capsys.readouterr().out
    assert "class 0: effusion" in printed and "xray_train.rec: 12 images" in printed
    assert (tmp_path / "out" / "xray.classes.txt").read_text() == "effusion\nnormal\npneumonia\n"
    for suffix, count in (("_train", 12), ("_val", 3)):
        lst = read_lst(f"{out}{suffix}.lst")
        assert len(lst) == count
        lines = Path(f"{out}{suffix}.lst").read_text().splitlines()
        assert all(re.fullmatch(r"\d+\t[012]\.000000\t\w+/\d+\.png", line) for line in lines)  # im2rec's %f
        reader = IndexedRecordReader(f"{out}{suffix}.rec", f"{out}{suffix}.idx")
        assert reader.keys == [e.index for e in lst]
        header, _ = unpack(reader.read_at(0), "test")
        assert header.label == lst[0].labels[0]


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["convert-classification", "--root", str(tmp_path / "empty"), "--output", str(tmp_path / "x")]) == 2
    assert "no images with extensions .jpeg .jpg .png under" in capsys.readouterr().out
    assert main(["convert-classification", "--root", str(tmp_path / "missing"), "--output", str(tmp_path / "x")]) == 2
    assert "is not a folder" in capsys.readouterr().out


def test_a_ground_truth_manifest_converts_with_its_class_names(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "gt", per_class=3, classes=("normal", "pneumonia"))
    out = tmp_path / "out" / "gt"
    assert main(["convert-classification", "--manifest", str(manifest), "--output", str(out), "--no-shuffle"]) == 0
    printed = capsys.readouterr().out
    assert "class 0: normal" in printed and "class 1: pneumonia" in printed and "gt.rec: 6 images" in printed
    lst = read_lst(f"{out}.lst")
    assert [e.labels[0] for e in lst] == [0.0] * 3 + [1.0] * 3  # the manifest's line order and labels
    assert [Path(e.path).name for e in lst] == [f"normal{i}.png" for i in range(3)] + [f"pneumonia{i}.png" for i in range(3)]
    reader = IndexedRecordReader(f"{out}.rec", f"{out}.idx")
    header, payload = unpack(reader.read_at(3), "test")
    assert header.label == 1.0 and payload[:2] == b"\xff\xd8"  # re-encoded as JPEG, as im2rec does


def test_a_multi_label_manifest_packs_multi_hot_labels(tmp_path):
    folder = tmp_path / "gt"
    lines = []
    for i, ids in enumerate(([0, 2], [1], [2])):
        write_image(folder / f"x{i}.png", 100)
        lines.append(json.dumps({"source-ref": f"s3://b/x{i}.png", "labels": ids}))
    (folder / "multi.manifest").write_text("\n".join(lines) + "\n")
    out = tmp_path / "m"
    assert main(["convert-classification", "--manifest", str(folder / "multi.manifest"), "--output", str(out),
                 "--no-shuffle", "--multi-label", "--num-classes", "3", "--label-format", "class-id",
                 "--attribute-names", '["source-ref", "labels"]']) == 0
    assert [e.labels for e in read_lst(f"{out}.lst")] == [(1.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    header, _ = unpack(IndexedRecordReader(f"{out}.rec", f"{out}.idx").read_at(0), "test")
    assert list(header.label) == [1.0, 0.0, 1.0]


def test_manifest_errors_are_one_line(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "gt", per_class=1)
    (tmp_path / "gt" / "images" / "dog0.png").unlink()
    assert main(["convert-classification", "--manifest", str(manifest), "--output", str(tmp_path / "x")]) == 2
    assert "line 2" in capsys.readouterr().out
    assert main(["convert-classification", "--manifest", str(manifest), "--output", str(tmp_path / "x"),
                 "--multi-label"]) == 2
    assert "--num-classes" in capsys.readouterr().out
