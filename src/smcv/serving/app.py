"""The Flask app: /ping, /invocations and /execution-parameters around one ModelHolder."""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from flask import Flask, Response, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException

from smcv.contract import ENV_BATCH, ENV_MAX_PAYLOAD_MB
from smcv.data.images import max_image_pixels
from smcv.errors import HTTPError
from smcv.serving import codecs, records
from smcv.serving.model_holder import ModelHolder, env_number

logger = logging.getLogger("smcv.serving")

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_MAX_PAYLOAD_MB = 6
#: SageMaker batch transform: MaxConcurrentTransforms x MaxPayloadInMB must stay within this
BATCH_TRANSFORM_BUDGET_MB = 100
_READ_CHUNK = 1 << 16
#: where create_app keeps its ModelHolder (gunicorn_conf.post_worker_init waits for it)
HOLDER_EXTENSION = "smcv.holder"


#: what /invocations reads: one encoded image, or JSON Lines of base64 images (batch transform, MultiRecord)
REQUEST_TYPES = (*codecs.IMAGE_REQUEST_TYPES, *records.RECORD_REQUEST_TYPES)


def batch_transform() -> bool:
    """SAGEMAKER_BATCH is set to true (batch transform; SDK local mode writes 'True')."""
    return os.environ.get(ENV_BATCH, "").strip().lower() in ("true", "1", "yes")


def max_payload_mb() -> int:
    """SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6; 0 means the largest batch transform payload, 100)."""
    value = env_number(ENV_MAX_PAYLOAD_MB, DEFAULT_MAX_PAYLOAD_MB, int)
    return value if value > 0 else BATCH_TRANSFORM_BUDGET_MB


class ErrorStateLog:
    """Logs a 5xx answer once per change of state (status and path), and the return to normal with a count."""

    def __init__(self) -> None:
        self._state: Optional[tuple[int, str]] = None
        self._repeats = 0
        self._lock = threading.Lock()

    def error(self, method: str, path: str, error: HTTPError) -> None:
        """Log this error unless the previous one had the same status and path."""
        with self._lock:
            if self._state == (error.status, path):
                self._repeats += 1
                return
            self._state, self._repeats = (error.status, path), 0
        logger.warning("%s %s -> %d: %s (logged once until this changes)", method, path, error.status, error.message)

    def ok(self) -> None:
        """A request succeeded: end the error state, saying how many answers were not logged."""
        if self._state is None:
            return
        with self._lock:
            state, repeats, self._state, self._repeats = self._state, self._repeats, None, 0
        if state is not None:
            logger.info("serving again after %d further %d answer(s) to %s", repeats, state[0], state[1])


def create_app(holder: ModelHolder, *, workers: int = 1, payload_mb: Optional[int] = None,
               concurrency: Optional[int] = None) -> Flask:
    """A Flask app serving one model holder; workers is the server's worker count (for batch transform hints).

    concurrency bounds the requests decoded and inferred at once (None: no bound); more connections than that
    can be open, each waiting for its body or for a slot.
    """
    app = Flask("smcv.serving")
    app.extensions[HOLDER_EXTENSION] = holder
    limit_mb = max_payload_mb() if payload_mb is None else payload_mb
    limit_bytes = limit_mb * 1024 * 1024
    pixel_limit = max_image_pixels()
    errors = ErrorStateLog()
    slots = threading.BoundedSemaphore(concurrency) if concurrency else None

    app.add_url_rule("/ping", "ping", lambda: _ping(holder), methods=["GET"])
    in_batch = batch_transform()

    def decode(data: bytes, request_type: str) -> Any:
        """Header checks and Pillow decode here, in the request thread (while the batcher runs the model); colour
        JPEGs are only checked when the holder decodes them in batches on the device."""
        return codecs.read_request_image(data, request_type, mode=holder.image_mode, max_pixels=pixel_limit,
                                         reduce_to=holder.input_side, keep_jpeg=holder.keep_jpeg)

    @app.post("/invocations")
    def invocations() -> Any:
        predictor = holder.check_ready()  # the one readiness check of this request
        _check_declared_length(limit_bytes, limit_mb)
        request_type = codecs.request_image_type(request.headers.get("Content-Type"), REQUEST_TYPES)
        accept = request.headers.get("Accept")
        default = codecs.batch_default(getattr(predictor, "batch_response_type", None), in_batch)
        response_type = codecs.negotiate(accept, predictor.response_types, default)  # the one negotiation
        options = codecs.response_options(accept)
        attributes = request.headers.get(CUSTOM_ATTRIBUTES_HEADER)
        several = records.is_record_request(request_type)  # JSON Lines of images, answered line by line
        if several:
            records.check_json_answer(response_type)
        data = _read_body(limit_bytes, limit_mb)
        with _slot(slots, holder.timeout_s):
            if several:
                images = records.decode_lines(data, lambda item: decode(item, "application/x-image"))
                body = records.join_answers(holder.run_many(predictor, images, response_type, attributes, options))
            else:
                body = holder.run(predictor, decode(data, request_type), response_type, attributes, options)
        errors.ok()
        return Response(body, status=200, content_type=records.JSONLINES if several else response_type)

    app.add_url_rule("/execution-parameters", "execution_parameters",
                     lambda: _execution_parameters(holder, workers, limit_mb), methods=["GET"])
    _register_error_handlers(app, errors)
    return app


