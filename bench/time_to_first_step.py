"""Time from process start to the first training step of `python -m smcv.train` on a small fake /opt/ml, as a ratio
to a reference process that only imports torch, both started from this process.

The job runs through benchlib.first_step (smcv.train unchanged, plus a global optimizer hook that prints a line
after the first step); the first `progress` line (after 10 steps) is noted too. The job is killed once both are
seen (or at the first step with --no-progress-line).
Data: --data (a pneumoniamnist-style folder) or a synthetic one in that layout.
Prints one JSON object. Usage: python bench/time_to_first_step.py [--network 50 --size 224 --batch 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from benchlib import jobs, synthetic
from benchlib.first_step import MARKER
from benchlib.opt_ml import write_opt_ml
from benchlib.output import emit, ratio
from benchlib.process_lines import seconds_to_lines

BENCH_DIR = Path(__file__).resolve().parent
SRC = BENCH_DIR.parent / "src"


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a pneumoniamnist-style folder; synthetic when omitted")
    parser.add_argument("--device", help="cpu forces SMCV_DEVICE=cpu (default: the job's own choice)")
    parser.add_argument("--network", default="50", help="num_layers")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--no-progress-line", action="store_true", help="stop at the first step")
    parser.add_argument("--timeout", type=float, default=600, help="longest wait for the job, seconds")
    return parser.parse_args()


def job_env(base: Path, device: Optional[str]) -> dict[str, str]:
    """The training process's environment: the fake /opt/ml, classification, one process (no torchrun relaunch,
    whose children would not print the first-step line), bench/ and src/ importable."""
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SMCV_TASK="classification", PYTHONUNBUFFERED="1",
               SMCV_NPROC_PER_NODE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH_DIR), str(SRC), os.environ.get("PYTHONPATH")])))
    if device == "cpu":
        env["SMCV_DEVICE"] = "cpu"
    return env


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="smcv-bench-") as scratch:
        data = args.data or synthetic.classification(Path(scratch) / "data", args.batch * 12)
        channels = jobs.channels("classification", data)
        hp = jobs.job_hyperparameters("classification", channels, args.batch, args.size, args.network,
                                      {"epochs": "1", "log_interval_seconds": "1", "tensorboard": "0"})
        base = write_opt_ml(Path(scratch) / "opt_ml", hp, channels)
        env = job_env(base, args.device)
        reference, _ = seconds_to_lines([sys.executable, "-c", "import torch; print('imported', flush=True)"], env,
                                        {"imported": lambda line: line.startswith("imported")}, args.timeout)
        wanted = {"first_step": lambda line: line.startswith(MARKER)}
        if not args.no_progress_line:
            wanted["first_progress_line"] = lambda line: line.startswith("progress ")
        found, lines = seconds_to_lines([sys.executable, "-m", "benchlib.first_step"], env, wanted, args.timeout)
    if "first_step" not in found:
        raise SystemExit("no training step within the timeout; the job's output:\n" + "".join(lines[-40:]))
    device = next((line.split(" on ", 1)[1].split(" ", 1)[0] for line in lines if "smcv.train: task " in line), "?")
    emit("time_to_first_step", device, model=f"resnet{args.network}", image_size=args.size, batch=args.batch,
         data=str(args.data) if args.data else "synthetic", import_torch_s=reference.get("imported", 0.0),
         first_step_s=found["first_step"], first_progress_line_s=found.get("first_progress_line"),
         first_step_to_import_torch=ratio(found["first_step"], reference.get("imported", 0.0)))


if __name__ == "__main__":
    main()
