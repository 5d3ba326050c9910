#!/usr/bin/env bash
# Send one file to a local endpoint's /invocations (started by local_test/serve_local.sh) and print the answer.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: local_test/predict.sh FILE [CONTENT_TYPE]

POSTs FILE to http://HOST:PORT/invocations. CONTENT_TYPE defaults from the file name (.png image/png,
.jpg/.jpeg image/jpeg, .json application/json, else application/x-image). Prints the response body
(binary responses, e.g. segmentation PNG masks, are saved to prediction.<ext> instead) and exits
non-zero on an HTTP error.

Environment: HOST (default 127.0.0.1), PORT (default 8080), ACCEPT (Accept header, default application/json
for classification/detection; use image/png for segmentation masks).
USAGE
}

case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -ge 1 ] && [ $# -le 2 ] || { usage >&2; exit 2; }
file="$1"
[ -f "${file}" ] || { echo "error: ${file}: no such file" >&2; exit 1; }
if [ $# -eq 2 ]; then
    content_type="$2"
else
    case "${file,,}" in
        *.png) content_type="image/png" ;;
        *.jpg|*.jpeg) content_type="image/jpeg" ;;
        *.json) content_type="application/json" ;;
        *) content_type="application/x-image" ;;
    esac
fi
url="http://${HOST:-127.0.0.1}:${PORT:-8080}/invocations"
accept="${ACCEPT:-application/json}"
body="$(mktemp)"
trap 'rm -f "${body}"' EXIT

code="$(curl -sS -o "${body}" -w '%{http_code} %{content_type}' --data-binary "@${file}" \
        -H "Content-Type: ${content_type}" -H "Accept: ${accept}" "${url}")"
status="${code%% *}"
type="${code#* }"
case "${type}" in
    application/json*|text/*|application/jsonlines*) cat "${body}"; echo ;;
    *) ext="${type#*/}"; ext="${ext%%;*}"; cp "${body}" "prediction.${ext:-bin}"
       echo "<${type}: $(wc -c <"${body}") bytes saved to prediction.${ext:-bin}>" ;;
esac
if [ "${status}" -ge 400 ]; then
    echo "error: HTTP ${status} from ${url}" >&2
    exit 1
fi
