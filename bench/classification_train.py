"""Training throughput of smcv's classification pipeline vs a textbook FP32 PyTorch pipeline, same process, same data.

Both read the same in-memory uint8 images (what smcv's decode-once cache holds) through DataLoader workers with a
random crop and flip. The reference converts and normalises on the CPU and trains in FP32/NCHW with TF32 off;
smcv ships uint8 to the GPU, normalises there, and trains under BF16 autocast in channels_last through its Trainer.
Prints one JSON object. Usage: python bench/classification_train.py [--layers 50] [--size 224] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from smcv.classification.transforms import normalisation, train_transform
from smcv.engine.loop import Trainer
from smcv.engine.signals import StopRequest
from smcv.task_api import PreparedData
from smcv.tasks.classification import ClassificationTask


class InMemoryImages(Dataset):
    """uint8 CHW images with labels, transformed on access."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def timed_epoch(run) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def reference(task, hp, images, labels, size: int, batch: int, workers: int, device) -> float:
    """Textbook loop: CPU ToDtype+Normalize in the workers, FP32, NCHW, TF32 off."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    mean, std = normalisation(3)
    transform = v2.Compose([v2.RandomCrop(size), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(mean, std)])
    loader = DataLoader(InMemoryImages(images, labels, transform), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=True, persistent_workers=True)
    model = task.build_model(hp, PreparedData(None, None), {}).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def epoch() -> None:
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch()
    return len(loader) * batch / timed_epoch(epoch)


def smcv(task, hp, images, labels, workers: int, device) -> tuple[float, str]:
    """smcv's Trainer and task with the job's settings."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    settings = task.train_settings(hp)
    settings.num_workers = workers
    data = PreparedData(InMemoryImages(images, labels, train_transform(hp.image_shape, None, "crop")), None)
    trainer = Trainer(task, hp, settings, data, task.build_model(hp, data, {}), device, None, StopRequest(),
                      emit=lambda _line: None)
    trainer.train_epoch(1)
    seen = len(trainer.train_loader) * settings.batch_size
    return seen / timed_epoch(lambda: trainer.train_epoch(2)), trainer.precision.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    device = torch.device("cuda")
    task = ClassificationTask()
    hp = task.schema().resolve({"num_classes": "10", "num_training_samples": "1", "num_layers": str(args.layers),
                                "image_shape": f"3,{args.size},{args.size}", "mini_batch_size": str(args.batch)})
    n, stored = args.batch * args.steps, args.size + args.size // 7
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, stored, stored), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    ref = reference(task, hp, images, labels, args.size, args.batch, args.workers, device)
    ours, precision = smcv(task, hp, images, labels, args.workers, device)
    print(json.dumps({"bench": "classification_train", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "model": f"resnet{args.layers}", "image_size": args.size, "batch": args.batch, "images": n,
                      "workers": args.workers, "reference_fp32_images_per_s": round(ref, 1),
                      "smcv_images_per_s": round(ours, 1), "smcv_precision": precision, "speedup": round(ours / ref, 2)}))


if __name__ == "__main__":
    main()
