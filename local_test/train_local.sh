#!/usr/bin/env bash
# Train with an smcv image the way SageMaker does (`docker run IMAGE train`), over local_test/test_dir as /opt/ml.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: local_test/train_local.sh [--resume] IMAGE [DOCKER_RUN_ARGS...]

Runs `docker run -v local_test/test_dir:/opt/ml IMAGE train`. The model lands in test_dir/model, the
failure reason (if any) in test_dir/output/failure, checkpoints in test_dir/checkpoints. Without sample
data under test_dir/input/data, local_test/make_sample.py generates it first. Model, output and
checkpoints of a previous run are removed unless --resume is given (then training resumes from the
newest checkpoint). Extra arguments go to `docker run` (e.g. --gpus all, -e SMCV_LOG_LEVEL=DEBUG).

Environment: TEST_DIR (default: local_test/test_dir), DOCKER (default: docker).
USAGE
}

here="$(cd "$(dirname "$0")" && pwd)"
resume=0
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --resume) resume=1; shift ;;
esac
[ $# -ge 1 ] && [ -n "$1" ] || { usage >&2; exit 2; }
image="$1"
shift
test_dir="$(cd "${TEST_DIR:-${here}/test_dir}" && pwd)"
DOCKER="${DOCKER:-docker}"

[ -f "${test_dir}/input/config/hyperparameters.json" ] || { echo "error: ${test_dir}/input/config/hyperparameters.json missing" >&2; exit 1; }
if [ ! -d "${test_dir}/input/data/train" ]; then
    python3 "${here}/make_sample.py" --out "${test_dir}"
fi
if [ "${resume}" = 0 ]; then
    rm -rf "${test_dir}/model" "${test_dir}/output" "${test_dir}/checkpoints"
fi
mkdir -p "${test_dir}/model" "${test_dir}/output" "${test_dir}/checkpoints"

# --shm-size: DataLoader workers share memory through /dev/shm (Docker's default is 64 MB).
set +e
"${DOCKER}" run --rm --shm-size=1g -v "${test_dir}:/opt/ml" "$@" "${image}" train
rc=$?
set -e
if [ "${rc}" -ne 0 ]; then
    echo "training failed with exit code ${rc}" >&2
    [ -f "${test_dir}/output/failure" ] && { echo "failure reason:" >&2; cat "${test_dir}/output/failure" >&2; echo >&2; }
    exit "${rc}"
fi
echo "model in ${test_dir}/model:"; ls -l "${test_dir}/model"
