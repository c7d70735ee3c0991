#!/usr/bin/env bash
# Precision under stress on a loaded machine (issue 7, item 3; `make stress`): the stack-churn
# precision test of tests/it/trace_compat.rs, RUNS times, with LOAD busy loops competing for the
# CPUs so that the tracer and the target are descheduled mid-read. A run fails if tracer
# reports a line, function or edge that the stdlib's trace did not see.
# Usage: stress.sh [RUNS] [LOAD]
set -uo pipefail
runs=${1:-10}
load=${2:-4}
cd "$(dirname "$0")/../.."
cargo test --release --test it --no-run >/dev/null 2>&1 || {
  echo "stress: the test does not build"; exit 1; }
spinners=()
for _ in $(seq "$load"); do
  ( while :; do :; done ) &
  spinners+=($!)
done
trap 'kill "${spinners[@]}" 2>/dev/null' EXIT
failed=0
log=target/stress.log
: > "$log"
for run in $(seq "$runs"); do
  if cargo test --release --test it trace_compat::precision_under_stack_churn_at_the_highest_rate \
      -- --nocapture >> "$log" 2>&1; then
    echo "stress: run $run of $runs: precision 1.000 (load $(cut -d' ' -f1 /proc/loadavg))"
  else
    failed=$((failed + 1))
    echo "stress: run $run of $runs: FAILED (see $log)"
  fi
done
echo "stress: $failed of $runs runs failed, $load busy loops beside them"
[ "$failed" -eq 0 ]
