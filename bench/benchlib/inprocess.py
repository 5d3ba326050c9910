"""One request's work without the server: decode, preprocess, the model at batch 1, encode, timed per stage in
this process with the task's own Predictor on the bench device."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchlib.device import synchronize
from smcv import artifact
from smcv.serving import codecs
from smcv.tasks import get_task

STAGES = ("decode", "preprocess", "model", "encode")


def stage_ms(model_dir: Path, body: bytes, content_type: str, device: torch.device, repeats: int) -> dict[str, float]:
    """Median milliseconds of each stage over `repeats` runs (after one warm-up), and their sum as 'total'."""
    manifest = artifact.load_manifest(model_dir)
    predictor = get_task(manifest["task"]).build_predictor(manifest, artifact.load_state_dict(model_dir), device)
    accept = predictor.response_types[0]
    mode, side = getattr(predictor, "image_mode", "RGB"), getattr(predictor, "input_side", None) or None
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for run in range(repeats + 1):
        marks = [time.perf_counter()]
        image = codecs.decode_request_image(body, content_type, mode=mode, reduce_to=side)
        marks.append(time.perf_counter())
        tensor, meta = predictor.preprocess(image)
        marks.append(time.perf_counter())
        with torch.inference_mode():
            result = predictor.predict_batch(tensor.unsqueeze(0).to(device))[0]
        synchronize(device)
        marks.append(time.perf_counter())
        predictor.encode(result, {**meta, "custom_attributes": None, "options": None}, accept)
        marks.append(time.perf_counter())
        if run:
            for stage, start, end in zip(STAGES, marks, marks[1:]):
                times[stage].append(1000 * (end - start))
    medians = {stage: statistics.median(values) for stage, values in times.items()}
    return {**medians, "total": sum(medians.values())}
