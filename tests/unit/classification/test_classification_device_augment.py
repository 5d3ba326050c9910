"""Classification augmentation of whole batches on the training device (run on the CPU here): each step replayed
with torchvision's kernels gives the same image, the plan follows the CPU transforms' ranges, the output agrees in
distribution with the CPU path, and the task's training step takes it."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from smcv.classification.device_augment import (CropBatch, DeviceCropCollate, augment_batch, crop_batch, cut,
                                                device_collate, draw_plan, flip, jitter, warp)
from smcv.classification.transforms import Uncropped, train_transform, uncropped_transform
from smcv.task_api import OnDevice
from smcv.tasks.classification import ClassificationTask
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

CPU = torch.device("cpu")


def noisy(channels: int, height: int, width: int, seed: int) -> torch.Tensor:
    """A uint8 image of smooth colour ramps plus noise (hue and saturation have something to change)."""
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    ramps = torch.stack([xs, ys, 1 - xs * ys][:channels]) * 200
    return (ramps + torch.rand((channels, height, width), generator=gen) * 55).to(torch.uint8)


def replay(image: torch.Tensor, batch: CropBatch, i: int) -> torch.Tensor:
    """Plan i replayed with torchvision's kernels on one uint8 image (the CPU path's operations)."""
    plan, (h, w) = batch.plan, batch.crop
    out = TF.crop(image, int(plan.top[i]), int(plan.left[i]), h, w)
    if plan.flip[i]:
        out = TF.horizontal_flip(out)
    if batch.colour:
        for step in plan.order[i].tolist():
            if step == 0:
                out = TF.adjust_brightness(out, float(plan.brightness[i]))
            elif step == 2:
                out = TF.adjust_saturation(out, float(plan.saturation[i]))
            elif step == 3:
                out = TF.adjust_hue(out, float(plan.hue[i]))
    if batch.affine:
        out = TF.affine(out, angle=float(plan.angle[i]), translate=[0, 0], scale=float(plan.scale[i]),
                        shear=[float(plan.shear[i]), 0.0], interpolation=InterpolationMode.NEAREST)
    return out


@pytest.mark.parametrize("channels", [3, 1], ids=["rgb", "grey"])
@pytest.mark.parametrize("seed", range(4))
def test_plan_replayed_with_torchvision_kernels_gives_the_same_images(channels, seed):
    torch.manual_seed(seed)
    sizes = [(36, 40), (32, 32), (45, 33), (32, 50)]  # mixed sizes: the batch is padded, each crop stays inside
    images = [noisy(channels, h, w, seed * 10 + k) for k, (h, w) in enumerate(sizes)]
    batch = crop_batch(images, (32, 32), colour=True, affine=True)
    out = augment_batch(batch, CPU)
    assert out.shape == (4, channels, 32, 32) and out.dtype == torch.float32
    for i, image in enumerate(images):
        want = replay(image, batch, i).float()
        same = (out[i] == want).float().mean()
        # float rounding may put a hue step one level apart on a rare pixel; a misplaced pixel differs by far more
        assert same >= 0.995 and (out[i] - want).abs().max() <= 1, f"image {i}: {same:.4f} equal"


def test_crop_and_flip_alone_are_exact_and_stay_inside_each_image():
    torch.manual_seed(1)
    images = [noisy(3, 28 + k, 30 + 2 * k, k) for k in range(8)]
    batch = crop_batch(images, (28, 28), colour=False, affine=False)
    assert not batch.colour and not batch.affine
    assert (batch.plan.top + 28 <= batch.sizes[:, 0]).all() and (batch.plan.left + 28 <= batch.sizes[:, 1]).all()
    out = flip(cut(batch.images, batch.plan, batch.crop).float(), batch.plan)
    for i, image in enumerate(images):
        assert torch.equal(out[i], replay(image, batch, i).float())


def test_plan_draws_follow_the_cpu_transforms_ranges():
    torch.manual_seed(0)
    n = 4000
    plan = draw_plan(torch.tensor([[40, 36]]).repeat(n, 1), (32, 32), colour=True, affine=True)
    assert plan.top.min() == 0 and plan.top.max() == 8 and plan.left.max() == 4  # every offset RandomCrop can give
    assert abs(plan.top.float().mean().item() - 4.0) < 0.2
    assert 0.47 < plan.flip.float().mean() < 0.53
    assert 1 - 50 / 255 <= plan.brightness.min() and plan.brightness.max() <= 1 + 50 / 255
    assert -0.1 <= plan.hue.min() and plan.hue.max() <= 0.1 and abs(plan.hue.mean()) < 0.01
    assert -10 <= plan.angle.min() and plan.angle.max() <= 10 and -5.7 <= plan.shear.min() and plan.shear.max() <= 5.7
    assert 0.8 <= plan.scale.min() and plan.scale.max() <= 1.25
    assert (plan.order.sort(dim=1).values == torch.arange(4)).all()  # a permutation of ColorJitter's four steps
    assert len({tuple(o) for o in plan.order.tolist()}) == 24
    plain = draw_plan(torch.tensor([[32, 32]]), (32, 32), colour=False, affine=False)
    assert plain.brightness.item() == plain.saturation.item() == plain.scale.item() == 1
    assert plain.hue.item() == plain.angle.item() == plain.shear.item() == 0


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical distribution functions."""
    grid = torch.cat([a, b]).sort().values
    fa = torch.searchsorted(a.sort().values, grid, right=True) / len(a)
    fb = torch.searchsorted(b.sort().values, grid, right=True) / len(b)
    return float((fa - fb).abs().max())


