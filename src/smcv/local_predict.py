"""Predict one image file with a model directory, in-process (no server), through the serving codecs."""

from __future__ import annotations

from pathlib import Path

import torch

from smcv import artifact
from smcv.data.images import decode_image
from smcv.tasks import get_task


def predict_file(model_dir: Path, image_path: Path, accept: str = "") -> tuple[bytes, str]:
    """(body, content type) for one image, as /invocations would answer."""
    manifest = artifact.load_manifest(model_dir)
    predictor = get_task(manifest["task"]).build_predictor(manifest, artifact.load_state_dict(model_dir), torch.device("cpu"))
    accept = accept or predictor.response_types[0]
    if accept not in predictor.response_types:
        raise SystemExit(f"accept {accept!r} is not offered; use one of {', '.join(predictor.response_types)}")
    tensor, meta = predictor.preprocess(decode_image(image_path.read_bytes(), str(image_path)))
    result = predictor.predict_batch(tensor.unsqueeze(0))[0]
    return predictor.encode(result, meta, accept), accept
