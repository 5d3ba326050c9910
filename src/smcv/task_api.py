"""The Task interface: what a task (classification, detection, segmentation) gives the engine and the server."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from smcv.config import HyperParameters, Schema
from smcv.errors import ConfigError
from smcv.inputs import channel_inputs
from smcv.pretrained import WeightsNeed, resolve_weights
from smcv.serving.prepare import Placement, network_batch


@dataclass
class PreparedData:
    """Datasets and facts a task derived from the input channels."""

    train: torch.utils.data.Dataset
    validation: Optional[torch.utils.data.Dataset]
    collate_fn: Optional[Callable] = None
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # task facts for the manifest (counts, formats, ...)
    sample_weights: Optional[list[float]] = None  # per training sample: draw probabilities (class_balance=sampling)


@dataclass
class TrainSettings:
    """Engine settings a task derives from its hyperparameters."""

    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    beta_1: float = 0.9
    beta_2: float = 0.999
    eps: float = 1e-8
    rho: float = 0.9  # rmsprop smoothing (alpha) or adadelta rho
    rmsprop_momentum: float = 0.0
    lr_scheduler: str = "step"  # step | poly | cosine | none
    lr_scheduler_step: tuple[int, ...] = ()
    lr_scheduler_factor: float = 0.1
    lr_warmup_epochs: float = 0.0  # linear warm-up of the learning rate over the first N epochs
    validation_batch_size: Optional[int] = None
    precision: str = "float32"  # precision_dtype: float32 | float16 | bfloat16
    amp: bool = True  # autocast (BF16 where supported) even when precision_dtype is float32
    gradient_accumulation_steps: int = 1
    early_stopping: bool = False
    early_stopping_min_epochs: int = 10
    early_stopping_patience: int = 5
    early_stopping_tolerance: float = 0.0
    checkpoint_frequency: Optional[int] = None
    num_workers: Optional[int] = None
    seed: int = 0
    freeze_pattern: Optional[str] = None
    log_interval_seconds: float = 30.0
    tensorboard: str = "auto"  # auto | 1 | 0 (true/false accepted): event files in /opt/ml/output/tensorboard
    compile: bool = False  # torch.compile the network for training (engine.compile)
    ema_decay: float = 0.0  # exponential moving average of the weights (engine.ema); 0: off


@dataclass(frozen=True)
class BoxCoverage:
    """Detection boxes of one class against the default boxes: sizes as fractions of the image side (sqrt of the
    area) and the share of boxes whose best default box overlaps them below the matching IoU."""

    class_id: int
    boxes: int
    side_p10: float
    side_median: float
    side_p90: float
    poorly_matched: float


@dataclass
class AdvisorFacts:
    """What a task tells the pre-flight advisor (smcv.advisor) about its data and network; None: not known."""

    train_samples: int
    input_side: Optional[int] = None  # shorter side of the training input in pixels
    network_depth: Optional[int] = None  # layers of the network
    network_stride: Optional[int] = None  # total downsampling of its feature extractor (32 for ImageNet ResNets)
    small_input_remedy: str = ""  # what to set instead for small images
    augmented: Optional[bool] = None  # training augmentation on
    augmentation_remedy: str = ""  # how to turn it on
    class_counts: Optional[list[int]] = None  # training examples per class id
    count_unit: str = "images"  # what class_counts count: images, boxes, pixels (sampled), ...
    balanced: bool = False  # a class-imbalance remedy is on
    balance_remedy: str = ""  # what to set against class imbalance ("" when the task has nothing)
    class_names: list[str] = field(default_factory=list)
    announce_classes: bool = False  # print the class id -> name map (ids a client gets back)
    box_coverage: Optional[list[BoxCoverage]] = None  # detection: per-class box sizes and default-box fit
    smallest_default_box: Optional[float] = None  # detection: the smallest default box, fraction of the image side
    coverage_remedy: str = ""  # detection: what to set when a class's boxes fit no default box


def train_settings_from(hp: HyperParameters, **task_specific: Any) -> TrainSettings:
    """TrainSettings from the shared engine hyperparameters (config.common_training_params) plus a task's own."""
    if hp.checkpoint_frequency and hp.checkpoint_frequency > hp.epochs:
        raise ConfigError(f"checkpoint_frequency ({hp.checkpoint_frequency}) must not exceed epochs ({hp.epochs})")
    common: dict[str, Any] = dict(
        epochs=hp.epochs, batch_size=hp.mini_batch_size, learning_rate=hp.learning_rate, optimizer=hp.optimizer,
        momentum=hp.momentum, weight_decay=hp.weight_decay, lr_scheduler_step=tuple(hp.lr_scheduler_step),
        lr_scheduler_factor=hp.lr_scheduler_factor, lr_scheduler=hp.lr_scheduler,
        lr_warmup_epochs=hp.lr_warmup_epochs, precision=hp.precision_dtype, amp=hp.amp,
        gradient_accumulation_steps=hp.gradient_accumulation_steps, early_stopping=hp.early_stopping,
        early_stopping_min_epochs=hp.early_stopping_min_epochs, early_stopping_patience=hp.early_stopping_patience,
        early_stopping_tolerance=hp.early_stopping_tolerance, checkpoint_frequency=hp.checkpoint_frequency,
        num_workers=hp.num_workers, seed=hp.seed, log_interval_seconds=hp.log_interval_seconds,
        tensorboard=hp.tensorboard, compile=hp.compile, ema_decay=hp.ema_decay,
    )
    return TrainSettings(**{**common, **task_specific})


