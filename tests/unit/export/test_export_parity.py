"""Export parity: the ONNX file (onnxruntime) and the TorchScript file agree with the served PyTorch model.

Tolerances: probabilities and box fractions within 1e-4 absolute (ONNX Runtime reorders float32 arithmetic),
TorchScript within 1e-5 (same kernels as eager PyTorch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import batched_nms
from torchvision.transforms.v2 import functional as F

from tests.helpers.exportmodels import CLASS_NAMES, FCN, write_tiny_model
from smcv import artifact
from smcv.cli import main as cli_main
from smcv.export import METADATA_KEY, export_model, read_metadata
from smcv.segmentation.transforms import normalize
from smcv.serving import direct
from smcv.serving.prepare import place
from smcv.tasks import get_task

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

ONNX_ATOL = 1e-4
TORCHSCRIPT_ATOL = 1e-5


def images(count: int = 3) -> list[Image.Image]:
    """Noisy RGB images of different sizes and aspect ratios."""
    rng = np.random.default_rng(7)
    sizes = [(40, 30), (64, 64), (25, 50), (80, 48)][:count]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for w, h in sizes]


def placed(predictor, pictures: list[Image.Image]) -> torch.Tensor:
    """The uint8 network input serving builds (smcv.serving.prepare), before its normalisation."""
    tensors = [F.pil_to_tensor(image) for image in pictures]
    return torch.stack([place(t, predictor.placement(*t.shape[-2:])) for t in tensors])


def served_results(predictor, pictures: list[Image.Image]) -> list:
    """What the server computes for these images in one batch."""
    return [result for result, _ in direct.predict(predictor, pictures, predictor.response_types[0])]


def served(model_dir: Path):
    manifest = artifact.load_manifest(model_dir)
    return get_task(manifest["task"]).build_predictor(manifest, artifact.load_state_dict(model_dir), torch.device("cpu"))


def exported(model_dir: Path, tmp_path: Path, fmt: str):
    """Export through the command line; return a function running the file on a 0-255 float batch."""
    path = tmp_path / ("model.onnx" if fmt == "onnx" else "model.ts")
    assert cli_main(["export", "--model-dir", str(model_dir), "--format", fmt, "--output", str(path)]) == 0
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return path, lambda x: session.run(None, {"image": x.numpy().astype(np.float32)})
    module = torch.jit.load(str(path), map_location="cpu")

    def run(x: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(x)
        return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]

    return path, run


@pytest.mark.parametrize("fmt,atol", [("onnx", ONNX_ATOL), ("torchscript", TORCHSCRIPT_ATOL)])
def test_classification_parity(tmp_path, fmt, atol):
    model_dir = write_tiny_model("classification", tmp_path / "model")
    predictor = served(model_dir)
    batch = placed(predictor, images())  # uint8, 32x32
    expected = np.array(served_results(predictor, images()))
    path, run = exported(model_dir, tmp_path, fmt)
    (probabilities,) = run(batch.float())
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities, expected, atol=atol, rtol=0)
    assert expected.std() > 1e-3  # the outputs differ between images, so the comparison means something
    metadata = read_metadata(path)
    assert metadata["class_names"] == CLASS_NAMES["classification"]
    assert metadata["input"]["shape"] == ["batch", 3, 32, 32] and metadata["input"]["layout"] == "NCHW"
    assert metadata["normalization"]["mean"] == pytest.approx([0.485, 0.456, 0.406])


@pytest.mark.parametrize("fmt,atol,overrides", [("onnx", ONNX_ATOL, {}), ("torchscript", TORCHSCRIPT_ATOL, {}),
                                                ("onnx", ONNX_ATOL, FCN), ("torchscript", TORCHSCRIPT_ATOL, FCN)],
                         ids=["unet-onnx", "unet-torchscript", "fcn-onnx", "fcn-torchscript"])
def test_segmentation_parity(tmp_path, fmt, atol, overrides):
    model_dir = write_tiny_model("segmentation", tmp_path / "model", **overrides)
    predictor = served(model_dir)
    raw = torch.stack([F.resize(F.pil_to_tensor(image), [64, 64], antialias=True) for image in images()])
    normalised = normalize(raw, predictor.mean, predictor.std)
    assert torch.allclose(normalised, predictor.prepare([F.pil_to_tensor(i) for i in images()]), atol=1e-6)  # served
    expected = torch.softmax(predictor.model(normalised), dim=1).detach().numpy()
    path, run = exported(model_dir, tmp_path, fmt)
    (probabilities,) = run(raw.float())
    assert probabilities.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(probabilities, expected, atol=atol, rtol=0)
    metadata = read_metadata(path)
    assert metadata["task"] == "segmentation" and metadata["class_names"] == CLASS_NAMES["segmentation"]
    assert metadata["input"]["resize"].startswith("resize to 64x64")


def postprocess(boxes: np.ndarray, scores: np.ndarray, metadata: dict) -> dict[str, list]:
    """The post-processing the metadata documents: per-class top-k, per-class NMS, best N (score threshold 0)."""
    boxes_t, scores_t = torch.from_numpy(boxes), torch.from_numpy(scores)
    k = min(int(metadata["postprocessing"].split("top ")[1].split()[0]), boxes_t.shape[0])
    top_scores, top_index = scores_t.topk(k, dim=0)
    labels = torch.arange(scores_t.shape[1]).expand(k, -1)
    keep = top_scores > 0
    cand_boxes, cand_scores, cand_labels = boxes_t[top_index[keep]], top_scores[keep], labels[keep]
    chosen = batched_nms(cand_boxes, cand_scores, cand_labels, metadata["nms_threshold"])
    chosen = chosen[: metadata["detections_per_image"]]
    return {"boxes": cand_boxes[chosen].tolist(), "scores": cand_scores[chosen].tolist(), "labels": cand_labels[chosen].tolist()}


@pytest.mark.parametrize("fmt,atol", [("onnx", ONNX_ATOL), ("torchscript", TORCHSCRIPT_ATOL)])
def test_detection_parity(tmp_path, fmt, atol):
    model_dir = write_tiny_model("detection", tmp_path / "model")
    predictor = served(model_dir)
    batch = placed(predictor, images(2)).float() / 255.0  # 0-1 floats, 300x300
    expected = served_results(predictor, images(2))
    path, run = exported(model_dir, tmp_path, fmt)
    boxes, scores = run(batch * 255.0)
    assert boxes.shape[0] == scores.shape[0] == 2 and boxes.shape[2] == 4 and scores.shape[2] == 2
    metadata = read_metadata(path)
    for index, want in enumerate(expected):
        got = postprocess(boxes[index], scores[index], metadata)
        assert len(got["scores"]) == len(want["scores"]) == 20
        np.testing.assert_allclose(got["scores"], want["scores"], atol=atol, rtol=0)
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=atol, rtol=0)
        assert got["labels"] == want["labels"]
    assert metadata["class_names"] == CLASS_NAMES["detection"] and metadata["outputs"][0]["name"] == "boxes"


def test_onnx_metadata_props_hold_one_json_document(tmp_path):
    import onnx

    model_dir = write_tiny_model("classification", tmp_path / "model", image_shape="1,28,28")
    metadata = export_model(model_dir, "onnx", tmp_path / "grey.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "grey.onnx")).metadata_props}
    assert json.loads(props[METADATA_KEY]) == json.loads(json.dumps(metadata))
    assert metadata["input"]["channel_order"] == "grey (L)" and metadata["input"]["shape"] == ["batch", 1, 28, 28]


def test_model_tar_gz_is_read_and_bad_folders_are_named(tmp_path):
    import tarfile

    model_dir = write_tiny_model("classification", tmp_path / "model")
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for name in ("model.pt", "manifest.json"):
            tar.add(model_dir / name, arcname=name)
    metadata = export_model(packed, "torchscript", tmp_path / "from-tar.ts")
    assert metadata["task"] == "classification" and (tmp_path / "from-tar.ts").stat().st_size > 0
    with pytest.raises(Exception, match="neither model.pt"):
        export_model(tmp_path / "empty-folder", "onnx", tmp_path / "x.onnx")
