#!/usr/bin/env bash
# The container part of CI: Docker (installed and started if needed), a local base image, one build of the
# three task images, then the container tests (tests/container): entry points, SIGTERM/checkpoint/resume,
# failure file, serving on SAGEMAKER_BIND_TO_PORT, local_test/ scripts, SageMaker SDK v2 local mode, and
# build_and_push.sh against a loopback registry. Works offline apart from Debian and PyPI mirrors.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/ci_container.sh [--build-only] [--no-push-test] [--no-sdk-test] [-- PYTEST_ARGS...]

Steps (each skipped when already done): install docker.io, docker-compose, debootstrap, docker-registry
(apt, needs root); start dockerd and wait for it; make the base image (scripts/make_base_image.sh); fill
containers/wheelhouse from this machine's pip (containers/fill_wheelhouse.sh --prune, after checking that
about SMCV_CI_DISK_GB=20 GB are free, pruning unused Docker build cache if not); build every task image
(./build_and_push.sh --no-push); make a venv with the SageMaker SDK v2 (.cache/sdk-venv); run
pytest tests/container with SMCV_CONTAINER_TESTS=1. Prints the time of each step.

Options:
  --build-only     stop after building the images (what scripts/demo.sh uses)
  --no-push-test   skip the build_and_push.sh/registry test (the slowest: it compresses ~6 GB)
  --no-sdk-test    skip the SageMaker SDK local-mode test (and its venv)
  -- ARGS          passed to pytest

Environment:
  PYTHON          python for pytest (default: .venv/bin/python, else python3); needs pytest
  BASE_IMAGE      base image (default smcv-base:bookworm, made locally; set e.g. python:3.11-slim-bookworm
                  where Docker Hub is reachable)
  CA_BUNDLE       CA bundle for a TLS-intercepting proxy (default /etc/ssl/certs/ca-certificates.crt if present)
  SMCV_WHEELHOUSE 1 (default): install from a local wheelhouse; 0: let the build download from PyPI
USAGE
}

push_test=1
sdk_test=1
build_only=0
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --build-only) build_only=1; push_test=0; sdk_test=0 ;;
        --no-push-test) push_test=0 ;;
        --no-sdk-test) sdk_test=0 ;;
        --) shift; pytest_args=("$@"); break ;;
        *) echo "error: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "${root}"
BASE_IMAGE="${BASE_IMAGE:-smcv-base:bookworm}"
CA_BUNDLE="${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
SMCV_WHEELHOUSE="${SMCV_WHEELHOUSE:-1}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "${root}/.venv/bin/python" ]; then PYTHON="${root}/.venv/bin/python"; else PYTHON=python3; fi
fi

t0=$(date +%s)
t_step=${t0}
timings=()
step_done() {
    local now
    now=$(date +%s)
    timings+=("$(printf '%-28s %5d s' "$1" $(( now - t_step )))")
    echo "=== ci_container: $1 done in $(( now - t_step )) s" >&2
    t_step=${now}
}
die() { echo "ci_container.sh: error: $*" >&2; exit 1; }

# --- 1. packages ---------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
[ "${BASE_IMAGE}" != "smcv-base:bookworm" ] || command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
[ "${push_test}" = 0 ] || [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}) and not root: install them first"
    echo "installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
step_done "packages"

