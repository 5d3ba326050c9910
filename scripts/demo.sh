#!/usr/bin/env bash
# The main job: build the three images, then for each task train on a small built-in sample the way SageMaker
# local mode runs the image (/opt/ml mounted), serve the model and send one prediction.
#   bash scripts/demo.sh [classification detection segmentation]
# Needs root for Docker (installed and started when missing). Set BASE_IMAGE to a pullable image (e.g.
# python:3.11-slim-bookworm) where Docker Hub is reachable; otherwise a Debian base is made locally.
set -euo pipefail
cd "$(dirname "$0")/.."
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || mapfile -t tasks < containers/tasks.txt
work="${SMCV_DEMO_DIR:-$PWD/.cache/demo}"
port="${PORT:-8080}"

bash scripts/ci_container.sh --build-only

for task in "${tasks[@]}"; do
    image="smcv-${task}:latest"
    dir="${work}/${task}"
    rm -rf "${dir}"
    mkdir -p "${dir}"
    if [ "${task}" = classification ]; then
        mkdir -p "${dir}/input/config"
        cp local_test/test_dir/input/config/*.json "${dir}/input/config/"
        python3 local_test/make_sample.py --out "${dir}" --payload "${dir}/payload.png" >/dev/null
        accept="application/json"
    else
        python3 local_test/make_task_sample.py "${task}" "${dir}" >/dev/null
        accept=$([ "${task}" = segmentation ] && echo image/png || echo application/json)
    fi
    echo "=== ${task}: training ${image} on the sample in ${dir}"
    TEST_DIR="${dir}" bash local_test/train_local.sh "${image}"
    echo "=== ${task}: serving on port ${port}"
    name="smcv-demo-${task}"
    docker rm -f "${name}" >/dev/null 2>&1 || true
    docker run -d --name "${name}" -v "${dir}:/opt/ml" -p "127.0.0.1:${port}:8080" "${image}" serve >/dev/null
    for _ in $(seq 1 120); do
        curl -fs "http://127.0.0.1:${port}/ping" >/dev/null 2>&1 && break
        sleep 1
    done
    echo "=== ${task}: POST ${dir}/payload.png (Accept: ${accept})"
    (cd "${dir}" && ACCEPT="${accept}" PORT="${port}" bash "${OLDPWD}/local_test/predict.sh" payload.png) || {
        docker logs "${name}" | tail -20; docker rm -f "${name}" >/dev/null; exit 1; }
    docker rm -f "${name}" >/dev/null
done
echo "demo finished: models under ${work}/<task>/model"
