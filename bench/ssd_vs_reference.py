"""SSD300-VGG16 training throughput of smcv vs a torchvision reference-style loop, same device, same data.

Reference (benchlib/ssd_reference.py): PIL decode and SSD augmentation per image in the DataLoader workers,
torchvision's ssd300_vgg16 (per-image anchor matching, per-image resize and normalisation), FP32, TF32 off.
smcv: the detection task and the engine's Trainer as a job runs them (base_network=vgg-16, augmentation=ssd).
--data is a bccd-style folder (trainval/JPEGImages + Annotations); synthetic in that layout when omitted.
Prints one JSON object. Usage: python bench/ssd_vs_reference.py --data ../shared/data/bccd --batch 32 --workers 12
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import jobs, synthetic
from benchlib.device import describe, pick_device
from benchlib.output import emit, ratio
from benchlib.ssd_reference import reference_throughput
from benchlib.training import build_job, loader_throughput


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a bccd-style folder; synthetic when omitted")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=7, help="training steps per timed epoch")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers, both loops")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    device = pick_device(args.device)
    images = args.batch * args.steps
    with tempfile.TemporaryDirectory(prefix="smcv-bench-") as scratch:
        data = args.data or synthetic.detection(Path(scratch), images)
        channels = jobs.channels("detection", data)
        reference = reference_throughput(channels["train"], args.batch, args.steps, args.workers, device)
        hp = jobs.job_hyperparameters("detection", channels, args.batch, 300, "vgg-16", {"augmentation": "ssd"})
        job = build_job("detection", channels, hp, device, args.workers, images)
        smcv = loader_throughput(job, device)
    emit("ssd_vs_reference", describe(device), data=str(args.data) if args.data else "synthetic",
         model="ssd300_vgg16", batch=args.batch, steps=args.steps, workers=args.workers,
         reference_fp32_images_per_s=reference, smcv_images_per_s=smcv, smcv_precision=job.precision,
         speedup=ratio(smcv, reference))


if __name__ == "__main__":
    main()
