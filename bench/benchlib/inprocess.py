"""One request's work without the server: decode, preprocess, the model at batch 1, encode, timed per stage in
this process with the task's own Predictor on the bench device, through the server's own steps (request-thread
decode, then the batching thread's device decode of kept JPEGs, prepare, predict_batch)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchlib.device import synchronize
from smcv import artifact
from smcv.serving import codecs
from smcv.serving.request_image import pixels_of
from smcv.tasks import get_task

STAGES = ("decode", "preprocess", "model", "encode")


def stage_ms(model_dir: Path, body: bytes, content_type: str, device: torch.device, repeats: int,
             keep_jpeg: bool = False) -> dict[str, float]:
    """Median milliseconds of each stage over `repeats` runs (after one warm-up), and their sum as 'total';
    keep_jpeg: colour JPEGs decoded on the device (SMCV_JPEG_DECODE=device) rather than by Pillow."""
    manifest = artifact.load_manifest(model_dir)
    predictor = get_task(manifest["task"]).build_predictor(manifest, artifact.load_state_dict(model_dir), device)
    accept = predictor.response_types[0]
    mode, side = getattr(predictor, "image_mode", "RGB"), getattr(predictor, "input_side", None) or None
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for run in range(repeats + 1):
        marks = [time.perf_counter()]
        with torch.inference_mode():
            image = codecs.read_request_image(body, content_type, mode=mode, reduce_to=side, keep_jpeg=keep_jpeg)
            pixels = pixels_of([image], device)[0]
            synchronize(device)
            marks.append(time.perf_counter())
            meta = {**predictor.request_meta(image.size, image.original_size), "accept": accept}
            batch = predictor.prepare([pixels])
            synchronize(device)
            marks.append(time.perf_counter())
            result = predictor.predict_batch(batch, [meta])[0]
        synchronize(device)
        marks.append(time.perf_counter())
        predictor.encode(result, {**meta, "custom_attributes": None, "options": None}, accept)
        marks.append(time.perf_counter())
        if run:
            for stage, start, end in zip(STAGES, marks, marks[1:]):
                times[stage].append(1000 * (end - start))
    medians = {stage: statistics.median(values) for stage, values in times.items()}
    return {**medians, "total": sum(medians.values())}