# --- 2. docker daemon ----------------------------------------------------------------------------------
# A docker CLI that builds with BuildKit: Debian's 20.10 CLI does with DOCKER_BUILDKIT=1; a newer CLI needs
# the buildx plugin. build_and_push.sh picks the same way; the tests use the same CLI.
if [ -z "${DOCKER:-}" ]; then
    DOCKER=docker
    if ! docker buildx version >/dev/null 2>&1 && [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; fi
fi
export DOCKER
if ! "${DOCKER}" info >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || die "the docker daemon is not running and this is not root"
    echo "starting dockerd (log: /var/log/smcv-dockerd.log)" >&2
    setsid nohup dockerd >/var/log/smcv-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        "${DOCKER}" info >/dev/null 2>&1 && break
        sleep 1
    done
    "${DOCKER}" info >/dev/null 2>&1 || { tail -n 20 /var/log/smcv-dockerd.log >&2; die "dockerd did not come up in 60 s"; }
fi
step_done "docker daemon"

# --- 3. base image -------------------------------------------------------------------------------------
if [ "${BASE_IMAGE}" = "smcv-base:bookworm" ]; then
    DOCKER="${DOCKER}" "${root}/scripts/make_base_image.sh" "${BASE_IMAGE}"
fi
step_done "base image"

# --- 4. disk space --------------------------------------------------------------------------------------
# One build needs about SMCV_CI_DISK_GB (default 20) GB free: the wheelhouse (~4 GB), BuildKit's copy of it as
# build context (~4 GB), the image (~8 GB) and the test containers' models. Short of that, unused Docker build
# cache and dangling images are pruned; if that is not enough, stop here with a message instead of failing
# half-way through a download ("No space left on device").
need_gb="${SMCV_CI_DISK_GB:-20}"
docker_root="$("${DOCKER}" info -f '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)"
free_gb() { df -Pk "$1" | awk 'NR == 2 { print int($4 / 1048576) }'; }
least_free_gb() {
    local a b
    a="$(free_gb "${root}")"; b="$(free_gb "${docker_root}")"
    if [ "${a}" -lt "${b}" ]; then echo "${a}"; else echo "${b}"; fi
}
if [ "$(least_free_gb)" -lt "${need_gb}" ]; then
    echo "only $(least_free_gb) GB free (${root}, ${docker_root}); pruning unused Docker build cache and dangling images" >&2
    "${DOCKER}" builder prune -f >/dev/null 2>&1 || true
    "${DOCKER}" image prune -f >/dev/null 2>&1 || true
fi
free="$(least_free_gb)"
[ "${free}" -ge "${need_gb}" ] || die "${free} GB free on ${root} or ${docker_root}; the image build needs about" \
    "${need_gb} GB (wheelhouse, build context, image). Free space (docker system df; docker builder prune -a;" \
    "docker image prune -a) or, on a larger disk, lower SMCV_CI_DISK_GB"
echo "disk: ${free} GB free, ${need_gb} GB needed" >&2
step_done "disk space"

# --- 5. wheelhouse + build -----------------------------------------------------------------------------
build_opts=(--base-image "${BASE_IMAGE}")
[ -n "${CA_BUNDLE}" ] && [ -s "${CA_BUNDLE}" ] && build_opts+=(--ca-bundle "${CA_BUNDLE}")
if [ "${SMCV_WHEELHOUSE}" = 1 ]; then
    PYTHON="${WHEELHOUSE_PYTHON:-python3}" "${root}/containers/fill_wheelhouse.sh" --prune "${root}/containers/wheelhouse"
    step_done "wheelhouse"
fi
"${root}/build_and_push.sh" --no-push "${build_opts[@]}"
step_done "build images"
if [ "${build_only}" = 1 ]; then
    printf '  %s\n' "${timings[@]}"
    exit 0
fi

# --- 6. SDK venv ---------------------------------------------------------------------------------------
sdk_python=""
if [ "${sdk_test}" = 1 ]; then
    venv="${root}/.cache/sdk-venv"
    if ! "${venv}/bin/python" -c 'import sagemaker, docker, yaml' >/dev/null 2>&1; then
        python3 -m venv "${venv}"
        "${venv}/bin/pip" install --quiet --disable-pip-version-check -r "${root}/local_test/requirements-sdk.txt"
    fi
    sdk_python="${venv}/bin/python"
    step_done "sdk venv"
fi

# --- 7. tests ------------------------------------------------------------------------------------------
deselect=()
[ "${push_test}" = 1 ] || deselect+=(--ignore "${root}/tests/container/test_container_build_and_push.py")
pytest_log="$(mktemp)"
set +e
set -o pipefail
SMCV_CONTAINER_TESTS=1 SMCV_BUILD_OPTS="${build_opts[*]}" SMCV_SDK_PYTHON="${sdk_python}" \
    "${PYTHON}" -m pytest "${root}/tests/container" -v -rs --durations=0 -p no:cacheprovider \
    "${deselect[@]}" "${pytest_args[@]}" 2>&1 | tee "${pytest_log}"
rc=$?
set -e
step_done "container tests"

echo "=== ci_container summary (exit ${rc})"
printf '  %s\n' "${timings[@]}"
echo "  total                        $(( $(date +%s) - t0 )) s"
for task in $(<"${root}/containers/tasks.txt"); do
    size="$("${DOCKER}" image inspect -f '{{.Size}}' "smcv-${task}:latest" 2>/dev/null || echo 0)"
    printf "  %-28s %5d MB\n" "smcv-${task}:latest" $(( size / 1000000 ))
done
# pytest's closing line last, so whoever reads the end of the log sees the test result
grep -E '^=+ .*(passed|failed|error)' "${pytest_log}" | tail -n 1 || true
rm -f "${pytest_log}"
exit "${rc}"