def criterion_of(model: torch.nn.Module) -> torch.nn.Module:
    """The `criterion` a task's build_model attached to the network (inside DistributedDataParallel when wrapped)."""
    return getattr(model, "module", model).criterion


class Evaluator(abc.ABC):
    """Accumulates validation results over the whole set, then aggregates."""

    @abc.abstractmethod
    def update(self, outputs: Any, batch: Any) -> None:
        """Add one batch of model outputs and its targets."""

    @abc.abstractmethod
    def compute(self) -> dict[str, float]:
        """Metric name (e.g. 'validation:accuracy') to value over everything seen."""

    def state(self) -> list[Any]:
        """Picklable accumulated state, gathered across ranks in distributed runs."""
        return []

    def merge(self, states: list[list[Any]]) -> None:
        """Merge other ranks' states into this one."""

    def prediction_counts(self) -> Optional[list[int]]:
        """How often each class id was predicted over everything seen (after merge); None when not tracked."""
        return None


class Report(Evaluator):
    """The selected model's validation outputs turned into evaluation.json fields and plots (rank 0, after fit).

    smcv.report.run shows each collated batch to see_batch, then runs the task's validation_step with the Report
    as its evaluator, so the task's own forward code feeds the report."""

    def see_batch(self, batch: Any) -> None:
        """The collated batch validation_step receives next (for image grids); the default keeps nothing."""

    @abc.abstractmethod
    def evaluation(self) -> dict[str, Any]:
        """JSON-ready fields for evaluation.json: per_class, confusion_matrix, ece, ... (see docs/observability.md)."""

    def manifest_fields(self) -> dict[str, Any]:
        """Fields the validation pass adds to manifest.json (e.g. a decision threshold); the default adds none."""
        return {}

    @abc.abstractmethod
    def plots(self) -> dict[str, Callable[[Path], None]]:
        """Plot file name (e.g. 'confusion_matrix.png') to the function that writes it to the given path."""


@dataclass
class CardFacts:
    """What a task tells the model card (model/README.md) beyond the manifest and hyperparameters."""

    description: str  # what the model does, one sentence
    architecture: str  # the network, e.g. 'ResNet-18'
    preprocessing: str  # image size and preprocessing the model applies to a request image
    response_types: tuple[str, ...] = ()  # Accept values the endpoint answers
    notes: list[str] = field(default_factory=list)  # task-specific limits


