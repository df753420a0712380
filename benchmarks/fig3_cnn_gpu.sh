#!/usr/bin/env bash
# The paper-size Fig 3 CNN for erf on the sphere on one GPU, in one prepared run (target: ≤ 5 minutes).
#
# Usage, from the repository root on a machine with a CUDA GPU and the project installed:
#     OUT=/tmp/fig3cnn bash benchmarks/fig3_cnn_gpu.sh
# Writes under $OUT (default runs/fig3-cnn-gpu):
#     figures/fig3{a,b,c}_cnn_erf_sphere.{png,csv}, figures/records/fig3_cnn_erf_sphere.json
#     REPORT.md, REPORT.json   (the checks fig3_cnn_erf_sphere_window and vlin_perp_cnn_erf_sphere)
#     cache/                   the run's result and checkpoints: run again with CACHE=<that folder> to resume
#     log.txt                  device, timing and the verdicts
# To commit the result: copy figures/fig3?_cnn_erf_sphere.* to figures/ and the record to figures/records/.
#
# The study (earlylin/studies/presets.py, STUDY_SPECS["paper"]["fig3_cnn_erf_sphere"]): 4 conv layers of 3×3, 32
# channels, erf, inputs rescaled to ‖x‖ = √d, the 10k/2k pooled CIFAR set, η = 1, 3,000 steps — the setting
# of fig3_cnn (ReLU per coordinate, 62 s on one H100) with the other activation and normalisation.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/fig3-cnn-gpu}
CACHE=${CACHE:-$OUT/cache}
TIME_LIMIT=${TIME_LIMIT:-540}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi

echo "== $(date -u +%FT%TZ) Fig 3 CNN, erf on the sphere, paper size"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$(date +%s)
rc=0
timeout "$TIME_LIMIT" python -m earlylin.figures --only fig3a_cnn_erf_sphere fig3b_cnn_erf_sphere fig3c_cnn_erf_sphere \
    --device "$DEVICE" --out "$OUT/figures" --cache-dir "$CACHE" || rc=$?
echo "figures exit status $rc after $(( $(date +%s) - start ))s"
if [ -f "$OUT/figures/records/fig3_cnn_erf_sphere.json" ]; then
    python -m paper_checks --only fig3_cnn_erf_sphere_window vlin_perp_cnn_erf_sphere --records "$OUT/figures/records" \
        --figures "$OUT/figures" --report "$OUT/REPORT.md"
fi
exit "$rc"
