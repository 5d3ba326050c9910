"""Time SSD training-batch preparation: per-image CPU augmentation vs the device batch augmenter, and the loss.

Synthetic uint8 images with boxes, no decoding. For the CPU path: DetectionTransform over a batch (what the
DataLoader workers do, per worker). For the device path: the workers' share (pad + draw the plan, `DeviceCollate`)
and the device's share (`to_device`: zoom out, crop, resize, flip, photometric). Then the batched SSD loss on the
tiny network's anchors. Prints one JSON object of milliseconds per batch (medians). Measures whatever device it runs
on; it has no figures of its own. Usage: python bench/detection_augment.py [--batch 32] [--size 300] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torchvision import tv_tensors

from smcv.detection.datasets import DeviceCollate, to_device
from smcv.detection.model import build_detector, detector_spec
from smcv.detection.transforms import DecodeOnly, DetectionTransform, make_target


def sample(gen: torch.Generator) -> tuple[torch.Tensor, dict]:
    """A 500x375-ish image with 1-6 boxes."""
    height, width = (int(v) for v in torch.randint(300, 500, (2,), generator=gen))
    count = int(torch.randint(1, 7, (1,), generator=gen))
    low = torch.rand(count, 2, generator=gen) * torch.tensor([width * 0.7, height * 0.7])
    boxes = torch.cat([low, low + 20 + torch.rand(count, 2, generator=gen) * 100], dim=1)
    boxes = boxes.minimum(torch.tensor([width, height, width, height]).float())
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=gen)
    return tv_tensors.Image(image), make_target(boxes, torch.zeros(count, dtype=torch.int64),
                                                torch.zeros(count, dtype=torch.bool), height, width)


def median_ms(fn, repeat: int, device: torch.device) -> float:
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gen = torch.Generator().manual_seed(0)
    items = [sample(gen) for _ in range(args.batch)]
    cpu = DetectionTransform(args.size, "ssd")
    decode_only, collate = DecodeOnly(args.size), DeviceCollate(args.size, "ssd")
    raw = [decode_only(image, target) for image, target in items]
    batch = collate(raw)
    model = build_detector(detector_spec("tiny", args.size, 20)).to(device).train()
    images, targets = to_device(batch, device)
    with torch.no_grad():
        outputs, anchors = model.head_outputs(images)
    result = {
        "device": str(device), "batch": args.batch, "size": args.size,
        "cpu_per_image_augment_ms": median_ms(lambda: [cpu(im, t) for im, t in items], args.repeat, device),
        "device_path_worker_ms": median_ms(lambda: collate(raw), args.repeat, device),
        "device_path_augment_ms": median_ms(lambda: to_device(batch, device), args.repeat, device),
        "loss_ms": median_ms(lambda: model.losses(outputs, anchors, [dict(t) for t in targets]), args.repeat, device),
        "anchors": int(anchors.shape[0]), "boxes_per_image": round(sum(int((t["labels"] >= 0).sum()) for t in targets) / args.batch, 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
