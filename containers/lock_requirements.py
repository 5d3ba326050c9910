"""Write sha256 hashes under every pin of the image's requirement files, read from the package index.

Usage: python containers/lock_requirements.py [--index URL] [FILE ...]

Each FILE (default: every containers/requirements*.txt) keeps its comments and `name==version` pins; the
hashes of that version's files that fit the image (CPython 3.11, manylinux x86_64, pure-Python wheels, sdists)
are written below each pin, so that the Dockerfile's `pip install --require-hashes` refuses any other file.
The hashes come from the index's simple pages (PEP 503 `#sha256=` links); `--index` defaults to
PIP_INDEX_URL or https://pypi.org/simple. Run it after changing a pin (docs/container.md, "Updating the pins").
"""

from __future__ import annotations

import argparse
import html.parser
import os
import re
import ssl
import sys
import urllib.request
from pathlib import Path
from typing import Iterable, Optional

HERE = Path(__file__).resolve().parent
#: every lock file of the image; requirements-torch-cu<N>.txt is one per CUDA line (Dockerfile ARG CUDA)
TORCH_LOCKS = {12: "requirements-torch-cu12.txt", 13: "requirements-torch-cu13.txt"}
LOCK_FILES = ("requirements-build.txt", "requirements-sdist.txt", *TORCH_LOCKS.values(), "requirements.txt")
DEFAULT_INDEX = "https://pypi.org/simple"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*\\?\s*$")
TARGET_PYTHON = (3, 11)
TARGET_GLIBC = (2, 36)  # Debian bookworm


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


class _Links(html.parser.HTMLParser):
    """Collects (file name, sha256) from a PEP 503 simple page."""

    def __init__(self) -> None:
        super().__init__()
        self.files: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        href = dict(attrs).get("href") or ""
        if tag == "a" and "#sha256=" in href:
            url, digest = href.split("#sha256=", 1)
            self.files.append((url.rsplit("/", 1)[-1], digest.lower()))


def parse_simple_page(text: str) -> list[tuple[str, str]]:
    """(file name, sha256) pairs of a simple index page."""
    parser = _Links()
    parser.feed(text)
    return parser.files


def _platform_fits(platform: str) -> bool:
    if platform == "any":
        return True
    legacy = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12), "manylinux2014_x86_64": (2, 17)}
    if platform in legacy:
        return legacy[platform] <= TARGET_GLIBC
    match = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
    return bool(match) and (int(match.group(1)), int(match.group(2))) <= TARGET_GLIBC


def _tags_fit(python: str, abi: str, platform: str) -> bool:
    major, minor = TARGET_PYTHON
    pythons = python.split(".")
    if not any(_platform_fits(p) for p in platform.split(".")):
        return False
    if abi == "none":
        return any(p in (f"py{major}", f"py{major}{minor}", f"cp{major}{minor}") for p in pythons)
    if abi == "abi3":
        return any(re.fullmatch(r"cp3(\d+)", p) and int(p[3:]) <= minor for p in pythons)
    return abi == f"cp{major}{minor}" and f"cp{major}{minor}" in pythons


def fits_image(filename: str, name: str, version: str) -> bool:
    """Whether an index file is this exact version and installable in the image (or an sdist of it)."""
    stem = normalize(name).replace("-", "_")
    if filename.endswith((".tar.gz", ".zip")):
        base = filename[: -len(".tar.gz")] if filename.endswith(".tar.gz") else filename[: -len(".zip")]
        dist, _, ver = base.rpartition("-")
        return normalize(dist) == normalize(name) and ver == version
    if not filename.endswith(".whl"):
        return False
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6) or normalize(parts[0]).replace("-", "_") != stem or parts[1] != version:
        return False
    return _tags_fit(parts[-3], parts[-2], parts[-1])


def fetch_page(index: str, name: str) -> str:
    """The simple page of one project (TLS verified with PIP_CERT/SSL_CERT_FILE when set)."""
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    request = urllib.request.Request(f"{index.rstrip('/')}/{normalize(name)}/", headers={"Accept": "text/html"})
    with urllib.request.urlopen(request, timeout=60, context=context) as response:
        return response.read().decode("utf-8", "replace")


def hashes_for(index: str, name: str, version: str) -> list[str]:
    """Sorted sha256 digests of the files of name==version that fit the image."""
    digests = sorted({d for f, d in parse_simple_page(fetch_page(index, name)) if fits_image(f, name, version)})
    if not digests:
        raise SystemExit(f"lock_requirements: {name}=={version}: no file for CPython 3.11 manylinux x86_64 "
                         f"(or sdist) on {index}; check the pin")
    return digests


def lock_lines(lines: Iterable[str], lookup) -> list[str]:
    """The file's lines with old hash lines dropped and fresh ones under each pin (lookup(name, version))."""
    out: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if line.strip().startswith("--hash="):
            continue
        match = PIN.match(line)
        if not match:
            out.append(line)
            continue
        name, version = match.groups()
        digests = lookup(name, version)
        out.append(f"{name}=={version} \\")
        out.extend(f"    --hash=sha256:{d}" + (" \\" if i < len(digests) - 1 else "") for i, d in enumerate(digests))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """Rewrite the lock files in place with hashes from the index."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default=os.environ.get("PIP_INDEX_URL", DEFAULT_INDEX))
    parser.add_argument("files", nargs="*", type=Path, default=[HERE / f for f in LOCK_FILES])
    args = parser.parse_args(argv)
    for path in args.files:
        locked = lock_lines(path.read_text().splitlines(), lambda n, v: hashes_for(args.index, n, v))
        path.write_text("\n".join(locked) + "\n")
        pins = sum(1 for line in locked if PIN.match(line))
        print(f"{path.name}: {pins} pins hashed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
