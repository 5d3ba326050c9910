"""A predictor run in this process on decoded images, the way the batcher runs it (local predict, benches, tests)."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from PIL import Image

from smcv.data.images import normalise_mode
from smcv.serving.request_image import from_pil
from smcv.task_api import Predictor


def predict(predictor: Predictor, images: Sequence[Image.Image], accept: str) -> list[tuple[Any, dict[str, Any]]]:
    """(result, meta) per image, all in one batch; meta as the server builds it for encode (accept included)."""
    requests = [from_pil(normalise_mode(image, predictor.image_mode)) for image in images]
    metas = [{**predictor.request_meta(r.size, r.original_size), "accept": accept} for r in requests]
    with torch.inference_mode():
        results = predictor.predict_images([r.pixels for r in requests], metas)
    return list(zip(results, metas))


def answer(predictor: Predictor, image: Image.Image, accept: str, **meta: Any) -> bytes:
    """One image's response body in `accept` (extra meta such as options or custom_attributes as keywords)."""
    result, found = predict(predictor, [image], accept)[0]
    return predictor.encode(result, {**found, **meta}, accept)
