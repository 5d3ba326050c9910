#!/usr/bin/env bash
# The GPU checks and benchmarks of issues 10, 13 and 14 as one command for one call of the device tool (a bare GPU
# machine without network or Docker; see docs/benchmarks.md, "GPU checks in one call"). Each stage has its own time
# limit, so the whole run ends inside the call's 10 minutes; every result goes to $OUT in at most 3 files (the tool
# returns 8): results.jsonl (one line per stage: its name, exit code, seconds and the bench's JSON), log.txt (all
# output) and summary.txt. --smoke runs the same stages on the CPU at the tiniest sizes, to check the script here.
# Usage: bash scripts/device_checks.sh [--smoke] [STAGE ...]   (stages: tests train ssd serving first-step recipes)
set -uo pipefail
cd "$(dirname "$0")/.."
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tests train ssd serving first-step)
out="${OUT:-/tmp/smcv-device-checks}"
mkdir -p "$out"
data=.benchdata
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

if ls .whl/*.whl > /dev/null 2>&1; then  # what the machine's image lacks (scripts/device_carry.sh made them)
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >> "$out/log.txt" 2>&1 || { echo "installing the carried wheels failed (see log.txt)" | tee -a "$out/summary.txt"; exit 1; }
fi
export PYTHONPATH="$PWD/src:$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"

# stage NAME LIMIT_S COMMAND...: run it, append its JSON (last stdout line) to results.jsonl, never stop the script
stage() {
    local name=$1 limit=$2
    shift 2
    local started json rc
    started=$(date +%s)
    echo "=== $name: $*" >> "$out/log.txt"
    json=$(timeout --kill-after=10 "$limit" "$@" 2>> "$out/log.txt" | tee -a "$out/log.txt" | tail -n 1)
    rc=${PIPESTATUS[0]}
    "$python" - "$name" "$rc" "$(( $(date +%s) - started ))" "$json" >> "$out/results.jsonl" <<'PY'
import json, sys
name, rc, seconds, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
try:
    result = json.loads(last)
except ValueError:
    result = {"last_line": last[-500:]}
print(json.dumps({"stage": name, "rc": rc, "seconds": seconds, "result": result}))
PY
    echo "$name: exit $rc in $(( $(date +%s) - started )) s" | tee -a "$out/summary.txt"
}

if [ "$smoke" = 1 ]; then
    dev=(--device cpu); with_data() { :; }
    export OMP_NUM_THREADS=1
    ic=(--network 18 --size 32); od=(--network tiny --size 300); ss=(--network resnet18 --size 32 --hp encoder_depth=3)
    small=(--batch 2 --steps 2 --workers 0)
else
    dev=(); with_data() { [ -d "$data/$1" ] && echo "--data $data/$1"; }
    ic=(); od=(); ss=()
    small=()
fi
{ echo "device checks $(date -u +%FT%TZ) at $(git rev-parse --short HEAD 2>/dev/null || echo '?')"; nvidia-smi -L 2>&1 | head -2
  "$python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"; } \
    2>&1 | tee -a "$out/summary.txt"

for name in "${stages[@]}"; do
    case "$name" in
        tests)  # CUDA correctness: tests/gpu (serving decode and prepare on the GPU, training, precision)
            stage tests 150 "$python" -m pytest -q -p no:cacheprovider tests/gpu ;;
        train)  # real data / synthetic ceiling, per task (issue 13)
            if [ "$smoke" = 1 ]; then
                stage train-classification 300 "$python" bench/train_real_data.py --task classification "${dev[@]}" "${ic[@]}" "${small[@]}"
                stage train-detection 300 "$python" bench/train_real_data.py --task detection "${dev[@]}" "${od[@]}" "${small[@]}"
                stage train-segmentation 300 "$python" bench/train_real_data.py --task segmentation "${dev[@]}" "${ss[@]}" "${small[@]}"
            else
                # shellcheck disable=SC2046
                stage train-classification 100 "$python" bench/train_real_data.py --task classification $(with_data pneumoniamnist) --batch 128 --steps 30 --workers 12
                # shellcheck disable=SC2046
                stage train-detection 120 "$python" bench/train_real_data.py --task detection $(with_data bccd) --batch 32 --steps 9 --workers 12
                # shellcheck disable=SC2046
                stage train-segmentation 120 "$python" bench/train_real_data.py --task segmentation $(with_data dsb2018) --batch 16 --steps 12 --workers 12
            fi ;;
        ssd)  # SSD300-VGG16 vs a torchvision reference-style loop (issue 13)
            if [ "$smoke" = 1 ]; then stage ssd 300 "$python" bench/ssd_vs_reference.py "${dev[@]}" --batch 1 --steps 1 --workers 0
            # shellcheck disable=SC2046
            else stage ssd 120 "$python" bench/ssd_vs_reference.py $(with_data bccd) --batch 32 --steps 9 --workers 12; fi ;;
        serving)  # HTTP serving at concurrency 1/16/64, batched vs batch-1; IC also per JPEG decoder and overlap
            if [ "$smoke" = 1 ]; then
                stage serving 300 "$python" bench/serving_http.py "${dev[@]}" --tasks classification --network classification=18 \
                    --size classification=32 --concurrency 1 2 --requests 4 --seconds 10 --repeats 2 --client-processes 1 \
                    --jpeg-decode device --prepare-overlap on
            else
                stage serving-classification 150 "$python" bench/serving_http.py --tasks classification --max-batch 32 \
                    --requests 20000 --seconds 4 --client-processes 8 --jpeg-decode pil device --prepare-overlap off
                stage serving-detection-segmentation 150 "$python" bench/serving_http.py --tasks detection segmentation \
                    --max-batch 32 --requests 20000 --seconds 4 --client-processes 8
            fi ;;
        first-step)  # process start to the first training step (issue 13)
            if [ "$smoke" = 1 ]; then stage first-step 300 "$python" bench/time_to_first_step.py "${dev[@]}" --network 18 --size 32 --batch 2 --no-progress-line --timeout 280
            # shellcheck disable=SC2046
            else stage first-step 60 "$python" bench/time_to_first_step.py $(with_data pneumoniamnist) --network 50 --size 224 --batch 64 --timeout 55; fi ;;
        recipes)  # the full PneumoniaMNIST recipe, validation figures (issue 14); the others need calls of their own
            if [ "$smoke" = 1 ]; then  # tests/integration/test_recipes.py runs the recipes on stand-in data
                echo "recipes: skipped with --smoke" | tee -a "$out/summary.txt"
            else
                stage recipe-pneumoniamnist 300 "$python" examples/train_example.py pneumoniamnist "$data/pneumoniamnist" "$(mktemp -d)"
            fi ;;
        *) echo "unknown stage $name (tests train ssd serving first-step recipes)" | tee -a "$out/summary.txt" ;;
    esac
done
