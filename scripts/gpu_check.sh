#!/usr/bin/env bash
# The GPU check: run on a CUDA machine from the repository root.
#
#   bash scripts/gpu_check.sh            # writes to $OUT (or ./gpu_check_out)
#
# It installs the checkout without touching dependencies (the GPU image has
# torch, pytest, pytest-benchmark and xdist but no internet), runs the plugin's
# tests with --device=cuda, the bundled guide suite on CUDA, and the GPU
# benchmarks, then prints a short table. Paste that table, with the machine,
# into bench/RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
summary="$out/summary.md"
: >"$summary"

if ! pip install --quiet --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1; then
  echo "editable install failed (see install.log); using PYTHONPATH" | tee -a "$out/install.log"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  PLUGIN=(-p pytest_effective_torch.plugin)
else
  PLUGIN=()
fi

if ! python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check.sh: torch sees no CUDA device here; run it on a CUDA machine" >&2
  exit 2
fi

row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" | tee -a "$summary"; }

{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
  python3 -c 'import torch, sys; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}")'
  echo
  echo "| step | result | seconds |"
  echo "|---|---|---|"
} | tee -a "$summary"

step() {
  # step NAME LOGFILE COMMAND...: run, time, and summarise pytest's last line.
  local name="$1" log="$2"
  shift 2
  local start end rc
  start=$(date +%s)
  "$@" >"$log" 2>&1
  rc=$?
  end=$(date +%s)
  local last
  last=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$log" | tail -n 1 | tr -d '=' | sed 's/^ *//')
  row "$name" "rc=$rc ${last:-see $(basename "$log")}" "$((end - start))"
}

# --- plugin tests on CUDA ----------------------------------------------------
step "tests --device=cuda" "$out/tests_cuda.log" \
  python3 -m pytest "${PLUGIN[@]}" tests --device=cuda -q -x -p no:cacheprovider
step "tests --device=cuda --dtype=float32,float64,bfloat16 (engine)" "$out/tests_engine_cuda.log" \
  python3 -m pytest "${PLUGIN[@]}" tests -k "equivalence or gradcheck or speed or timing" \
  --device=cuda --dtype=float32,float64,bfloat16 -q -p no:cacheprovider

# --- reference_impls suite on CUDA (block owned by reference_impls) ---------
# The main job on CUDA: every claim, speed verdicts included; its claims table
# (speed rows with the measured speedups) goes into the summary. Then the
# large vectorized gather's bandwidth against the device's copy bandwidth.
step "python -m reference_impls --device=cuda" "$out/reference_impls_cuda.log" \
  python3 -m reference_impls "${PLUGIN[@]}" --device=cuda -p no:cacheprovider
{
  echo
  echo "reference_impls claims on CUDA (speed and memory rows):"
  echo '```'
  sed -n "/reference_impls: the guide's claims/,\$p" "$out/reference_impls_cuda.log" |
    grep -E '^(claim|-----)|:faster|:less_memory' || echo "(no claims table; see reference_impls_cuda.log)"
  echo '```'
} | tee -a "$summary"
step "reference_impls.bandwidth --device=cuda" "$out/reference_impls_bandwidth.log" \
  python3 -m reference_impls.bandwidth --device=cuda
{
  echo
  echo '```'
  cat "$out/reference_impls_bandwidth.log"
  echo '```'
} | tee -a "$summary"
# --- end of the reference_impls block ---------------------------------------

# --- GPU benchmarks ----------------------------------------------------------
if [ -f bench/bench_equivalence.py ]; then
  step "bench_equivalence --device=cuda" "$out/bench_equivalence.log" \
    python3 bench/bench_equivalence.py --device=cuda
fi

# --- speed engine on CUDA (block owned by the speed engine) -----------------
# The CUDA timers (host and CUDA-event device time, L2 flush, per-side peak
# memory, backward) and the verdict-reliability bench on the GPU.
step "tests/test_timing_cuda.py (speed engine CUDA timers)" "$out/speed_timing_cuda.log" \
  python3 -m pytest "${PLUGIN[@]}" tests/test_timing_cuda.py -q -rs -p no:cacheprovider
step "bench_speed_verdicts --device=cuda --trials 20" "$out/bench_speed_verdicts_cuda.log" \
  python3 bench/bench_speed_verdicts.py --device=cuda --trials 20
{
  echo
  echo '```'
  cat "$out/bench_speed_verdicts_cuda.log"
  echo '```'
} | tee -a "$summary"
# --- end of the speed engine block -------------------------------------------

echo
echo "Logs in $out/. Summary:"
cat "$summary"
