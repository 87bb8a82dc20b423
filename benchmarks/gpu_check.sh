#!/usr/bin/env bash
# On a GPU machine with PyTorch installed: prove the CUDA paths and measure them, in one go.
#
#   DATA_DIR=<folder holding MNIST/raw> bash benchmarks/gpu_check.sh
#
# 1. the CUDA-marked tests (tests/test_devices.py), 2. bench_train on CUDA with real MNIST,
# 3. one timed default 50-epoch train.py run; then a table. Each step has its own time limit,
# so a slow one still leaves the others' numbers. Everything goes to $OUT (default:
# gpu_check_out/), including a copy of benchmarks/RESULTS.md with the benchmark appended.
# Budget: about 8 minutes on one H200-class GPU (the training run is cut at 5 minutes).
set -u
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-data}
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
"$PYTHON" -c "import torch; print(torch.cuda.get_device_name(), torch.__version__)" 2>&1 \
    | tail -n 1 > "$OUT/gpu.txt"

step() {  # step NAME SECONDS COMMAND...: run, log to $OUT/NAME.log, record exit status and time
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    echo "$name $rc $(( $(date +%s) - start ))" >> "$OUT/steps.txt"
}

: > "$OUT/steps.txt"
# -o addopts: no pytest-xdist needed on the GPU machine
step cuda_tests 150 "$PYTHON" -m pytest -m cuda -o addopts="-ra" -q -p no:cacheprovider
step bench 90 "$PYTHON" -m benchmarks.bench_train --device cuda --data_dir "$DATA_DIR"
step train_50_epochs 300 "$PYTHON" train.py --device cuda --data_dir "$DATA_DIR" \
    --results_dir "$OUT/results" --weights_dir "$OUT/weights" --log_dir "$OUT/logs" \
    --run_name gpu-check
cp benchmarks/RESULTS.md "$OUT/RESULTS.md"

{
    echo "GPU: $(cat "$OUT/gpu.txt")   date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "| step | exit status | seconds |"
    echo "|---|---|---|"
    while read -r name rc seconds; do
        echo "| $name | $rc | $seconds |"
    done < "$OUT/steps.txt"
    echo
    grep -E "passed|failed|skipped" "$OUT/cuda_tests.log" | tail -n 1
    grep -E "^\| " "$OUT/bench.log"
    grep -E "^epoch [0-9]+, (raw|ema): FID|^done in" "$OUT/train_50_epochs.log" | tail -n 3
} | tee "$OUT/summary.md"
