#!/usr/bin/env bash
# Build the smcv task images (one per task, sharing every layer but the last) and push them to Amazon ECR
# or to another registry. See docs/container.md.
set -euo pipefail

# the task list (one per line) is containers/tasks.txt, checked against smcv.tasks.TASKS by tests/unit/test_tasks.py
ALL_TASKS="$(paste -sd, "$(dirname "${BASH_SOURCE[0]}")/containers/tasks.txt")"

usage() {
    cat <<'USAGE'
Usage: ./build_and_push.sh [OPTIONS]

Build containers/Dockerfile once per task (images NAME-classification, NAME-detection, NAME-segmentation,
tagged VERSION and latest; VERSION-cu13 and latest-cu13 for the CUDA 13 line) and push them. By default the target is Amazon ECR of the current AWS account:
the account comes from `aws sts get-caller-identity`, each repository is created if missing, and docker
logs in with `aws ecr get-login-password`.

Options:
  --no-push            build and tag locally only; no AWS calls, no push
  --registry HOST      push to HOST[/PATH] (e.g. 127.0.0.1:5000, ghcr.io/me) instead of ECR: no AWS calls;
                       log in to HOST yourself if it needs credentials
  --ecr-host HOST      ECR registry host to push to instead of ACCOUNT.dkr.ecr.REGION.amazonaws.com (a VPC
                       endpoint or proxy; AWS calls are still made)
  --region REGION      AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION, `aws configure get region`,
                       else us-west-2)
  --name NAME          image/repository name prefix (default: smcv)
  --version VERSION    version tag (default: the version in pyproject.toml)
  --tasks LIST         comma-separated subset of classification,detection,segmentation (default: all)
  --cuda 12|13         torch/CUDA line (default 12: torch 2.10 + CUDA 12.8, runs on NVIDIA drivers >= 525.60,
                       SageMaker's default 535/550 hosts; tags VERSION, latest). 13: torch 2.14 + CUDA 13.0,
                       drivers >= 580; tags VERSION-cu13, latest-cu13. docs/container.md "GPU drivers" has the table
  --base-image IMAGE   base image (default: the Dockerfile's, python:3.11-slim-bookworm pinned by digest)
  --ca-bundle FILE     CA bundle for a TLS-intercepting proxy, passed as a BuildKit secret (no layer keeps it)
  --wheelhouse DIR     install Python packages from DIR (fill it with containers/fill_wheelhouse.sh DIR)
                       instead of PyPI; DIR is hard-linked into containers/wheelhouse (the build context)
  --no-bake-weights    do not bake ImageNet weights into the image (by default every offered backbone's
                       torchvision ImageNet weights are baked into /opt/smcv/weights where the network allows;
                       what cannot be downloaded is reported and the build goes on; see docs/container.md)
  --require-weights    fail the build when any of those weights cannot be baked
  --bake-weights       the default (kept for compatibility)
  --platform PLATFORM  target platform (default: linux/amd64, what SageMaker runs)
  -h, --help           this text

Environment: DOCKER (docker CLI to use; default: one that can build with BuildKit), AWS (aws CLI; default aws).
USAGE
}

die() { echo "build_and_push.sh: error: $*" >&2; exit 1; }
log() { echo "build_and_push.sh: $*" >&2; }

push=1
registry=""
ecr_host=""
region=""
name="smcv"
version=""
tasks="${ALL_TASKS}"
base_image=""
ca_bundle=""
wheelhouse=""
bake_weights=1
platform="linux/amd64"
cuda=12

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --no-push) push=0 ;;
        --registry) need_value "$@"; registry="${2%/}"; shift ;;
        --ecr-host) need_value "$@"; ecr_host="${2%/}"; shift ;;
        --region) need_value "$@"; region="$2"; shift ;;
        --name) need_value "$@"; name="$2"; shift ;;
        --version) need_value "$@"; version="$2"; shift ;;
        --tasks) need_value "$@"; tasks="$2"; shift ;;
        --base-image) need_value "$@"; base_image="$2"; shift ;;
        --ca-bundle) need_value "$@"; ca_bundle="$2"; shift ;;
        --wheelhouse) need_value "$@"; wheelhouse="$2"; shift ;;
        --bake-weights) ;;   # the default since weights are baked unless --no-bake-weights
        --no-bake-weights) bake_weights=0 ;;
        --require-weights) bake_weights=required ;;
        --platform) need_value "$@"; platform="$2"; shift ;;
        --cuda) need_value "$@"; cuda="$2"; shift ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dockerfile="${root}/containers/Dockerfile"
context_wheelhouse="${root}/containers/wheelhouse"
[ -f "${dockerfile}" ] || die "${dockerfile} not found"
[ -n "${registry}" ] && [ -n "${ecr_host}" ] && die "--registry and --ecr-host exclude each other"

# --- arguments -------------------------------------------------------------------------------------------
task_list=()
IFS=',' read -r -a requested <<<"${tasks}"
for t in "${requested[@]}"; do
    case ",${ALL_TASKS}," in
        *",${t},"*) task_list+=("${t}") ;;
        *) die "unknown task '${t}' in --tasks (valid: ${ALL_TASKS})" ;;
    esac
