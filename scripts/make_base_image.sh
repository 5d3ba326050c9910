#!/usr/bin/env bash
# Make a minimal Debian bookworm base image locally, without pulling from any registry:
# debootstrap (minbase variant) into a temporary directory, then `docker import`.
# Only needed where no registry is reachable (CI sandbox); a user with Docker Hub access
# builds containers/Dockerfile from the default BASE_IMAGE instead.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/make_base_image.sh [--force] [TAG]

Make a Debian bookworm (minbase) image with debootstrap and `docker import` it as TAG
(default: smcv-base:bookworm). The host CA bundle is copied into the image so that pip and
other TLS clients work behind a TLS-intercepting proxy; do not push this image anywhere.

Options:
  --force     rebuild even if TAG already exists
  -h, --help  show this help

Environment:
  SUITE       Debian suite            (default: bookworm)
  MIRROR      Debian mirror URL       (default: http://deb.debian.org/debian)
  CA_BUNDLE   CA bundle to copy in    (default: /etc/ssl/certs/ca-certificates.crt; "" to skip)
  DOCKER      docker command          (default: docker)
USAGE
}

force=0
tag=""
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --force) force=1 ;;
        -*) echo "error: unknown option: $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "${tag}" ] || { echo "error: only one TAG allowed" >&2; exit 2; }; tag="$1" ;;
    esac
    shift
done
tag="${tag:-smcv-base:bookworm}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
CA_BUNDLE="${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
DOCKER="${DOCKER:-docker}"

die() { echo "error: $*" >&2; exit 1; }

command -v "${DOCKER}" >/dev/null 2>&1 || die "docker not found (set DOCKER=...)"
"${DOCKER}" info >/dev/null 2>&1 || die "cannot talk to the docker daemon (is dockerd running?)"

if [ "${force}" = 0 ] && "${DOCKER}" image inspect "${tag}" >/dev/null 2>&1; then
    echo "base image ${tag} exists (use --force to rebuild)"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install -y debootstrap)"
if [ -n "${CA_BUNDLE}" ] && [ ! -s "${CA_BUNDLE}" ]; then
    die "CA bundle ${CA_BUNDLE} not found (set CA_BUNDLE=\"\" to skip)"
fi

rootfs="$(mktemp -d /tmp/smcv-rootfs.XXXXXX)"
cleanup() { rm -rf --one-file-system "${rootfs}"; }
trap cleanup EXIT

echo "debootstrap ${SUITE} (minbase) from ${MIRROR} into ${rootfs}"
start=$(date +%s)
debootstrap --variant=minbase "${SUITE}" "${rootfs}" "${MIRROR}" >"${rootfs}.log" 2>&1 || {
    tail -n 30 "${rootfs}.log" >&2; rm -f "${rootfs}.log"; die "debootstrap failed"; }
rm -f "${rootfs}.log"

# Same apt sources as the rootfs was made from, incl. security updates.
cat >"${rootfs}/etc/apt/sources.list" <<SOURCES
deb ${MIRROR} ${SUITE} main
deb ${MIRROR} ${SUITE}-updates main
deb http://deb.debian.org/debian-security ${SUITE}-security main
SOURCES
# Keep the image small, like the official Debian images.
cat >"${rootfs}/etc/apt/apt.conf.d/90smcv-slim" <<'APTCONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APTCONF
rm -rf "${rootfs}"/var/cache/apt/archives/*.deb "${rootfs}"/var/lib/apt/lists/* \
       "${rootfs}"/usr/share/doc/* "${rootfs}"/usr/share/man/* "${rootfs}"/usr/share/locale/*

if [ -n "${CA_BUNDLE}" ]; then
    # Placed where OpenSSL looks by default; ca-certificates (if installed later) would rebuild
    # /etc/ssl/certs/ca-certificates.crt, so also register it as a local CA for update-ca-certificates.
    mkdir -p "${rootfs}/etc/ssl/certs" "${rootfs}/usr/local/share/ca-certificates"
    cp "${CA_BUNDLE}" "${rootfs}/etc/ssl/certs/ca-certificates.crt"
    cp "${CA_BUNDLE}" "${rootfs}/usr/local/share/ca-certificates/smcv-host-bundle.crt"
fi

echo "importing as ${tag}"
tar -C "${rootfs}" --numeric-owner -c . | "${DOCKER}" import \
    --change 'CMD ["/bin/bash"]' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --message "debootstrap --variant=minbase ${SUITE}" - "${tag}" >/dev/null
echo "made ${tag} in $(( $(date +%s) - start )) s: $("${DOCKER}" image inspect -f '{{.Size}}' "${tag}") bytes"
