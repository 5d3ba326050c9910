"""The SageMaker container contract: every /opt/ml path and environment name, from one base directory."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from smcv.errors import ConfigError

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
FAILURE_REASON_LIMIT = 1024

# Serving environment variables (SageMaker hosting and the DLC conventions; both spellings accepted).
ENV_BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"
ENV_WORKERS = ("SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS")
ENV_TIMEOUT = ("SAGEMAKER_MODEL_SERVER_TIMEOUT", "MODEL_SERVER_TIMEOUT")
ENV_MAX_PAYLOAD_MB = "SAGEMAKER_MAX_PAYLOAD_IN_MB"
ENV_DEFAULT_ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
ENV_BATCH = "SAGEMAKER_BATCH"  # "true" (SDK local mode: "True") in batch transform containers

# smcv's own environment variables.
ENV_TASK = "SMCV_TASK"
ENV_LOG_LEVEL = "SMCV_LOG_LEVEL"
ENV_WEIGHTS_DIR = "SMCV_WEIGHTS_DIR"  # ImageNet weights baked into the image (default /opt/smcv/weights)
#: where missing ImageNet weights are downloaded from (torchvision's file names); downloads are cached under
#: TORCH_HOME (torch hub's checkpoints folder)
ENV_WEIGHTS_URL = "SMCV_WEIGHTS_URL"
ENV_ALLOW_UNTRAINED = "SMCV_ALLOW_UNTRAINED"  # 1: serve a model saved before its first epoch finished
ENV_SPOOL_DIR = "SMCV_SPOOL_DIR"
ENV_CACHE_LIMIT_MB = "SMCV_CACHE_LIMIT_MB"
ENV_MASTER_PORT = "SMCV_MASTER_PORT"
ENV_NO_LAUNCH = "SMCV_NO_LAUNCH"
ENV_NPROC_PER_NODE = "SMCV_NPROC_PER_NODE"
ENV_DEVICE = "SMCV_DEVICE"
ENV_MAX_BATCH_SIZE = "SMCV_MAX_BATCH_SIZE"
ENV_MAX_BATCH_DELAY_MS = "SMCV_MAX_BATCH_DELAY_MS"
ENV_JPEG_DECODE = "SMCV_JPEG_DECODE"  # auto | device | pil: where serving and GPU training decode JPEGs
ENV_PREPARE_OVERLAP = "SMCV_PREPARE_OVERLAP"  # auto | on | off: prepare the next batch while the model runs
ENV_SERVER_THREADS = "SMCV_SERVER_THREADS"
ENV_ACCESS_LOG = "SMCV_ACCESS_LOG"
#: the largest image (width x height) decoded for training or serving; larger ones are refused before decoding
ENV_MAX_IMAGE_PIXELS = "SMCV_MAX_IMAGE_PIXELS"
ENV_READ_TIMEOUT = "SMCV_READ_TIMEOUT_S"  # seconds a client may take to send one request's header and body
ENV_OMP_THREADS = "OMP_NUM_THREADS"  # intra-op CPU threads per process (serving workers, training processes)
ENV_LOCAL_WORLD_SIZE = "LOCAL_WORLD_SIZE"  # processes on this host, set by torchrun
ENV_TRAINING_JOB_NAME = "TRAINING_JOB_NAME"  # set by SageMaker in training containers (named in the model card)


@dataclass(frozen=True)
class Paths:
    """All paths of the /opt/ml layout under one base directory."""

    base: Path

    @classmethod
    def from_env(cls) -> "Paths":
        """Paths under $SAGEMAKER_BASE_DIR, or /opt/ml."""
        return cls(Path(os.environ.get(BASE_DIR_ENV, DEFAULT_BASE_DIR)))

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resourceconfig_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def checkpointconfig_file(self) -> Path:
        return self.config_dir / "checkpointconfig.json"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def tensorboard_dir(self) -> Path:
        """SageMaker's TensorBoard output folder (synced to S3 with a TensorBoardOutputConfig)."""
        return self.output_dir / "tensorboard"

    @property
    def advisor_file(self) -> Path:
        """The pre-flight advisor's findings (JSON), written before the first epoch."""
        return self.output_data_dir / "advisor.json"

    @property
    def evaluation_file(self) -> Path:
        """The selected model's per-class validation report, beside the plots (output.tar.gz)."""
        return self.output_data_dir / "evaluation.json"

    @property
    def model_card_file(self) -> Path:
        """The model card in model.tar.gz (serving reads only model.pt and manifest.json)."""
        return self.model_dir / "README.md"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def success_file(self) -> Path:
        return self.output_dir / "success"

    @property
    def checkpoint_dir(self) -> Path:
        """CheckpointConfig.LocalPath when given, else /opt/ml/checkpoints."""
        config = _read_json(self.checkpointconfig_file, default={})
        local = config.get("LocalPath") if isinstance(config, dict) else None
        return Path(local) if local else self.base / "checkpoints"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    def pipe_path(self, channel: str, epoch: int) -> Path:
        """The Pipe-mode FIFO of a channel for one epoch."""
        return self.data_dir / f"{channel}_{epoch}"


