"""Tests for smcv.data.im2rec: .lst entries packed into image records."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from smcv.data.im2rec import pack_lst, resize_shorter_side
from smcv.data.images import decode_image, sniff_image_type
from smcv.data.lst import LstEntry
from smcv.data.recordio import IndexedRecordReader, unpack
from smcv.errors import DataError


@pytest.fixture()
def root(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / "img/wide.png")
    Image.new("L", (10, 30), 77).save(tmp_path / "img/tall.png")
    return tmp_path


ENTRIES = [
    LstEntry(4, (2.0, 5.0, 1.0, 0.1, 0.2, 0.6, 0.7), "img/wide.png"),
    LstEntry(9, (0.0,), "img/tall.png"),
]


def _records(tmp_path):
    reader = IndexedRecordReader(tmp_path / "x.rec", tmp_path / "x.idx")
    return reader.keys, [unpack(reader.read_at(i)) for i in range(len(reader))]


def test_scalar_labels_and_resize(root):
    n = pack_lst(ENTRIES, root, root / "x.rec", root / "x.idx", resize=10)
    keys, records = _records(root)
    assert n == 2 and keys == [4, 9]
    (h0, img0), (h1, img1) = records
    assert (h0.flag, h0.label, h0.id, h0.id2) == (0, 2.0, 4, 0)  # only the first label without pack_label
    assert (h1.flag, h1.label, h1.id) == (0, 0.0, 9)
    assert sniff_image_type(img0) == "image/jpeg"
    assert decode_image(img0, "r").size == (20, 10) and decode_image(img1, "r").size == (10, 30)


def test_packed_labels_png_and_pass_through(root):
    pack_lst(ENTRIES, root, root / "x.rec", root / "x.idx", encoding=".png", pack_label=True)
    _, ((h0, img0), (h1, _)) = _records(root)
    assert h0.flag == 7 and np.allclose(h0.label, ENTRIES[0].labels)
    assert h1.flag == 0 and h1.label == 0.0  # one label stays scalar, as in im2rec
    assert np.asarray(decode_image(img0, "r"))[0, 0].tolist() == [200, 10, 10]

    pack_lst(ENTRIES, root, root / "x.rec", root / "x.idx", pass_through=True)
    _, ((_, raw), _) = _records(root)
    assert raw == (root / "img/wide.png").read_bytes()


def test_missing_or_broken_image(root):
    with pytest.raises(DataError, match=r"img/none\.jpg: image file not found"):
        pack_lst([LstEntry(0, (1.0,), "img/none.jpg")], root, root / "x.rec", None)
    (root / "img/bad.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"bad\.jpg: cannot decode"):
        pack_lst([LstEntry(0, (1.0,), "img/bad.jpg")], root, root / "x.rec", None)


def test_resize_shorter_side_matches_im2rec_arithmetic():
    assert resize_shorter_side(Image.new("RGB", (333, 100)), 50).size == (166, 50)
    assert resize_shorter_side(Image.new("RGB", (100, 333)), 50).size == (50, 166)
    assert resize_shorter_side(Image.new("RGB", (64, 64)), 32).size == (32, 32)
