#!/usr/bin/env bash
# Prepares, on the development machine, what one call of the device tool must carry to run scripts/device_checks.sh
# on a lent GPU machine (no network there; its Python 3.12 already has torch, torchvision, numpy, pillow and most
# other needs): the wheels it lacks (.whl/) and the real data of ../shared/data cut to fit the tool's 64 MiB
# (.benchdata/). Both folders are ignored by git. Usage: bash scripts/device_carry.sh [SHARED_DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${1:-../shared/data}"
python="${PYTHON:-python3}"
# what the GPU machine's image lacks of smcv's runtime needs (docs/benchmarks.md, "GPU checks in one call"):
# versions as containers/requirements.txt pins them
wheels=(Flask==3.1.3 gunicorn==27.0.1 blinker==1.9.0 itsdangerous==2.2.0 segmentation_models_pytorch==0.6.0)
# the carried tree's limit is 64 MiB (the checkout itself is about 3): the data gets at most this much
data_budget_mb="${SMCV_CARRY_DATA_MB:-56}"

[ -d "$shared" ] || { echo "no shared data folder at $shared; pass it as the first argument" >&2; exit 2; }
rm -rf .whl .benchdata
mkdir -p .whl .benchdata
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "${wheels[@]}"

cp -r "$shared/pneumoniamnist" "$shared/bccd" .benchdata/
# dsb2018 (about 47 MB) gets what is left: whole image+mask pairs in file-name order
used_kb=$(du -sk .benchdata .whl | awk '{s += $1} END {print s}')
left_kb=$(( data_budget_mb * 1024 - used_kb ))
mkdir -p .benchdata/dsb2018/images .benchdata/dsb2018/masks
taken=0
for image in "$shared"/dsb2018/images/*.png; do
    name=$(basename "$image")
    size_kb=$(( ( $(stat -c %s "$image") + $(stat -c %s "$shared/dsb2018/masks/$name") ) / 1024 + 1 ))
    [ "$size_kb" -le "$left_kb" ] || break
    cp "$image" .benchdata/dsb2018/images/ && cp "$shared/dsb2018/masks/$name" .benchdata/dsb2018/masks/
    left_kb=$(( left_kb - size_kb ))
    taken=$(( taken + 1 ))
done
echo "carry ready: .whl ($(ls .whl | wc -l) wheels), .benchdata ($(du -sh .benchdata | cut -f1); dsb2018: $taken of $(ls "$shared"/dsb2018/images | wc -l) pairs)"
