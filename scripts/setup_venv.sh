#!/usr/bin/env bash
# Create (or update) the project virtual environment .venv with smcv, one line's pinned torch/torchvision pair and
# test tools. SMCV_CUDA=13 (default) or 12 picks the pair from containers/requirements-torch-cu<N>.txt. The default
# is the CUDA 13 pair while the default image is the CUDA 12 one, so that CI runs both pairs: unit and integration
# tests here, container tests in the image (docs/architecture.md, "Two torch lines").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SMCV_CUDA=${SMCV_CUDA:-13}
lock="containers/requirements-torch-cu${SMCV_CUDA}.txt"
[ -f "${lock}" ] || { echo "setup_venv.sh: SMCV_CUDA=${SMCV_CUDA}: no ${lock} (use 12 or 13)" >&2; exit 2; }
pair=$(grep -E '^(torch|torchvision)==' "${lock}" | sed 's/ *\\$//' | tr '\n' ' ')
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's cache is kept (no --no-cache-dir) so the ~3 GB CUDA wheels are downloaded once per machine.
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086  # $pair is two requirement words
.venv/bin/python -m pip install --quiet ${pair} -e ".[test,segmentation]"
.venv/bin/python -c "import torch, torchvision; from torchvision.ops import nms; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
