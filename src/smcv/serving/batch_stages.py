"""The two stages of one serving batch: prepare (decode kept JPEGs, resize, normalise on the device) and infer; the
batcher runs them in two threads on a GPU, so the next batch is prepared while the model runs the current one."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch

from smcv.serving import codecs
from smcv.serving.request_image import RequestImage, pixels_of
from smcv.task_api import Predictor


@dataclass
class PreparedBatch:
    """One batch ready for the model: `results` holds each item's error found while preparing (None for the others,
    whose rows of `batch` follow the order of `good`); `ready` is the event the model's stream waits for when the
    batch was prepared on a side CUDA stream."""

    results: list[Any]
    good: list[int]
    batch: Optional[torch.Tensor]
    metas: list[dict[str, Any]]
    ready: Optional[torch.cuda.Event] = None


@torch.inference_mode()
def prepare_batch(predictor: Predictor, items: Sequence[tuple[RequestImage, dict[str, Any]]], device: torch.device,
                  stream: Optional[torch.cuda.Stream] = None) -> PreparedBatch:
    """Decode, resize and normalise the (RequestImage, meta) items on `device` (queued on `stream` when given); an
    image the batched decode rejects gets its own 400 and leaves the batch."""
    with torch.cuda.stream(stream) if stream is not None else nullcontext():
        pixels = pixels_of([image for image, _ in items], device)
        results: list[Any] = [None] * len(items)
        good = []
        for number, (found, (image, _)) in enumerate(zip(pixels, items)):
            if isinstance(found, Exception):
                results[number] = codecs.image_error(found, image.jpeg or b"", "image/jpeg")
            else:
                good.append(number)
        batch = predictor.prepare([pixels[n] for n in good]) if good else None
        ready = None
        if stream is not None:
            ready = torch.cuda.Event()
            ready.record(stream)
    return PreparedBatch(results, good, batch, [items[n][1] for n in good], ready)


@torch.inference_mode()
def infer_prepared(predictor: Predictor, prepared: PreparedBatch) -> list[Any]:
    """Run the model on a prepared batch (after its preparation on another stream has finished); one result per item."""
    results = list(prepared.results)
    if prepared.batch is None:
        return results
    if prepared.ready is not None:
        current = torch.cuda.current_stream(prepared.batch.device)
        current.wait_event(prepared.ready)
        prepared.batch.record_stream(current)  # the allocator must not reuse it while this stream still reads it
    answers = predictor.predict_batch(prepared.batch, prepared.metas)
    for number, answer in zip(prepared.good, answers):
        results[number] = answer
    return results
