"""Predict with a model directory in-process (no server), through the serving codecs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from smcv import artifact
from smcv.errors import ConfigError, HTTPError
from smcv.pretrained import model_channel_artifact
from smcv.serving import codecs, direct
from smcv.tasks import get_task

#: (image bytes, Content-Type, Accept) -> (response body, response Content-Type), as /invocations answers
Transport = Callable[[bytes, str, str], tuple[bytes, str]]


def read_model(model_dir: Path) -> tuple[dict[str, Any], Path]:
    """manifest.json of a model folder (or of the model.tar.gz in it), and the folder holding model.pt."""
    folder = model_channel_artifact(Path(model_dir))
    if folder is None:
        raise ConfigError(f"{model_dir} holds neither model.pt + manifest.json nor a model.tar.gz with them; give "
                          "the folder of an smcv training job's model")
    return artifact.load_manifest(folder), folder


def local_transport(model_dir: Path) -> Transport:
    """The model loaded once on the CPU; each call decodes, negotiates, predicts and encodes like the server."""
    manifest, folder = read_model(model_dir)
    predictor = get_task(manifest["task"]).build_predictor(manifest, artifact.load_state_dict(folder), torch.device("cpu"))

    def call(data: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        try:
            chosen = codecs.negotiate(accept, predictor.response_types)
            image = codecs.decode_request_image(data, codecs.request_image_type(content_type), mode=predictor.image_mode)
        except HTTPError as exc:
            raise ConfigError(f"{exc.message} (offered: {', '.join(predictor.response_types)})") from None
        return direct.answer(predictor, image, chosen), chosen

    return call


def predict_file(model_dir: Path, image_path: Path, accept: str = "") -> tuple[bytes, str]:
    """(body, content type) for one image, as /invocations would answer."""
    return local_transport(model_dir)(image_path.read_bytes(), "application/x-image", accept)
