#!/usr/bin/env bash
# Serve the model in local_test/test_dir/model with an smcv image the way SageMaker does (`docker run IMAGE serve`).
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: local_test/serve_local.sh IMAGE [DOCKER_RUN_ARGS...]

Runs `docker run -v local_test/test_dir:/opt/ml -p PORT:8080 IMAGE serve` in the foreground (Ctrl-C or
`docker stop` ends it). Train first with local_test/train_local.sh; then, from another shell,
local_test/predict.sh local_test/payload.png.

Environment: PORT (host port, default 8080), TEST_DIR (default: local_test/test_dir), DOCKER (default: docker).
USAGE
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 1 ] && [ -n "$1" ] || { usage >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
image="$1"
shift
test_dir="$(cd "${TEST_DIR:-${here}/test_dir}" && pwd)"
port="${PORT:-8080}"
DOCKER="${DOCKER:-docker}"

[ -f "${test_dir}/model/manifest.json" ] || { echo "error: no model in ${test_dir}/model; run local_test/train_local.sh IMAGE first" >&2; exit 1; }
exec "${DOCKER}" run --rm -v "${test_dir}:/opt/ml" -p "127.0.0.1:${port}:8080" "$@" "${image}" serve
