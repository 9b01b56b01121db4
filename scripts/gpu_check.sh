#!/usr/bin/env bash
# The GPU check: the plugin's tests, the guide's claims and the GPU benchmarks
# on one CUDA machine, within a short loan of it. Run from anywhere:
#
#   bash scripts/gpu_check.sh                      # every step; results in $OUT
#   bash scripts/gpu_check.sh --dry-run            # list the steps; needs no GPU
#   bash scripts/gpu_check.sh --only=tests,xdist   # just these steps
#   bash scripts/gpu_check.sh --rerun-failed       # the steps that did not pass in $OUT
#   bash scripts/gpu_check.sh --rerun-failed --from=DIR   # ... in DIR's results.tsv
#
# Options:
#   --dry-run        print each selected step (name, timeout, command) and exit 0
#   --only=A,B       run only these steps (names as --dry-run lists them)
#   --rerun-failed   run the steps whose latest result in --from is not
#                    "passed", and those with no result there (a run that was
#                    killed midway never wrote theirs)
#   --from=DIR       an earlier run's $OUT (or its results.tsv): its results
#                    and logs are merged into this run's summary; default $OUT
#                    with --rerun-failed, none otherwise. Where $OUT is emptied
#                    before each command, copy results.tsv back or pass --only
#   --budget=S       seconds for the whole run, install included (default
#                    480): a step gets at most what is left (plus 10 s to die),
#                    and none starts with less than 20 s left. On a loaned
#                    machine give the command a limit of about S + 40
#   --versions       print the versions of python, torch, CUDA, triton, ... and exit
#   -h, --help       this text
#
# Every step runs under its own coreutils timeout, and one failure does not
# stop the others. Without a CUDA device (and without --dry-run or
# --versions) it exits 2 at once. Exit status: 0 when every step run passed,
# 1 otherwise, 2 for a usage error or a machine without CUDA.
#
# What it leaves in $OUT (default ./gpu_check_out, git-ignored); five files,
# because a loaned machine returns at most 8. All but running.log are
# rewritten after every step, so a run killed midway keeps each finished
# step's result:
#   summary.md    versions, one row per step, the claims table, bench tables
#   results.tsv   one line per finished step (appended as it ends), tab-
#                 separated: name, status (passed, failed, timeout, not-run),
#                 rc, seconds, timeout, pytest's summary line (or the last)
#   tails.txt     the last lines of every step's log, and the install log
#   logs.tar.gz   every step's full log
#   running.log   the log of the step in progress (gone once it ends)
#
# Installation: `pip install --no-deps --no-build-isolation -e .` (the GPU
# image has torch, pytest, pytest-benchmark and xdist but no internet). If that
# fails, the checkout is put on PYTHONPATH. Where no entry point then names the
# plugin, it is loaded through PYTEST_PLUGINS, which also reaches the inner
# pytest runs of pytester (a -p on the outer command line does not), and one
# test, which turns the plugin off by its entry-point name, is expected to
# fail. (Where one does, e.g. from the egg-info setuptools left in the
# checkout, PYTEST_PLUGINS would register the plugin twice and break pytest.)
#
# GPU_CHECK_SELFTEST=1 swaps the steps for five tiny fake ones and skips the
# CUDA check and the install: tests/test_gpu_check_script.py uses it to check
# this script's bookkeeping on a machine without a GPU.
set -uo pipefail
START=$SECONDS
CALLER_PWD="$PWD"
cd "$(dirname "$0")/.." || exit 2
SELF="$PWD/scripts/gpu_check.sh"
export PYTHONUNBUFFERED=1
# On the GPU the Triton kernels run compiled: the interpreter is chosen when
# kernels are defined, so it must not be inherited from the environment.
unset TRITON_INTERPRET EFFECTIVE_TORCH_TRITON_INTERPRET

# A relative $OUT or --from is taken from where the script was called.
absolute() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$CALLER_PWD/$1"; fi; }
if [[ -n "${OUT:-}" ]]; then OUT="$(absolute "$OUT")"; else OUT="$PWD/gpu_check_out"; fi
BUDGET=480
MIN_STEP=20      # seconds: a step is not started with less than this left
TAIL_LINES=60    # lines of each log in tails.txt
SELFTEST="${GPU_CHECK_SELFTEST:-}"

usage() { sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "gpu_check.sh: $*" >&2; exit 2; }

# ------------------------------------------------------------------ steps
# One row per step: name, timeout (s), command, text the log must contain,
# an extended regex no log line may match. Most important first.
NAMES=() LIMITS=() CMDS=() EXPECTS=() FORBIDS=()
step() { NAMES+=("$1"); LIMITS+=("$2"); CMDS+=("$3"); EXPECTS+=("${4:-}"); FORBIDS+=("${5:-}"); }

