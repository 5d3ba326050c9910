#!/usr/bin/env bash
# Audit the image's locked Python dependencies (containers/requirements*.txt) for known vulnerabilities with
# pip-audit. Runs where a vulnerability database answers (PyPI's JSON API or OSV); elsewhere it prints a notice
# and exits 0, because an audit that cannot reach its database would report nothing and prove nothing.
# Known findings that do not apply are listed, with a reason, in containers/audit-ignore.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
venv=.cache/audit-venv
ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "${ca}" ] && export REQUESTS_CA_BUNDLE="${REQUESTS_CA_BUNDLE:-${ca}}" SSL_CERT_FILE="${ca}"

# Which service answers? pip-audit's default (PyPI's JSON API), else OSV.
probe() {
    "${PYTHON}" - "$1" <<'PY'
import json, ssl, sys, urllib.request
service = sys.argv[1]
try:
    if service == "pypi":
        request = urllib.request.Request("https://pypi.org/pypi/pip/23.0/json")  # versioned, as pip-audit asks
    else:
        body = json.dumps({"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.4.1"}).encode()
        request = urllib.request.Request("https://api.osv.dev/v1/query", data=body,
                                         headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10, context=ssl.create_default_context()) as answer:
        json.load(answer)
except Exception as exc:  # unreachable, refused, 404 from a mirror, not JSON: no usable database
    print(f"{service}: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}
service=""
: >/tmp/smcv-audit-probe.txt
for candidate in pypi osv; do
    if probe "${candidate}" 2>>/tmp/smcv-audit-probe.txt; then service=${candidate}; break; fi
done
if [ -z "${service}" ]; then
    echo "NOTICE: dependency audit skipped: no vulnerability database is reachable from here" \
         "($(tr '\n' ';' </tmp/smcv-audit-probe.txt)). Run scripts/audit_deps.sh where pypi.org or api.osv.dev answers." >&2
    exit 0
fi

if [ ! -x "${venv}/bin/pip-audit" ]; then
    "${PYTHON}" -m venv "${venv}"
    "${venv}/bin/pip" install --quiet --disable-pip-version-check "pip-audit==2.10.1"
fi
ignores=()
while read -r id _; do
    [ -n "${id}" ] && ignores+=(--ignore-vuln "${id}")
done < <(grep -vE '^\s*(#|$)' containers/audit-ignore.txt || true)
echo "auditing the image's lock files against ${service}" >&2
"${venv}/bin/pip-audit" --vulnerability-service "${service}" --disable-pip --no-deps --strict --progress-spinner off \
    "${ignores[@]}" -r containers/requirements-torch-cu12.txt -r containers/requirements-torch-cu13.txt \
    -r containers/requirements.txt \
    -r containers/requirements-sdist.txt -r containers/requirements-build.txt
