"""Training throughput of smcv's classification loop vs a plain FP32 PyTorch loop, same process, same data.

Prints one JSON object. Usage: python bench/classification_train.py [--layers 50] [--size 224] [--batch 64] [--steps 30]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from smcv.config import HyperParameters
from smcv.engine.loop import Trainer
from smcv.engine.signals import StopRequest
from smcv.tasks.base import PreparedData
from smcv.tasks.classification import ClassificationTask


def synthetic(n: int, size: int, classes: int) -> TensorDataset:
    """Normalised random images and labels (the bench measures compute, not decoding)."""
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g))


def sync_time(fn) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def plain_fp32(task: ClassificationTask, hp: HyperParameters, data: TensorDataset, batch: int, device) -> float:
    """The reference: FP32, NCHW, no autocast, TF32 off, a textbook loop."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = task.build_model(hp, PreparedData(data, None), {}).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True, pin_memory=True)

    def epoch() -> None:
        model.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    epoch()  # warm-up
    return len(loader) * batch / sync_time(epoch)


def smcv_loop(task: ClassificationTask, hp: HyperParameters, data: TensorDataset, device) -> tuple[float, str]:
    """smcv's Trainer with the job's settings (BF16 autocast where supported, channels_last, cudnn autotune)."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    settings = task.train_settings(hp)
    settings.num_workers = 0
    prepared = PreparedData(data, None)
    trainer = Trainer(task, hp, settings, prepared, task.build_model(hp, prepared, {}), device, None, StopRequest(),
                      emit=lambda _line: None)
    trainer.train_epoch(1)  # warm-up (and cudnn autotuning)
    images = len(trainer.train_loader) * settings.batch_size
    return images / sync_time(lambda: trainer.train_epoch(2)), trainer.precision.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device("cuda")
    task = ClassificationTask()
    hp = task.schema().resolve({"num_classes": "10", "num_training_samples": "1", "num_layers": str(args.layers),
                                "image_shape": f"3,{args.size},{args.size}", "mini_batch_size": str(args.batch)})
    data = synthetic(args.batch * args.steps, args.size, 10)
    reference = plain_fp32(task, hp, data, args.batch, device)
    ours, precision = smcv_loop(task, hp, data, device)
    print(json.dumps({"bench": "classification_train", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "model": f"resnet{args.layers}", "image_size": args.size, "batch": args.batch, "steps": args.steps,
                      "reference_fp32_images_per_s": round(reference, 1), "smcv_images_per_s": round(ours, 1),
                      "smcv_precision": precision, "speedup": round(ours / reference, 2)}))


if __name__ == "__main__":
    main()
