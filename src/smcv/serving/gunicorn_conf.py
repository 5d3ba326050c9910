"""Gunicorn glue: options from resolved settings, worker hooks, a quiet access log, the embedded application."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from smcv.serving.app import HOLDER_EXTENSION, create_app
from smcv.serving.model_holder import ModelHolder
from smcv.serving.worker import worker_class
from smcv.threads import apply_torch_threads

#: SageMaker sends SIGKILL this long after SIGTERM; gunicorn must finish draining before
SIGKILL_GRACE_S = 30
#: extra seconds gunicorn's worker timeout gets above the per-request deadline
WORKER_TIMEOUT_MARGIN_S = 10


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server needs, resolved once in the master from the environment."""

    port: int
    workers: int
    threads: int  # gthread threads per worker: connections read and answered at once
    timeout_s: float
    model_dir: Path
    payload_mb: int
    max_batch_size: Optional[int]  # None: the worker picks by device (8 GPU, 4 CPU)
    max_delay_ms: float
    log_level: str = "info"
    access_log: bool = True
    concurrency: int = 8  # requests per worker decoded and inferred at once (2 x max batch size)
    read_timeout_s: float = 20.0  # a client sends one request's header and body within this, or is dropped


class QuietPingLogger(Logger):
    """Gunicorn's logger without access-log lines for GET /ping (SageMaker pings every few seconds)."""

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if environ.get("PATH_INFO") == "/ping":
            return
        super().access(resp, req, environ, request_time)


def pre_fork(server: Any, worker: Any) -> None:
    """In the master: give the new worker the lowest slot no living worker holds (its GPU is slot mod n)."""
    taken = {getattr(other, "smcv_slot", None) for other in server.WORKERS.values()}
    worker.smcv_slot = next(slot for slot in range(len(taken) + 1) if slot not in taken)


def post_fork(server: Any, worker: Any) -> None:
    """In the worker: hand its slot to the application, which passes it to the model holder (GPU = slot mod n)."""
    worker.app.worker_slot = getattr(worker, "smcv_slot", 0)


def post_worker_init(worker: Any) -> None:
    """In the worker, before it accepts connections: wait for its model, so that it never answers 503 for loading.

    Connections meanwhile wait in the listen backlog or go to workers that are ready; the heartbeat keeps the
    master from taking a long load for a hung worker. A load that fails leaves the error for /ping to report.
    """
    holder = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get(HOLDER_EXTENSION)
    if holder is None:
        return
    while worker.alive and holder.error is None and not holder.wait(timeout=1.0):
        worker.notify()


def gunicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """Gunicorn settings: gthread workers with a read deadline, no preload (no CUDA before fork), no recycling."""
    options: dict[str, Any] = {
        "bind": f"0.0.0.0:{settings.port}",
        "workers": settings.workers,
        "worker_class": worker_class(settings.read_timeout_s),
        "threads": settings.threads,
        "timeout": int(settings.timeout_s) + WORKER_TIMEOUT_MARGIN_S,
        "graceful_timeout": SIGKILL_GRACE_S - 5,
        "keepalive": 5,
        "preload_app": False,
        "max_requests": 0,
        "loglevel": settings.log_level,
        "errorlog": "-",
        "accesslog": "-" if settings.access_log else None,
        "logger_class": QuietPingLogger,
        "pre_fork": pre_fork,
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "proc_name": "smcv-serve",
        "control_socket_disable": True,  # gunicorn >= 25.1 opens a control socket in $HOME otherwise
    }
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        options["worker_tmp_dir"] = "/dev/shm"  # heartbeat files off the (possibly slow) container disk
    return options


def build_worker_app(settings: ServerSettings, worker_index: int = 0) -> Any:
    """In a worker: start loading the model in the background (post_worker_init waits for it), return the app."""
    apply_torch_threads()  # OMP_NUM_THREADS, which the master set from the CPUs and the worker count
    holder = ModelHolder(settings.model_dir, worker_index=worker_index, max_batch_size=settings.max_batch_size,
                         max_delay_ms=settings.max_delay_ms, timeout_s=settings.timeout_s).start()
    return create_app(holder, workers=settings.workers, payload_mb=settings.payload_mb,
                      concurrency=settings.concurrency)


class SmcvApplication(BaseApplication):
    """Gunicorn run in-process with options from ServerSettings; the app is built in each worker."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        for name, value in gunicorn_options(self.settings).items():
            if name in self.cfg.settings:  # older gunicorn lacks some settings (control socket)
                self.cfg.set(name, value)

    def load(self) -> Any:
        return build_worker_app(self.settings, getattr(self, "worker_slot", 0))
