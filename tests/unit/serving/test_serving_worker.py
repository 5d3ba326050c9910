"""The gunicorn worker's pieces: the per-request read deadline and JSON answers to unparseable requests."""

from __future__ import annotations

import json
import socket
import time

import pytest
from gunicorn.http.errors import InvalidRequestLine, LimitRequestHeaders, LimitRequestLine

from smcv.errors import HTTPError
from smcv.serving.worker import DeadlineSocket, ReadDeadlineExceeded, parse_error_status, write_json_error


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_reads_of_one_request_share_one_deadline(pair):
    server, client = pair
    sock = DeadlineSocket(server, read_timeout_s=0.5)
    client.sendall(b"GET / HTTP/1.1\r\n")
    assert sock.recv(100) == b"GET / HTTP/1.1\r\n"
    started = time.monotonic()
    with pytest.raises(ReadDeadlineExceeded):
        sock.recv(100)  # the client stalls: the read gives up at the request's deadline
    assert time.monotonic() - started < 5
    assert server.gettimeout() is None  # the socket's own timeout is restored
    with pytest.raises(ReadDeadlineExceeded):
        sock.recv(100)  # the deadline stays passed for this request
    sock.start_request()
    client.sendall(b"next")
    assert sock.recv(100) == b"next"  # a new request gets a new clock


def test_deadline_socket_delegates_everything_else(pair):
    server, _ = pair
    sock = DeadlineSocket(server, read_timeout_s=1)
    assert sock.fileno() == server.fileno()
    sock.settimeout(2.0)
    assert server.gettimeout() == 2.0


@pytest.mark.parametrize("exc, status", [
    (InvalidRequestLine("garbage"), 400),
    (LimitRequestHeaders("too large"), 431),
    (LimitRequestLine(9000, 4094), 414),
    (RuntimeError("bug"), 500),
])
def test_parse_error_status(exc, status):
    assert parse_error_status(exc)[0] == status


def test_json_error_response(pair):
    server, client = pair
    write_json_error(server, HTTPError(431, "Error parsing headers: 'too large'"), "Request Header Fields Too Large")
    server.shutdown(socket.SHUT_WR)
    raw = b"".join(iter(lambda: client.recv(4096), b""))
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"Content-Type: application/json" in head and f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {"error": "Error parsing headers: 'too large'", "status": 431}
