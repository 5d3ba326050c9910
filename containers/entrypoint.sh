#!/bin/sh
# smcv container entrypoint: runs under `tini -g` (PID 1) and exec()s the real program, so that the
# program itself receives SIGTERM and its exit code becomes the container's.
#
#   docker run IMAGE                 -> train (SageMaker SDK v3 local mode passes no argument)
#   docker run IMAGE train [ARGS]    -> python -m smcv.train ARGS
#                                       or, in script mode, the sagemaker-training toolkit's `train`
#   docker run IMAGE serve [ARGS]    -> smcv's gunicorn server (port $SAGEMAKER_BIND_TO_PORT or 8080)
#   docker run IMAGE smcv ARGS       -> the smcv command line tool
#   docker run IMAGE --flag ...      -> train --flag ... (CreateTrainingJob ContainerArguments without `train`)
#   docker run IMAGE CMD [ARGS]      -> any other command, as is (bash, python, ...)
#
# Script mode (a user script instead of the built-in algorithm) is on when SAGEMAKER_PROGRAM or
# SAGEMAKER_TRAINING_MODULE is set, or hyperparameters.json holds sagemaker_program or
# sagemaker_submit_directory. SMCV_TRAIN_MODE=algorithm|script|auto (default auto) overrides the detection.
# Why not always the toolkit: it replaces the program's exit code by 1 and does not forward SIGTERM; see
# docs/container.md. In script mode containers/script_mode.py forwards SIGTERM to the user's script.
set -eu

VENV="${VIRTUAL_ENV:-/opt/venv}"
PYTHON="${VENV}/bin/python"
TOOLKIT_TRAIN="${VENV}/bin/train"
SCRIPT_MODE="/opt/smcv/lib/script_mode.py"
SMCV_SERVE="${VENV}/bin/serve"
SMCV_CLI="${VENV}/bin/smcv"

log() { echo "smcv-entrypoint: $*" >&2; }
die() { log "error: $*"; exit 2; }

# Called as `train` or `serve` through the symlinks in /opt/smcv/bin (e.g. --entrypoint train).
case "$(basename "$0")" in
    train|serve) set -- "$(basename "$0")" "$@" ;;
esac

if [ $# -eq 0 ]; then
    set -- train
fi
case "$1" in
    -*) set -- train "$@" ;;
esac

script_mode() {
    case "${SMCV_TRAIN_MODE:-auto}" in
        script) return 0 ;;
        algorithm) return 1 ;;
        auto) ;;
        *) die "SMCV_TRAIN_MODE must be auto, algorithm or script, not '${SMCV_TRAIN_MODE}'" ;;
    esac
    if [ -n "${SAGEMAKER_PROGRAM:-}" ] || [ -n "${SAGEMAKER_TRAINING_MODULE:-}" ]; then
        return 0
    fi
    hps="${SAGEMAKER_BASE_DIR:-/opt/ml}/input/config/hyperparameters.json"
    [ -f "${hps}" ] || return 1
    "${PYTHON}" - "${hps}" <<'PY'
import json, sys
try:
    with open(sys.argv[1]) as f:
        hps = json.load(f)
except Exception:
    sys.exit(1)  # unreadable: let smcv.train report it properly
sys.exit(0 if isinstance(hps, dict) and ({"sagemaker_program", "sagemaker_submit_directory"} & set(hps)) else 1)
PY
}

cmd="$1"
shift
case "${cmd}" in
    train)
        if script_mode; then
            [ -x "${TOOLKIT_TRAIN}" ] || die "script mode requested but ${TOOLKIT_TRAIN} (sagemaker-training) is missing"
            log "script mode: handing over to the sagemaker-training toolkit"
            # script_mode.py keeps the toolkit out of tini's group SIGTERM and forwards it to the script.
            exec "${PYTHON}" "${SCRIPT_MODE}" "${TOOLKIT_TRAIN}" "$@"
        fi
        exec "${PYTHON}" -m smcv.train "$@"
        ;;
    serve)
        [ -x "${SMCV_SERVE}" ] || die "${SMCV_SERVE} is missing: is smcv installed in ${VENV}?"
        exec "${SMCV_SERVE}" "$@"
        ;;
    smcv)
        exec "${SMCV_CLI}" "$@"
        ;;
    *)
        exec "${cmd}" "$@"
        ;;
esac
