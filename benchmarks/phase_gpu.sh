#!/usr/bin/env bash
# The phase diagram at paper size on one GPU, in one prepared run (target: ≤ 10 minutes on one H200).
#
# Usage, from the repository root on a machine with a CUDA GPU and the project installed:
#     OUT=/tmp/phase bash benchmarks/phase_gpu.sh
# Writes under $OUT (default runs/phase-gpu):
#     phase/phase.png, phase/phase.csv, phase/records/phase.json, phase/index.json   (python -m earlylin.figures)
#     REPORT.md, REPORT.json                                                         (the phase_diagram check)
#     sweep-smoke/sweep.{csv,json}    the same point function through `python -m earlylin.sweep` on CUDA (seconds)
#     cache/                          every (config, seed) result: run again with CACHE=<that folder> to resume
#     log.txt                         device, timings and the check's verdict
# To commit the result: copy phase/phase.png, phase/phase.csv to figures/ and phase/records/phase.json to
# figures/records/ (the tests then also run the phase_diagram check on the committed paper-size record).
#
# The paper-size study (earlylin/studies/presets.py, STUDY_SPECS["paper"]["phase"]): both layers, erf, d ∈ {16, 32,
# 64, 128} × m/d ∈ {1, 2, 4, 8}, n = 56.57·d^{3/2} (n = 20,000 at d = 50, the Fig 1 point; n = 81,920 at
# d = 128), n_test = 2,000, 5·T steps per point (T = 5·d·log d: 15,525 steps at d = 128), seeds 0 and 1
# batched. Estimated time, from the measured H100 rate of benchmarks/h100.json (≈ 5× the matmul floor per
# model-step, 4·n·m·d FLOPs): ≈ 250 s of GEMMs, 95% of it at d = 128 (m = 1,024: ≈ 130 s), plus ≈ 30 s of
# per-step overhead over the 104k steps of all points; not yet measured on an H200. The figures command
# is given TIME_LIMIT seconds (default 540); a run cut short keeps every finished point in the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/phase-gpu}
CACHE=${CACHE:-$OUT/cache}
TIME_LIMIT=${TIME_LIMIT:-540}
DEVICE=${DEVICE:-cuda}  # cpu only to try the script's flow (the paper size takes hours on a CPU)
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi

echo "== $(date -u +%FT%TZ) phase diagram, paper size"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -c "import torch, earlylin; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NONE', 'earlylin', earlylin.__version__)"

echo "== sweep CLI smoke on $DEVICE (2 tiny points)"
python -m earlylin.sweep --grid d=16,32 --set device="$DEVICE" n=2000 n_test=500 width=256 steps=200 --seeds 0 1 \
    --cache-dir "$CACHE" --out "$OUT/sweep-smoke" --quiet

echo "== figures: phase (paper size), limit ${TIME_LIMIT}s"
start=$(date +%s)
rc=0
timeout "$TIME_LIMIT" python -m earlylin.figures --only phase --device "$DEVICE" --out "$OUT/phase" --cache-dir "$CACHE" \
    || rc=$?
echo "figures exit status $rc after $(( $(date +%s) - start ))s"

if [ -f "$OUT/phase/records/phase.json" ]; then
    python - "$OUT/phase/records/phase.json" <<'EOF'
import json, sys
rec = json.load(open(sys.argv[1]))
t = rec["table"]
print(f"study wall {rec['wall_time_s']:.1f}s on {rec['environment'].get('device_name')}")
seen = set()
for i, p in enumerate(t["point"]):
    if p in seen:
        continue
    seen.add(p)
    print(f"d={t['d'][i]:>4} m/d={t['m_over_d'][i]:>4} m={t['width'][i]:>5} n={t['n'][i]:>6} steps={t['steps'][i]:>6} "
          f"point wall {t['point_wall_s'][i]:7.1f}s  max rel MSE {t['max_rel_mse_early'][i]}  escape {t['escape_step'][i]}"
          f"  error {t['error'][i]}")
EOF
    python -m paper_checks --only phase_diagram --records "$OUT/phase/records" --figures "$OUT/phase" \
        --report "$OUT/REPORT.md"
fi
exit "$rc"
