"""Server settings, GPU counting, gunicorn options and hooks (no server is started here)."""

from __future__ import annotations

import os

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from smcv.serving import gunicorn_conf, server
from smcv.serving.gunicorn_conf import QuietPingLogger, SmcvApplication
from smcv.serving.worker import SmcvThreadWorker

SERVER_ENV = ("SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS",
              "SAGEMAKER_MODEL_SERVER_TIMEOUT", "MODEL_SERVER_TIMEOUT", "SAGEMAKER_MAX_PAYLOAD_IN_MB",
              "SMCV_SERVER_THREADS", "SMCV_MAX_BATCH_SIZE", "SMCV_MAX_BATCH_DELAY_MS", "SMCV_LOG_LEVEL",
              "SMCV_ACCESS_LOG", "SMCV_DEVICE", "SMCV_JPEG_DECODE", "SMCV_PREPARE_OVERLAP",
              "CUDA_VISIBLE_DEVICES")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in SERVER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    return monkeypatch


def test_cpu_defaults(clean_env, tmp_path):
    clean_env.setattr(server, "count_gpus", lambda: 0)
    settings = server.resolve_settings()
    assert (settings.port, settings.workers, settings.threads, settings.timeout_s) == (8080, 1, 128, 60.0)
    assert settings.concurrency == 8 and settings.read_timeout_s == 20.0
    assert settings.model_dir == tmp_path / "model" and settings.payload_mb == 6
    assert settings.max_batch_size is None and settings.max_delay_ms == 5.0


def test_gpu_defaults_and_overrides(clean_env):
    clean_env.setattr(server, "count_gpus", lambda: 4)
    assert (server.resolve_settings().workers, server.resolve_settings().concurrency) == (4, 16)
    clean_env.setenv("MODEL_SERVER_WORKERS", "2")
    clean_env.setenv("SAGEMAKER_BIND_TO_PORT", "9000")
    clean_env.setenv("MODEL_SERVER_TIMEOUT", "120")
    clean_env.setenv("SMCV_MAX_BATCH_SIZE", "3")
    clean_env.setenv("SMCV_LOG_LEVEL", "10")
    clean_env.setenv("SMCV_SERVER_THREADS", "12")
    clean_env.setenv("SMCV_READ_TIMEOUT_S", "3")
    settings = server.resolve_settings()
    assert (settings.workers, settings.port, settings.timeout_s, settings.threads) == (2, 9000, 120.0, 12)
    assert settings.concurrency == 6 and settings.read_timeout_s == 3.0
    assert settings.max_batch_size == 3 and settings.log_level == "debug"
    clean_env.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")  # the prefixed name wins
    assert server.resolve_settings().workers == 3


def test_bad_environment_exits_with_message(clean_env, capsys):
    clean_env.setenv("SAGEMAKER_BIND_TO_PORT", "eighty")
    with pytest.raises(SystemExit) as info:
        server.main([])
    assert info.value.code == 2 and "SAGEMAKER_BIND_TO_PORT" in capsys.readouterr().err


@pytest.mark.parametrize("name, value, named", [
    ("SAGEMAKER_BIND_TO_PORT", "99999", "SAGEMAKER_BIND_TO_PORT"),
    ("SMCV_LOG_LEVEL", "loud", "SMCV_LOG_LEVEL"),
    ("SMCV_LOG_LEVEL", "25", "SMCV_LOG_LEVEL"),
    ("SMCV_JPEG_DECODE", "gpu", "SMCV_JPEG_DECODE"),
    ("SMCV_PREPARE_OVERLAP", "yes", "SMCV_PREPARE_OVERLAP"),
])
def test_bad_port_or_log_level_is_one_line(clean_env, capsys, name, value, named):
    clean_env.setattr(server, "count_gpus", lambda: 0)
    clean_env.setenv(name, value)
    with pytest.raises(SystemExit) as info:
        server.main([])
    err = capsys.readouterr().err
    assert info.value.code == 2 and named in err and value in err and len(err.strip().splitlines()) == 1


def test_count_gpus(clean_env):
    clean_env.setattr(server, "_nvidia_smi_gpus", lambda: 4)
    assert server.count_gpus() == 4
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert server.count_gpus() == 2
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert server.count_gpus() == 0
    clean_env.setenv("CUDA_VISIBLE_DEVICES", "0")
    clean_env.setenv("SMCV_DEVICE", "cpu")
    assert server.count_gpus() == 0


def test_nvidia_smi_missing(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(subprocess, "run", missing)
    assert server._nvidia_smi_gpus() is None


def settings(**overrides) -> gunicorn_conf.ServerSettings:
    values = dict(port=8123, workers=2, threads=8, timeout_s=60.0, model_dir=Path("/tmp/m"), payload_mb=6,
                  max_batch_size=None, max_delay_ms=5.0)
    values.update(overrides)
    return gunicorn_conf.ServerSettings(**values)


def test_gunicorn_options_are_valid_for_the_installed_gunicorn():
    app = SmcvApplication(settings())
    cfg = app.cfg
    assert issubclass(cfg.worker_class, SmcvThreadWorker) and cfg.worker_class.read_timeout_s == 20.0
    assert cfg.threads == 8 and cfg.workers == 2 and cfg.post_worker_init is gunicorn_conf.post_worker_init
    assert cfg.bind == ["0.0.0.0:8123"] and cfg.timeout == 70 and not cfg.preload_app
    assert cfg.graceful_timeout < 30 and cfg.max_requests == 0
    assert cfg.logger_class is QuietPingLogger


def test_worker_slots_reuse_the_lowest_free_one():
    workers = {}
    arbiter = SimpleNamespace(WORKERS=workers)
    for pid in range(3):
        worker = SimpleNamespace()
        gunicorn_conf.pre_fork(arbiter, worker)
        workers[pid] = worker
    assert [w.smcv_slot for w in workers.values()] == [0, 1, 2]
    del workers[1]  # worker on GPU 1 died; its replacement takes GPU 1 again
    replacement = SimpleNamespace()
    gunicorn_conf.pre_fork(arbiter, replacement)
    assert replacement.smcv_slot == 1


def test_post_fork_passes_the_slot_to_the_model_holder(monkeypatch, tmp_path):
    monkeypatch.delenv("SMCV_WORKER_INDEX", raising=False)
    app = SimpleNamespace()
    gunicorn_conf.post_fork(None, SimpleNamespace(smcv_slot=5, app=app))
    assert app.worker_slot == 5 and "SMCV_WORKER_INDEX" not in os.environ  # passed, not published in the environment
    built = {}
    monkeypatch.setattr(gunicorn_conf, "ModelHolder", lambda *a, **kw: built.update(kw) or SimpleNamespace(start=lambda: None))
    monkeypatch.setattr(gunicorn_conf, "create_app", lambda holder, **kw: holder)
    application = gunicorn_conf.SmcvApplication.__new__(gunicorn_conf.SmcvApplication)
    application.settings, application.worker_slot = SimpleNamespace(
        model_dir=tmp_path, max_batch_size=None, max_delay_ms=5, timeout_s=1, workers=1, payload_mb=6, concurrency=4), 5
    application.load()
    assert built["worker_index"] == 5


def test_ping_is_not_access_logged(monkeypatch):
    calls = []
    monkeypatch.setattr(gunicorn_conf.Logger, "access", lambda self, *args: calls.append(args[2]["PATH_INFO"]))
    logger = QuietPingLogger.__new__(QuietPingLogger)
    logger.access(None, None, {"PATH_INFO": "/ping"}, None)
    logger.access(None, None, {"PATH_INFO": "/invocations"}, None)
    assert calls == ["/invocations"]
