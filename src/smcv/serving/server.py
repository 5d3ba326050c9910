"""`serve`: run the model server (gunicorn, gthread workers) the way SageMaker hosting expects.

Environment variables (SageMaker's names first; both spellings of the DLC conventions accepted):

| Variable                                          | Default                         | Meaning |
|---------------------------------------------------|---------------------------------|---------|
| SAGEMAKER_BIND_TO_PORT                            | 8080                            | port to listen on (0.0.0.0) |
| SAGEMAKER_MODEL_SERVER_WORKERS / MODEL_SERVER_WORKERS | GPUs visible, else 1         | worker processes; each loads its own model copy |
| SAGEMAKER_MODEL_SERVER_TIMEOUT / MODEL_SERVER_TIMEOUT | 60                           | seconds a request may wait for its result (then 503); gunicorn's worker timeout is 10 s more |
| SAGEMAKER_MAX_PAYLOAD_IN_MB                       | 6                               | request body limit (413 above it); 0 means 100 |
| SMCV_MAX_IMAGE_PIXELS                             | 50000000                        | largest image (width x height) decoded; 413 above it, checked from the header |
| SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT              | the task's first response type  | response type for a missing or */* Accept, when the task offers it |
| SAGEMAKER_BASE_DIR                                | /opt/ml                         | the model is read from $SAGEMAKER_BASE_DIR/model |
| SMCV_DEVICE                                       | cuda:(worker mod GPUs), else cpu | force a device (cpu, cuda, cuda:1) |
| SMCV_SERVER_THREADS                               | 128                             | gthread threads per worker: connections read and answered at once |
| SMCV_READ_TIMEOUT_S                               | 20                              | seconds a client has to send a request's header and body (then 408 or closed) |
| SMCV_MAX_BATCH_SIZE                               | 8 on GPU, 4 on CPU              | largest dynamic batch per worker |
| SMCV_MAX_BATCH_DELAY_MS                           | 5                               | how long a batch waits for more requests |
| SMCV_LOG_LEVEL                                    | info                            | log level (name or number, e.g. 20) |
| SMCV_ACCESS_LOG                                   | 1                               | 0 turns gunicorn's access log off (/ping is never logged) |
| OMP_NUM_THREADS                                   | CPUs / workers                  | intra-op threads per worker (torch.set_num_threads too), kept when set |

Why these defaults: one worker per GPU, because every worker holds a model copy (memory multiplies) and
dynamic batching, not more processes, is what fills a GPU. On CPU one worker whose batches use all cores
(OMP_NUM_THREADS = CPUs) keeps a single model copy in memory. Threads are for connections: a client that
stalls mid-request holds one only until the read deadline, and 128 of them leave room for 100 stalled clients
while valid requests are answered. At most twice the batch size of a worker's requests are decoded and inferred
at once (one batch fills while the previous one runs), which bounds memory however many connections are open.
Each worker loads its model before it accepts connections (post_worker_init), so /ping 200 means it serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from smcv.contract import (ENV_ACCESS_LOG, ENV_BIND_TO_PORT, ENV_DEVICE, ENV_LOG_LEVEL, ENV_MAX_BATCH_DELAY_MS,
                           ENV_MAX_BATCH_SIZE, ENV_READ_TIMEOUT, ENV_SERVER_THREADS, ENV_WORKERS, Paths,
                           jpeg_decode_setting)
from smcv.data.images import max_image_pixels
from smcv.errors import ConfigError
from smcv.serving.app import max_payload_mb
from smcv.serving.gunicorn_conf import ServerSettings, SmcvApplication
from smcv.serving.model_holder import DEFAULT_MAX_DELAY_MS, env_number, model_timeout_s, prepare_overlap_setting
from smcv.threads import export_threads

logger = logging.getLogger("smcv.serving")

DEFAULT_PORT = 8080
DEFAULT_THREADS = 128
DEFAULT_READ_TIMEOUT_S = 20.0
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # gunicorn's names


def count_gpus() -> int:
    """GPUs the workers will see, found without initialising CUDA in this (master) process."""
    if os.environ.get(ENV_DEVICE, "").strip().lower().startswith("cpu"):
        return 0
    found = _nvidia_smi_gpus()
    if found is None:
        proc = Path("/proc/driver/nvidia/gpus")
        found = len(list(proc.iterdir())) if proc.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and found:
        ids = []
        for item in (v.strip() for v in visible.split(",")):
            if not item or item.startswith("-"):
                break  # CUDA stops at the first invalid entry
            ids.append(item)
        found = min(found, len(ids))
    return found


def _nvidia_smi_gpus() -> Optional[int]:
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))


def resolve_settings(args: Optional[argparse.Namespace] = None) -> ServerSettings:
    """Server settings from the command line, then the environment, then the defaults (see the table above)."""
    gpus = count_gpus()
    port = (args and args.port) or env_number(ENV_BIND_TO_PORT, DEFAULT_PORT, int)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535; fix --port or {ENV_BIND_TO_PORT}")
    workers = (args and args.workers) or env_number(ENV_WORKERS, 0, int) or max(gpus, 1)
    batch = env_number(ENV_MAX_BATCH_SIZE, 0, int) or None
    concurrency = max(4, 2 * (batch or (8 if gpus else 4)))
    threads = env_number(ENV_SERVER_THREADS, 0, int) or max(DEFAULT_THREADS, concurrency)
    model_dir = Path(args.model_dir) if args and args.model_dir else Paths.from_env().model_dir

    max_image_pixels()  # a bad value stops `serve` here with one line, not each worker at boot
    jpeg_decode_setting()  # likewise
    prepare_overlap_setting()  # likewise
    return ServerSettings(
        port=port, workers=workers, threads=threads, timeout_s=model_timeout_s(), model_dir=model_dir,
        payload_mb=max_payload_mb(), max_batch_size=batch,
        max_delay_ms=env_number(ENV_MAX_BATCH_DELAY_MS, DEFAULT_MAX_DELAY_MS),
        log_level=_log_level(), access_log=os.environ.get(ENV_ACCESS_LOG, "1").strip().lower() not in ("0", "false", "no"),
        concurrency=concurrency, read_timeout_s=env_number(ENV_READ_TIMEOUT, DEFAULT_READ_TIMEOUT_S) or DEFAULT_READ_TIMEOUT_S)


def _log_level() -> str:
    raw = os.environ.get(ENV_LOG_LEVEL, "info").strip() or "info"
    level = logging.getLevelName(int(raw)).lower() if raw.isdigit() else raw.lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"{ENV_LOG_LEVEL}={raw!r} is not a log level; use one of {', '.join(LOG_LEVELS)} "
                         "(or 10, 20, 30, 40, 50)")
    return level


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description="Serve an smcv model for SageMaker hosting (see the env table in smcv.serving.server).")
    parser.add_argument("command", nargs="?", choices=["serve"], help="ignored; SageMaker runs the image with 'serve'")
    parser.add_argument("--port", type=int, help=f"overrides {ENV_BIND_TO_PORT}")
    parser.add_argument("--workers", type=int, help=f"overrides {ENV_WORKERS[0]}")
    parser.add_argument("--model-dir", help="overrides $SAGEMAKER_BASE_DIR/model")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Resolve settings, prepare the environment for the workers, and run gunicorn until SIGTERM."""
    args = _parse_args(argv)
    try:
        settings = resolve_settings(args)
    except (ValueError, ConfigError) as exc:
        print(f"serve: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr, datefmt="%Y-%m-%d %H:%M:%S %z",
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")  # like gunicorn's
    export_threads(settings.workers, "worker")  # before fork: every worker inherits OMP_NUM_THREADS
    if not (settings.model_dir / "manifest.json").exists():
        logger.warning("no manifest.json in %s yet; workers will report the load error on /ping", settings.model_dir)
    logger.info("starting %d gthread worker(s) x %d threads (%d requests inferred at once, read timeout %g s) on "
                "port %d, model %s, timeout %g s, max payload %d MB", settings.workers, settings.threads,
                settings.concurrency, settings.read_timeout_s, settings.port, settings.model_dir, settings.timeout_s,
                settings.payload_mb)

    SmcvApplication(settings).run()


if __name__ == "__main__":
    main()
