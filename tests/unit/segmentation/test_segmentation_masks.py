"""Masks: single-channel PNGs, label maps, Ground Truth colour maps, 0/255 binary masks, and every error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.helpers.segdata import GT_COLORS, png_bytes

from smcv.errors import DataError
from smcv.segmentation.masks import LabelMap, MaskDecoder, decide_binary_255, parse_label_map, read_label_map

VALUES = np.array([[0, 1, 2], [255, 1, 0]], np.uint8)


def test_grey_mask_is_class_ids_with_255_kept_as_ignore():
    out = MaskDecoder(3).decode(png_bytes(VALUES), "m.png")
    assert out.dtype == np.uint8 and out.tolist() == VALUES.tolist()


def test_palette_mask_gives_palette_indices():
    out = MaskDecoder(3).decode(png_bytes(VALUES, mode="P", palette=[0, 0, 0, 200, 0, 0, 0, 200, 0] * 85 + [0, 0, 0]),
                                "m.png")
    assert out.tolist() == VALUES.tolist()


def test_scale_label_map_floors_and_keeps_255():
    label_map, colors, _ = parse_label_map({"scale": "3"}, "train_label_map.json")
    raw = np.array([[0, 3, 6], [7, 255, 5]], np.uint8)
    out = MaskDecoder(3, label_map).decode(png_bytes(raw), "m.png")
    assert colors is None and out.tolist() == [[0, 1, 2], [2, 255, 1]]


def test_map_label_map_as_documented():
    # built-in docs: {"map": {"0": 5, "1": 0, "2": 2}} maps encoded [0, 5, 2] to classes [1, 0, 2]
    label_map, _, _ = parse_label_map({"map": {"0": 5, "1": 0, "2": 2}}, "x.json")
    out = MaskDecoder(3, label_map).decode(png_bytes(np.array([[0, 5, 2, 255]], np.uint8)), "m.png")
    assert out.tolist() == [[1, 0, 2, 255]]


def test_map_rejects_unmapped_values_naming_the_file():
    label_map, _, _ = parse_label_map({"map": {"0": 5, "1": 0}}, "x.json")
    with pytest.raises(DataError, match=r"ann/m7\.png: mask values 3 are not class ids .*label map"):
        MaskDecoder(2, label_map).decode(png_bytes(np.array([[0, 5, 3]], np.uint8)), "ann/m7.png")


def test_unknown_label_value_error():
    with pytest.raises(DataError, match=r"a\.png: mask values 2, 7 are not class ids for num_classes=2 .*255 = ignore"):
        MaskDecoder(2).decode(png_bytes(np.array([[0, 1, 2, 7, 255]], np.uint8)), "a.png")


def test_sixteen_bit_mask_values_checked():
    big = np.array([[0, 1, 300]], np.uint16)
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    with pytest.raises(DataError, match="mask values 300"):
        MaskDecoder(2).decode(buf.getvalue(), "deep.png")
    buf = io.BytesIO()
    Image.fromarray(np.array([[0, 1]], np.uint16)).save(buf, format="PNG")
    assert MaskDecoder(2).decode(buf.getvalue(), "ok.png").tolist() == [[0, 1]]


def test_rgb_mask_without_colour_map_is_an_error():
    rgb = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(DataError, match=r"rgb\.png: the mask has 3 channels \(mode RGB\).*single-channel.*colour map"):
        MaskDecoder(2).decode(png_bytes(rgb), "rgb.png")


def test_undecodable_mask_names_the_file():
    with pytest.raises(DataError, match="broken.png: cannot decode the mask"):
        MaskDecoder(2).decode(b"not a png", "broken.png")


def test_ground_truth_colour_map():
    label_map, colors, names = parse_label_map({"internal-color-map": GT_COLORS}, "manifest")
    rgb = np.full((2, 3, 3), 255, np.uint8)
    rgb[0, 1] = (0x2C, 0xA0, 0x2C)
    out = MaskDecoder(2, label_map, colors).decode(png_bytes(rgb), "gt.png")
    assert out.tolist() == [[0, 1, 0], [0, 0, 0]] and names == {0: "BACKGROUND", 1: "lesion"}


def test_plain_colour_map_and_unknown_colour():
    _, colors, _ = parse_label_map({"color_map": {"#000000": 0, "#f00": 1}}, "lm.json")
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1] = (255, 0, 0)
    assert MaskDecoder(2, color_map=colors).decode(png_bytes(rgb), "c.png").tolist() == [[0, 1, 0]]
    rgb[0, 2] = (1, 2, 3)
    with pytest.raises(DataError, match=r"c\.png: mask colours #010203 are not in the colour map"):
        MaskDecoder(2, color_map=colors).decode(png_bytes(rgb), "c.png")


def test_colour_map_class_beyond_num_classes():
    _, colors, _ = parse_label_map({"color_map": {"#000000": 0, "#ff0000": 4}}, "lm.json")
    with pytest.raises(DataError, match="class ids \\[4\\].*num_classes=2"):
        MaskDecoder(2, color_map=colors)


def test_binary_255_reads_255_as_foreground():
    decoder = MaskDecoder(2, binary_255=True)
    assert decoder.decode(png_bytes(np.array([[0, 255]], np.uint8)), "b.png").tolist() == [[0, 1]]
    with pytest.raises(DataError, match="binary_mask_255"):
        decoder.decode(png_bytes(np.array([[0, 1, 255]], np.uint8)), "b.png")


def test_binary_255_auto_rule():
    only_0_255 = [np.array([0, 255]), np.array([0])]
    assert decide_binary_255("auto", 2, only_0_255, has_map=False) is True
    assert decide_binary_255("auto", 2, [np.array([0, 1, 255])], has_map=False) is False  # 255 = ignore
    assert decide_binary_255("auto", 2, [np.array([0])], has_map=False) is False  # no 255 at all
    assert decide_binary_255("auto", 3, only_0_255, has_map=False) is False  # only with num_classes=2
    assert decide_binary_255("auto", 2, only_0_255, has_map=True) is False  # a label map decides instead
    assert decide_binary_255("false", 2, only_0_255, has_map=False) is False
    assert decide_binary_255("true", 2, [], has_map=False) is True


def test_read_label_map_errors(tmp_path):
    path = tmp_path / "train_label_map.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="train_label_map.json: cannot read the label map"):
        read_label_map(path)
    path.write_text(json.dumps({"scale": "0"}))
    with pytest.raises(DataError, match="'scale' must be a positive integer"):
        read_label_map(path)
    path.write_text(json.dumps({"scale": "2"}))
    assert read_label_map(path)[0] == LabelMap(scale=2)
