"""Download torchvision ImageNet weights into a folder at image build time, each checked against its SHA-256.

Usage: python bake_weights.py --dest DIR [--mode 1|required] [--base-url URL] SPEC ...

SPEC is a torchvision model name, optionally with an entry of its weights enum (resnet50, vgg16:IMAGENET1K_FEATURES;
default entry DEFAULT), or a file name as torchvision publishes it (resnet18-f37072fd.pth). Files keep torchvision's
names, which smcv.pretrained matches by model name; segmentation's default FCN uses the resnet50 file, its UNet the resnet34 file.
Each file comes from URL/NAME (default https://download.pytorch.org/models, torchvision's server) and must have a
SHA-256 that starts with the hex digits at the end of its name; a mismatch is refused and the file deleted.
DIR/BAKED.txt lists what is there: file name, full SHA-256, source URL.

mode 1 (default): best effort; what cannot be downloaded is reported and the build goes on without it.
mode required:    any file not baked exits 1.
Standalone on purpose (standard library, plus torchvision for model names): it runs before smcv is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request

DEFAULT_BASE_URL = "https://download.pytorch.org/models"
TIMEOUT_S = 10.0
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z]+$")
RECORD = "BAKED.txt"
CHUNK = 1 << 20


class Refused(Exception):
    """A file that must not be baked (its SHA-256 does not match its name)."""


def file_name(spec: str) -> str:
    """The published file name of a SPEC: itself when it is a file name, else torchvision's enum entry's file."""
    if spec.endswith((".pth", ".pt")):
        return spec
    import torchvision.models as models

    name, _, entry = spec.partition(":")
    weights = getattr(models.get_model_weights(name), entry or "DEFAULT")
    return os.path.basename(weights.url)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str, name: str) -> str:
    """The file's SHA-256; Refused (and the file deleted) when it does not start with the prefix in `name`."""
    actual = sha256_of(path)
    match = HASH_IN_NAME.search(name)
    if match and not actual.startswith(match.group(1)):
        os.unlink(path)
        raise Refused(f"{name}: SHA-256 {actual[:16]}... does not start with {match.group(1)} as its name says; "
                      "deleted (a damaged download, or a server that serves other files)")
    return actual


def download(url: str, path: str) -> None:
    """url -> path through a temporary file in the same folder (no half-written file under the final name)."""
    fd, tmp = tempfile.mkstemp(prefix=".bake-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def bake(spec: str, dest: str, base_url: str) -> tuple[str, str, str]:
    """Download and verify one SPEC; returns (file name, sha256, source URL)."""
    name = file_name(spec)
    url = f"{base_url}/{name}"
    path = os.path.join(dest, name)
    if not os.path.exists(path):
        download(url, path)
    return name, verify(path, name), url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True, help="target folder (SMCV_WEIGHTS_DIR)")
    parser.add_argument("--mode", default="1", choices=["1", "required"], help="1: best effort; required: fail on error")
    parser.add_argument("--base-url", default=os.environ.get("SMCV_WEIGHTS_URL") or DEFAULT_BASE_URL,
                        help=f"where the files are (default: $SMCV_WEIGHTS_URL, else {DEFAULT_BASE_URL})")
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="MODEL[:WEIGHTS_ENUM_ENTRY] or a published file name")
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")

    os.makedirs(args.dest, exist_ok=True)
    baked, failed, unreachable = [], [], None
    for spec in args.specs:
        if unreachable is not None:
            failed.append(spec)
            print(f"bake_weights: {spec}: skipped, {base_url} was unreachable ({unreachable})", file=sys.stderr)
            continue
        start = time.monotonic()
        try:
            name, digest, url = bake(spec, args.dest, base_url)
        except Exception as exc:  # network, proxy, unknown name, hash mismatch: report and go on
            failed.append(spec)
            if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
                unreachable = exc.reason
            elif isinstance(exc, OSError) and not isinstance(exc, urllib.error.HTTPError):
                unreachable = exc  # timeouts, resets: the other files would wait as long
            print(f"bake_weights: WARNING: {spec} not baked: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        baked.append((name, digest, url))
        size_mb = os.path.getsize(os.path.join(args.dest, name)) / 2**20
        print(f"bake_weights: {name} ({size_mb:.0f} MiB, sha256 {digest[:16]}..., {time.monotonic() - start:.0f} s)")
    with open(os.path.join(args.dest, RECORD), "w") as record:
        record.write("# ImageNet weights baked into this image (containers/bake_weights.py): file sha256 source\n")
        record.writelines(f"{name} {digest} {url}\n" for name, digest, url in baked)
    print(f"bake_weights: baked {len(baked)} of {len(args.specs)} into {args.dest}")
    if failed:
        print(f"bake_weights: NOT baked: {' '.join(failed)}. Jobs that need them must get them from a 'pretrained' "
              "channel or by download at run time (SMCV_WEIGHTS_URL), or set use_pretrained_model=0", file=sys.stderr)
        if args.mode == "required":
            print("bake_weights: error: --mode required (build_and_push.sh --require-weights): failing the build",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
