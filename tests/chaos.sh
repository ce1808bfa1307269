#!/usr/bin/env bash
# Chaos test: runs a real experiment while killing a random worker (SIGKILL) every few
# seconds and starting a replacement, then checks the store: every run done exactly
# once, no result counted twice, the SQLite file intact. Run by hand (it takes minutes):
#
#   tests/chaos.sh [BUILD_DIR] [RUNS_PER_ARM] [EPOCHS] [KILL_EVERY_SECONDS] [fixed|adaptive]
#
# `adaptive` makes the run count adaptive (README, "Adaptive run counts"): RUNS_PER_ARM to
# start, rounds of as many up to three times that, and a third arm, `again`, seeded as
# different_seeds is: the two train the same models, so their ratio is 1 with an
# interval wider than the target, and the coordinator takes three looks and adds two
# rounds to both while workers die (same_seed, all alike, settles at the first). The
# checks then also count the looks and the runs they added.
#
# Everything listens on 127.0.0.1 only. Exits 0 when every check passes.
set -euo pipefail

build=${1:-build}
runs=${2:-6}
epochs=${3:-3}
kill_every=${4:-4}
mode=${5:-fixed}
workers=3
case "$mode" in
  fixed) runs_line="runs: $runs"; arms_line=""; total=$((2 * runs)) ;;
  adaptive)
    runs_line="runs: {min: $runs, max: $((3 * runs)), until: {ratio_ci_width: 0.000001}}"
    arms_line="arms: {same_seed: {seed: fixed}, again: {seed: per_run}, different_seeds: {seed: per_run}}"
    total=$((7 * runs)) ;;
  *) echo "chaos: the fifth argument is fixed or adaptive, not $mode" >&2; exit 2 ;;
esac
dir=$(mktemp -d /tmp/repro-chaos-XXXXXX)
coordinator="$build/coordinator/coordinator"
worker="$build/worker/worker"
for bin in "$coordinator" "$worker"; do
  [ -x "$bin" ] || { echo "chaos: $bin is not built" >&2; exit 2; }
done
command -v sqlite3 >/dev/null || { echo "chaos: needs the sqlite3 command (Debian package sqlite3)" >&2; exit 2; }

# Every kill costs the run it interrupts an attempt; enough attempts that no run is
# failed by chance, so the checks below are about counting, not the retry limit.
cat >"$dir/plan.yaml" <<PLAN
experiment: chaos
$runs_line
epochs: $epochs
max_attempts: 50
dataset: {kind: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: 6000, test_limit: 1000}
$arms_line
PLAN

pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for pid in "${pids[@]}" ${coordinator_pid:-}; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$coordinator" --plan "$dir/plan.yaml" --db "$dir/chaos.db" --listen 127.0.0.1:0 \
  --port-file "$dir/port" --heartbeat-ms 300 >"$dir/coordinator.log" 2>&1 &
coordinator_pid=$!
for _ in $(seq 100); do [ -s "$dir/port" ] && break; sleep 0.1; done
address="127.0.0.1:$(cat "$dir/port")"

started=0
start_worker() {
  started=$((started + 1))
  "$worker" --coordinator "$address" --name "chaos-$started" >"$dir/worker-$started.log" 2>&1 &
  pids+=($!)
  disown $!  # no "Killed" notice from the shell for each victim
}
for _ in $(seq $workers); do start_worker; done

kills=0
begin=$(date +%s)
q() { sqlite3 "$dir/chaos.db" "$1"; }
# The last look's decision; "" for a fixed run count or before the first look.
last_look() { q "SELECT COALESCE(json_extract(adaptive, '\$.looks[#-1].decision'), '') FROM experiments"; }
while true; do
  done_runs=$(q "SELECT COUNT(*) FROM runs WHERE state IN ('done','failed')")
  if [ "$done_runs" -ge "$total" ] && { [ "$mode" = fixed ] || [ "$(last_look)" = max ]; }; then break; fi
  if [ $(( $(date +%s) - begin )) -gt 900 ]; then echo "chaos: not finished after 15 minutes" >&2; exit 1; fi
  sleep "$kill_every"
  victim_slot=$((RANDOM % ${#pids[@]}))
  victim=${pids[$victim_slot]}
  if kill -9 "$victim" 2>/dev/null; then
    kills=$((kills + 1))
    echo "chaos: killed worker pid $victim ($done_runs/$total runs finished)"
  fi
  unset "pids[$victim_slot]"
  pids=("${pids[@]}")
  start_worker
done
elapsed=$(( $(date +%s) - begin ))

fail=0
check() {  # check NAME ACTUAL EXPECTED
  if [ "$2" == "$3" ]; then echo "ok   $1: $2"; else echo "FAIL $1: $2 (expected $3)"; fail=1; fi
}
check "runs done" "$(q "SELECT COUNT(*) FROM runs WHERE state = 'done'")" "$total"
check "runs in the store" "$(q "SELECT COUNT(*) FROM runs")" "$total"
check "counted results" "$(q "SELECT COUNT(*) FROM attempts WHERE outcome = 'done'")" "$total"
check "runs pointing at a counted result of their own" \
  "$(q "SELECT COUNT(*) FROM runs r JOIN attempts a ON a.id = r.result_attempt AND a.run_id = r.id AND a.outcome = 'done'")" "$total"
check "runs with two counted results" \
  "$(q "SELECT COUNT(*) FROM (SELECT run_id FROM attempts WHERE outcome = 'done' GROUP BY run_id HAVING COUNT(*) > 1)")" "0"
check "same-seed final models identical" \
  "$(q "SELECT COUNT(DISTINCT a.final_hash) FROM runs r JOIN attempts a ON a.id = r.result_attempt WHERE r.arm = 'same_seed'")" "1"
check "integrity_check" "$(q "PRAGMA integrity_check")" "ok"
if [ "$mode" = adaptive ]; then
  check "looks taken" "$(q "SELECT json_array_length(adaptive, '\$.looks') FROM experiments")" "3"
  check "why it stopped" "$(last_look)" "max"
  check "runs per arm" "$(q "SELECT GROUP_CONCAT(arm || ' ' || n, ', ') FROM (SELECT arm, COUNT(*) AS n FROM runs GROUP BY arm ORDER BY arm)")" \
    "again $((3 * runs)), different_seeds $((3 * runs)), same_seed $runs"
fi
echo "chaos: $total runs x $epochs epochs, $workers workers, $kills workers killed, $started started," \
     "$(q "SELECT COUNT(*) FROM attempts") attempts ($(q "SELECT COUNT(*) FROM attempts WHERE outcome = 'expired'") expired," \
     "$(q "SELECT COUNT(*) FROM attempts WHERE outcome = 'extra'") extra), ${elapsed}s"
[ $fail -eq 0 ] && rm -rf "$dir" || echo "chaos: files kept in $dir"
exit $fail