def _read_json(path: Path, default: object) -> object:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text() or "null") or default
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid JSON ({exc}); SageMaker writes it as a JSON object") from exc


def read_hyperparameters(paths: Paths) -> dict[str, str]:
    """The raw hyperparameters map (string to string as SageMaker writes it)."""
    data = _read_json(paths.hyperparameters_file, default={})
    if not isinstance(data, dict):
        raise ConfigError("hyperparameters.json must hold a JSON object of name: value")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}


#: inputdataconfig.json channel keys read beside TrainingInputMode
CHANNEL_CONTENT_TYPE = "ContentType"
CHANNEL_ATTRIBUTE_NAMES = "AttributeNames"  # an augmented manifest's attributes, when SageMaker passes them
CHANNEL_RECORD_WRAPPER = "RecordWrapperType"


def read_input_data_config(paths: Paths) -> dict[str, dict]:
    """Channel name to channel metadata (ContentType, TrainingInputMode, ...)."""
    data = _read_json(paths.inputdataconfig_file, default={})
    if not isinstance(data, dict):
        raise ConfigError("inputdataconfig.json must hold a JSON object of channel: settings")
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in data.items()}


@dataclass(frozen=True)
class ResourceConfig:
    """The hosts of the training cluster and this host's place in it."""

    current_host: str
    hosts: tuple[str, ...]
    network_interface_name: str
    instance_type: str = ""

    @property
    def host_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)


def read_resource_config(paths: Paths) -> ResourceConfig:
    """resourceconfig.json, or a single local host when it is absent."""
    data = _read_json(paths.resourceconfig_file, default={})
    if not isinstance(data, dict):
        raise ConfigError("resourceconfig.json must hold a JSON object")
    current = str(data.get("current_host") or "algo-1")
    hosts = tuple(sorted(str(h) for h in (data.get("hosts") or [current])))
    if current not in hosts:
        raise ConfigError(f"resourceconfig.json: current_host {current!r} is not among hosts {list(hosts)}")
    return ResourceConfig(current, hosts, str(data.get("network_interface_name") or "eth0"),
                          str(data.get("current_instance_type") or ""))


def write_failure(paths: Paths, message: str) -> None:
    """Write the failure reason SageMaker shows as FailureReason (first 1024 characters)."""
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(message.strip() + "\n")


def write_success(paths: Paths) -> None:
    """Mark the job as successful."""
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.success_file.write_text("")


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """$name lower-cased, one of choices (the first, 'auto', when unset); another value is a ValueError naming them."""
    wanted = os.environ.get(name, "").strip().lower() or choices[0]
    if wanted not in choices:
        raise ValueError(f"{name}={wanted!r} is not one of {', '.join(choices)}; unset it for {choices[0]}")
    return wanted


#: SMCV_JPEG_DECODE values: auto (on the device when it is a GPU), device (always batched torchvision), pil
JPEG_DECODE_CHOICES = ("auto", "device", "pil")


def jpeg_decode_setting() -> str:
    """$SMCV_JPEG_DECODE: auto (default), device or pil; another value is a ValueError naming the choices."""
    return env_choice(ENV_JPEG_DECODE, JPEG_DECODE_CHOICES)
