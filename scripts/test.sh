#!/usr/bin/env bash
# The project's test command: unit + integration + reliability tests on CPU, then (unless SMCV_SKIP_CONTAINER=1) the container
# build and the SageMaker local-mode round trip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
# The MXNet compatibility tier (tests/integration/*mxnet*) needs its own venv, installed from the package index;
# the tests skip with a reason when it is missing, so prepare it here (a failure, e.g. offline, is not fatal).
if [ -z "${SMCV_MXNET_PYTHON:-}" ]; then
  bash scripts/make_mxnet_env.sh >/dev/null || echo "mxnet venv not created (offline?): the MXNet tier will be skipped" >&2
fi
.venv/bin/python -m pytest tests/unit tests/integration tests/reliability -q -p no:cacheprovider "$@"
# The long reliability variants (1,000 fuzz payloads per task, 60 s of load at concurrency 64, ...; a few minutes
# on CPU) are deselected above; run them once here unless SMCV_RELIABILITY_LONG=0 (docs/reliability.md).
if [ "${SMCV_RELIABILITY_LONG:-1}" != "0" ]; then
  .venv/bin/python -m pytest tests/reliability -m reliability_long -q -p no:cacheprovider "$@"
else
  echo "long reliability variants skipped (SMCV_RELIABILITY_LONG=0)"
fi
# Known vulnerabilities in the image's locked dependencies (skipped with a notice where no database answers).
bash scripts/audit_deps.sh
if [ "${SMCV_SKIP_CONTAINER:-0}" != "1" ]; then
  bash scripts/ci_container.sh
else
  echo "container tests skipped (SMCV_SKIP_CONTAINER=1)"
fi
