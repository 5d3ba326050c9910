#!/usr/bin/env bash
# Create (or update) the project virtual environment .venv with smcv, its pinned torch/torchvision pair and test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's cache is kept (no --no-cache-dir) so the ~3 GB CUDA wheels are downloaded once per machine.
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,segmentation]"
.venv/bin/python -c "import torch, torchvision; from torchvision.ops import nms; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