def class_label(class_names: Sequence[str], class_id: int) -> str:
    """'3 (effusion)' for a named class, '3' when the class has no name of its own; for log messages."""
    if class_id < len(class_names) and class_names[class_id] != str(class_id):
        return f"{class_id} ({class_names[class_id]})"
    return str(class_id)


class Predictor(abc.ABC):
    """A loaded model ready to serve. Per request (request thread): header checks, decode to uint8 pixels or keep the
    JPEG for the device, request_meta. Per batch (batching thread): prepare (resize, pad or crop, normalise on the
    device, shared by every task through smcv.serving.prepare), predict_batch. Per request again: encode."""

    #: response content types, the first is the default for Accept */* or none
    response_types: tuple[str, ...] = ("application/json",)
    #: the default in batch transform (SAGEMAKER_BATCH) when it differs, as the built-in's JSON Lines for IC
    batch_response_type: Optional[str] = None
    #: PIL mode the server decodes request images to ("RGB", "L", ...)
    image_mode: str = "RGB"
    #: the side the network input is resized to; requests far larger are decoded smaller (0: never)
    input_side: int = 0
    #: per-channel mean and standard deviation (0-1 scale) that prepare normalises with
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    #: where the model runs; prepare puts the batch there
    device: torch.device = torch.device("cpu")

    @abc.abstractmethod
    def placement(self, height: int, width: int) -> Placement:
        """Where a decoded image of height x width goes in the network input (its resized size, crop or padding)."""

    def request_meta(self, size: tuple[int, int], original: tuple[int, int]) -> dict[str, Any]:
        """Per-request facts for predict_batch and encode from the decoded (width, height) and the size as sent."""
        return {"width": original[0], "height": original[1]}

    def prepare(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """uint8 CHW images of any sizes -> the resized, normalised float batch on self.device."""
        placements = [self.placement(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        return network_batch(images, placements, self.mean, self.std, self.device)

    @abc.abstractmethod
    def predict_batch(self, batch: torch.Tensor, metas: Sequence[dict[str, Any]]) -> list[Any]:
        """Run the model on a prepared batch; one CPU result per item, ready for encode (metas: request_meta of each
        item plus 'accept', the negotiated response type)."""

    def predict_images(self, images: Sequence[torch.Tensor], metas: Sequence[dict[str, Any]]) -> list[Any]:
        """prepare then predict_batch: uint8 CHW images of any sizes to one result each."""
        return self.predict_batch(self.prepare(images), metas)

    @abc.abstractmethod
    def encode(self, result: Any, meta: dict[str, Any], accept: str) -> bytes:
        """Encode one result in the given response content type (one of response_types)."""


@dataclass(frozen=True)
class OnDevice:
    """A training batch that Task.stage_batch already put on the device (and augmented there): `inputs` is what
    the task's training_loss would otherwise have made of the collated batch."""

    inputs: Any


def staged_inputs(batch: Any, device: torch.device, stage: Callable[[Any, torch.device], Any]) -> Any:
    """A staged batch's inputs, or `stage` applied to a collated one (the same result, made now)."""
    return batch.inputs if isinstance(batch, OnDevice) else stage(batch, device)


class Task(abc.ABC):
    """One algorithm: schema, data, model, loss, metrics, artifact and serving."""

    name: str = ""
    #: the HPO objective metric, e.g. 'validation:accuracy'
    objective_metric: str = ""
    #: every metric the engine may log for this task, besides train:loss and validation:loss
    metric_names: tuple[str, ...] = ()
    #: which direction is better for the objective
    objective_type: str = "Maximize"
    #: input channels the task reads (the first is required), for the algorithm specification
    channel_names: tuple[str, ...] = ("train", "validation", "pretrained", "model")
    #: content types its data channels accept
    content_types: tuple[str, ...] = ("application/x-recordio", "application/x-image", "image/jpeg", "image/png")

    @abc.abstractmethod
    def schema(self) -> Schema:
        """The hyperparameter schema (built-in names, defaults, ranges)."""

    @abc.abstractmethod
    def train_settings(self, hp: HyperParameters) -> TrainSettings:
        """Engine settings derived from the hyperparameters."""

    def pretrained_need(self, hp: HyperParameters) -> Optional[WeightsNeed]:
        """The ImageNet weights these hyperparameters need (None: none); smcv.train finds them before any data is read."""
        return None

    def resolve_pretrained(self, hp: HyperParameters, channels: dict[str, Path]) -> Optional[Path]:
        """The file for pretrained_need (smcv.pretrained.resolve_weights); None when nothing is needed or the `model`
        channel holds an smcv model (incremental training starts from it)."""
        if channel_inputs(channels).model_artifact is not None:
            return None
        return resolve_weights(self.pretrained_need(hp), channels)

    @abc.abstractmethod
    def prepare_data(self, hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict]) -> PreparedData:
        """Read the channels into datasets; raise DataError with the file name on bad data."""

    @abc.abstractmethod
    def build_model(self, hp: HyperParameters, data: PreparedData, channels: dict[str, Path],
                    weights: Optional[Path] = None) -> torch.nn.Module:
        """The network, started from `weights`: the file smcv.train resolved with resolve_pretrained (None: resolved
        here, for callers outside smcv.train).

        Tasks keep no state: what the training steps need beside the network (normalisation, loss settings) goes on
        the returned model as a parameter-free `criterion` child module, read back with criterion_of(model)."""

    def stage_batch(self, batch: Any, device: torch.device) -> Any:
        """A collated training batch's work before the network (copy to the device, augmentation there) as an
        OnDevice batch (an OnDevice batch is returned as it is); the trainer runs it one batch ahead on a side CUDA
        stream (engine.prefetch). The default stages nothing: training_loss then does it all."""
        return batch

    @abc.abstractmethod
    def training_loss(self, model: torch.nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
        """Forward one training batch (as collated, or as stage_batch left it) and return the scalar loss."""

    @abc.abstractmethod
    def new_evaluator(self, hp: HyperParameters, data: PreparedData) -> Evaluator:
        """A fresh validation accumulator."""

    @abc.abstractmethod
    def validation_step(self, model: torch.nn.Module, batch: Any, device: torch.device, evaluator: Evaluator) -> torch.Tensor:
        """Forward one validation batch, update the evaluator, return the batch loss."""

    @abc.abstractmethod
    def manifest_fields(self, hp: HyperParameters, data: PreparedData) -> dict[str, Any]:
        """Task facts serving needs: architecture, input size, normalisation, classes, thresholds."""

    def advisor_facts(self, hp: HyperParameters, data: PreparedData) -> AdvisorFacts:
        """Facts for the pre-flight advisor; tasks add what they know about their network and data."""
        return AdvisorFacts(train_samples=len(data.train), class_names=list(data.class_names))

    def new_report(self, hp: HyperParameters, data: PreparedData) -> Optional[Report]:
        """A fresh collector for the report pass over the validation set (None: only the training curves)."""
        return None

    def card_facts(self, hp: HyperParameters, data: PreparedData) -> CardFacts:
        """Facts for the model card; tasks describe their network and input."""
        return CardFacts(description=f"{self.name} model", architecture=str(hp.get("architecture", "")),
                         preprocessing="")

    def extra_metric_lines(self, metrics: dict[str, float]) -> list[str]:
        """Additional log lines in the built-in algorithm's own format (for existing log parsers)."""
        return []

    @abc.abstractmethod
    def build_predictor(self, manifest: dict[str, Any], state_dict: dict[str, torch.Tensor], device: torch.device) -> Predictor:
        """Rebuild the network from the manifest alone and wrap it for serving."""
