#!/usr/bin/env bash
# Everything glowflow measures on a GPU, in one call that budgets its own time:
#
#   bash benchmarks/gpu.sh             # CUDA: at most GPU_DEADLINE seconds (default 460)
#   bash benchmarks/gpu.sh --dry-run   # the same parts on the CPU with tiny sizes (< 1 minute)
#
# Parts, in order, each under `timeout` (its own budget, never past the deadline; a part that
# no longer fits is recorded as skipped):
#   pytest       python -m pytest -q --device cuda of the fast tests (JUnit XML: junit.xml)
#   sync         benchmarks/sync_count.py: host syncs inside glowflow's training step (must be 0)
#   eager-P      glowflow bench, the paper's CIFAR-10 model (--config cifar10: K=32, L=3,
#                width 512) at batch 64 in precision P (fp32, bf16), memory modes none and
#                invertible; one part per precision, since a part cut short writes no JSON
#   tf32         the same in fp32 with --tf32
#   peer-y0ast   glowflow / y0ast in alternating processes (fp32, none), when a checkout of
#                y0ast/Glow-PyTorch is at GPU_PEER_Y0AST (default: shared/peers/y0ast)
#   max-batch-N  the largest batch that fits (fp32, none): N doubles from 128 until a probe
#                runs out of memory, out of time, or passes GPU_MAX_BATCH_CAP (default 2048)
#   compile-P    --compile at batch 64, mode none: bf16 first, then fp32
# Every figure is glowflow bench's: training/sampling/encoding images/s, max_memory_allocated
# and each rate's fraction of the GPU's measured matmul rate.
#
# Writes into $OUT if set, else benchmarks/results/gpu-<date>/ (gpu-dry-run-<date>/):
#   gpu.json   every part's status, time and command, the figures, the largest batch, the peer
#              ratios, the sync count and the test totals (benchmarks/gpu_report.py), rewritten
#              after each part, so a run cut short keeps what finished
#   gpu.log    everything the parts printed
#   junit.xml  the test run
# Settings from the environment: PYTHON (python3), GPU_DEADLINE, GPU_PEER_Y0AST,
# GPU_MAX_BATCH_CAP, GPU_PYTEST_MAXFAIL (10; 1 is -x), GPU_PYTEST_TARGETS (the fast suite).
set -uo pipefail

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
DRY_RUN=0
case "${1:-}" in
  "") ;;
  --dry-run) DRY_RUN=1 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "gpu.sh: unknown argument '$1' (use --dry-run or --help)" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
STAMP=$(date +%Y%m%d-%H%M%S)
if ((DRY_RUN)); then
  DIR=${OUT:-$ROOT/benchmarks/results/gpu-dry-run-$STAMP}
  DEVICE=cpu CONFIG=tiny BATCH=4 PRECISIONS=fp32 MODES=none PEER_ROUNDS=1
  TIMING=(--warmup 0 --repeats 1 --iterations 1)
  SEARCH_START=8 SEARCH_CAP=8 DEADLINE=${GPU_DEADLINE:-120}
  PYTEST_TARGETS=${GPU_PYTEST_TARGETS:-tests/test_actnorm.py}
  SYNC_SIZE=(--shape 1 8 8 --levels 2 --steps-per-level 2 --width 8 --batch-size 4 --warmup 1 --steps 1 --precision fp32)
else
  DIR=${OUT:-$ROOT/benchmarks/results/gpu-$STAMP}
  DEVICE=cuda CONFIG=cifar10 BATCH=64 PRECISIONS="fp32 bf16" MODES="none invertible" PEER_ROUNDS=2
  TIMING=(--warmup 2 --repeats 3 --iterations 2)
  SEARCH_START=128 SEARCH_CAP=${GPU_MAX_BATCH_CAP:-2048} DEADLINE=${GPU_DEADLINE:-460}
  PYTEST_TARGETS=${GPU_PYTEST_TARGETS:-}
  SYNC_SIZE=()
fi
PEER_Y0AST=${GPU_PEER_Y0AST:-$ROOT/shared/peers/y0ast}
RESERVE=5   # seconds kept back for the last report
MIN_PART=10 # a part with less time than this left is skipped

mkdir -p "$DIR" || exit 2
LOG=$DIR/gpu.log
REPORT=$DIR/gpu.json
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
: >"$LOG"
rm -f "$DIR/junit.xml" # a test run cut short writes none: never report an earlier one

say() { echo "gpu.sh: $*" | tee -a "$LOG"; }
report() { "$PYTHON" "$ROOT/benchmarks/gpu_report.py" "$WORK" "$REPORT" "$@"; }
left() { echo $((DEADLINE - SECONDS - RESERVE)); }

# record NAME STATUS SECONDS COMMAND [FILE] [NOTE]
record() {
  local args=(part "$1" "$2" "$3" --command "$4")
  [[ -n "${5:-}" ]] && args+=(--file "$5")
  [[ -n "${6:-}" ]] && args+=(--note "$6")
  report "${args[@]}" || say "could not record part $1"
}

