#!/usr/bin/env bash
# Fill a wheelhouse for an offline image build: every pinned requirement of the image (wheels, plus the two
# sdists the builder stage compiles) and the build backends, downloaded with this machine's pip (its
# configuration, caches and local find-links apply, so wheels already on disk are not fetched again).
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: containers/fill_wheelhouse.sh [--cuda 12|13] [--prune] [DIR]

Download the image's pinned, hashed requirements for one CUDA line (containers/requirements-torch-cu12.txt,
the default line, or -cu13.txt with --cuda 13; plus requirements.txt, requirements-sdist.txt,
requirements-build.txt: a full lock, so --no-deps; pip checks every sha256) into DIR (default:
containers/wheelhouse). A wheelhouse may hold both lines' wheels: each build installs only its lock's files. The image targets CPython 3.11 on manylinux x86_64; run this with such a Python (PYTHON=..., default python3) or the wheels will not fit.
--prune first deletes the files in DIR that this line's locks do not pin (the other line's ~3-4 GB of CUDA wheels,
older pins), so a wheelhouse kept between builds does not grow (CI uses it).
Then build with: ./build_and_push.sh --no-push --wheelhouse DIR
USAGE
}

cuda=12
prune=0
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --cuda) [ $# -ge 2 ] || { echo "error: --cuda needs 12 or 13" >&2; exit 2; }; cuda="$2"; shift ;;
        --prune) prune=1 ;;
        -*) echo "error: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
case "${cuda}" in 12|13) ;; *) echo "error: --cuda ${cuda}: use 12 or 13" >&2; exit 2 ;; esac
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-${here}/wheelhouse}"
PYTHON="${PYTHON:-python3}"

tag="$("${PYTHON}" -c 'import sys, platform; print(f"{sys.implementation.name}{sys.version_info[0]}{sys.version_info[1]}-{platform.system()}-{platform.machine()}")')"
if [ "${tag}" != "cpython311-Linux-x86_64" ]; then
    echo "error: ${PYTHON} is ${tag}; the image needs cpython311-Linux-x86_64 wheels (set PYTHON=...)" >&2
    exit 1
fi

locks=("${here}/requirements-torch-cu${cuda}.txt" "${here}/requirements.txt" "${here}/requirements-sdist.txt"
       "${here}/requirements-build.txt")
mkdir -p "${dir}"
req_args=()
for lock in "${locks[@]}"; do req_args+=(-r "${lock}"); done
if [ "${prune}" = 1 ]; then
    "${PYTHON}" "${here}/prune_wheelhouse.py" "${dir}" "${locks[@]}"
fi
start=$(date +%s)
"${PYTHON}" -m pip download --quiet --disable-pip-version-check --dest "${dir}" \
    --require-hashes --no-deps "${req_args[@]}"
echo "wheelhouse ${dir} (CUDA ${cuda} line): $(find "${dir}" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' \) | wc -l) files," \
     "$(du -sh "${dir}" | cut -f1), $(( $(date +%s) - start )) s"