# A CUDA-only test that skipped did not run where it had to.
CUDA_SKIP='^SKIPPED.*(CUDA|GPU)'
PYTEST="python3 -m pytest -p no:cacheprovider"
VERDICTS="python3 bench/bench_speed_verdicts.py --device=cuda --trials=50 --time-budget=1"
if [[ -z "$SELFTEST" ]]; then
  step tests 240 "$PYTEST tests --device=cuda -q -rs" "" "$CUDA_SKIP"
  step reference_impls 150 "python3 -m reference_impls --device=cuda -p no:cacheprovider"
  step bandwidth 90 "python3 -m reference_impls.bandwidth --device=cuda --sweep"
  step cuda_timer 90 "python3 bench/bench_cuda_timer.py --target-us=20"
  step verdicts_host 120 "$VERDICTS --timer=host"
  step verdicts_device 120 "$VERDICTS --timer=device"
  step engine_dtypes 90 "$PYTEST tests -k 'equivalence or gradcheck' --device=cuda --dtype=float32,float64,bfloat16 -q -rs" "" "$CUDA_SKIP"
  step engine_float16 60 "$PYTEST tests -k 'equivalence or gradcheck' --device=cuda --dtype=float16 -q -rs" "" "$CUDA_SKIP"
  step xdist 120 "$PYTEST reference_impls/test_claims.py -n 2 --device=cuda -k 'test_faster and (row_sum or merge)' -v -rs" \
    "storage off: pytest-benchmark is disabled under pytest-xdist"
  step bench_equivalence 120 "python3 bench/bench_equivalence.py --device=cuda"
  step compile 150 "python3 -m reference_impls --device=cuda --effective-torch-variants=compile -p no:cacheprovider"
else
  step ok 10 "echo '3 passed in 0.01s'"
  step fails 10 "echo 'FAILED test_x.py::test_y'; echo '1 failed, 2 passed in 0.02s'; exit 1"
  step slow 1 "sleep 30"
  step expects 10 "echo '1 passed in 0.01s'" "storage off"
  step forbids 10 "echo 'SKIPPED [1] test_x.py:3: needs a CUDA device'; echo '1 skipped in 0.01s'" \
    "" "$CUDA_SKIP"
fi

index_of() {
  local i
  for i in "${!NAMES[@]}"; do [[ "${NAMES[$i]}" == "$1" ]] && { echo "$i"; return 0; }; done
  return 1
}

# --------------------------------------------------------------- options
DRY_RUN="" ONLY="" ONLY_GIVEN="" RERUN="" FROM="" VERSIONS_ONLY=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --only=*) ONLY="${arg#--only=}" ONLY_GIVEN=1 ;;
    --rerun-failed) RERUN=1 ;;
    --from=*) FROM="${arg#--from=}" ;;
    --budget=*) BUDGET="${arg#--budget=}" ;;
    --versions) VERSIONS_ONLY=1 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done
[[ "$BUDGET" =~ ^[0-9]+$ ]] || die "--budget must be a whole number of seconds, got '$BUDGET'"
[[ -n "$ONLY_GIVEN" && -n "$RERUN" ]] && die "--only and --rerun-failed pick the steps two ways; give one"
[[ -n "$RERUN" && -z "$FROM" ]] && FROM="$OUT"
FROM_RESULTS=""
if [[ -n "$FROM" ]]; then
  FROM="$(absolute "$FROM")"
  if [[ -f "$FROM" ]]; then FROM_RESULTS="$FROM"; FROM="$(dirname "$FROM")"
  elif [[ -f "$FROM/results.tsv" ]]; then FROM_RESULTS="$FROM/results.tsv"
  elif [[ ! -d "$FROM" ]]; then die "--from: no such file or folder: $FROM"
  fi
fi

# latest_status NAME FILE: the status of NAME's last line in a results file.
latest_status() { awk -F'\t' -v n="$1" '$1 == n { s = $2 } END { print s }' "$2"; }

