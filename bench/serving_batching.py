"""Serving throughput with dynamic batching vs one request at a time, same model, same process, same device.

Uses the per-worker ModelHolder (decode is done once up front; preprocess, batching, inference and JSON encoding are
measured; HTTP is not). Prints one JSON object.
Usage: python bench/serving_batching.py [--layers 50] [--size 224] [--clients 32] [--requests 512] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from smcv import artifact
from smcv.serving.model_holder import ModelHolder
from smcv.task_api import PreparedData
from smcv.tasks.classification import ClassificationTask


def make_model_dir(layers: int, size: int) -> Path:
    """A classification artifact with random weights (throughput does not depend on the values)."""
    task = ClassificationTask()
    hp = task.schema().resolve({"num_classes": "2", "num_training_samples": "1", "num_layers": str(layers),
                                "image_shape": f"3,{size},{size}"})
    data = PreparedData(None, None, class_names=["a", "b"])
    folder = Path(tempfile.mkdtemp(prefix="smcv-bench-"))
    manifest = {"task": task.name, "class_names": data.class_names, **task.manifest_fields(hp, data)}
    artifact.save_artifact(folder, task.build_model(hp, data, {}).state_dict(), manifest)
    return folder


def requests_per_s(holder: ModelHolder, image: Image.Image, clients: int, requests: int) -> float:
    def one(_i: int) -> bytes:
        return holder.infer(image, "application/json")[0]

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(clients * 2)))  # warm-up
        start = time.perf_counter()
        list(pool.map(one, range(requests)))
        return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    folder = make_model_dir(args.layers, args.size)
    image = Image.new("RGB", (640, 480), (120, 90, 60))
    results = {}
    for name, batch in (("batch1", 1), ("dynamic", args.batch)):
        holder = ModelHolder(folder, "cuda", max_batch_size=batch, max_delay_ms=2)
        holder.load()
        if holder.error:
            raise SystemExit(holder.error)
        results[name] = requests_per_s(holder, image, args.clients, args.requests)
        holder.close()
    print(json.dumps({"bench": "serving_batching", "device": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "model": f"resnet{args.layers}", "image_size": args.size, "clients": args.clients,
                      "requests": args.requests, "max_batch_size": args.batch,
                      "batch1_requests_per_s": round(results["batch1"], 1),
                      "dynamic_requests_per_s": round(results["dynamic"], 1),
                      "speedup": round(results["dynamic"] / results["batch1"], 2)}))


if __name__ == "__main__":
    main()