done
[ "${#task_list[@]}" -gt 0 ] || die "--tasks is empty"
case "${cuda}" in
    12) suffix="" ;;
    13) suffix="-cu13" ;;
    *) die "--cuda ${cuda}: use 12 (default tags, NVIDIA driver >= 525.60) or 13 (tags -cu13, driver >= 580)" ;;
esac
[[ "${name}" =~ ^[a-z0-9]+([._-][a-z0-9]+)*$ ]] || die "--name '${name}' is not a valid repository name (lowercase, digits, . _ -)"
if [ -z "${version}" ]; then
    version="$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "${root}/pyproject.toml" | head -n 1)"
    [ -n "${version}" ] || die "no version in pyproject.toml; pass --version"
fi
[[ "${version}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "--version '${version}' is not a valid tag"
if [ -n "${ca_bundle}" ]; then
    [ -s "${ca_bundle}" ] || die "--ca-bundle ${ca_bundle}: no such file (or empty)"
    ca_bundle="$(cd "$(dirname "${ca_bundle}")" && pwd)/$(basename "${ca_bundle}")"
fi

# --- docker CLI that can build with BuildKit (RUN --mount) -----------------------------------------------
client_major() { "$1" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1 | tr -cd '0-9'; }
can_buildkit() {
    local cli="$1" major
    command -v "${cli}" >/dev/null 2>&1 || return 1
    "${cli}" buildx version >/dev/null 2>&1 && return 0
    major="$(client_major "${cli}")"
    [ -n "${major}" ] && [ "${major}" -lt 23 ]   # classic CLI: DOCKER_BUILDKIT=1 uses the daemon's BuildKit
}
if [ -n "${DOCKER:-}" ]; then
    can_buildkit "${DOCKER}" || die "DOCKER=${DOCKER} cannot build with BuildKit (install docker-buildx)"
else
    DOCKER=""
    for cli in docker /usr/bin/docker; do
        if can_buildkit "${cli}"; then DOCKER="${cli}"; break; fi
    done
    [ -n "${DOCKER}" ] || die "no docker CLI that can build with BuildKit: install the buildx plugin (docker-buildx) or set DOCKER"
fi
"${DOCKER}" info >/dev/null 2>&1 || die "${DOCKER} cannot reach the docker daemon"
export DOCKER_BUILDKIT=1

# --- registry --------------------------------------------------------------------------------------------
AWS="${AWS:-aws}"
target_registry=""
if [ "${push}" = 1 ]; then
    if [ -n "${registry}" ]; then
        target_registry="${registry}"
    else
        command -v "${AWS}" >/dev/null 2>&1 || die "the aws CLI is needed to push to ECR (or use --registry / --no-push)"
        if [ -z "${region}" ]; then
            region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$("${AWS}" configure get region 2>/dev/null || true)}}"
            region="${region:-us-west-2}"
        fi
        account="$("${AWS}" sts get-caller-identity --query Account --output text)" \
            || die "aws sts get-caller-identity failed: configure AWS credentials (or use --registry / --no-push)"
        [[ "${account}" =~ ^[0-9]{12}$ ]] || die "unexpected AWS account id '${account}'"
        domain="amazonaws.com"
        case "${region}" in cn-*) domain="amazonaws.com.cn" ;; esac
        target_registry="${ecr_host:-${account}.dkr.ecr.${region}.${domain}}"
        log "ECR: account ${account}, region ${region}, registry ${target_registry}"
    fi
fi

# --- wheelhouse ------------------------------------------------------------------------------------------
mkdir -p "${context_wheelhouse}"   # the Dockerfile bind-mounts it; git does not keep an empty folder
if [ -n "${wheelhouse}" ]; then
    [ -d "${wheelhouse}" ] || die "--wheelhouse ${wheelhouse}: no such directory"
    src="$(cd "${wheelhouse}" && pwd -P)"
    dst="$(cd "${context_wheelhouse}" && pwd -P)"
    if [ "${src}" != "${dst}" ]; then
        find "${dst}" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) -delete
        find "${src}" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) \
            -exec cp -l {} "${dst}/" \; 2>/dev/null \
            || find "${src}" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) -exec cp {} "${dst}/" \;
    fi
fi
n_wheels="$(find "${context_wheelhouse}" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' \) | wc -l)"
if [ "${n_wheels}" -gt 0 ]; then
    log "offline build: ${n_wheels} files in containers/wheelhouse (pip --no-index)"
else
    log "containers/wheelhouse is empty: pip downloads from PyPI"
fi

# --- build -----------------------------------------------------------------------------------------------
build_args=(--platform "${platform}" --file "${dockerfile}" --build-arg "BAKE_WEIGHTS=${bake_weights}"
            --build-arg "CUDA=${cuda}")
