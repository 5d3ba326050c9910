"""A tiny stand-in task for serving tests: the 'model' returns each image's per-channel mean."""

from __future__ import annotations

import json
import os
import threading
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from smcv.serving.prepare import Placement
from smcv.task_api import Predictor

TASK_NAME = "fake"
TASK_ENTRY = "smcv_fake_task:FakeTask"


class FakePredictor(Predictor):
    """Per-channel means in 0-1 (prepare resizes to input_size); a pure red image is poison (predict_batch raises);
    records batch sizes."""

    response_types = ("application/json", "application/json;annotation=1", "text/csv")

    def __init__(self, manifest: dict[str, Any], device: torch.device) -> None:
        self.size = int(manifest.get("input_size", 8))
        self.input_side = int(manifest.get("input_side", 0))
        self.delay_s = float(manifest.get("delay_s", 0.0))
        self.device = device
        self.batch_sizes: list[int] = []
        self.grad_enabled: list[bool] = []  # autograd state of each predict_batch call (serving runs without it)
        self.lock = threading.Lock()

    def placement(self, height: int, width: int) -> Placement:
        return Placement((self.size, self.size), (self.size, self.size))

    def predict_batch(self, batch: torch.Tensor, metas: Sequence[dict[str, Any]]) -> list[Any]:
        with self.lock:
            self.batch_sizes.append(int(batch.shape[0]))
            self.grad_enabled.append(torch.is_grad_enabled())
        if self.delay_s:
            time.sleep(self.delay_s)
        means = batch.mean(dim=(2, 3))
        if any(m[0] > 0.99 and m[1] < 0.01 and m[2] < 0.01 for m in means.tolist()):
            raise RuntimeError("poison image in batch")
        return [m.cpu().tolist() for m in means]

    def encode(self, result: Any, meta: dict[str, Any], accept: str) -> bytes:
        if accept == "text/csv":
            return (",".join(f"{v:.4f}" for v in result) + "\n").encode()
        body: dict[str, Any] = {"mean": result}
        if accept.endswith("annotation=1"):
            body["annotation"] = {"width": meta["width"], "height": meta["height"]}
        if meta.get("custom_attributes"):
            body["custom_attributes"] = meta["custom_attributes"]
        return json.dumps(body).encode()


class FakeTask:
    """Only what serving uses of a task: build_predictor."""

    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> FakePredictor:
        if manifest.get("fail"):
            raise RuntimeError("fake model refuses to load: " + str(manifest["fail"]))
        if "weight" not in state_dict:
            raise RuntimeError("state dict lacks 'weight'")
        # a slow load, longer for each worker of one server that loads (1st: 1x, 2nd: 2x, ...), to open readiness races
        delay = float(manifest.get("load_delay_s", 0.0))
        if delay:
            time.sleep(delay * (1 + _load_order()))
        return FakePredictor(manifest, device)


def _load_order() -> int:
    """How many workers of this gunicorn master (the parent process) started loading before this one."""
    claims = Path(tempfile.gettempdir()) / f"smcv-fake-loads-{os.getppid()}"
    claims.mkdir(exist_ok=True)
    for order in range(1000):
        try:
            (claims / str(order)).touch(exist_ok=False)
            return order
        except FileExistsError:
            continue
    return 1000


def write_model(model_dir: Path, **manifest: Any) -> Path:
    """Write manifest.json and model.pt for the fake task."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "manifest.json").write_text(json.dumps({"task": TASK_NAME, **manifest}))
    torch.save({"weight": torch.zeros(1)}, model_dir / "model.pt")
    return model_dir


def image_bytes(color: tuple[int, int, int] = (10, 20, 30), size: tuple[int, int] = (16, 12), fmt: str = "PNG") -> bytes:
    """An encoded solid-colour image."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()
