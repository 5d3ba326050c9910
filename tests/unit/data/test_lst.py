"""Tests for smcv.data.lst."""

from __future__ import annotations

import pytest

from smcv.data.lst import LstEntry, read_lst, write_lst
from smcv.errors import DataError


def test_read_scalar_and_detection_labels(tmp_path):
    path = tmp_path / "train.lst"
    path.write_text("0\t1\tcats/a.jpg\n\n  \n5\t2\t5\t0\t0.1\t0.2\t0.5\t0.6\tdogs/b c.jpg\r\n7\t3.0\t2\tx.png")
    entries = read_lst(path)
    assert entries[0] == LstEntry(0, (1.0,), "cats/a.jpg")
    assert entries[1] == LstEntry(5, (2.0, 5.0, 0.0, 0.1, 0.2, 0.5, 0.6), "dogs/b c.jpg")
    assert entries[2] == LstEntry(7, (3.0, 2.0), "x.png")


def test_round_trip(tmp_path):
    entries = [LstEntry(3, (1.0,), "a/b.jpg"), LstEntry(1, (2.0, 5.0, 0.125, 0.1), "c.png")]
    write_lst(tmp_path / "x.lst", entries)
    assert (tmp_path / "x.lst").read_text().splitlines()[0] == "3\t1\ta/b.jpg"
    assert read_lst(tmp_path / "x.lst") == entries


@pytest.mark.parametrize(
    "line, pattern",
    [
        ("0\ta.jpg", "at least 3"),
        ("0 1 a.jpg", "separated by tabs"),
        ("one\t1\ta.jpg", "integer index"),
        ("1.5\t1\ta.jpg", "integer index"),
        ("0\tcat\ta.jpg", "must be numbers"),
        ("0\t1\t ", "path"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, pattern):
    path = tmp_path / "bad.lst"
    path.write_text(f"9\t0\tok.jpg\n\n{line}\n")
    with pytest.raises(DataError, match=rf"bad\.lst, line 3: .*{pattern}"):
        read_lst(path)


def test_duplicate_index(tmp_path):
    path = tmp_path / "dup.lst"
    path.write_text("1\t0\ta.jpg\n2\t0\tb.jpg\n1\t1\tc.jpg\n")
    with pytest.raises(DataError, match=r"dup\.lst, line 3: index 1 already used on line 1"):
        read_lst(path)


def test_write_rejects_unwritable_entries(tmp_path):
    with pytest.raises(DataError, match="tabs or newlines"):
        write_lst(tmp_path / "x.lst", [LstEntry(0, (1.0,), "a\tb.jpg")])
    with pytest.raises(DataError, match="at least one label"):
        write_lst(tmp_path / "x.lst", [LstEntry(0, (), "a.jpg")])


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nope\.lst: \.lst file not found"):
        read_lst(tmp_path / "nope.lst")


def test_out_of_range_label_names_the_image_the_lst_file_and_its_line(tmp_path):
    from smcv.classification.sources import check_labels, read_split

    images = tmp_path / "train"
    images.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (images / name).write_bytes(b"not decoded here")
    lists = tmp_path / "train_lst"
    lists.mkdir()
    (lists / "train.lst").write_text("0\t0\ta.png\n1\t1\tb.png\n\n3\t7\tc.png\n")
    split = read_split("train", {"train": images, "train_lst": lists}, "lst")
    with pytest.raises(DataError) as info:
        check_labels(split.items, 3, False, "train")
    message = str(info.value)
    assert "c.png" in message and f"{lists / 'train.lst'}, line 4" in message and "label 7" in message
