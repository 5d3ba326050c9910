#!/usr/bin/env bash
# The project's test command: unit + integration tests on CPU, then (unless SMCV_SKIP_CONTAINER=1) the container
# build and the SageMaker local-mode round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
.venv/bin/python -m pytest tests/unit tests/integration -q -p no:cacheprovider "$@"
if [ "${SMCV_SKIP_CONTAINER:-0}" != "1" ]; then
  bash scripts/ci_container.sh
else
  echo "container tests skipped (SMCV_SKIP_CONTAINER=1)"
fi
