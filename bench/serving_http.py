"""Serving throughput and p50/p99 latency through HTTP to a real smcv server on 127.0.0.1, with dynamic batching
vs batch-1 serving (SMCV_MAX_BATCH_SIZE=1, SMCV_MAX_BATCH_DELAY_MS=0) in the same run, per task, at several
concurrencies; and the server overhead at concurrency 1: request latency minus the same request's work
(decode, preprocess, model, encode) measured in this process with the task's Predictor on the same device.

Models are random-weight artifacts made as a job saves them (bench networks: ResNet-50 224 px, SSD300-VGG16,
UNet-ResNet34 512 px; --network/--size change them). Bodies: a 640x480 JPEG (IC, OD) or PNG (SS). Every load is
bounded by --requests and --seconds; the servers listen on loopback only and are killed at the end.
--jpeg-decode pil device adds, per mode, a batching server with SMCV_JPEG_DECODE set to it and the in-process
stages with that decode (JPEG bodies: Pillow in the request threads vs the batched torchvision/nvJPEG decode on the
device), to compare the two on a GPU. --prepare-overlap on off adds, per value, a batching server with
SMCV_PREPARE_OVERLAP set to it (batched_overlap_<value>: the next batch decoded and prepared while the model runs the
current one, or both stages in one thread).
Prints one JSON object. Usage: python bench/serving_http.py [--tasks classification] [--concurrency 1 16 64]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchlib import jobs
from benchlib.device import describe, pick_device
from benchlib.inprocess import stage_ms
from benchlib.load import LoadResult, run_load
from benchlib.models import make_model_dir
from benchlib.output import emit, ratio
from benchlib.payloads import body
from benchlib.server import serving

BATCH_ONE = {"SMCV_MAX_BATCH_SIZE": "1", "SMCV_MAX_BATCH_DELAY_MS": "0"}
#: where JPEG bodies are decoded: Pillow in the request threads, or batched on the device (SMCV_JPEG_DECODE)
JPEG_DECODE_MODES = ("pil", "device")
#: whether the batching server prepares the next batch while the model runs (SMCV_PREPARE_OVERLAP)
PREPARE_OVERLAP_MODES = ("on", "off")


def per_task(items: list[str], kind: type = str) -> dict[str, object]:
    """`task=value` command-line items as {task: value}."""
    pairs = dict(item.split("=", 1) for item in items)
    unknown = set(pairs) - set(jobs.TASKS)
    if unknown:
        raise SystemExit(f"unknown task(s) {sorted(unknown)}; use {', '.join(jobs.TASKS)}")
    return {task: kind(value) for task, value in pairs.items()}


def task_hps(items: list[str]) -> dict[str, dict[str, str]]:
    """`task:name=value` command-line items as {task: {name: value}}."""
    found: dict[str, dict[str, str]] = {}
    for item in items:
        task, _, assignment = item.partition(":")
        found.setdefault(task, {}).update(jobs.parse_overrides([assignment]))
    return found


def arguments() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=jobs.TASKS, default=list(jobs.TASKS))
    parser.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 16, 64])
    parser.add_argument("--requests", type=int, default=3000, help="most requests per load level")
    parser.add_argument("--seconds", type=float, default=15.0, help="longest time per load level")
    parser.add_argument("--max-batch", type=int, help="SMCV_MAX_BATCH_SIZE of the batching server (default: its own)")
    parser.add_argument("--delay-ms", type=float, help="SMCV_MAX_BATCH_DELAY_MS of the batching server")
    parser.add_argument("--network", nargs="*", default=[], help="task=value (num_layers/base_network/encoder_name)")
    parser.add_argument("--size", nargs="*", default=[], help="task=input side")
    parser.add_argument("--hp", nargs="*", default=[], help="task:name=value, more hyperparameters of a model")
    parser.add_argument("--image", default="640x480", help="request image WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=30, help="in-process runs for the model time")
    parser.add_argument("--client-processes", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)))
    parser.add_argument("--jpeg-decode", nargs="*", default=[], choices=JPEG_DECODE_MODES,
                        help="also run a batching server per SMCV_JPEG_DECODE mode (batched_jpeg_<mode>)")
    parser.add_argument("--prepare-overlap", nargs="*", default=[], choices=PREPARE_OVERLAP_MODES,
                        help="also run a batching server per SMCV_PREPARE_OVERLAP value (batched_overlap_<value>)")
    return parser.parse_args()


def level(result: LoadResult) -> dict[str, float]:
    """One load level's figures."""
    return {"images_per_s": round(result.per_s, 1), "p50_ms": round(result.percentile_ms(50), 2),
            "p99_ms": round(result.percentile_ms(99), 2), "requests": len(result.latencies), "errors": result.errors}