# run_part NAME BUDGET FILE COMMAND...: COMMAND under `timeout` for at most BUDGET seconds (less
# if the deadline is nearer), its output into the log; records ok, failed, oom, timeout or
# skipped with FILE (its JSON or XML, may be empty); returns 0 only when it ran and passed.
run_part() {
  local name=$1 budget=$2 file=$3
  shift 3
  local remaining
  remaining=$(left)
  ((budget > remaining)) && budget=$remaining
  if ((budget < MIN_PART)); then
    say "skip $name: ${remaining}s left of the ${DEADLINE}s budget"
    record "$name" skipped 0 "$*" "" "out of time: ${remaining}s left of the ${DEADLINE}s budget"
    return 3
  fi
  say "== $name (at most ${budget}s): $*"
  local start=$SECONDS status rc
  timeout --kill-after=10 "$budget" "$@" 2>&1 | tee -a "$LOG" "$WORK/$name.log"
  rc=${PIPESTATUS[0]}
  if ((rc == 0)); then
    status=ok
  elif ((rc == 124 || rc == 137)); then
    status=timeout
  elif grep -qE "OutOfMemoryError|CUDA out of memory" "$WORK/$name.log"; then
    status=oom
  else
    status=failed
  fi
  say "$name: $status (exit $rc) after $((SECONDS - start))s"
  record "$name" "$status" $((SECONDS - start)) "$*" "$file"
  [[ $status == ok ]]
}

BENCH=("$PYTHON" -m glowflow bench --config "$CONFIG" --device "$DEVICE")

BEGIN=(--deadline "$DEADLINE")
((DRY_RUN)) && BEGIN+=(--dry-run)
report begin "${BEGIN[@]}" \
  --setting "device=$DEVICE" --setting "config=$CONFIG" --setting "batch=$BATCH" \
  --setting "precisions=$PRECISIONS" --setting "modes=$MODES" --setting "folder=$DIR" ||
  { echo "gpu.sh: cannot write $REPORT" >&2; exit 2; }
say "$( ((DRY_RUN)) && echo 'dry run: ')device $DEVICE, config $CONFIG, ${DEADLINE}s budget, into $DIR"
if [[ $DEVICE == cuda ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | tee -a "$LOG"
fi

# shellcheck disable=SC2086  # PYTEST_TARGETS, PRECISIONS and MODES are word lists
{
  run_part pytest 90 "$DIR/junit.xml" "$PYTHON" -m pytest -q -p no:cacheprovider \
    --device "$DEVICE" --maxfail "${GPU_PYTEST_MAXFAIL:-10}" --junitxml "$DIR/junit.xml" $PYTEST_TARGETS

  run_part sync 30 "$WORK/sync.json" "$PYTHON" benchmarks/sync_count.py --device "$DEVICE" \
    "${SYNC_SIZE[@]}" --output "$WORK/sync.json"

  for precision in $PRECISIONS; do # one part each: a part cut short keeps no JSON
    run_part "eager-$precision" 45 "$WORK/eager-$precision.json" "${BENCH[@]}" "${TIMING[@]}" \
      --batch-size "$BATCH" --precision "$precision" --modes $MODES --output "$WORK/eager-$precision.json"
  done

  run_part tf32 45 "$WORK/tf32.json" "${BENCH[@]}" "${TIMING[@]}" --batch-size "$BATCH" \
    --precision fp32 --tf32 --modes $MODES --output "$WORK/tf32.json"

  if [[ -f $PEER_Y0AST/model.py ]]; then
    run_part peer-y0ast 60 "$WORK/peer-y0ast.json" "${BENCH[@]}" "${TIMING[@]}" \
      --batch-size "$BATCH" --precision fp32 --modes none --rounds "$PEER_ROUNDS" --peer "y0ast=$PEER_Y0AST" --output "$WORK/peer-y0ast.json"
  else
    note="no y0ast checkout at $PEER_Y0AST (model.py): put y0ast/Glow-PyTorch under shared/peers/y0ast or set GPU_PEER_Y0AST"
    say "skip peer-y0ast: $note"
    record peer-y0ast skipped 0 "" "" "$note"
  fi

  search_end=$((SECONDS + 70))
  for ((batch = SEARCH_START; batch <= SEARCH_CAP; batch *= 2)); do
    run_part "max-batch-$batch" $((search_end - SECONDS)) "$WORK/max-batch-$batch.json" \
      "${BENCH[@]}" --batch-size "$batch" --precision fp32 --modes none --warmup 1 --repeats 2 \
      --iterations 1 --output "$WORK/max-batch-$batch.json" || break
  done

  if ((DRY_RUN)); then
    record compile skipped 0 "" "" "--dry-run: inductor compiles for minutes on a CPU"
  else
    for precision in bf16 fp32; do
      run_part "compile-$precision" 75 "$WORK/compile-$precision.json" "${BENCH[@]}" "${TIMING[@]}" \
        --batch-size "$BATCH" --compile --precision "$precision" --modes none \
        --output "$WORK/compile-$precision.json"
    done
  fi
}

if "$PYTHON" -m glowflow bench --help 2>/dev/null | grep -qi transformer; then
  note="glowflow bench --help mentions transformer flows; gpu.sh has no part for them yet"
else
  note="glowflow bench --help offers no transformer-flow benchmark"
fi
record transformer-flows skipped 0 "" "" "$note"
report show | tee -a "$LOG"
say "done in ${SECONDS}s: $REPORT, $LOG"
