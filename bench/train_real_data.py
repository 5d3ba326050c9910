"""Training throughput on real data as a ratio to the same model's synthetic ceiling, same process, same device.

The job runs through smcv's own code path (the task prepares the channels and builds the model, the engine's
Trainer trains with the job's settings and DataLoader). The ceiling is the same Trainer, model and batch size on
one batch already on the device, with no loader. --data is a folder laid out as shared/data's set for the task
(pneumoniamnist, bccd, dsb2018); without it a small synthetic set in that layout is written first.
Prints one JSON object. Usage: python bench/train_real_data.py --task segmentation --data ../shared/data/dsb2018
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import jobs, synthetic
from benchlib.device import describe, pick_device
from benchlib.output import emit, ratio
from benchlib.training import build_job, loader_throughput, synthetic_ceiling


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=jobs.TASKS, required=True)
    parser.add_argument("--data", type=Path, help="a shared/data-style folder; synthetic when omitted")
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--network", help="num_layers / base_network / encoder_name (default 50 / vgg-16 / resnet34)")
    parser.add_argument("--size", type=int, help="input side (default 224 / 300 / 512)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed epoch")
    parser.add_argument("--workers", type=int, help="DataLoader workers (default: the job's own choice)")
    parser.add_argument("--hp", nargs="*", default=[], help="more hyperparameters, name=value")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    device = pick_device(args.device)
    images = args.batch * args.steps
    with tempfile.TemporaryDirectory(prefix="smcv-bench-") as scratch:
        data = args.data or synthetic.write(args.task, Path(scratch), images)
        channels = jobs.channels(args.task, data)
        hp = jobs.job_hyperparameters(args.task, channels, args.batch, args.size, args.network,
                                      jobs.parse_overrides(args.hp))
        job = build_job(args.task, channels, hp, device, args.workers, images)
        real = loader_throughput(job, device)
        ceiling = synthetic_ceiling(job, device)
    emit("train_real_data", describe(device), task=args.task, data=str(args.data) if args.data else "synthetic",
         network=hp[jobs.NETWORK_PARAM[args.task]], image_size=args.size or jobs.DEFAULT_SIZE[args.task],
         batch=args.batch, steps=job.images_per_epoch // args.batch, workers=job.trainer.train_loader.num_workers,
         precision=job.precision, real_images_per_s=real, synthetic_images_per_s=ceiling,
         real_to_synthetic=ratio(real, ceiling))


if __name__ == "__main__":
    main()