@pytest.mark.parametrize("kind", ["crop", "crop_color", "crop_color_transform"])
def test_device_and_cpu_augmentation_agree_in_distribution(kind):
    """The same images through the CPU path (torchvision transforms per image) and the device path (draws in the
    collate, kernels on the batch): per-image mean level, share of black (warp fill) pixels and left-right balance
    (flips) have the same distributions (KS statistic below 0.12 for 512 draws each, about p = 0.002)."""
    images = [noisy(3, 40, 44, k) for k in range(8)]
    draws = 512
    torch.manual_seed(0)
    cpu_transform = train_transform((3, 32, 32), None, kind)
    on_cpu = torch.stack([cpu_transform(images[k % 8]).float() for k in range(draws)])
    torch.manual_seed(1)
    uncropped, collate = uncropped_transform((3, 32, 32), None), device_collate((3, 32, 32), kind, None)
    batches = [collate([(uncropped(images[k % 8]), torch.tensor(0)) for k in range(b, b + 64)])
               for b in range(0, draws, 64)]
    on_device = torch.cat([augment_batch(batch, CPU) for batch, _ in batches])

    def features(out: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"mean": out.mean(dim=(1, 2, 3)), "black": (out.amax(dim=1) == 0).float().mean(dim=(1, 2)),
                "left_minus_right": out[..., :16].mean(dim=(1, 2, 3)) - out[..., 16:].mean(dim=(1, 2, 3)),
                "red_minus_blue": (out[:, 0] - out[:, 2]).mean(dim=(1, 2))}

    cpu_features, device_features = features(on_cpu), features(on_device)
    for name in cpu_features:
        if cpu_features[name].std() == 0 and device_features[name].std() == 0:
            assert torch.equal(cpu_features[name], device_features[name]), name
            continue
        assert ks_statistic(cpu_features[name], device_features[name]) < 0.12, name


def test_validation_samples_are_stacked_as_before():
    collate = DeviceCropCollate((8, 8), colour=True, affine=False)
    images, targets = collate([(torch.zeros((3, 8, 8), dtype=torch.uint8), torch.tensor(1))] * 3)
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8 and targets.tolist() == [1, 1, 1]
    batch, targets = collate([(Uncropped(image=torch.zeros((3, 9, 8), dtype=torch.uint8)), torch.tensor(0))] * 2)
    assert isinstance(batch, CropBatch) and len(batch) == 2 and targets.tolist() == [0, 0]


