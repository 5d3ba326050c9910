"""The gunicorn worker: gthread with a deadline on reading each request and JSON bodies for gunicorn's own errors."""

from __future__ import annotations

import json
import socket
import time
from typing import Any, Optional

from gunicorn import util
from gunicorn.http.errors import (ExpectationFailed, ForbiddenProxyRequest, InvalidResponseHeader,
                                  InvalidResponseHeaderName, LimitRequestHeaders, LimitRequestLine, NoMoreData,
                                  ParseException, UnsupportedTransferCoding)
from gunicorn.workers.gthread import ThreadWorker

from smcv.errors import HTTPError

#: (exception class, status, reason) for gunicorn's parse errors that are not a plain 400, first match wins
_PARSE_ERROR_STATUS = (
    (LimitRequestLine, 414, "URI Too Long"),
    (LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (UnsupportedTransferCoding, 501, "Not Implemented"),
    (ExpectationFailed, 417, "Expectation Failed"),
    (ForbiddenProxyRequest, 403, "Forbidden"),
)
_REASONS = {400: "Bad Request", 500: "Internal Server Error"}


class ReadDeadlineExceeded(NoMoreData):
    """The client did not send its request's header and body within the read timeout (gunicorn closes quietly)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"request not received within {timeout_s:g} s")
        self.timeout_s = timeout_s


class DeadlineSocket:
    """A client socket whose reads share one deadline per request; everything else goes to the real socket."""

    def __init__(self, sock: socket.socket, read_timeout_s: float) -> None:
        self._sock = sock
        self.read_timeout_s = read_timeout_s
        self._deadline: Optional[float] = None

    def start_request(self) -> None:
        """The next read starts a new request's clock."""
        self._deadline = None

    def recv(self, size: int, *flags: int) -> bytes:
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self.read_timeout_s
        remaining = self._deadline - now
        if remaining <= 0:
            raise ReadDeadlineExceeded(self.read_timeout_s)
        previous = self._sock.gettimeout()
        self._sock.settimeout(remaining if previous is None else min(previous, remaining))
        try:
            return self._sock.recv(size, *flags)
        except socket.timeout:
            raise ReadDeadlineExceeded(self.read_timeout_s) from None
        finally:
            self._sock.settimeout(previous)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class SmcvThreadWorker(ThreadWorker):
    """gthread, but a stalled client loses its thread after the read timeout, and errors are JSON."""

    read_timeout_s = 20.0  # gunicorn_conf.worker_class sets it from the server settings

    def enqueue_req(self, conn: Any) -> None:
        if not isinstance(conn.sock, DeadlineSocket):  # before the parser is built on it (in a pool thread)
            conn.sock = DeadlineSocket(conn.sock, self.read_timeout_s)
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        conn.sock.start_request()
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer gunicorn's own errors (bad request line, headers too large) with a JSON body."""
        status, reason = parse_error_status(exc)
        if status < 500:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        else:
            self.log.exception("Error handling request %s", getattr(req, "uri", "(no URI read)"))
        message = str(exc) if status < 500 else "internal error; see the endpoint's CloudWatch log"
        try:
            write_json_error(client, HTTPError(status, message or reason), reason)
        except Exception:  # noqa: BLE001 - the client may be gone; nothing left to tell it
            self.log.debug("Failed to send error message.")


def worker_class(read_timeout_s: float) -> type:
    """SmcvThreadWorker with this read timeout (a subclass, so that the class itself stays unchanged)."""
    return type("SmcvThreadWorker", (SmcvThreadWorker,), {"read_timeout_s": float(read_timeout_s)})


def parse_error_status(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and reason gunicorn gives a request it could not parse (500 for anything else)."""
    if isinstance(exc, (InvalidResponseHeader, InvalidResponseHeaderName)) or not isinstance(exc, ParseException):
        return 500, _REASONS[500]
    for kind, status, reason in _PARSE_ERROR_STATUS:
        if isinstance(exc, kind):
            return status, reason
    return 400, _REASONS[400]


def write_json_error(sock: Any, error: HTTPError, reason: str) -> None:
    """Write a complete HTTP/1.1 response with the error's JSON body and close semantics."""
    body = json.dumps(error.to_json()).encode()
    head = (f"HTTP/1.1 {error.status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)
