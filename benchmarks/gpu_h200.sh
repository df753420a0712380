#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md, in one run of at most 10 minutes on one H200 (or H100):
#
#   PYTHONPATH=. bash benchmarks/gpu_h200.sh
#
# run from the repository root. It leaves 7 files in $OUT (default runs/gpu_h200/; the device tool
# returns at most 8), and its scratch (records, figures) in $WORK (default /tmp/earlylin_gpu):
#   0. machine.log         — GPU, torch, Triton, JAX versions
#   1. tests.log           — tests/nets/test_fused.py on the *compiled* kernels (TRITON_INTERPRET=0): the fused
#                            3×TF32 step against the reference step to fp32 rounding, every mask and activation
#   2. gpu_h200.json/.log  — the table: naive, reference, shipped, fused (3×TF32, autotuned tiles),
#                            fused_ieee, compiled (CUDA graph), JAX at K = 1, 16, 64; fused_check (errors on
#                            the benchmark problem, chosen tiles, registers, spills, autotune timings)
#   3. accuracy.log        — the default run (n = 20,000, d = 50, 1,600 steps) with --step fused, --step
#                            reference and in float64: max test MSE(net, lin) over t ≤ T of each, and the
#                            digits on which each fp32 path agrees with float64
#   4. figures.log         — wall time of the paper-size figure set (synthetic studies: CIFAR cannot be
#                            downloaded there), with the shipped default step; figures_index.json: per study
# Each stage has its own time limit (570 s in all), so that a slow one still leaves the others' files.
set -u
OUT=${OUT:-runs/gpu_h200}
WORK=${WORK:-/tmp/earlylin_gpu}
mkdir -p "$OUT" "$WORK"
PY=${PYTHON:-python3}
export PYTHONPATH=${PYTHONPATH:-.}
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX shares the GPU with torch in the benchmark
stage() { echo "=== $1 ($(date +%T))"; }

stage "machine"
{ nvidia-smi -L; $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, \
torch.cuda.get_device_name())"; $PY -c "import jax; print('jax', jax.__version__, jax.devices())"; } 2>&1 | tee "$OUT/machine.log"

stage "1. fused kernels compiled, against the reference (tests/nets/test_fused.py)"
TRITON_INTERPRET=0 timeout 100 $PY -m pytest tests/nets/test_fused.py -q -x -p no:cacheprovider 2>&1 | tail -15 \
  | tee "$OUT/tests.log"

stage "2. benchmark table"
timeout 200 $PY benchmarks/bench.py --device cuda --ks 1 16 64 --steps 30 --repeats 5 --fused-autotune \
  --only naive reference shipped fused fused_ieee jax compiled --out "$OUT/gpu_h200.json" 2>&1 | tee "$OUT/gpu_h200.log"

stage "3. full-size accuracy: fused (3xTF32) and reference (fp32) against float64"
for run in "fused --dtype float32" "reference --dtype float32" "reference --dtype float64"; do
  set -- $run
  timeout 40 $PY -m earlylin.verify --layers both --d 50 --step $1 $2 $3 --device cuda --no-cache --no-plot --quiet \
    --out "$WORK/verify_$1_$3" > "$WORK/verify_$1_$3.log" 2>&1 || tail -3 "$WORK/verify_$1_$3.log"
done
$PY - "$WORK" <<'EOF' 2>&1 | tee "$OUT/accuracy.log"
import json, math, sys
out = sys.argv[1]
mse = {}
for name in ("fused_float32", "reference_float32", "reference_float64"):
    try:
        rec = json.load(open(f"{out}/verify_{name}/record.json"))
        mse[name] = rec["runs"][0]["summary"]["max_test_mse_early"]
        print(f"{name:18s} max MSE(net,lin) t<=T {mse[name]!r}  wall {rec['total_wall_time_s']:.1f} s  "
              f"step {rec['environment'].get('net_step')}")
    except (OSError, KeyError, ValueError) as err:
        print(f"{name}: no record ({err})")
exact = mse.get("reference_float64")
for name in ("fused_float32", "reference_float32"):
    if exact is not None and name in mse:
        digits = math.inf if mse[name] == exact else -math.log10(abs(mse[name] - exact) / abs(exact))
        print(f"{name}: agrees with float64 to {digits:.2f} significant digits")
EOF

stage "4. paper-size figure set (synthetic studies)"
start=$(date +%s)
timeout 150 $PY -m earlylin.figures --device cuda --no-cache --out "$WORK/figures" \
  --only fig1a fig1b fig1c fig2 first_layer kernel_ratio width_split escape phase > "$OUT/figures.log" 2>&1
echo "figure set: exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/figures.log"
cp "$WORK/figures/index.json" "$OUT/figures_index.json" 2>/dev/null
stage "done"
