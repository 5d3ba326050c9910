#!/usr/bin/env python3
"""Train, deploy, invoke and batch-transform with an smcv image through the SageMaker Python SDK v2 in local mode, offline.

Usage: python local_test/sdk_local_mode.py --image smcv-classification:latest [--task T] [--epochs N]
                                           [--work-dir DIR] [--port 8080]

Needs `pip install -r local_test/requirements-sdk.txt` (sagemaker<3 with the [local] extra), Docker and
docker-compose (v1) or `docker compose` (v2). Classification uses local_test/test_dir's hyperparameters and the
class folders that local_test/make_sample.py writes there (generated if missing), and local_test/payload.png as
the request; detection (a Ground Truth manifest) and segmentation (the built-in's four channels and a label map)
use the demo's samples from local_test/make_task_sample.py, with the channels and content types of their
inputdataconfig.json. Each task's answer is checked against the built-in's shape, live and from a Transformer
job. No AWS account, credentials or network access is needed:

- a dummy execution role ARN (local mode never assumes it),
- a region (AWS_DEFAULT_REGION, default us-east-1) because boto3 sessions need one,
- AWS_EC2_METADATA_DISABLED=true so boto3 does not probe the EC2 instance metadata service for credentials,
- file:// channels and a file:// output_path, so no S3 bucket (and no STS call for a default bucket),
- a LocalSession built from an explicit SDK config that opts out of the SDK's telemetry (an HTTPS GET
  per call otherwise) and ignores any ~/.config/sagemaker config files.

Prints each step's duration and exits non-zero if any step fails or the prediction looks wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DUMMY_ROLE = "arn:aws:iam::111111111111:role/SmcvLocalModeDummyRole"
SDK_CONFIG = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def offline_environment() -> None:
    """Environment settings that keep boto3 and the SDK from reaching out (set before importing sagemaker)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")


def remove_compose_containers(container_root: Path) -> None:
    """docker-compose leaves the stopped job/endpoint containers behind; remove those this run made."""
    label = "com.docker.compose.project.working_dir"
    listed = subprocess.run(["docker", "ps", "-a", "--format", f'{{{{.ID}}}} {{{{.Label "{label}"}}}}'],
                            capture_output=True, text=True, check=False)
    ids = [line.split()[0] for line in listed.stdout.splitlines()
           if len(line.split()) == 2 and line.split()[1].startswith(str(container_root) + os.sep)]
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)


def step(name: str, started: float) -> None:
    print(f"[sdk_local_mode] {name}: {time.monotonic() - started:.1f} s", flush=True)


def check_classification(answer: object, hyperparameters: dict) -> str:
    """'' when the answer is num_classes probabilities summing to 1, else what is wrong."""
    ok = (isinstance(answer, list) and len(answer) == int(hyperparameters.get("num_classes", len(answer)))
          and all(isinstance(p, (int, float)) for p in answer) and math.isclose(sum(answer), 1.0, abs_tol=1e-3))
    return "" if ok else "expected a list of num_classes probabilities summing to 1"


def check_detection(answer: object, hyperparameters: dict) -> str:
    """'' when the answer is the built-in's {"prediction": [[class, score, x0, y0, x1, y1], ...]}."""
    boxes = answer.get("prediction") if isinstance(answer, dict) else None
    ok = isinstance(boxes, list) and all(len(b) == 6 and 0 <= b[2] <= b[4] <= 1 and 0 <= b[3] <= b[5] <= 1
                                         for b in boxes)
    return "" if ok else 'expected {"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]} with corners in 0..1'


def check_segmentation(answer: object, hyperparameters: dict) -> str:
    """'' when the answer is a PNG mask of class ids."""
    ok = isinstance(answer, bytes) and answer.startswith(b"\x89PNG")
    return "" if ok else "expected a PNG mask"


#: per task: the request/response types of the built-in's default answer and its check
TASK_ANSWERS = {
    "classification": ("application/json", check_classification),
    "detection": ("application/json", check_detection),
    "segmentation": ("image/png", check_segmentation),
}


def prepare_sample(args: argparse.Namespace) -> None:
    """The task's sample under --test-dir (classification: make_sample.py; others: the demo's make_task_sample.py)."""
    data_dir = args.test_dir / "input" / "data"
    if (data_dir / "train").is_dir() and args.payload.is_file():
        return
    if args.task == "classification":
        subprocess.run([sys.executable, str(HERE / "make_sample.py"), "--out", str(args.test_dir),
                        "--payload", str(args.payload)], check=True)
    else:
        subprocess.run([sys.executable, str(HERE / "make_task_sample.py"), args.task, str(args.test_dir)], check=True)
        args.payload = args.test_dir / "payload.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="image URI/tag, e.g. smcv-classification:latest")
    parser.add_argument("--task", default="classification", choices=sorted(TASK_ANSWERS),
                        help="the image's task (selects the sample and the checks; default classification)")
    parser.add_argument("--test-dir", type=Path, default=HERE / "test_dir", help="fake /opt/ml with input/config and input/data")
    parser.add_argument("--payload", type=Path, default=HERE / "payload.png", help="request body (PNG)")
    parser.add_argument("--epochs", help="override the sample's epochs hyperparameter")
    parser.add_argument("--work-dir", type=Path, help="where the SDK's containers and the outputs go (default: a temp dir)")
    parser.add_argument("--port", type=int, default=8080, help="host port of the local endpoint (default 8080)")
    parser.add_argument("--instance-type", default="local", choices=["local", "local_gpu"])
    args = parser.parse_args(argv)

    offline_environment()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    prepare_sample(args)
    config = args.test_dir / "input" / "config"
    hyperparameters = json.loads((config / "hyperparameters.json").read_text())
    if args.epochs:
        hyperparameters["epochs"] = args.epochs
    channel_config = json.loads((config / "inputdataconfig.json").read_text()) if (config / "inputdataconfig.json").is_file() else {}
    work = (args.work_dir or Path(tempfile.mkdtemp(prefix="smcv-sdk-local-"))).resolve()
    (work / "containers").mkdir(parents=True, exist_ok=True)
    try:
        return round_trip(args, work, hyperparameters, args.test_dir / "input" / "data", channel_config)
    finally:
        remove_compose_containers(work / "containers")


