"""A raw HTTP/1.1 exchange over a socket: exact bytes out (bad headers, partial bodies, stalls), one answer back."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class Answer:
    """What came back: the status (None when the server closed without answering), headers, body, timing."""

    status: Optional[int]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    error: Optional[str] = None  # the client-side exception that ended the read (reset, timeout), if any

    def json(self) -> Any:
        return json.loads(self.body)

    def error_message(self) -> Optional[str]:
        """The 'error' string of a JSON error body, else None."""
        if not self.headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            message = self.json().get("error")
        except (ValueError, AttributeError):
            return None
        return message if isinstance(message, str) and message.strip() else None


def request_bytes(method: str, path: str, body: bytes = b"", headers: Optional[dict[str, str]] = None, *,
                  length: Optional[int] = -1, chunked: bool = False) -> bytes:
    """A whole request; length -1 declares len(body), None declares none; chunked sends the body in 64 KB chunks."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        step = 1 << 16
        payload = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]), body[i:i + step]) for i in range(0, len(body), step))
        payload += b"0\r\n\r\n"
    else:
        if length is not None:
            lines.append(f"Content-Length: {len(body) if length == -1 else length}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def exchange(port: int, data: bytes, timeout_s: float = 35.0) -> Answer:
    """Send data (in a thread, so that an early answer is read while the rest is still going out), then read one
    answer until it is complete, the server closes, or timeout_s passes; never raises for network errors."""
    started = time.monotonic()
    deadline = started + timeout_s
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    except OSError as exc:
        return Answer(None, seconds=time.monotonic() - started, error=f"connect: {type(exc).__name__}")
    sender = threading.Thread(target=_send_quietly, args=(sock, data), daemon=True)
    sender.start()
    try:
        answer = _read_answer(sock, deadline)
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        sender.join(5)
    answer.seconds = time.monotonic() - started
    return answer


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:  # the server answered (413) and closed before taking it all, or the test closed the socket
        pass


def _read_answer(sock: socket.socket, deadline: float) -> Answer:
    buffer = b""
    error = None
    try:
        while b"\r\n\r\n" not in buffer:
            chunk = _recv(sock, deadline)
            if not chunk:
                break
            buffer += chunk
        if b"\r\n\r\n" not in buffer:
            return Answer(None, error="closed without an answer" if not buffer else f"partial head {buffer[:80]!r}")
        head, body = buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while not body.endswith(b"0\r\n\r\n"):
                chunk = _recv(sock, deadline)
                if not chunk:
                    break
                body += chunk
            body = _unchunk(body)
        else:
            length = int(headers.get("content-length", "-1"))
            while length < 0 or len(body) < length:
                chunk = _recv(sock, deadline)
                if not chunk:
                    break
                body += chunk
        return Answer(status, headers, body)
    except (OSError, ValueError, IndexError) as exc:
        error = type(exc).__name__
    return Answer(None, error=error)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no complete answer before the client deadline")
    sock.settimeout(remaining)
    return sock.recv(1 << 16)


def _unchunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out
