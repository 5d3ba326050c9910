"""Segmentation augmentation of whole batches on the training device (run on the CPU here): the plan replayed with
torchvision's kernels gives the same pair, the mask stays aligned with the image, the output agrees in distribution
with the CPU path, and the training step takes it."""

from __future__ import annotations

import math

import pytest
import torch
from tests.helpers.segdata import TINY_HP, builtin_layout
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from smcv.segmentation.datasets import DecodedPairs, DeviceCollate
from smcv.augmentation_device import on_device
from smcv.segmentation.device_augment import augment_pairs, pair_batch
from smcv.segmentation.pair_plan import draw_pair_plan
from smcv.segmentation.params import IGNORE_INDEX, Geometry
from smcv.segmentation.transforms import build_transform
from smcv.task_api import OnDevice
from smcv.tasks.segmentation import SegmentationTask

CPU = torch.device("cpu")
LETTERBOX = Geometry("letterbox", size=128, crop=96, base=120, divisor=32)
RESIZE = Geometry("resize", size=96, crop=96, base=96, divisor=32)
PALETTE = torch.tensor([[30, 30, 30], [220, 40, 40], [40, 200, 40], [40, 40, 220]], dtype=torch.uint8)


def blocky_pair(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A mask of a few rectangles of classes 1-3 on class 0, and its image painted from the palette."""
    height, width = (int(v) for v in torch.randint(40, 200, (2,), generator=gen))
    mask = torch.zeros((height, width), dtype=torch.uint8)
    for k in range(1, 4):
        h, w = int(height * (0.2 + 0.3 * torch.rand(1, generator=gen))), int(width * (0.2 + 0.3 * torch.rand(1, generator=gen)))
        top, left = int(torch.randint(0, height - h, (1,), generator=gen)), int(torch.randint(0, width - w, (1,), generator=gen))
        mask[top: top + h, left: left + w] = k
    image = PALETTE[mask.long()].permute(2, 0, 1).contiguous()
    return image, mask


def reference(image: torch.Tensor, mask: torch.Tensor, plan, i: int, out: tuple[int, int]):
    """The plan replayed with torchvision's kernels on one uint8 pair (the CPU path's operations)."""
    top, left, height, width = plan.source[i].tolist()
    rh, rw = plan.resized[i].tolist()
    at_y, at_x = plan.at[i].tolist()
    img = TF.crop(image, top, left, height, width)
    msk = TF.crop(tv_tensors.Mask(mask.unsqueeze(0)), top, left, height, width)
    img = TF.resize(img, [rh, rw], antialias=True)
    msk = TF.resize(msk, [rh, rw])
    img = TF.crop(img, -at_y, -at_x, out[0], out[1])  # beyond the edge: zero padding
    shifted = TF.crop(tv_tensors.Mask(msk.int() + 1), -at_y, -at_x, out[0], out[1])  # padding reads 0 = ignore
    msk = torch.where(shifted == 0, IGNORE_INDEX, shifted - 1)
    if plan.flip[i]:
        img, msk = TF.horizontal_flip(img), TF.horizontal_flip(msk)
    steps = [lambda x: TF.adjust_brightness(x, float(plan.brightness[i])),
             lambda x: TF.adjust_contrast(x, float(plan.contrast[i]))]
    for step in steps if plan.brightness_first[i] else steps[::-1]:
        img = step(img)
    return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor)[0].to(torch.uint8)


@pytest.mark.parametrize("geometry", [LETTERBOX, RESIZE], ids=["letterbox", "resize"])
@pytest.mark.parametrize("seed", range(8))
def test_plan_replayed_with_torchvision_kernels_gives_the_same_pair(geometry, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    pairs = [blocky_pair(gen) for _ in range(4)]
    batch = pair_batch(pairs, geometry, augment=True, flip=True)
    images, masks = augment_pairs(batch, CPU)
    for i, (image, mask) in enumerate(pairs):
        want_image, want_mask = reference(image, mask, batch.plan, i, batch.out)
        assert torch.equal(masks[i], want_mask), f"pair {i}: masks differ"
        # torchvision's uint8 resize rounds in fixed point, ours in float: a level apart on some pixels, which the
        # brightness and contrast factors (up to 1.2 each) can stretch to three; a misplaced pixel differs by ~100
        diff = (images[i] - want_image.float()).abs()
        assert diff.max() <= 3 and diff.mean() < 0.05, f"pair {i}: images differ by up to {diff.max()}"


@pytest.mark.parametrize("geometry", [LETTERBOX, RESIZE], ids=["letterbox", "resize"])
@pytest.mark.parametrize("seed", range(12))
def test_mask_stays_aligned_with_the_image(geometry, seed):
    torch.manual_seed(100 + seed)
    gen = torch.Generator().manual_seed(100 + seed)
    batch = pair_batch([blocky_pair(gen) for _ in range(4)], geometry, augment=True, flip=True, colour=False)
    images, masks = augment_pairs(batch, CPU)
    assert images.shape[-2:] == masks.shape[-2:] == (geometry.crop, geometry.crop)
    for image, mask in zip(images, masks):
        padded = mask == IGNORE_INDEX
        assert (image[:, padded] == 0).all()
        labelled = mask.long().clamp(max=len(PALETTE) - 1)
        # interior pixels: the mask's 5x5 neighbourhood is one class (edges blur over a pixel or two when resized;
        # torch's 'nearest', which the CPU path's masks use too, samples half a source pixel off the bilinear grid).
        # The outer 2-pixel frame is left out: what lies beyond it is not on the output to tell an edge
        same = torch.nn.functional.max_pool2d(mask[None, None].float(), 5, 1, 2) == \
            -torch.nn.functional.max_pool2d(-mask[None, None].float(), 5, 1, 2)
        frame = torch.zeros_like(padded)
        frame[2:-2, 2:-2] = True
        interior = same[0, 0] & ~padded & frame
        assert interior.sum() > 0.3 * (~padded).sum()
        colour = PALETTE[labelled].permute(2, 0, 1).float()
        assert ((image - colour).abs().amax(0)[interior] <= 3).all()


def test_resized_crop_windows_follow_torchvision():
    torch.manual_seed(0)
    sizes = torch.tensor([[120, 160]]).repeat(2000, 1)
    plan, out = draw_pair_plan(sizes, RESIZE, augment=True, flip=True)
    area = plan.source[:, 2] * plan.source[:, 3] / (120 * 160)
    aspect = plan.source[:, 3] / plan.source[:, 2]
    cpu = v2.RandomResizedCrop(96, scale=(0.5, 1.0))
    draws = [cpu.make_params([torch.zeros(3, 120, 160)]) for _ in range(2000)]
    want_area = torch.tensor([d["height"] * d["width"] / (120 * 160) for d in draws])
    want_aspect = torch.tensor([d["width"] / d["height"] for d in draws])
    assert out == (96, 96)
    assert area.min() >= want_area.min() - 0.01 and area.max() <= 1.0
    assert abs(area.mean() - want_area.mean()) < 0.01 and abs(area.std() - want_area.std()) < 0.01
    assert abs(aspect.mean() - want_aspect.mean()) < 0.01
    assert (aspect >= 0.74).all() and (aspect <= 1.35).all()
    assert (plan.source[:, :2] >= 0).all() and (plan.source[:, :2] + plan.source[:, 2:] <= sizes).all()
    assert 0.45 < plan.flip.float().mean() < 0.55 and 0.8 <= plan.brightness.min() and plan.contrast.max() <= 1.2


def test_scale_jitter_and_crop_follow_the_cpu_path():
    torch.manual_seed(0)
    sizes = torch.tensor([[100, 200]]).repeat(2000, 1)
    plan, out = draw_pair_plan(sizes, LETTERBOX, augment=True, flip=False)
    long_side = plan.resized[:, 1].float() / LETTERBOX.base
    assert out == (96, 96) and not plan.flip.any()
    assert long_side.min() >= 0.5 - 1e-3 and long_side.max() <= 2.0 and abs(long_side.mean().item() - 1.25) < 0.05
    shortfall = (LETTERBOX.crop - plan.resized).clamp(min=0)
    start = -plan.at
    assert (start >= -shortfall).all() and (start <= (plan.resized - LETTERBOX.crop).clamp(min=0) + shortfall).all()
    fixed, _ = draw_pair_plan(sizes[:3], LETTERBOX, augment=False, flip=True)
    assert (fixed.resized == torch.tensor([60, 120])).all() and not fixed.flip.any() and (fixed.brightness == 1).all()


def test_validation_pairs_are_stacked_as_before():
    collate = DeviceCollate(LETTERBOX, True, True)
    item = (torch.zeros((3, 128, 128), dtype=torch.uint8), torch.zeros((128, 128), dtype=torch.uint8))
    images, masks = collate([item, item])
    assert images.shape == (2, 3, 128, 128) and masks.shape == (2, 128, 128)


def test_training_step_with_augmentation_on_the_device(tmp_path):
    torch.manual_seed(0)
    task = SegmentationTask()
    hp = task.schema().resolve({**TINY_HP, "augmentation_device": "gpu"})
    channels = builtin_layout(tmp_path / "data", counts=(("train", 4), ("validation", 2)))
    data = task.prepare_data(hp, channels, {})
    assert isinstance(data.train, DecodedPairs)
    model = task.build_model(hp, data, channels)
    batch = data.collate_fn([data.train[i] for i in range(4)])
    assert len(batch) == 4 and batch.images.dtype == torch.uint8
    loss = task.training_loss(model, batch, CPU)
    assert math.isfinite(loss.item()) and loss.item() > 0
    staged = task.stage_batch(batch, CPU)  # what the trainer's prefetcher hands the step on a GPU
    assert isinstance(staged, OnDevice) and staged.inputs[1].dtype == torch.long
    assert torch.allclose(task.training_loss(model, staged, CPU), loss)
    loss.backward()
    assert on_device("gpu") and not on_device("cpu") and on_device("auto") == torch.cuda.is_available()


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical distribution functions."""
    grid = torch.cat([a, b]).sort().values
    fa = torch.searchsorted(a.sort().values, grid, right=True) / len(a)
    fb = torch.searchsorted(b.sort().values, grid, right=True) / len(b)
    return float((fa - fb).abs().max())


