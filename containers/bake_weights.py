"""Download torchvision ImageNet weights into a folder at image build time (Dockerfile, BAKE_WEIGHTS).

Usage: python bake_weights.py --dest DIR [--mode 1|required] MODEL[:WEIGHTS] ...

MODEL is a torchvision model name (resnet50, vgg16, ...); WEIGHTS an entry of its weights enum
(default: DEFAULT), e.g. vgg16:IMAGENET1K_FEATURES (the SSD300 backbone). Files keep torchvision's
names (resnet50-0676ba61.pth), which smcv.pretrained matches by model name. The segmentation UNet's
resnet34 encoder uses the same resnet34 file.

mode 1 (default): a failed download is a warning and the build goes on without that file.
mode required:    any failure exits non-zero.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _resolve(spec: str):
    import torchvision.models as models

    name, _, entry = spec.partition(":")
    weights_enum = models.get_model_weights(name)
    return name, getattr(weights_enum, entry or "DEFAULT")


def _download(url: str, dest_dir: str) -> str:
    from torch.hub import download_url_to_file

    path = os.path.join(dest_dir, os.path.basename(url))
    if not os.path.exists(path):
        download_url_to_file(url, path, progress=False)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", required=True, help="target folder (SMCV_WEIGHTS_DIR)")
    parser.add_argument("--mode", default="1", choices=["1", "required"], help="1: best effort; required: fail on error")
    parser.add_argument("models", nargs="+", help="torchvision model names, optionally :WEIGHTS_ENUM_ENTRY")
    args = parser.parse_args(argv)

    os.makedirs(args.dest, exist_ok=True)
    failed = []
    for spec in args.models:
        start = time.monotonic()
        try:
            name, weights = _resolve(spec)
            path = _download(weights.url, args.dest)
        except Exception as exc:  # network, proxy, unknown name: report and go on
            failed.append(spec)
            print(f"bake_weights: WARNING: {spec}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        size_mb = os.path.getsize(path) / 2**20
        print(f"bake_weights: {spec} -> {path} ({size_mb:.0f} MiB, {time.monotonic() - start:.0f} s)")
    if failed:
        print(f"bake_weights: {len(failed)} of {len(args.models)} not baked: {' '.join(failed)}; "
              "training with use_pretrained_model=1 will then need a 'pretrained' channel", file=sys.stderr)
        if args.mode == "required":
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