def test_grey_images_keep_one_channel_and_only_brightness_changes_them():
    torch.manual_seed(2)
    image = noisy(1, 16, 16, 3)
    batch = crop_batch([image] * 16, (16, 16), colour=True, affine=False)
    out = jitter(flip(cut(batch.images, batch.plan, batch.crop).float(), batch.plan), batch.plan)
    for i in range(16):
        base = TF.horizontal_flip(image) if batch.plan.flip[i] else image
        assert torch.equal(out[i], TF.adjust_brightness(base, float(batch.plan.brightness[i])).float())


def test_a_warp_keeps_the_centre_and_fills_with_black():
    torch.manual_seed(0)
    image = torch.full((1, 3, 21, 21), 200.0)
    image[..., 10, 10] = 50.0
    plan = draw_plan(torch.tensor([[21, 21]]), (21, 21), colour=False, affine=True)
    plan.angle[:], plan.shear[:], plan.scale[:] = 30.0, 0.0, 0.8  # rotate and shrink about the centre
    out = warp(image, plan)
    assert out[0, :, 10, 10].tolist() == [50.0] * 3  # the centre pixel stays where it was
    assert out[0, :, 0, 0].tolist() == [0.0] * 3  # corners come from outside the image: black


def test_task_training_step_with_augmentation_on_the_device(tmp_path):
    torch.manual_seed(0)
    task = ClassificationTask()
    write_class_folders(tmp_path / "train", 4)
    hp = task.schema().resolve({**TINY_CLASSIFICATION, "image_shape": "3,16,16", "resize": "20",
                                "augmentation_type": "crop_color_transform", "augmentation_device": "gpu"})
    channels = {"train": tmp_path / "train"}
    data = task.prepare_data(hp, channels, {})
    batch = data.collate_fn([data.train[i] for i in range(4)])
    assert isinstance(batch[0], CropBatch) and batch[0].colour and batch[0].affine
    assert batch[0].images.dtype == torch.uint8 and min(batch[0].images.shape[-2:]) == 20  # resized, not cropped
    model = task.build_model(hp, data, channels)
    loss = task.training_loss(model, batch, CPU)
    assert math.isfinite(loss.item()) and loss.item() > 0
    staged = task.stage_batch(batch, CPU)  # what the trainer's prefetcher hands the step on a GPU
    assert isinstance(staged, OnDevice) and staged.inputs[0].shape == (4, 3, 16, 16)
    assert torch.allclose(task.training_loss(model, staged, CPU), loss)
    loss.backward()
    cpu_hp = task.schema().resolve({**TINY_CLASSIFICATION, "augmentation_type": "crop", "augmentation_device": "cpu"})
    assert task.prepare_data(cpu_hp, channels, {}).collate_fn is None  # the CPU path: per-image transforms
    with pytest.raises(Exception, match="augmentation_device"):
        task.schema().resolve({**TINY_CLASSIFICATION, "augmentation_device": "tpu"})


def test_auto_keeps_images_far_larger_than_the_crop_on_the_cpu_path(tmp_path, monkeypatch, caplog):
    """With CUDA present, auto augments on the device when the uncropped images are at most 4x the crop's area, and
    crops in the workers when they are larger (less to move); gpu moves them anyway."""
    import logging

    task = ClassificationTask()
    write_class_folders(tmp_path / "train", 2, size=40)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    channels = {"train": tmp_path / "train"}

    def collate_for(**extra):
        hp = task.schema().resolve({**TINY_CLASSIFICATION, "num_training_samples": 4, "augmentation_type": "crop",
                                    **extra})
        return task.prepare_data(hp, channels, {})

    assert collate_for(image_shape="1,24,24").collate_fn is not None  # 40x40 is 2.8x 24x24
    with caplog.at_level(logging.INFO, logger="smcv.tasks.classification"):
        far = collate_for(image_shape="1,16,16")  # 40x40 is 6.25x 16x16
    assert far.collate_fn is None and far.train[0][0].shape == (1, 16, 16)
    assert any("40x40 before the crop" in r.getMessage() and "augmentation_device=gpu" in r.getMessage()
               for r in caplog.records)
    forced = collate_for(image_shape="1,16,16", augmentation_device="gpu")
    assert forced.collate_fn is not None and forced.train[0][0]["image"].shape == (1, 40, 40)