def _execution_parameters(holder: ModelHolder, workers: int, limit_mb: int) -> Response:
    """Batch transform hints (SageMaker's guide spells the strategy SINGLE_RECORD)."""
    concurrency = max(1, min(workers * holder.max_batch_size, BATCH_TRANSFORM_BUDGET_MB // limit_mb))
    return jsonify({"MaxConcurrentTransforms": concurrency, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": limit_mb})


def _ping(holder: ModelHolder) -> Response:
    """200 once every request will be served; 500 naming the load failure; 503 while loading."""
    if holder.ready:
        return Response(b"", status=200, mimetype="text/plain")
    if holder.error is not None:
        return _json(HTTPError(500, f"the model failed to load: {holder.error}", model_dir=str(holder.model_dir)))
    return _json(HTTPError(503, "the model is loading; SageMaker keeps pinging until it is ready"))


@contextmanager
def _slot(slots: Optional[threading.BoundedSemaphore], timeout_s: float) -> Iterator[None]:
    """Hold one of the worker's decode-and-infer slots; 503 when none frees up within the model timeout."""
    if slots is None:
        yield
        return
    if not slots.acquire(timeout=timeout_s):
        raise HTTPError(503, f"the worker is busy: no request slot freed up within {timeout_s:g} s; retry or add "
                             "instances", timeout_s=timeout_s)
    try:
        yield
    finally:
        slots.release()


def _register_error_handlers(app: Flask, errors: ErrorStateLog) -> None:
    @app.errorhandler(HTTPError)
    def handle_http_error(exc: HTTPError) -> Any:
        if exc.status >= 500:
            errors.error(request.method, request.path, exc)
        return _json(exc)

    @app.errorhandler(HTTPException)
    def handle_werkzeug(exc: HTTPException) -> Any:
        return _json(HTTPError(exc.code or 500, exc.description or exc.name))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Any:
        logger.exception("unexpected error in %s %s", request.method, request.path)
        return _json(HTTPError(500, f"internal error ({type(exc).__name__}); see the endpoint's CloudWatch log"))


def _json(error: HTTPError) -> Response:
    response = jsonify(error.to_json())
    response.status_code = error.status
    return response


def _too_large(limit_mb: int) -> HTTPError:
    return HTTPError(413, f"the request body is larger than {limit_mb} MB; send a smaller image or raise "
                          "SAGEMAKER_MAX_PAYLOAD_IN_MB (real-time endpoints accept at most 6 MB)", max_payload_mb=limit_mb)


def _check_declared_length(limit_bytes: int, limit_mb: int) -> None:
    """413 before reading when Content-Length already exceeds the limit."""
    length = request.content_length
    if length is not None and length > limit_bytes:
        raise _too_large(limit_mb)


def _read_body(limit_bytes: int, limit_mb: int) -> bytes:
    """Read at most limit_bytes of the body (also for chunked requests); 413 beyond that."""
    stream = request.stream
    chunks, total = [], 0
    while True:
        try:
            chunk = stream.read(min(_READ_CHUNK, limit_bytes + 1 - total))
        except OSError as exc:  # the server's read deadline passed (a stalled client), or the client went away
            raise HTTPError(408, f"the request body did not arrive: {exc}; send the whole body at once") from None
        except ParseException as exc:  # gunicorn could not parse the body's framing (a bad chunk size or terminator)
            raise HTTPError(400, f"the request body is malformed: {exc}; send the image bytes with a Content-Length "
                                 "or in valid chunked encoding") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit_bytes:
            raise _too_large(limit_mb)
