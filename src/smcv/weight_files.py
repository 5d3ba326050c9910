"""Torchvision-style weight files: the SHA-256 prefix in their names, the download cache and downloads."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Optional

import torch

from smcv.contract import ENV_WEIGHTS_URL
from smcv.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_URL = "https://download.pytorch.org/models"
#: seconds a download may wait for the server (to connect, over all its addresses, and for each read): a job
#: without network access fails fast
TIMEOUT_S = 5.0
#: torchvision's names end in -<first hex digits of the file's SHA-256>.<suffix>, e.g. resnet18-f37072fd.pth
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z]+$")
CHUNK = 1 << 20


def expected_prefix(name: str) -> Optional[str]:
    """The SHA-256 prefix a file name carries (resnet18-f37072fd.pth -> f37072fd), or None."""
    match = HASH_IN_NAME.search(name)
    return match.group(1) if match else None


def sha256_of(path: Path) -> str:
    """The file's full SHA-256, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, *, delete: bool, origin: str = "") -> None:
    """Refuse a file whose SHA-256 does not start with the prefix in its name; delete it when it is ours."""
    if expected_prefix(path.name) is not None:
        _compare(path.name, sha256_of(path), path if delete else None, origin)


def _compare(name: str, actual: str, delete: Optional[Path], origin: str) -> None:
    prefix = expected_prefix(name)
    if prefix is None or actual.startswith(prefix):
        return
    if delete is not None:
        delete.unlink(missing_ok=True)
    where = f" ({origin})" if origin else ""
    fate = ("it was deleted" if delete is not None
            else "supply the right file, or rename it without the -<hash> suffix to skip the check")
    raise ConfigError(f"pretrained weights {name}{where} have SHA-256 {actual[:16]}..., not {prefix}... as the "
                      f"file name says: the file is damaged or not the published one; {fate}")


def connect_within(address: tuple[str, int], timeout: object = TIMEOUT_S, source_address: object = None) -> socket.socket:
    """socket.create_connection, but `timeout` bounds all of the host's addresses together, not each of them."""
    host, port = address
    timeout = timeout if isinstance(timeout, (int, float)) else TIMEOUT_S
    deadline = time.monotonic() + timeout
    error: OSError = TimeoutError(f"no connection to {host}:{port} within {timeout:g} s")
    for family, kind, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            if source_address:
                sock.bind(source_address)
            sock.connect(addr)
            sock.settimeout(timeout)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _ConnectDeadline:
    """urllib handler mixin: connections (to the server or a proxy) are made with connect_within."""

    def do_open(self, http_class, req, **kwargs):  # noqa: ANN001 - urllib's signature
        def connection(*args, **kw):
            conn = http_class(*args, **kw)
            conn._create_connection = connect_within
            return conn
        return super().do_open(connection, req, **kwargs)


class _HTTPHandler(_ConnectDeadline, urllib.request.HTTPHandler):
    pass


class _HTTPSHandler(_ConnectDeadline, urllib.request.HTTPSHandler):
    pass


def cache_dir() -> Path:
    """torch hub's checkpoints folder ($TORCH_HOME/hub/checkpoints), where downloads are kept for later jobs."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def base_url() -> str:
    """Where weight files are downloaded from: $SMCV_WEIGHTS_URL, else torchvision's server."""
    return (os.environ.get(ENV_WEIGHTS_URL) or DEFAULT_WEIGHTS_URL).rstrip("/")


def cached(file_name: str) -> Optional[Path]:
    """A verified file of the download cache, or None (a damaged one is deleted and logged)."""
    path = cache_dir() / file_name
    if not path.is_file():
        return None
    try:
        check_sha256(path, delete=True, origin="download cache")
    except ConfigError as exc:
        log.warning("%s; downloading it again", exc)
        return None
    return path


def _opener() -> urllib.request.OpenerDirector:
    """urllib's opener (proxies from the environment) whose connections have one TIMEOUT_S deadline each."""
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler)


def download(file_name: str) -> Path:
    """Download base_url()/file_name into the cache (atomically, one process at a time), verified.

    Raises OSError when the server cannot be reached or answers with an error, ConfigError on a hash mismatch."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    url = f"{base_url()}/{file_name}"
    with open(folder / f".{file_name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other processes of this job wait here and then find the file
        found = cached(file_name)
        if found is not None:
            return found
        start = time.monotonic()
        log.info("downloading %s", url)
        fd, tmp = tempfile.mkstemp(prefix=f".{file_name}.", dir=folder)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, _opener().open(url, timeout=TIMEOUT_S) as response:
                for block in iter(lambda: response.read(CHUNK), b""):
                    digest.update(block)
                    out.write(block)
            _compare(file_name, digest.hexdigest(), Path(tmp), f"downloaded from {url}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, folder / file_name)
        finally:
            Path(tmp).unlink(missing_ok=True)
    path = folder / file_name
    log.info("downloaded %s (%.0f MiB) in %.1f s", file_name, path.stat().st_size / 2**20, time.monotonic() - start)
    return path
