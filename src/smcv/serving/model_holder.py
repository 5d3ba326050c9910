"""The model holder of one worker: loads the task predictor in the background, warms it up, runs requests."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Optional

from PIL import Image

from smcv.contract import (ENV_ALLOW_UNTRAINED, ENV_DEVICE, ENV_MAX_BATCH_DELAY_MS, ENV_MAX_BATCH_SIZE,
                           ENV_PREPARE_OVERLAP, ENV_TIMEOUT, env_choice)
from smcv.cuda_driver import cuda_facts, unusable_gpu_reason
from smcv.data.images import normalise_mode
from smcv.errors import HTTPError, UserError
from smcv.serving import codecs
from smcv.tasks import get_task

logger = logging.getLogger("smcv.serving")


DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_DELAY_MS = 5.0
#: SMCV_PREPARE_OVERLAP values: auto (on a GPU), on, off
PREPARE_OVERLAP_CHOICES = ("auto", "on", "off")


def env_number(names: str | tuple[str, ...], default: float, kind: type = float) -> Any:
    """The first set variable of names parsed as a non-negative number, else the default; bad values are errors."""
    for name in (names,) if isinstance(names, str) else names:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            value = kind(float(raw)) if kind is int else kind(raw)
        except ValueError:
            raise ValueError(f"{name}={raw!r} is not a number; unset it or give a positive {kind.__name__}") from None
        if value < 0:
            raise ValueError(f"{name}={raw!r} must not be negative")
        return value
    return default


def model_timeout_s() -> float:
    """The per-request deadline from SAGEMAKER_MODEL_SERVER_TIMEOUT / MODEL_SERVER_TIMEOUT (default 60 s)."""
    return env_number(ENV_TIMEOUT, DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S


def pick_device(worker_index: int = 0) -> Any:
    """$SMCV_DEVICE when set ('cuda' alone means GPU worker_index mod n), else GPU worker_index mod n, else CPU."""
    import torch  # workers only: the gunicorn master imports this module and stays without torch

    wanted = os.environ.get(ENV_DEVICE, "").strip().lower()
    if wanted and wanted != "cuda":
        return torch.device(wanted)
    facts = cuda_facts()
    if worker_index == 0:
        logger.info("%s", facts.describe())
    reason = unusable_gpu_reason(facts)
    if reason:
        raise UserError(reason)  # /ping answers 500 with it: never serve on the CPU of a GPU host unasked
    if torch.cuda.is_available():
        return torch.device("cuda", worker_index % torch.cuda.device_count())
    if wanted == "cuda":
        raise RuntimeError(f"{ENV_DEVICE}=cuda but no CUDA device is visible; unset it or run on a GPU instance")
    return torch.device("cpu")


def default_max_batch_size(device: Any) -> int:
    """$SMCV_MAX_BATCH_SIZE, else 8 on GPU (amortises kernel launches) and 4 on CPU (cores are already busy)."""
    return max(1, env_number(ENV_MAX_BATCH_SIZE, 8 if device.type == "cuda" else 4, int))


def prepare_overlap_setting() -> str:
    """$SMCV_PREPARE_OVERLAP: auto (default), on or off; another value is a ValueError naming the choices."""
    return env_choice(ENV_PREPARE_OVERLAP, PREPARE_OVERLAP_CHOICES)


def prepare_overlap(device: Any) -> bool:
    """Whether the next batch is decoded and prepared while the model runs the current one: $SMCV_PREPARE_OVERLAP,
    auto meaning on a GPU (both stages queue work for the device; on a CPU they would compete for the same cores)."""
    wanted = prepare_overlap_setting()
    return wanted == "on" or (wanted == "auto" and device.type == "cuda")


def check_trained(manifest: dict, model_dir: Path) -> None:
    """Refuse a model saved before its first epoch finished (random weights) unless $SMCV_ALLOW_UNTRAINED=1."""
    if manifest.get("trained", True):
        return
    what = (f"the model in {model_dir} was saved by a training job stopped before its first epoch finished "
            f"(epochs_completed={manifest.get('epochs_completed', 0)}): its weights are untrained")
    if os.environ.get(ENV_ALLOW_UNTRAINED, "") == "1":
        logger.warning("%s; serving it anyway because %s=1", what, ENV_ALLOW_UNTRAINED)
        return
    raise UserError(f"{what}. Train it for at least one epoch, or set {ENV_ALLOW_UNTRAINED}=1 to serve it anyway")


class ModelHolder:
    """Owns one worker's model: background load, warm-up, readiness and batched inference."""

    def __init__(self, model_dir: Path, device: Optional[str] = None, *, worker_index: int = 0,
                 max_batch_size: Optional[int] = None, max_delay_ms: Optional[float] = None,
                 timeout_s: Optional[float] = None, overlap: Optional[bool] = None) -> None:
        self.model_dir = Path(model_dir)
        self.worker_index = worker_index
        self._device_request = device
        self._max_batch_size = max_batch_size
        self.max_delay_s = (env_number(ENV_MAX_BATCH_DELAY_MS, DEFAULT_MAX_DELAY_MS) if max_delay_ms is None
                            else max_delay_ms) / 1000.0
        self.timeout_s = model_timeout_s() if timeout_s is None else timeout_s
        self.device: Any = None
        self.task_name: Optional[str] = None
        self.predictor: Any = None
        self.batcher: Any = None  # a smcv.serving.batching.Batcher once loaded
        self.keep_jpeg = False  # colour JPEGs go to the batcher encoded (decoded there, on the device), once loaded
        self._overlap = overlap  # prepare the next batch while the model runs (None: $SMCV_PREPARE_OVERLAP)
        self._prepare_stream: Any = None  # the side CUDA stream of the prepare stage when overlapped on a GPU
        self.error: Optional[str] = None
        self._ready = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def ready(self) -> bool:
        """True once the model is loaded and one warm-up forward has run."""
        return self._ready.is_set()

    @property
    def max_batch_size(self) -> int:
        """The batch limit: explicit, else from the environment and the device (CPU assumed before load)."""
        if self.batcher is not None:
            return self.batcher.max_batch_size
        if self._max_batch_size is not None:
            return self._max_batch_size
        import torch  # workers only: the gunicorn master imports this module and stays without torch

        return default_max_batch_size(self.device or torch.device("cpu"))

    @property
    def response_types(self) -> tuple[str, ...]:
        return tuple(self.check_ready().response_types)

    def start(self) -> "ModelHolder":
        """Load the model in a background thread (call in the worker, after fork)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.load, name="smcv-model-loader", daemon=True)
            self._thread.start()
        return self

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the model is ready or failed; True when ready."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.ready

    def load(self) -> None:
        """Load, warm up and start batching; a failure is logged once and kept in .error."""
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - any failure must reach /ping, not kill the worker
            self.error = _describe(exc)
            self.close()
            logger.error("model failed to load from %s (worker %d): %s", self.model_dir, self.worker_index,
                         self.error, exc_info=not isinstance(exc, UserError))

    def _load(self) -> None:
        from smcv.artifact import load_manifest, load_state_dict  # imports torch: workers only, after fork
        import torch  # workers only: the gunicorn master imports this module and stays without torch

        from smcv.data.jpeg import decode_on_device  # imports torch: workers only, after fork
        from smcv.serving.batching import Batcher  # imports torch: workers only, after fork

        started = time.monotonic()
        manifest = load_manifest(self.model_dir)
        if "task" not in manifest:
            raise UserError(f"{self.model_dir / 'manifest.json'} names no 'task'; it must come from an smcv training job")
        check_trained(manifest, self.model_dir)
        self.task_name = str(manifest["task"])
        self.device = pick_device(self.worker_index) if self._device_request is None else _as_device(self._device_request)
        state = load_state_dict(self.model_dir)
        self.predictor = get_task(self.task_name).build_predictor(manifest, state, self.device)
        self.keep_jpeg = decode_on_device(self.device.type == "cuda") and self.image_mode == "RGB"
        batch_size = self._max_batch_size or default_max_batch_size(self.device)
        overlap = prepare_overlap(self.device) if self._overlap is None else self._overlap
        if overlap and self.device.type == "cuda":
            self._prepare_stream = torch.cuda.Stream(self.device)
        self.batcher = Batcher(self._infer if overlap else self._run_batch, batch_size, self.max_delay_s,
                               name=f"smcv-batcher-{self.worker_index}",
                               prepare=self._prepare if overlap else None).start()
        logger.info("model loaded in %.2f s (task=%s, device=%s, worker=%d, max_batch_size=%d, max_delay_ms=%g, "
                    "jpeg_decode=%s, prepare_overlap=%s)", time.monotonic() - started, self.task_name, self.device,
                    self.worker_index, batch_size, self.max_delay_s * 1000, "device" if self.keep_jpeg else "pil",
                    "on" if overlap else "off")
        self._warm_up()
        self._ready.set()

    def _warm_up(self) -> None:
        """The batching path at batch size 1 and at the full batch size (a JPEG to decode when they are kept), then
        encode: CUDA kernels, nvJPEG and cuDNN are initialised before the first request."""
        from smcv.serving.request_image import RequestImage, from_pil  # imports torch: workers only

        started = time.monotonic()
        blank = Image.new(self.image_mode, (64, 64))
        image = from_pil(blank)
        if self.keep_jpeg:
            buffer = io.BytesIO()
            blank.save(buffer, format="JPEG")
            image = RequestImage(None, buffer.getvalue(), blank.size, blank.size)
        meta = {**self.predictor.request_meta(image.size, image.original_size), "accept": self.predictor.response_types[0]}
        for size in sorted({1, self.batcher.max_batch_size}):
            results = self._run_batch([(image, meta)] * size)
            if isinstance(results[0], BaseException):
                raise results[0]
        self.predictor.encode(results[0], {**meta, "custom_attributes": None}, self.predictor.response_types[0])
        logger.info("warm-up done in %.2f s", time.monotonic() - started)

    def _run_batch(self, items: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
        """(RequestImage, meta) items -> one result each, both stages in this thread (the warm-up's path)."""
        return self._infer(self._prepare(items))

    def _prepare(self, items: list[tuple[Any, dict[str, Any]]]) -> Any:
        """The batch's first stage: decode kept JPEGs, resize and normalise on the device (smcv.serving.batch_stages)."""
        from smcv.serving.batch_stages import prepare_batch  # imports torch: workers only

        return prepare_batch(self.predictor, items, self.device, self._prepare_stream)

    def _infer(self, prepared: Any) -> list[Any]:
        """The batch's second stage: the model on the prepared batch, one result per item."""
        from smcv.serving.batch_stages import infer_prepared  # imports torch: workers only

        return infer_prepared(self.predictor, prepared)

    @property
    def image_mode(self) -> str:
        """The PIL mode the predictor wants (attribute image_mode, default RGB)."""
        return getattr(self.predictor, "image_mode", "RGB")

    @property
    def input_side(self) -> Optional[int]:
        """The side the predictor resizes images to (attribute input_side), so larger ones may be decoded smaller."""
        return getattr(self.predictor, "input_side", None) or None

    def check_ready(self) -> Any:
        """The task predictor; HTTP 500 when loading failed, 503 while it is still loading."""
        if self.error is not None:
            raise HTTPError(500, f"the model failed to load: {self.error}")
        if not self.ready:
            raise HTTPError(503, "the model is still loading; retry when GET /ping returns 200")
        return self.predictor

    def infer(self, image: Image.Image, accept: Optional[str], custom_attributes: Optional[str] = None) -> tuple[bytes, str]:
        """Check readiness, negotiate the Accept header, then run one decoded image; returns (body, content type)."""
        from smcv.serving.request_image import from_pil  # imports torch: workers only

        predictor = self.check_ready()
        content_type = codecs.negotiate(accept, predictor.response_types)
        image = normalise_mode(image, self.image_mode)
        return self.run(predictor, from_pil(image), content_type, custom_attributes,
                        codecs.response_options(accept)), content_type

    def run(self, predictor: Any, image: Any, content_type: str, custom_attributes: Optional[str] = None,
            options: Optional[codecs.ResponseOptions] = None) -> bytes:
        """Batch, predict and encode one RequestImage for a ready predictor and a negotiated content type."""
        return self.run_many(predictor, [image], content_type, custom_attributes, options)[0]

    def run_many(self, predictor: Any, images: list[Any], content_type: str,
                 custom_attributes: Optional[str] = None, options: Optional[codecs.ResponseOptions] = None) -> list[bytes]:
        """Like run for several RequestImages, all handed to the batcher before waiting, so they share batches;
        each answer is encoded here, in the request's thread (so PNG and JSON encoding run in parallel)."""
        metas = [{**predictor.request_meta(image.size, image.original_size), "accept": content_type} for image in images]
        futures = [self.batcher.submit((image, meta)) for image, meta in zip(images, metas)]
        meta_extra = {"custom_attributes": custom_attributes, "options": options}
        answers = []
        for number, (future, meta) in enumerate(zip(futures, metas), start=1):
            result = self._result(future, f" (record {number})" if len(images) > 1 else "")
            answers.append(predictor.encode(result, {**meta, **meta_extra}, content_type))
        return answers

    def _result(self, future: Any, where: str = "") -> Any:
        """The batcher's result for one image, as an HTTPError when it timed out or failed (where: its record)."""
        try:
            result = future.result(timeout=self.timeout_s)
        except HTTPError as exc:  # this image alone could not be used (found in the batched decode)
            if where:
                raise HTTPError(exc.status, f"{exc.message}{where}", **exc.details) from None
            raise
        except FutureTimeout:
            future.cancel()
            raise HTTPError(503, f"inference did not finish within {self.timeout_s:g} s; the worker is overloaded; "
                                 "retry, add instances, or raise SAGEMAKER_MODEL_SERVER_TIMEOUT",
                            timeout_s=self.timeout_s) from None
        except Exception as exc:  # the batching thread has logged the traceback once for the whole batch
            raise HTTPError(500, f"inference failed: {_describe(exc)[:300]}") from exc
        return result

    def close(self) -> None:
        """Stop the batching thread."""
        if self.batcher is not None:
            self.batcher.stop(timeout=5)


def _as_device(value: Any) -> Any:
    import torch  # workers only: the gunicorn master imports this module and stays without torch

    return value if isinstance(value, torch.device) else torch.device(str(value))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, UserError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
