"""ModelHolder: device choice, environment settings, load/warm-up, inference."""

from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from smcv.errors import HTTPError
from smcv.serving import model_holder as predictor_module
from smcv.serving.model_holder import env_number, pick_device


def test_pick_device_cpu_and_override(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("SMCV_DEVICE", raising=False)
    assert pick_device(3) == torch.device("cpu")
    monkeypatch.setenv("SMCV_DEVICE", "cpu")
    assert pick_device(0) == torch.device("cpu")
    monkeypatch.setenv("SMCV_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match="SMCV_DEVICE"):
        pick_device(0)


def test_pick_device_spreads_workers_over_gpus(monkeypatch):
    monkeypatch.delenv("SMCV_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [pick_device(i) for i in range(3)] == [torch.device("cuda", 0), torch.device("cuda", 1), torch.device("cuda", 0)]
    monkeypatch.setenv("SMCV_DEVICE", "cuda:1")
    assert pick_device(0) == torch.device("cuda", 1)


def test_env_number(monkeypatch):
    monkeypatch.setenv("B", "12")
    assert env_number(("A", "B"), 5, int) == 12
    assert env_number("MISSING", 5.5) == 5.5
    monkeypatch.setenv("A", "lots")
    with pytest.raises(ValueError, match="A='lots'"):
        env_number(("A", "B"), 5, int)


def test_load_logs_and_warms_up(make_holder, caplog):
    with caplog.at_level(logging.INFO, logger="smcv.serving"):
        holder = make_holder(max_batch_size=3)
    assert holder.ready and holder.error is None
    assert holder.task_name == "fake" and holder.device == torch.device("cpu")
    assert holder.predictor.batch_sizes == [1, 3]  # warm-up at batch 1 and at the full batch
    assert holder.predictor.grad_enabled == [False, False]  # the warm-up records no autograd graph either
    assert any("model loaded in" in r.getMessage() and "task=fake" in r.getMessage() for r in caplog.records)


def test_load_failure_is_logged_once_and_kept(make_holder, caplog):
    with caplog.at_level(logging.ERROR, logger="smcv.serving"):
        holder = make_holder(manifest={"fail": "bad"})
    assert not holder.ready and "bad" in holder.error
    assert len([r for r in caplog.records if "failed to load" in r.getMessage()]) == 1
    with pytest.raises(HTTPError) as info:
        holder.check_ready()
    assert info.value.status == 500


def test_defaults_from_environment(make_holder, monkeypatch):
    monkeypatch.setenv("SMCV_MAX_BATCH_SIZE", "2")
    monkeypatch.setenv("SMCV_MAX_BATCH_DELAY_MS", "7")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", "9")
    holder = make_holder()
    assert (holder.max_batch_size, holder.max_delay_s, holder.timeout_s, holder.worker_index) == (2, 0.007, 9.0, 0)
    monkeypatch.delenv("SAGEMAKER_MODEL_SERVER_TIMEOUT")
    monkeypatch.setenv("MODEL_SERVER_TIMEOUT", "11")
    assert predictor_module.model_timeout_s() == 11.0


def test_infer_returns_body_and_type(make_holder):
    holder = make_holder()
    body, content_type = holder.infer(Image.new("RGB", (4, 4), (0, 255, 0)), "text/csv")
    assert content_type == "text/csv" and body.startswith(b"0.0000,1.0000,0.0000")
    body, content_type = holder.infer(Image.new("RGB", (4, 4)), None, custom_attributes="x=1")
    assert content_type == "application/json" and b'"x=1"' in body


def test_prepare_overlap_setting(monkeypatch):
    from smcv.serving.model_holder import prepare_overlap

    monkeypatch.delenv("SMCV_PREPARE_OVERLAP", raising=False)
    assert prepare_overlap(torch.device("cpu")) is False  # on a CPU both stages would share the same cores
    assert prepare_overlap(torch.device("cuda", 0)) is True
    monkeypatch.setenv("SMCV_PREPARE_OVERLAP", "on")
    assert prepare_overlap(torch.device("cpu")) is True
    monkeypatch.setenv("SMCV_PREPARE_OVERLAP", "OFF")
    assert prepare_overlap(torch.device("cuda", 0)) is False
    monkeypatch.setenv("SMCV_PREPARE_OVERLAP", "sometimes")
    with pytest.raises(ValueError, match="SMCV_PREPARE_OVERLAP='sometimes' is not one of auto, on, off"):
        prepare_overlap(torch.device("cpu"))


def test_an_overlapped_holder_answers_like_the_plain_one(make_holder):
    plain, overlapped = make_holder(), make_holder(overlap=True)
    assert not plain.batcher.overlapped and overlapped.batcher.overlapped
    for colour in [(0, 255, 0), (200, 40, 0), (10, 20, 30)]:
        image = Image.new("RGB", (6, 5), colour)
        assert overlapped.infer(image, "text/csv") == plain.infer(image, "text/csv")