[ -n "${base_image}" ] && build_args+=(--build-arg "BASE_IMAGE=${base_image}")
[ -n "${ca_bundle}" ] && build_args+=(--secret "id=ca_bundle,src=${ca_bundle}")

# What the build baked into /opt/smcv/weights (BAKED.txt, written by containers/bake_weights.py).
report_weights() {
    local cid tmp baked
    if [ "${bake_weights}" = 0 ]; then
        log "weights: none baked (--no-bake-weights); jobs with use_pretrained_model=1 need a 'pretrained' channel or network access"
        return 0
    fi
    tmp="$(mktemp -d)"
    cid="$("${DOCKER}" create "${runtime_ref}" 2>/dev/null)" || { rm -rf "${tmp}"; log "weights: cannot inspect ${runtime_ref}"; return 0; }
    if "${DOCKER}" cp "${cid}:/opt/smcv/weights/BAKED.txt" "${tmp}/BAKED.txt" >/dev/null 2>&1; then
        baked="$(awk '!/^#/ && NF {print $1}' "${tmp}/BAKED.txt" | paste -sd' ' -)"
        if [ -n "${baked}" ]; then
            log "weights baked into /opt/smcv/weights: ${baked}"
        else
            log "NOTICE: no ImageNet weights could be baked (no network access to the weights server?); jobs with" \
                "use_pretrained_model=1 need a 'pretrained' channel or network access. Rebuild with --no-cache where" \
                "the network allows, or use --require-weights to make this an error"
        fi
    else
        log "weights: ${runtime_ref} has no /opt/smcv/weights/BAKED.txt"
    fi
    "${DOCKER}" rm "${cid}" >/dev/null 2>&1 || true
    rm -rf "${tmp}"
}

weights_hint=""
[ "${bake_weights}" = required ] && weights_hint=" (with --require-weights: did bake_weights fail? see the log above)"
start_all=$(date +%s)
# All the work happens once, in target `runtime`; each task image is then that image plus ENV SMCV_TASK (what
# the Dockerfile's per-task stages do), so the task images share every layer even if the sources change
# while the script runs.
runtime_ref="${name}-runtime:${version}${suffix}"
log "building ${runtime_ref} (target runtime, CUDA ${cuda} line)"
"${DOCKER}" build "${build_args[@]}" --target runtime \
    --label "org.opencontainers.image.version=${version}" --tag "${runtime_ref}" "${root}" \
    || die "docker build failed${weights_hint}"
log "built ${runtime_ref} in $(( $(date +%s) - start_all )) s"
report_weights
for task in "${task_list[@]}"; do
    image="${name}-${task}"
    printf 'FROM %s\nENV SMCV_TASK=%s\n' "${runtime_ref}" "${task}" \
        | "${DOCKER}" build --quiet --platform "${platform}" --tag "${image}:${version}${suffix}" \
            --tag "${image}:latest${suffix}" - >/dev/null \
        || die "docker build of ${image} failed"
    size="$("${DOCKER}" image inspect -f '{{.Size}}' "${image}:${version}${suffix}")"
    log "tagged ${image}:${version}${suffix} and :latest${suffix} ($(( size / 1000000 )) MB)"
done
log "all builds took $(( $(date +%s) - start_all )) s"
# Sanity check: the task images differ only in ENV SMCV_TASK.
first_layers=""
for task in "${task_list[@]}"; do
    layers="$("${DOCKER}" image inspect -f '{{json .RootFS.Layers}}' "${name}-${task}:${version}${suffix}")"
    first_layers="${first_layers:-${layers}}"
    [ "${layers}" = "${first_layers}" ] \
        || die "${name}-${task} does not share all layers with ${name}-${task_list[0]}"
done

[ "${push}" = 1 ] || { log "--no-push: done"; exit 0; }

# --- push ------------------------------------------------------------------------------------------------
if [ -z "${registry}" ]; then
    for task in "${task_list[@]}"; do
        repo="${name}-${task}"
        if ! "${AWS}" ecr describe-repositories --region "${region}" --repository-names "${repo}" >/dev/null 2>&1; then
            log "creating ECR repository ${repo}"
            "${AWS}" ecr create-repository --region "${region}" --repository-name "${repo}" >/dev/null \
                || die "cannot create ECR repository ${repo}"
        fi
    done
    "${AWS}" ecr get-login-password --region "${region}" \
        | "${DOCKER}" login --username AWS --password-stdin "${target_registry}" >/dev/null \
        || die "docker login to ${target_registry} failed"
    log "logged in to ${target_registry}"
fi
for task in "${task_list[@]}"; do
    image="${name}-${task}"
    for tag in "${version}${suffix}" "latest${suffix}"; do
        remote="${target_registry}/${image}:${tag}"
        "${DOCKER}" tag "${image}:${version}${suffix}" "${remote}"
        log "pushing ${remote}"
        "${DOCKER}" push "${remote}" >/dev/null || die "docker push ${remote} failed"
        echo "${remote}"
    done
done
log "pushed ${#task_list[@]} image(s) to ${target_registry} in $(( $(date +%s) - start_all )) s"
