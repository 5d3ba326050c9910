"""The Flask app: /ping, /invocations and /execution-parameters around one ModelHolder."""

from __future__ import annotations

import logging
from typing import Any, Optional

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from smcv.contract import ENV_MAX_PAYLOAD_MB
from smcv.data.images import max_image_pixels
from smcv.errors import HTTPError
from smcv.serving import codecs
from smcv.serving.model_holder import ModelHolder, env_number

logger = logging.getLogger("smcv.serving")

CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
DEFAULT_MAX_PAYLOAD_MB = 6
#: SageMaker batch transform: MaxConcurrentTransforms x MaxPayloadInMB must stay within this
BATCH_TRANSFORM_BUDGET_MB = 100
_READ_CHUNK = 1 << 16


def max_payload_mb() -> int:
    """SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6; 0 means the largest batch transform payload, 100)."""
    value = env_number(ENV_MAX_PAYLOAD_MB, DEFAULT_MAX_PAYLOAD_MB, int)
    return value if value > 0 else BATCH_TRANSFORM_BUDGET_MB


def create_app(holder: ModelHolder, *, workers: int = 1, payload_mb: Optional[int] = None) -> Flask:
    """A Flask app serving one model holder; workers is the server's worker count (for batch transform hints)."""
    app = Flask("smcv.serving")
    limit_mb = max_payload_mb() if payload_mb is None else payload_mb
    limit_bytes = limit_mb * 1024 * 1024
    pixel_limit = max_image_pixels()

    @app.get("/ping")
    def ping() -> Any:
        if holder.ready:
            return Response(b"", status=200, mimetype="text/plain")
        if holder.error is not None:
            return _json(HTTPError(500, f"the model failed to load: {holder.error}", model_dir=str(holder.model_dir)))
        return _json(HTTPError(503, "the model is loading; SageMaker keeps pinging until it is ready"))

    @app.post("/invocations")
    def invocations() -> Any:
        predictor = holder.check_ready()  # the one readiness check of this request
        _check_declared_length(limit_bytes, limit_mb)
        request_type = codecs.request_image_type(request.headers.get("Content-Type"))
        response_type = codecs.negotiate(request.headers.get("Accept"), predictor.response_types)  # the one negotiation
        options = codecs.response_options(request.headers.get("Accept"))
        data = _read_body(limit_bytes, limit_mb)
        image = codecs.decode_request_image(data, request_type, mode=holder.image_mode, max_pixels=pixel_limit,
                                            reduce_to=holder.input_side)
        body = holder.run(predictor, image, response_type, request.headers.get(CUSTOM_ATTRIBUTES_HEADER), options)
        return Response(body, status=200, content_type=response_type)

    @app.get("/execution-parameters")
    def execution_parameters() -> Any:
        concurrency = max(1, min(workers * holder.max_batch_size, BATCH_TRANSFORM_BUDGET_MB // limit_mb))
        return jsonify({"MaxConcurrentTransforms": concurrency, "BatchStrategy": "SINGLE_RECORD",
                        "MaxPayloadInMB": limit_mb})

    _register_error_handlers(app)
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPError)
    def handle_http_error(exc: HTTPError) -> Any:
        if exc.status >= 500:
            logger.warning("%s %s -> %d: %s", request.method, request.path, exc.status, exc.message)
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
        chunk = stream.read(min(_READ_CHUNK, limit_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit_bytes:
            raise _too_large(limit_mb)
