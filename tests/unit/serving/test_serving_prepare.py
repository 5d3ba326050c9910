"""The batched preprocessing (smcv.serving.prepare) against each task's per-image validation transforms, with
images of mixed sizes in one batch.

Bounds, the same for every device: class probabilities within 1e-2, segmentation masks agreeing on >= 99% of the
pixels, detection boxes within 2 pixels of the network input and scores within 1e-2. On the CPU the batched path
runs the very same uint8 antialiased resize kernel per image as the per-image path, so the answers agree to float
rounding (checked tighter below); the bounds leave room for what differs on a GPU: the resize runs in float and is
rounded back to uint8 (+-1 grey level), nvJPEG's IDCT differs from libjpeg-turbo's by a few levels, and BF16 autocast
keeps about three significant digits. A level or two on the input moves a probability by far less than 1e-2 and a
mask only along class borders (well under 1% of the pixels of a photo-sized mask).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from smcv import artifact
from smcv.classification.transforms import GpuNormalize, eval_placement, eval_transform
from smcv.segmentation.params import IGNORE_INDEX
from smcv.segmentation.transforms import Letterbox, normalize, to_original_size
from smcv.serving import direct
from smcv.serving.prepare import Placement, centre_crop, network_batch, place
from smcv.tasks import get_task
from tests.helpers.exportmodels import write_tiny_model

CPU = torch.device("cpu")
PROBABILITY_BOUND = 1e-2
MASK_AGREEMENT = 0.99
BOX_BOUND_PX = 2.0
#: on the CPU both paths run the same kernels: only float reassociation differs
CPU_BOUND = 1e-5


def photos(sizes: list[tuple[int, int]], seed: int = 3) -> list[Image.Image]:
    """Smooth colour gradients with noise at the given (width, height): distinct answers, realistic resizing."""
    rng = np.random.default_rng(seed)
    found = []
    for index, (width, height) in enumerate(sizes):
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        base = np.stack([x / width * 255, y / height * 255, np.full_like(x, 40.0 * index)], axis=-1)
        found.append(Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8), "RGB"))
    return found


MIXED = [(40, 30), (64, 64), (25, 90), (300, 170)]


def served(task: str, tmp_path, **overrides):
    model_dir = write_tiny_model(task, tmp_path / task, **overrides)
    manifest = artifact.load_manifest(model_dir)
    return get_task(task).build_predictor(manifest, artifact.load_state_dict(model_dir), CPU)


def test_place_resizes_then_cuts_or_pads():
    image = torch.arange(2 * 4 * 6, dtype=torch.uint8).view(2, 4, 6)
    assert torch.equal(place(image, Placement((4, 6), (2, 3), (1, 2))), image[:, 1:3, 2:5])  # a window, no resize
    padded = place(image, Placement((4, 6), (5, 8)))
    assert torch.equal(padded[:, :4, :6], image) and padded[:, 4:].eq(0).all() and padded[:, :, 6:].eq(0).all()
    assert place(image, Placement((8, 12), (8, 12))).shape == (2, 8, 12)
    twice = place(image, Placement((4, 6), (4, 6), via=(2, 3)))
    assert torch.equal(twice, F.resize(F.resize(image, [2, 3], antialias=True), [4, 6], antialias=True))
    assert centre_crop((5, 9), (3, 3)).offset == (1, 3)


def test_network_batch_normalises_on_the_device_and_refuses_mixed_canvases():
    images = [torch.full((3, 5, 7), 255, dtype=torch.uint8), torch.zeros((3, 9, 2), dtype=torch.uint8)]
    batch = network_batch(images, [Placement((4, 4), (4, 4))] * 2, (0.5, 0.5, 0.5), (0.25, 0.5, 0.5), CPU)
    assert batch.shape == (2, 3, 4, 4) and batch.dtype == torch.float32 and batch.device == CPU
    assert torch.allclose(batch[0, 0], torch.full((4, 4), 2.0)) and torch.allclose(batch[1, 1], torch.full((4, 4), -1.0))
    with pytest.raises(ValueError, match="share a canvas"):
        network_batch(images, [Placement((4, 4), (4, 4)), Placement((4, 4), (5, 5))], (0.0,), (1.0,), CPU)


@pytest.mark.parametrize("resize", [None, 40, 20])
def test_classification_placement_is_the_validation_transform(resize):
    """eval_transform (validation) and serving's placement give the same uint8 pixels (20: resized twice)."""
    for image in photos(MIXED):
        pixels = F.pil_to_tensor(image)
        want = eval_transform((3, 32, 32), resize)(pixels)
        got = place(pixels, eval_placement((3, 32, 32), resize, *pixels.shape[-2:]))
        assert got.shape == want.shape == (3, 32, 32)
        assert torch.equal(got, want)


