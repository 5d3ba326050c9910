"""indexed_png: an 8-bit palette PNG that Pillow reads back as the same indices and palette."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from smcv.data.png import indexed_png
from smcv.segmentation.predictor import mask_png, palette


def test_pillow_reads_back_the_indices_and_the_palette():
    indices = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    image = Image.open(io.BytesIO(indexed_png(indices, palette())))
    assert image.format == "PNG" and image.mode == "P" and image.size == (53, 37)
    assert np.array_equal(np.array(image), indices)
    assert image.getpalette()[:768] == list(palette())


def test_the_served_mask_is_the_same_image_pillow_would_write():
    labels = (np.arange(6 * 9).reshape(6, 9) % 4).astype(np.uint8)
    labels[0, 0] = 255  # unlabelled: white
    mine = Image.open(io.BytesIO(mask_png(labels)))
    reference = Image.fromarray(labels, "P")
    reference.putpalette(palette())
    out = io.BytesIO()
    reference.save(out, format="PNG")
    pillows = Image.open(io.BytesIO(out.getvalue()))
    assert np.array_equal(np.array(mine), np.array(pillows)) and np.array_equal(np.array(mine.convert("RGB")),
                                                                                  np.array(pillows.convert("RGB")))
    assert mine.convert("RGB").getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("indices,colours", [(np.zeros((2, 2), np.int32), 768), (np.zeros((0, 3), np.uint8), 768),
                                             (np.zeros((2, 2), np.uint8), 770)])
def test_bad_input_is_refused(indices, colours):
    with pytest.raises(ValueError):
        indexed_png(indices, [0] * colours)
