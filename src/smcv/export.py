"""`smcv export`: write a trained model as ONNX or TorchScript, with its preprocessing in the file's metadata.

ONNX uses torch.onnx's TorchScript-based exporter (dynamo=False): it needs only the `onnx` package, while the
dynamo exporter (torch's default) also needs onnxscript, and these fixed-size CNNs trace cleanly.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from smcv import artifact
from smcv.errors import ConfigError
from smcv.export_graphs import INPUT_NAME, ExportGraph, build_export_graph
from smcv.pretrained import model_channel_artifact
from smcv.tasks import get_task

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
#: the ONNX metadata_props key and the TorchScript extra file that hold the metadata JSON
METADATA_KEY = "smcv_export"
TORCHSCRIPT_METADATA_FILE = "smcv_export.json"
ONNX_OPSET = 17
#: written into the model directory at the end of training with export_onnx=1 (serving ignores it)
TRAINING_ONNX_FILE = "model.onnx"


def resolve_model_dir(path: Path) -> Path:
    """The folder holding model.pt + manifest.json: `path` itself, or its model.tar.gz extracted."""
    folder = model_channel_artifact(Path(path))
    if folder is None:
        raise ConfigError(f"{path} holds neither model.pt + manifest.json nor a model.tar.gz with them; give the "
                          "folder of an smcv training job's model (or the folder its model.tar.gz was downloaded to)")
    return folder


def load_export_graph(model_dir: Path) -> ExportGraph:
    """Rebuild the served network on the CPU from a model directory and wrap it for export."""
    folder = resolve_model_dir(model_dir)
    manifest = artifact.load_manifest(folder)
    predictor = get_task(manifest.get("task", "")).build_predictor(manifest, artifact.load_state_dict(folder),
                                                                   torch.device("cpu"))
    graph = build_export_graph(manifest, predictor)
    graph.metadata["versions"] = {**artifact.versions(), **{"trained_with": manifest.get("versions", {})}}
    return graph


def export_onnx(graph: ExportGraph, output: Path) -> None:
    """Write an ONNX file with a dynamic batch axis and the metadata in metadata_props."""
    try:
        import onnx  # optional dependency (the image, smcv[export] or smcv[test]), only needed for ONNX export
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package (pip install 'smcv[export]'); or use --format torchscript") from None

    axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in graph.output_names}}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "graph.onnx"
        with torch.no_grad():
            torch.onnx.export(graph.module, (graph.example,), str(raw), dynamo=False, input_names=[INPUT_NAME],
                              output_names=graph.output_names, dynamic_axes=axes, opset_version=ONNX_OPSET)
        model = onnx.load(str(raw))
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(graph.metadata)})
    model.doc_string = _summary(graph.metadata)
    artifact.atomic_write_bytes(output, model.SerializeToString())


def export_torchscript(graph: ExportGraph, output: Path) -> None:
    """Write a traced TorchScript file with the metadata as an extra file (torch.jit.load(..., _extra_files))."""
    with torch.no_grad():
        traced = torch.jit.trace(graph.module, (graph.example,), check_trace=False)
    extra = {TORCHSCRIPT_METADATA_FILE: json.dumps(graph.metadata)}
    artifact.atomic_save(output, lambda tmp: torch.jit.save(traced, tmp, _extra_files=extra))


def export_model(model_dir: Path, fmt: str, output: Path) -> dict[str, Any]:
    """Export the model in `model_dir` to `output`; returns the metadata written into the file."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    graph = load_export_graph(model_dir)
    with warnings.catch_warnings():
        # the input size is fixed per model, so shapes and anchors traced as constants are correct
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # chosen knowingly (see the module docstring and docs/export.md): the legacy ONNX exporter and torch.jit
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
        warnings.filterwarnings("ignore", message="`torch.jit.* is deprecated", category=FutureWarning)
        (export_onnx if fmt == "onnx" else export_torchscript)(graph, Path(output))
    return graph.metadata


def export_after_training(model_dir: Path) -> None:
    """The export_onnx hyperparameter: model.onnx beside model.pt (rank 0, after the artifact is written)."""
    export_model(model_dir, "onnx", model_dir / TRAINING_ONNX_FILE)
    log.info("ONNX export written to %s", model_dir / TRAINING_ONNX_FILE)


def read_metadata(path: Path) -> dict[str, Any]:
    """The metadata of an exported file (ONNX or TorchScript)."""
    if path.suffix == ".onnx":
        import onnx  # optional dependency, only needed to read ONNX files

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        return json.loads(props[METADATA_KEY])
    extra = {TORCHSCRIPT_METADATA_FILE: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[TORCHSCRIPT_METADATA_FILE])


def _summary(metadata: dict[str, Any]) -> str:
    shape = "x".join(str(v) for v in metadata["input"]["shape"])
    outputs = ", ".join(o["name"] for o in metadata["outputs"])
    return (f"smcv {metadata['task']} model. Input '{INPUT_NAME}': float32 {shape} NCHW, 0-255 pixels; "
            f"outputs: {outputs}. Full preprocessing in metadata_props['{METADATA_KEY}'].")


def cmd_export(args: argparse.Namespace) -> int:
    """`smcv export --model-dir DIR --format onnx|torchscript --output FILE`."""
    metadata = export_model(Path(args.model_dir), args.format, Path(args.output))
    print(json.dumps({"output": str(args.output), "format": args.format, **metadata}, indent=2))
    return 0


def register(subparsers: Any) -> None:
    """Add the `export` subcommand (smcv.cli PLUGINS)."""
    parser = subparsers.add_parser("export", help="write a trained model as ONNX or TorchScript, preprocessing in its metadata")
    parser.add_argument("--model-dir", required=True, help="folder with model.pt + manifest.json, or with model.tar.gz")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--output", required=True, help="file to write, e.g. model.onnx or model.ts")
    parser.set_defaults(func=cmd_export)