@pytest.mark.parametrize("resize", [None, "40"])
def test_classification_batched_equals_per_image(tmp_path, resize):
    predictor = served("classification", tmp_path, resize=resize)
    images = photos(MIXED)
    batched = [result for result, _ in direct.predict(predictor, images, "application/json")]
    normalise = GpuNormalize(list(predictor.mean), list(predictor.std))
    for image, got in zip(images, batched):
        pixels = eval_transform((3, 32, 32), int(resize) if resize else None)(F.pil_to_tensor(image))
        with torch.inference_mode():
            want = torch.softmax(predictor.model(normalise(pixels[None])), dim=1)[0].tolist()
        assert np.abs(np.subtract(got, want)).max() < CPU_BOUND <= PROBABILITY_BOUND
    alone = [direct.predict(predictor, [image], "application/json")[0][0] for image in images]
    assert np.abs(np.subtract(batched, alone)).max() < CPU_BOUND  # the batch's other images change nothing
    assert np.std(batched, axis=0).max() > 1e-3  # different images, different answers: the check means something


def test_detection_batched_equals_per_image(tmp_path):
    predictor = served("detection", tmp_path)
    images = photos(MIXED)
    batched = [result for result, _ in direct.predict(predictor, images, "application/json")]
    for image, got in zip(images, batched):
        pixels = F.resize(F.pil_to_tensor(image), [300, 300], antialias=True).float() / 255.0
        with torch.inference_mode():
            want = predictor.model(pixels[None])[0]
        assert got["labels"] == want["labels"].tolist()
        np.testing.assert_allclose(got["scores"], want["scores"].numpy(), atol=PROBABILITY_BOUND, rtol=0)
        boxes_px = np.array(got["boxes"]) * 300
        assert np.abs(boxes_px - want["boxes"].clamp(0, 300).numpy()).max() < min(BOX_BOUND_PX, CPU_BOUND * 300)
    assert len({tuple(map(tuple, r["boxes"][:3])) for r in batched}) == len(images)


@pytest.mark.parametrize("geometry", [{}, {"image_size": None, "base_size": "64", "crop_size": "32"}],
                         ids=["resize", "letterbox"])
def test_segmentation_batched_equals_per_image(tmp_path, geometry):
    predictor = served("segmentation", tmp_path, **geometry)
    images = photos(MIXED)
    batched = [result for result, _ in direct.predict(predictor, images, "image/png")]
    size = predictor.size
    for image, got in zip(images, batched):
        pixels = F.pil_to_tensor(image)
        mask = torch.zeros((1, *pixels.shape[-2:]), dtype=torch.uint8)
        if predictor.mode == "resize":
            content, net_input = (size, size), F.resize(pixels, [size, size], antialias=True)
        else:
            net_input, padded_mask = Letterbox(size)(pixels, mask)
            content = tuple(int(v) for v in (padded_mask[0] != IGNORE_INDEX).nonzero().max(dim=0).values + 1)
        with torch.inference_mode():
            probs = torch.softmax(predictor.model(normalize(net_input[None], predictor.mean, predictor.std)), dim=1)[0]
        want = to_original_size(probs, content, image.height, image.width).argmax(dim=0).numpy()
        assert got.labels.shape == (image.height, image.width) and got.labels.dtype == np.uint8
        assert (got.labels == want).mean() >= MASK_AGREEMENT
    assert any(len(np.unique(r.labels)) > 1 for r in batched)  # the masks are not trivially uniform


def test_segmentation_keeps_probabilities_only_for_the_types_that_need_them(tmp_path):
    predictor = served("segmentation", tmp_path)
    image = photos([(70, 50)])[0]
    png = direct.predict(predictor, [image], "image/png")[0][0]
    assert png.probabilities is None and png.small_probabilities is None
    protobuf = direct.predict(predictor, [image], "application/x-recordio-protobuf")[0][0]
    assert protobuf.probabilities.shape == (3, 50, 70) and protobuf.probabilities.device == CPU
    assert np.array_equal(protobuf.probabilities.argmax(dim=0).numpy(), png.labels)
    small = direct.predict(predictor, [image], "application/json;probabilities=1")[0][0].small_probabilities
    assert small.shape == (3, 46, 64)
    with pytest.raises(ValueError, match="meta\\['accept'\\]"):
        predictor.encode(png, {"width": 70, "height": 50}, "application/x-protobuf")
