#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment with mxnet 1.9.1 for the RecordIO compatibility test.
# mxnet 1.9.1 needs numpy<1.24, which the main environment cannot have, hence its own venv.
# Usage: scripts/make_mxnet_env.sh [DIR]   (default: $HOME/.cache/smcv/mxnet-venv)
# Prints the path of the venv's python on the last line of stdout.
set -euo pipefail

DIR="${1:-${HOME}/.cache/smcv/mxnet-venv}"
PYTHON="${PYTHON:-python3}"
# opencv is needed only by mxnet's tools/im2rec.py; 4.7.0.72 is the last release that supports numpy<1.24.
OPENCV_PIN="opencv-python-headless==4.7.0.72"

py="${DIR}/bin/python"
if [ ! -x "${py}" ]; then
    echo "creating ${DIR}" >&2
    "${PYTHON}" -m venv "${DIR}"
fi

if ! "${py}" -c 'import mxnet, numpy' >/dev/null 2>&1; then
    "${py}" -m pip install --quiet --disable-pip-version-check 'mxnet==1.9.1' 'numpy<1.24' >&2
fi
if ! "${py}" -c 'import cv2' >/dev/null 2>&1; then
    "${py}" -m pip install --quiet --disable-pip-version-check "${OPENCV_PIN}" 'numpy<1.24' >&2
fi

"${py}" -c 'import mxnet' >/dev/null 2>&1 || { echo "mxnet does not import in ${DIR}" >&2; exit 1; }
echo "${py}"
