"""Fixtures for serving tests: the fake task registered in smcv.tasks.TASKS, a fake model, a loaded app."""

from __future__ import annotations

from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parents[2] / "helpers"  # smcv_fake_task.py


@pytest.fixture
def fake_task(monkeypatch):
    """Register the fake task under the name 'fake'."""
    import smcv.tasks

    monkeypatch.syspath_prepend(str(HELPERS))
    monkeypatch.setitem(smcv.tasks.TASKS, "fake", "smcv_fake_task:FakeTask")
    import smcv_fake_task

    return smcv_fake_task


@pytest.fixture
def make_holder(fake_task, tmp_path):
    """A factory of loaded ModelHolders for the fake model (manifest extras as keyword arguments)."""
    from smcv.serving.model_holder import ModelHolder

    holders = []

    def make(load: bool = True, manifest: dict | None = None, **holder_kwargs) -> ModelHolder:
        model_dir = fake_task.write_model(tmp_path / f"model{len(holders)}", **(manifest or {}))
        holder_kwargs.setdefault("device", "cpu")
        holder = ModelHolder(model_dir, **holder_kwargs)
        holders.append(holder)
        if load:
            holder.load()
        return holder

    yield make
    for holder in holders:
        holder.close()
