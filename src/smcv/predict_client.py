"""`smcv predict`: send images to a model (in-process, a local server, or a SageMaker endpoint) and print class names.

One request per image, as a SageMaker client sends it: the encoded bytes with Content-Type application/x-image.
Class names come from a verbose response when the server offers one, else from --model-dir's manifest.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from smcv.data.images import decode_image
from smcv.errors import ConfigError, UserError
from smcv.local_predict import Transport, local_transport, read_model
from smcv.overlays import classification_overlay, detection_overlay, save_overlay, segmentation_overlay

REQUEST_TYPE = "application/x-image"
#: verbose JSON first (class names included), plain JSON otherwise; every task answers one of them
DEFAULT_ACCEPT = "application/json;verbose=1, application/json;verbose;q=0.9, application/json;q=0.8"
MASK_ACCEPT = "image/png"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
HTTP_TIMEOUT_S = 60.0
#: detections at or above this score are printed and drawn
DEFAULT_MIN_SCORE = 0.5


def image_files(path: Path) -> list[Path]:
    """The image itself, or the JPEG/PNG files in a folder (sorted, not recursive)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise ConfigError(f"{path} holds no {'/'.join(IMAGE_SUFFIXES)} files; give an image or a folder of images")
    raise ConfigError(f"{path} does not exist; give an image file or a folder of images")


