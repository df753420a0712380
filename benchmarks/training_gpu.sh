#!/usr/bin/env bash
# The training study at paper size on one GPU (docs/theory.md §3.3; earlylin/studies/presets.py, "training"): the FC
# net (4 × 256, erf, ‖x‖ = √d) on the full 10k / 2k CIFAR sets — cats vs horses and all ten classes (the ten-class
# images: the official batches with CIFAR_ROOT=DIR, else shared/data/cifar10_10class_10k.npz) — squared loss /
# cross-entropy × full-batch GD / SGD (batch 128), 4,000 steps each.
#
# Usage, from the repository root on a machine with a CUDA GPU and the project installed:
#     OUT=/tmp/training bash benchmarks/training_gpu.sh
# Writes under $OUT (default runs/training-gpu): figures/training_paper_size.{png,csv}, figures/records/training.json,
# REPORT.md (the training_early_paper_size check), cache/ (run again with CACHE=<that folder> to resume), log.txt.
# To commit the result: copy figures/training_paper_size.{png,csv} to figures/ and figures/records/training.json to
# figures/records/. The figures command is given TIME_LIMIT seconds (default 540); a run cut short keeps every
# finished run in the cache. Not yet run on a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/training-gpu}
CACHE=${CACHE:-$OUT/cache}
TIME_LIMIT=${TIME_LIMIT:-540}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi

echo "== $(date -u +%FT%TZ) training study, paper size"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$(date +%s)
rc=0
timeout "$TIME_LIMIT" python -m earlylin.figures --only training_paper_size --device "$DEVICE" --out "$OUT/figures" \
    --cache-dir "$CACHE" || rc=$?
echo "figures exit status $rc after $(( $(date +%s) - start ))s"
if [ -f "$OUT/figures/records/training.json" ]; then
    python -m paper_checks --only training_early_paper_size --records "$OUT/figures/records" --figures "$OUT/figures" \
        --report "$OUT/REPORT.md"
fi
exit "$rc"
