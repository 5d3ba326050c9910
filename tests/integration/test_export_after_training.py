"""export_onnx=1: a training job writes model.onnx beside model.pt; serving still reads model.pt only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from smcv import artifact
from smcv.export import TRAINING_ONNX_FILE, read_metadata
from smcv.local_predict import predict_file
from smcv.serving.prepare import place
from smcv.tasks import get_task
from smcv.train import main as train_main
from tests.helpers.classdata import TINY_CLASSIFICATION, write_class_folders

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.integration


def test_export_onnx_writes_a_model_that_agrees_with_serving(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    write_class_folders(opt_ml.channel("validation"), 2)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 1, "export_onnx": "1"})
    assert train_main() == 0
    onnx_path = opt_ml.model_dir / TRAINING_ONNX_FILE
    assert onnx_path.is_file() and read_metadata(onnx_path)["class_names"] == ["normal", "pneumonia"]

    manifest = artifact.load_manifest(opt_ml.model_dir)
    predictor = get_task("classification").build_predictor(manifest, artifact.load_state_dict(opt_ml.model_dir),
                                                           torch.device("cpu"))
    image = next((opt_ml.channel("validation") / "pneumonia").iterdir())
    served = json.loads(predict_file(opt_ml.model_dir, image)[0])  # serving ignores model.onnx
    pixels = F.pil_to_tensor(Image.open(image).convert(predictor.image_mode))
    tensor = place(pixels, predictor.placement(*pixels.shape[-2:])).unsqueeze(0).float().numpy()
    (probabilities,) = ort.InferenceSession(str(onnx_path)).run(None, {"image": tensor})
    np.testing.assert_allclose(probabilities[0], served, atol=1e-4, rtol=0)


def test_no_onnx_file_by_default(opt_ml):
    write_class_folders(opt_ml.channel("train"), 8)
    opt_ml.configure({**TINY_CLASSIFICATION, "epochs": 1})
    assert train_main() == 0
    assert not (opt_ml.model_dir / TRAINING_ONNX_FILE).exists() and (opt_ml.model_dir / "model.pt").is_file()