def http_transport(url: str, timeout_s: float = HTTP_TIMEOUT_S) -> Transport:
    """POST {url}/invocations (a local `smcv serve`, local mode, or any SageMaker-style container)."""
    target = url.rstrip("/") + ("" if url.rstrip("/").endswith("/invocations") else "/invocations")

    def call(data: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        request = urllib.request.Request(target, data=data, method="POST",
                                         headers={"Content-Type": content_type, "Accept": accept})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise ConfigError(f"{target} answered {exc.code}: {exc.read().decode(errors='replace')[:500]}") from None
        except urllib.error.URLError as exc:
            raise ConfigError(f"cannot reach {target} ({exc.reason}); is the server running?") from None

    return call


def endpoint_transport(endpoint_name: str, region: Optional[str] = None, client: Any = None) -> Transport:
    """sagemaker-runtime InvokeEndpoint (credentials and region from the usual AWS configuration)."""
    if client is None:
        try:
            import boto3  # optional: only the --endpoint client needs the AWS SDK
        except ImportError:
            raise ConfigError("--endpoint needs boto3 (pip install boto3)") from None
        client = boto3.client("sagemaker-runtime", region_name=region)

    def call(data: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        response = client.invoke_endpoint(EndpointName=endpoint_name, ContentType=content_type, Accept=accept, Body=data)
        return response["Body"].read(), response.get("ContentType", "")

    return call


@dataclass
class Prediction:
    """What one response says, in a task-independent form."""

    kind: str  # classification | detection | segmentation | unknown
    names: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    detections: list[tuple[int, float, list[float]]] = field(default_factory=list)  # class id, score, xyxy 0-1
    pixel_counts: dict[int, int] = field(default_factory=dict)
    threshold: Optional[float] = None  # a binary classifier's saved decision threshold (verbose answers)

    def name(self, class_id: int) -> str:
        return self.names[class_id] if 0 <= class_id < len(self.names) else str(class_id)


def parse_response(body: bytes, content_type: str, names: list[str]) -> Prediction:
    """Read a JSON response of any smcv task (plain or verbose); names fill in when the response has none."""
    if not content_type.startswith("application/json"):
        return Prediction("unknown")
    data = json.loads(body)
    if isinstance(data, list):
        return Prediction("classification", names, [float(v) for v in data])
    given = data.get("labels") or data.get("classes") or data.get("class_names") or names
    given = [str(n) for n in given]
    if "class_counts" in data:  # segmentation's plain JSON answer: pixels per class id
        return Prediction("segmentation", given, pixel_counts={int(k): int(v) for k, v in data["class_counts"].items()})
    if "class_pixels" in data:  # segmentation's verbose answer: pixels per class name
        index = {name: i for i, name in enumerate(given)}
        return Prediction("segmentation", given, pixel_counts={index.get(k, i): int(v) for i, (k, v)
                                                                in enumerate(data["class_pixels"].items())})
    if "detections" in data:  # detection's verbose answer
        return Prediction("detection", given, detections=[(int(d["class_id"]), float(d["score"]),
                                                           [float(v) for v in d["box"]]) for d in data["detections"]])
    if "probabilities" in data:  # classification's verbose answer
        return Prediction("classification", given, [float(v) for v in data["probabilities"]],
                          threshold=data.get("decision_threshold"))
    rows = data.get("prediction", [])
    if rows and isinstance(rows[0], list):
        return Prediction("detection", given, detections=[(int(r[0]), float(r[1]), [float(v) for v in r[2:6]]) for r in rows])
    return Prediction("classification", given, [float(v) for v in rows])


def summary(prediction: Prediction, min_score: float = DEFAULT_MIN_SCORE, top: int = 3) -> str:
    """One readable line: top classes, detected objects, or the pixel share per class."""
    if prediction.kind == "classification":
        order = sorted(range(len(prediction.probabilities)), key=lambda i: -prediction.probabilities[i])[:top]
        return ", ".join(f"{prediction.name(i)} {prediction.probabilities[i]:.3f}" for i in order)
    if prediction.kind == "detection":
        kept = [d for d in prediction.detections if d[1] >= min_score]
        parts = [f"{prediction.name(c)} {s:.2f} [{', '.join(f'{v:.3f}' for v in box)}]" for c, s, box in kept[:10]]
        more = f" (+{len(kept) - 10} more)" if len(kept) > 10 else ""
        return f"{len(kept)} object(s) with score >= {min_score:g}" + (": " + "; ".join(parts) if parts else "") + more
    if prediction.kind == "segmentation":
        total = sum(prediction.pixel_counts.values()) or 1
        shares = sorted(prediction.pixel_counts.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{prediction.name(c)} {100.0 * n / total:.1f}%" for c, n in shares)
    return "(not a JSON response)"


@dataclass
class PredictOptions:
    """What to send and what to do with the answers."""

    accept: str = DEFAULT_ACCEPT
    raw: bool = False
    names: list[str] = field(default_factory=list)
    overlay_dir: Optional[Path] = None
    min_score: float = DEFAULT_MIN_SCORE


def predict_images(files: list[Path], transport: Transport, options: PredictOptions,
                   emit: Callable[[str], None] = print) -> list[Prediction]:
    """Send each image, print one line per image (or the raw body), write overlays; returns the predictions."""
    results = []
    for path in files:
        data = path.read_bytes()
        body, content_type = transport(data, REQUEST_TYPE, options.accept)
        if options.raw:
            emit(body.decode(errors="replace").rstrip("\n") if _is_text(content_type) else
                 f"{path}\t<{len(body)} bytes of {content_type}>")
        prediction = parse_response(body, content_type, options.names)
        if not options.raw:
            emit(f"{path}\t{summary(prediction, options.min_score)}")
        if options.overlay_dir is not None:
            _write_overlay(path, data, prediction, transport, options)
        results.append(prediction)
    return results


def _is_text(content_type: str) -> bool:
    return content_type.startswith(("application/json", "application/jsonlines", "text/"))


def _write_overlay(path: Path, data: bytes, prediction: Prediction, transport: Transport, options: PredictOptions) -> None:
    image = decode_image(data, str(path))
    if prediction.kind == "detection":
        overlay = detection_overlay(image, prediction.detections, prediction.names, options.min_score)
    elif prediction.kind == "segmentation":
        mask, _ = transport(data, REQUEST_TYPE, MASK_ACCEPT)  # the class-id PNG, a second request
        overlay = segmentation_overlay(image, mask)
    elif prediction.kind == "classification":
        overlay = classification_overlay(image, summary(prediction))
    else:
        return
    save_overlay(overlay, options.overlay_dir, path)


def register(subparsers: Any) -> None:
    """Add the `predict` subcommand (smcv.cli PLUGINS)."""
    parser = subparsers.add_parser("predict", help="predict images in-process, on a server (--url) or an endpoint (--endpoint)")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="IMAGE (a file or a folder of images), or MODEL_DIR IMAGE (the older form)")
    parser.add_argument("--model-dir", help="model folder (model.pt + manifest.json, or model.tar.gz): predicts "
                                            "in-process without --url/--endpoint, else supplies the class names")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080 (POST /invocations)")
    where.add_argument("--endpoint", help="a SageMaker endpoint name (boto3 sagemaker-runtime InvokeEndpoint)")
    parser.add_argument("--region", help="AWS region of --endpoint (default: the AWS configuration's)")
    parser.add_argument("--accept", default="", help="ask for this response type and print the bodies as they are")
    parser.add_argument("--overlay-dir", help="write <image>.overlay.png files with the prediction drawn on")
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE, help="detection: smallest score shown")
    parser.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """`smcv predict`: exit 0, or 2 with one line on stderr that says what to change."""
    try:
        model_dir, target = _model_and_target(args)
        names = list(read_model(Path(model_dir))[0].get("class_names") or []) if model_dir else []
        transport = choose_transport(args.url, args.endpoint, args.region, model_dir)
        options = PredictOptions(accept=args.accept or DEFAULT_ACCEPT, raw=bool(args.accept), names=names,
                                 overlay_dir=Path(args.overlay_dir) if args.overlay_dir else None,
                                 min_score=args.min_score)
        predict_images(image_files(Path(target)), transport, options)
    except UserError as exc:
        print(f"smcv predict: {exc}", file=sys.stderr)
        return 2
    return 0


def choose_transport(url: Optional[str], endpoint: Optional[str], region: Optional[str],
                     model_dir: Optional[str]) -> Transport:
    """A server URL, else a SageMaker endpoint, else the model folder in-process."""
    if url:
        return http_transport(url)
    if endpoint:
        return endpoint_transport(endpoint, region)
    if model_dir:
        return local_transport(Path(model_dir))
    raise ConfigError("say where the model is: --url http://127.0.0.1:8080, --endpoint NAME or --model-dir DIR")


def _model_and_target(args: argparse.Namespace) -> tuple[Optional[str], str]:
    if len(args.paths) == 1:
        return args.model_dir, args.paths[0]
    if len(args.paths) == 2 and not args.model_dir:
        return args.paths[0], args.paths[1]
    raise ConfigError("give one image or folder (optionally preceded by the model folder, or use --model-dir)")