def loads(url: str, payload: bytes, content_type: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Every concurrency level against one server."""
    return {f"c{c}": level(run_load(url, payload, content_type, c, args.requests, args.seconds, args.client_processes))
            for c in args.concurrency}


def main() -> None:
    args = arguments()
    device = pick_device(args.device)
    width, height = (int(v) for v in args.image.lower().split("x"))
    networks, sizes, hps = per_task(args.network), per_task(args.size, int), task_hps(args.hp)
    batched_env = {k: str(v) for k, v in (("SMCV_MAX_BATCH_SIZE", args.max_batch),
                                          ("SMCV_MAX_BATCH_DELAY_MS", args.delay_ms)) if v is not None}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="smcv-bench-") as scratch:
        bodies, folders = {}, {}
        for task in args.tasks:  # every HTTP load before CUDA is used here: the load clients are forked
            base = Path(scratch) / task
            folders[task] = make_model_dir(task, base / "model", networks.get(task), sizes.get(task), hps.get(task))
            bodies[task] = body(task, width, height)
            found = {"body": bodies[task][1], "body_bytes": len(bodies[task][0])}
            servers = [("batched", batched_env), ("batch1", BATCH_ONE),
                       *((f"batched_jpeg_{mode}", {**batched_env, "SMCV_JPEG_DECODE": mode}) for mode in args.jpeg_decode),
                       *((f"batched_overlap_{mode}", {**batched_env, "SMCV_PREPARE_OVERLAP": mode})
                         for mode in args.prepare_overlap)]
            for name, env in servers:
                with serving(base, str(device), env) as url:
                    found[name] = loads(url, *bodies[task], args)
            results[task] = found
        for task in args.tasks:
            stages = {k: round(v, 2) for k, v in stage_ms(folders[task], *bodies[task], device, args.repeats).items()}
            found, top, c1 = results[task], f"c{max(args.concurrency)}", f"c{min(args.concurrency)}"
            found["inprocess_ms"] = stages
            for mode in args.jpeg_decode:
                found[f"inprocess_ms_jpeg_{mode}"] = {
                    k: round(v, 2) for k, v in stage_ms(folders[task], *bodies[task], device, args.repeats,
                                                        keep_jpeg=mode == "device").items()}
            found[f"batched_to_batch1_{top}"] = ratio(found["batched"][top]["images_per_s"],
                                                       found["batch1"][top]["images_per_s"])
            found[f"server_overhead_ms_{c1}"] = round(found["batch1"][c1]["p50_ms"] - stages["total"], 2)
            found[f"batched_server_overhead_ms_{c1}"] = round(found["batched"][c1]["p50_ms"] - stages["total"], 2)
            found["pre_post_to_model"] = ratio(stages["decode"] + stages["preprocess"] + stages["encode"],
                                               stages["model"])
    emit("serving_http", describe(device), image=args.image, concurrency=args.concurrency,
         requests_per_level=args.requests, seconds_per_level=args.seconds, max_batch=args.max_batch,
         networks={t: networks.get(t, jobs.DEFAULT_NETWORK[t]) for t in args.tasks},
         sizes={t: sizes.get(t, jobs.DEFAULT_SIZE[t]) for t in args.tasks}, tasks=results)


if __name__ == "__main__":
    main()