@pytest.mark.parametrize("geometry", [LETTERBOX, RESIZE], ids=["letterbox", "resize"])
def test_device_and_cpu_augmentation_agree_in_distribution(geometry):
    gen = torch.Generator().manual_seed(3)
    pairs = [blocky_pair(gen) for _ in range(16)]
    draws = 256
    torch.manual_seed(0)
    cpu = build_transform(geometry, training=True)
    cpu_out = [cpu(tv_tensors.Image(pairs[k % 16][0]), tv_tensors.Mask(pairs[k % 16][1])) for k in range(draws)]
    cpu_masks = torch.stack([m.as_subclass(torch.Tensor) for _, m in cpu_out])
    cpu_images = torch.stack([im.as_subclass(torch.Tensor) for im, _ in cpu_out]).float()
    torch.manual_seed(1)
    dev_images, dev_masks = [], []
    for start in range(0, draws, 16):
        images, masks = augment_pairs(pair_batch([pairs[k % 16] for k in range(start, start + 16)], geometry,
                                                 augment=True, flip=True), CPU)
        dev_images.append(images)
        dev_masks.append(masks)
    dev_images, dev_masks = torch.cat(dev_images), torch.cat(dev_masks)
    bound = 1.95 * math.sqrt(2 / draws)  # two-sample KS rejection bound at alpha = 0.001
    for name, statistic in [("ignored share", lambda m, i: (m == IGNORE_INDEX).float().mean((1, 2))),
                            ("class 1 share", lambda m, i: (m == 1).float().mean((1, 2))),
                            ("class 3 share", lambda m, i: (m == 3).float().mean((1, 2))),
                            ("mean level", lambda m, i: i.mean((1, 2, 3)))]:
        a, b = statistic(cpu_masks, cpu_images), statistic(dev_masks, dev_images)
        assert ks_statistic(a, b) < bound, f"{name}: CPU and device augmentation differ in distribution"
