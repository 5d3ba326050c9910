#!/usr/bin/env bash
# The main job: build the three images, then for each task train on its demo sample the way SageMaker local mode
# runs the image (/opt/ml mounted), serve the model, ask for the built-in answer and the verbose one, and show them:
# class and probability, boxes with class names, the share of each class in the mask, and a picture per task.
# Ends with one summary table.
#   bash scripts/demo.sh [classification detection segmentation]
# Needs root for Docker (installed and started when missing). Set BASE_IMAGE to a pullable image (e.g.
# python:3.11-slim-bookworm) where Docker Hub is reachable; otherwise a Debian base is made locally.
# SMCV_DEMO_NATIVE=1 runs the same steps without Docker, with $PYTHON (default python3) and this checkout's src/
# (for development; the images are not built). Samples and hyperparameters: local_test/demo.json.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
tasks=("$@")
[ ${#tasks[@]} -gt 0 ] || mapfile -t tasks < containers/tasks.txt
work="${SMCV_DEMO_DIR:-$PWD/.cache/demo}"
port="${PORT:-8080}"
native="${SMCV_DEMO_NATIVE:-0}"
python="${PYTHON:-python3}"
threshold="${SMCV_DEMO_THRESHOLD:-0.5}"
summary=()
server_pid="" serving=""

if [ "${native}" = 1 ]; then
    export PYTHONPATH="${repo}/src${PYTHONPATH:+:${PYTHONPATH}}"
else
    bash scripts/ci_container.sh --build-only
fi

train() {  # task dir image
    if [ "${native}" = 1 ]; then
        SAGEMAKER_BASE_DIR="$2" SMCV_TASK="$1" "${python}" -m smcv.train
    else
        TEST_DIR="$2" bash local_test/train_local.sh "$3"
    fi
}

serve() {  # task dir image; starts the server in the background
    serving="$1"
    if [ "${native}" = 1 ]; then
        SAGEMAKER_BASE_DIR="$2" SAGEMAKER_BIND_TO_PORT="${port}" SAGEMAKER_MODEL_SERVER_WORKERS=1 \
            "${python}" -m smcv.serving.server >"$2/serve.log" 2>&1 &
        server_pid=$!
    else
        docker rm -f "smcv-demo-$1" >/dev/null 2>&1 || true
        docker run -d --name "smcv-demo-$1" -v "$2:/opt/ml" -p "127.0.0.1:${port}:8080" "$3" serve >/dev/null
    fi
    for _ in $(seq 1 120); do
        curl -fs "http://127.0.0.1:${port}/ping" >/dev/null 2>&1 && return 0
        sleep 1
    done
    echo "error: the ${1} server did not answer /ping in 120 s" >&2
    return 1
}

stop_server() {  # task dir; does nothing when no server runs
    [ -n "${serving}" ] || return 0
    serving=""
    if [ "${native}" = 1 ]; then
        kill "${server_pid}" 2>/dev/null || true
        wait "${server_pid}" 2>/dev/null || true
    else
        docker logs "smcv-demo-$1" >"$2/serve.log" 2>&1 || true
        docker rm -f "smcv-demo-$1" >/dev/null 2>&1 || true
    fi
}

post() {  # dir accept output-file: POST payload.png, keep the body; fail with the body on an HTTP error
    local code
    code="$(curl -sS -o "$1/$3" -w '%{http_code}' --data-binary "@$1/payload.png" -H "Content-Type: image/png" \
            -H "Accept: $2" "http://127.0.0.1:${port}/invocations")"
    [ "${code}" -lt 400 ] || { echo "error: HTTP ${code} for Accept: $2:" >&2; cat "$1/$3" >&2; echo >&2; return 1; }
}

render() {  # task dir image: readable lines and prediction.png, with Pillow here or in the image
    if [ "${native}" = 1 ] || "${python}" -c 'import PIL' >/dev/null 2>&1; then
        "${python}" local_test/render.py "$1" "$2" --threshold "${threshold}"
    else
        docker run --rm -v "${repo}/local_test:/demo:ro" -v "$2:/opt/ml" "$3" \
            python /demo/render.py "$1" /opt/ml --threshold "${threshold}"
    fi
}

trap 'stop_server "${task:-}" "${dir:-}"' EXIT

for task in "${tasks[@]}"; do
    image="smcv-${task}:latest"
    dir="${work}/${task}"
    rm -rf "${dir}"
    mkdir -p "${dir}"
    "${python}" local_test/make_task_sample.py "${task}" "${dir}" >/dev/null
    echo "=== ${task}: training on the demo sample in ${dir}"
    started=$(date +%s)
    train "${task}" "${dir}" "${image}"
    seconds=$(( $(date +%s) - started ))
    echo "=== ${task}: serving on port ${port}"
    serve "${task}" "${dir}" "${image}" || { stop_server "${task}" "${dir}"; tail -20 "${dir}/serve.log"; exit 1; }
    builtin=application/json builtin_file=prediction_builtin.json verbose="application/json;verbose"
    [ "${task}" != segmentation ] || builtin=image/png builtin_file=prediction_builtin.png
    [ "${task}" != detection ] || verbose="${verbose};n_predictions=20"
    echo "=== ${task}: POST payload.png, Accept: ${builtin} (built-in answer) and ${verbose}"
    { post "${dir}" "${builtin}" "${builtin_file}" && post "${dir}" "${verbose}" prediction_verbose.json; } || {
        stop_server "${task}" "${dir}"; tail -20 "${dir}/serve.log"; exit 1; }
    stop_server "${task}" "${dir}"
    render "${task}" "${dir}" "${image}"
    summary+=("$(printf '%-15s %6ss   %-28s %s' "${task}" "${seconds}" "$(cat "${dir}/metric.txt")" "${dir}")")
done

echo
echo "=== summary; in each folder: model/ (the model), prediction_builtin.json or .png (the built-in answer),"
echo "    prediction_verbose.json (the verbose answer), prediction.png (the picture)"
printf '%-15s %7s   %-28s %s\n' task training "validation metric" folder
printf '%s\n' "${summary[@]}"