SELECTED=()
if [[ -n "$ONLY_GIVEN" ]]; then
  IFS=',' read -r -a wanted <<<"$ONLY"
  for name in "${wanted[@]}"; do
    [[ -z "$name" ]] || index_of "$name" >/dev/null ||
      die "no step named '$name'; steps: $(IFS=,; echo "${NAMES[*]}")"
  done
  # In the script's order (most important first), whatever the order asked.
  for name in "${NAMES[@]}"; do
    [[ ",$ONLY," == *",$name,"* ]] && SELECTED+=("$name")
  done
  ((${#SELECTED[@]})) || die "--only names no step"
elif [[ -n "$RERUN" ]]; then
  [[ -n "$FROM_RESULTS" ]] ||
    die "--rerun-failed: no results.tsv in '$FROM' to read; pass the failed steps with --only=NAME,... instead"
  for name in "${NAMES[@]}"; do
    status="$(latest_status "$name" "$FROM_RESULTS")"
    [[ "$status" == passed ]] || SELECTED+=("$name")
  done
  if ((${#SELECTED[@]} == 0)); then
    echo "gpu_check.sh: every step passed in $FROM_RESULTS; nothing to rerun"
    exit 0
  fi
else
  SELECTED=("${NAMES[@]}")
fi

if [[ -n "$DRY_RUN" ]]; then
  echo "gpu_check.sh --dry-run: ${#SELECTED[@]} step(s), at most $BUDGET s in all; results in $OUT"
  echo "install: python3 -m pip install --no-deps --no-build-isolation --no-index -e ." \
    "(else PYTHONPATH=\$PWD, and PYTEST_PLUGINS=pytest_effective_torch.plugin" \
    "where no entry point names the plugin)"
  total=0
  for name in "${SELECTED[@]}"; do
    i="$(index_of "$name")"
    note=""
    if [[ -n "$FROM_RESULTS" && -n "$RERUN" ]]; then
      status="$(latest_status "$name" "$FROM_RESULTS")"
      note="   # before: ${status:-no result}"
    fi
    printf '%-18s %4ss  %s%s\n' "$name" "${LIMITS[$i]}" "${CMDS[$i]}" "$note"
    total=$((total + LIMITS[i]))
  done
  echo "sum of the timeouts: $total s (the budget caps the run at $BUDGET s)"
  exit 0
fi

# ------------------------------------------------------------- versions
versions() {
  GPU_CHECK_SELFTEST="$SELFTEST" python3 - <<'EOF' 2>&1
import os
import platform
import sys
from importlib import metadata

print(f"python {sys.version.split()[0]} ({platform.machine()}, {platform.platform()})")
try:
    if os.environ.get("GPU_CHECK_SELFTEST"):
        raise ImportError("not imported in the self-test, which does not need it")
    import torch
except Exception as exc:  # versions still print; the CUDA check says what it means
    print(f"torch: cannot import ({exc})")
else:
    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, "
          f"cuDNN {torch.backends.cudnn.version()}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"cuda:{i}: {p.name}, compute capability {p.major}.{p.minor}, "
                  f"{p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs")
    else:
        print("CUDA: torch sees no device")
for dist in ("triton", "pytest", "pytest-benchmark", "pytest-xdist", "numpy", "hypothesis",
             "setuptools", "pytest-effective-torch"):
    try:
        print(f"{dist} {metadata.version(dist)}")
    except metadata.PackageNotFoundError:
        print(f"{dist}: not installed")
EOF
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 |
      sed 's/^/nvidia-smi: /'
  else
    echo "nvidia-smi: not found"
  fi
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)," \
    "$(nproc 2>/dev/null || echo '?') CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"
}

if [[ -n "$VERSIONS_ONLY" ]]; then
  versions
  exit 0
fi

if [[ -z "$SELFTEST" ]]; then
  # stdout says yes or why not; torch's warnings on stderr decide nothing.
  probe='import torch
if torch.cuda.is_available():
    print("yes")
else:
    print(f"torch {torch.__version__}, CUDA build: {torch.version.cuda}")'
  if ! answer="$(python3 -c "$probe" 2>/dev/null)"; then
    echo "gpu_check.sh: torch cannot be imported by python3 here; this check needs torch with CUDA" >&2
    exit 2
  fi
  if [[ "$answer" != yes ]]; then
    echo "gpu_check.sh: torch sees no CUDA device here ($answer); run this on a CUDA machine, or use --dry-run" >&2
    exit 2
  fi
fi

# ----------------------------------------------------------------- setup
command -v timeout >/dev/null || die "coreutils' timeout is not on PATH; every step needs it"
mkdir -p "$OUT" || die "cannot create $OUT"
OUT="$(cd "$OUT" && pwd -P)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")" || die "cannot create a scratch folder"
trap 'rm -rf "$WORK"' EXIT
RESULTS="$OUT/results.tsv"

# Start from an earlier run's results and logs (--from), or from nothing.
# Earlier lines stay first: a step's latest line is the one that counts.
if [[ -n "$FROM" && -f "$FROM/logs.tar.gz" ]]; then
  tar -xzf "$FROM/logs.tar.gz" -C "$WORK" 2>/dev/null ||
    echo "gpu_check.sh: could not unpack $FROM/logs.tar.gz; earlier logs left out" >&2
fi
if [[ -n "$FROM_RESULTS" ]]; then
  FROM_RESULTS="$(cd "$(dirname "$FROM_RESULTS")" && pwd -P)/$(basename "$FROM_RESULTS")"
fi
if [[ "$FROM_RESULTS" != "$RESULTS" ]]; then
  if [[ -n "$FROM_RESULTS" ]]; then
    cp "$FROM_RESULTS" "$WORK/earlier.tsv" && mv "$WORK/earlier.tsv" "$RESULTS"
  else
    : >"$RESULTS"
  fi
fi
rm -f "$OUT/running.log" "$OUT/summary.md" "$OUT/tails.txt" "$OUT/logs.tar.gz"
touch "$RESULTS"
DONE=" "  # the steps this run has finished

echo "== versions"
versions | tee "$WORK/versions.log"

INSTALL="skipped (self-test)"
if [[ -z "$SELFTEST" ]]; then
  echo "== install"
  # Is the plugin's entry point visible from a folder that is not the
  # checkout (pytester's inner runs start in temporary folders)?
  entry_point='import sys
from importlib.metadata import entry_points
sys.exit(not any(e.name == "effective_torch" for e in entry_points(group="pytest11")))'
  has_entry_point() { (cd "$WORK" && python3 -c "$entry_point") >>"$WORK/install.log" 2>&1; }
  if timeout -k 10 60 python3 -m pip install --no-deps --no-build-isolation --no-index -e . \
    >"$WORK/install.log" 2>&1 && has_entry_point; then
    INSTALL="editable install (pip install --no-deps --no-build-isolation -e .)"
  else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    INSTALL="FALLBACK: the editable install failed (its log is in tails.txt); PYTHONPATH=$PWD"
    if has_entry_point; then
      # Through PYTHONPATH the checkout's egg-info (or an older install)
      # names the plugin already; PYTEST_PLUGINS would register it twice.
      INSTALL+=", whose entry point loads the plugin (PYTEST_PLUGINS not set)"
    else
      export PYTEST_PLUGINS="pytest_effective_torch.plugin${PYTEST_PLUGINS:+,$PYTEST_PLUGINS}"
      INSTALL+=" and PYTEST_PLUGINS=pytest_effective_torch.plugin; expected to fail therefore:"
      INSTALL+=" tests/test_plugin_options.py::test_no_effective_torch_turns_the_plugin_off"
      INSTALL+=" (it turns the plugin off by its entry-point name)"
    fi
  fi
  echo "$INSTALL"
fi

# --------------------------------------------------------------- reports
latest() { awk -F'\t' -v n="$1" '$1 == n { l = $0 } END { print l }' "$RESULTS"; }

# The claims table of reference_impls' log: its section, up to pytest's last line.
claims_table() {
  awk '/reference_impls: the guide.s claims/ { on = 1; next } on && /^==/ { exit } on' "$1"
}

write_reports() {
  local name line status rc secs limit note i log failed=() n_pass=0 n_run=0
  {
    echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo '```'
    cat "$WORK/versions.log"
    echo '```'
    echo
    echo "Install: $INSTALL"
    echo
    echo "| step | status | rc | seconds | timeout | result |"
    echo "|---|---|---|---|---|---|"
    for name in "${NAMES[@]}"; do
      line="$(latest "$name")"
      if [[ " ${SELECTED[*]} " == *" $name "* && "$DONE" != *" $name "* ]]; then
        i="$(index_of "$name")"
        echo "| $name | pending | | | ${LIMITS[$i]} | not run yet in this run |"
        failed+=("$name")
        continue
      fi
      [[ -n "$line" ]] || continue
      IFS=$'\t' read -r _ status rc secs limit note <<<"$line"
      [[ "$DONE" == *" $name "* ]] || note="(earlier run) $note"
      echo "| $name | $status | $rc | $secs | $limit | ${note//|/\/} |"
      n_run=$((n_run + 1))
      if [[ "$status" == passed ]]; then n_pass=$((n_pass + 1)); else failed+=("$name"); fi
    done
    echo
    echo "$n_pass of $n_run steps with a result passed; ${#failed[@]} did not pass or are pending."
    if ((${#failed[@]})); then
      echo "Rerun what did not pass: \`bash scripts/gpu_check.sh --only=$(IFS=,; echo "${failed[*]}")\`"
    fi
    log="$WORK/reference_impls.log"
    if [[ -f "$log" ]]; then
      echo
      echo "## The guide's claims on CUDA (python -m reference_impls --device=cuda)"
      echo
      echo '```'
      claims_table "$log" | grep . || echo "(no claims table; see the reference_impls log)"
      echo '```'
    fi
    for name in bandwidth cuda_timer verdicts_host verdicts_device bench_equivalence; do
      log="$WORK/$name.log"
      [[ -f "$log" ]] || continue
      echo
      echo "## $name"
      echo
      echo '```'
      tail -n +3 "$log" | head -n 40  # without the command and timeout lines
      echo '```'
    done
  } >"$OUT/summary.md.tmp" && mv "$OUT/summary.md.tmp" "$OUT/summary.md"

  {
    for log in "$WORK/versions.log" "$WORK/install.log"; do
      [[ -f "$log" ]] || continue
      echo "===== $(basename "$log" .log) ====="
      tail -n "$TAIL_LINES" "$log"
      echo
    done
    for name in "${NAMES[@]}"; do
      log="$WORK/$name.log"
      [[ -f "$log" ]] || continue
      line="$(latest "$name")"
      IFS=$'\t' read -r _ status rc secs _ <<<"$line"
      echo "===== $name: $status, rc=$rc, $secs s ====="
      tail -n "$TAIL_LINES" "$log"
      echo
    done
  } >"$OUT/tails.txt.tmp" && mv "$OUT/tails.txt.tmp" "$OUT/tails.txt"

  # Only logs: the scratch folder also holds the earlier results file.
  (cd "$WORK" && tar -czf "$OUT/logs.tar.gz.tmp" -- *.log) && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}

# summary_line LOG: pytest's closing line, else the log's last non-blank line.
summary_line() {
  local line
  # The first two lines are this script's: the command and its timeout.
  line="$(tail -n +3 "$1" | grep -E '[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected)|no tests ran' |
    grep -E ' in [0-9.]+s' | tail -n 1)"
  [[ -n "$line" ]] || line="$(tail -n +3 "$1" | grep -v '^[[:space:]]*$' | tail -n 1)"
  [[ -n "$line" ]] || line="(no output)"
  line="$(sed -E 's/^=+ //; s/ =+$//' <<<"$line" | tr '\t' ' ')"
  echo "${line:0:160}"
}

# -------------------------------------------------------------- the run
run_step() {
  local name="$1" i limit cmd left t0 rc secs status note bad
  i="$(index_of "$name")"
  limit="${LIMITS[$i]}" cmd="${CMDS[$i]}"
  left=$((BUDGET - (SECONDS - START)))
  ((left < 0)) && left=0
  if ((left < MIN_STEP)); then
    printf '%s\tnot-run\t-\t0\t%s\tnot started: %s s of the %s s budget left\n' \
      "$name" "$limit" "$left" "$BUDGET" >>"$RESULTS"
    DONE+="$name "
    echo "== $name: not started, ${left} s of the budget left"
    return
  fi
  ((limit > left)) && limit=$left
  echo "== $name (timeout ${limit} s): $cmd"
  printf '$ %s\n# timeout %s s, started %s\n' "$cmd" "$limit" "$(date -u +%H:%M:%SZ)" >"$OUT/running.log"
  t0=$SECONDS
  timeout -k 10 "$limit" bash -c "$cmd" </dev/null >>"$OUT/running.log" 2>&1
  rc=$?
  secs=$((SECONDS - t0))
  mv "$OUT/running.log" "$WORK/$name.log"
  note="$(summary_line "$WORK/$name.log")"
  if ((rc == 124 || rc == 137)); then
    status=timeout note="killed after $limit s; last line: $note"
  elif ((rc != 0)); then
    status=failed
  elif [[ -n "${EXPECTS[$i]}" ]] && ! grep -qF -- "${EXPECTS[$i]}" "$WORK/$name.log"; then
    status=failed note="$note; missing: ${EXPECTS[$i]}"
  elif [[ -n "${FORBIDS[$i]}" ]] && bad="$(grep -E -m 1 -- "${FORBIDS[$i]}" "$WORK/$name.log")"; then
    status=failed note="$note; found: ${bad:0:100}"
  else
    status=passed
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$secs" "$limit" "${note//$'\t'/ }" >>"$RESULTS"
  DONE+="$name "
  echo "   $status, rc=$rc, ${secs} s: $note"
}

write_reports
for name in "${SELECTED[@]}"; do
  run_step "$name"
  write_reports
done

echo
echo "== summary ($OUT/summary.md; logs: tails.txt, logs.tar.gz)"
cat "$OUT/summary.md"
for name in "${SELECTED[@]}"; do
  [[ "$(latest_status "$name" "$RESULTS")" == passed ]] || exit 1
done
exit 0
