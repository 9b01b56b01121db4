#!/usr/bin/env bash
# The Triton kernels (reference_impls.triton_ops) on a CUDA machine, compiled:
#
#   bash scripts/gpu_triton_check.sh        # logs to $OUT (or ./gpu_triton_out)
#
# 1. bandwidth: the Triton gather next to the vectorized one and a device copy
#    (target on an H200: >= 3.0 TB/s; vectorized 1.47, copy ~4.3), a sweep of
#    tilings, and the fused cross-entropy's forward against the logsumexp form;
# 2. the suite's Triton pairs on CUDA: equal, stabler, gradcheck, speed claims;
# 3. the kernel tests, compiled on CUDA.
# Each step has its own time limit, so one slow step cannot starve the rest.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_triton_out}"
mkdir -p "$out"
# Compiled kernels only: the interpreter is chosen when kernels are defined.
unset TRITON_INTERPRET

if pip install --quiet --no-deps --no-build-isolation -e . >"$out/install.log" 2>&1; then
  PLUGIN=()
else
  echo "editable install failed (see install.log); using PYTHONPATH" | tee -a "$out/install.log"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  PLUGIN=(-p pytest_effective_torch.plugin)
fi
XDIST=()
if python3 -c 'import xdist' 2>/dev/null; then
  XDIST=(-n 4)  # the kernel tests are mostly Triton compiling: spread it over cores
fi

python3 - <<'EOF' | tee "$out/versions.txt"
import sys, torch, triton
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, triton {triton.__version__}")
print("device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA")
EOF

step() {
  # step SECONDS NAME LOGFILE COMMAND...
  local limit="$1" name="$2" log="$3"
  shift 3
  local start rc
  start=$(date +%s)
  timeout "$limit" "$@" >"$log" 2>&1
  rc=$?
  echo "== $name: rc=$rc, $(($(date +%s) - start)) s (log: $(basename "$log"))"
}

step 180 "bandwidth --sweep" "$out/bandwidth.log" \
  python3 -m reference_impls.bandwidth --device=cuda --sweep
cat "$out/bandwidth.log"

step 240 "python -m reference_impls --device=cuda -k triton" "$out/suite.log" \
  python3 -m reference_impls "${PLUGIN[@]}" --device=cuda -k triton -p no:cacheprovider
sed -n "/reference_impls: the guide's claims/,\$p" "$out/suite.log" | cut -c1-400

step 240 "kernel tests --device=cuda" "$out/kernels.log" \
  python3 -m pytest "${PLUGIN[@]}" "${XDIST[@]}" tests/test_reference_impls_triton_kernels.py \
  --device=cuda -q -p no:cacheprovider -rs
tail -n 15 "$out/kernels.log"