def training_inputs(data_dir: Path, channel_config: dict) -> dict:
    """One file:// TrainingInput per channel folder, with the content type inputdataconfig.json gives it."""
    from sagemaker.inputs import TrainingInput

    names = sorted(channel_config) or [n for n in ("train", "validation") if (data_dir / n).is_dir()]
    return {name: TrainingInput(f"file://{(data_dir / name).resolve()}",
                                content_type=channel_config.get(name, {}).get("ContentType", "application/x-image"))
            for name in names if (data_dir / name).is_dir()}


def round_trip(args: argparse.Namespace, work: Path, hyperparameters: dict, data_dir: Path, channel_config: dict) -> int:
    """fit -> check model.tar.gz -> deploy -> predict -> delete the endpoint -> batch transform."""
    from sagemaker.deserializers import BytesDeserializer, JSONDeserializer
    from sagemaker.estimator import Estimator
    from sagemaker.local import LocalSession
    from sagemaker.serializers import IdentitySerializer

    session = LocalSession(sagemaker_config=SDK_CONFIG)
    session.config = {"local": {"local_code": True, "serving_port": args.port,
                                "container_root": str(work / "containers")}}
    estimator = Estimator(image_uri=args.image, role=DUMMY_ROLE, instance_count=1, instance_type=args.instance_type,
                          output_path=f"file://{work / 'output'}", hyperparameters=hyperparameters,
                          sagemaker_session=session, base_job_name=f"smcv-local-{args.task[:3]}")
    started = time.monotonic()
    estimator.fit(training_inputs(data_dir, channel_config), wait=True, logs=True)
    step("train", started)

    model_tar = Path(estimator.model_data.replace("file://", "", 1))
    with tarfile.open(model_tar) as tar:
        members = sorted(m.name for m in tar.getmembers() if m.isfile())
    print(f"[sdk_local_mode] model artifact {model_tar}: {members}", flush=True)
    if "manifest.json" not in [Path(m).name for m in members]:
        print("[sdk_local_mode] error: model.tar.gz has no manifest.json", file=sys.stderr)
        return 1

    accept, check = TASK_ANSWERS[args.task]
    deserializer = JSONDeserializer() if accept == "application/json" else BytesDeserializer(accept=accept)
    started = time.monotonic()
    predictor = estimator.deploy(initial_instance_count=1, instance_type=args.instance_type,
                                 serializer=IdentitySerializer(content_type="image/png"), deserializer=deserializer)
    step("deploy (until /ping answers)", started)
    try:
        started = time.monotonic()
        result = predictor.predict(args.payload.read_bytes())
        step("predict", started)
        shown = json.dumps(result)[:300] if not isinstance(result, bytes) else f"{len(result)} bytes of {accept}"
        print(f"[sdk_local_mode] prediction: {shown}", flush=True)
        problem = check(result, hyperparameters)
        if problem:
            print(f"[sdk_local_mode] error: {problem}", file=sys.stderr)
            return 1
    finally:
        predictor.delete_endpoint()
    if batch_transform(estimator, args, work, hyperparameters) != 0:
        return 1
    print(f"[sdk_local_mode] OK (outputs under {work})", flush=True)
    return 0


def batch_transform(estimator, args: argparse.Namespace, work: Path, hyperparameters: dict) -> int:
    """A Transformer job over a folder holding the payload, its output read back as the built-in's notebooks do."""
    inputs = work / "transform-input"
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / args.payload.name).write_bytes(args.payload.read_bytes())
    # strategy given explicitly: SDK v2 local mode takes /execution-parameters' BatchStrategy as the API spelling
    # (SingleRecord), while the platform documents and smcv answers SINGLE_RECORD (docs/serving.md)
    transformer = estimator.transformer(instance_count=1, instance_type=args.instance_type, strategy="SingleRecord",
                                        output_path=f"file://{work / 'transform-output'}")
    started = time.monotonic()
    transformer.transform(f"file://{inputs}", content_type="application/x-image", wait=True, logs=False)  # no CloudWatch
    step("batch transform", started)
    out = work / "transform-output" / f"{args.payload.name}.out"
    raw = out.read_bytes() if out.is_file() else b""
    if args.task == "segmentation":
        answer: object = raw
        shown = f"{len(raw)} bytes"
    else:
        answer = json.loads(raw) if raw else None
        shown = json.dumps(answer)[:300]
    print(f"[sdk_local_mode] batch transform output {out.name}: {shown}", flush=True)
    if args.task == "classification":  # the built-in's batch output is JSON Lines: {"prediction": [...]}
        answer = answer.get("prediction") if isinstance(answer, dict) else None
    problem = TASK_ANSWERS[args.task][1](answer, hyperparameters)
    if problem:
        print(f"[sdk_local_mode] error: batch transform: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
