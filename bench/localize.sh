#!/usr/bin/env bash
# bench/localize.sh: what `reproctl localize` costs (issue 15), with one worker replaying
# both runs against each run replayed on a worker of its own. Two arms of one run each,
# small CNN on Fashion-MNIST (--train-limit images, batch 64, Adam, --epochs epochs),
# that differ only in threads (1 and 2):
#   one:   the arms set threads 1 and 2; one worker replays both runs;
#   apart: the arms leave threads to their workers and are pinned by label to a worker
#          with --threads 1 and one with --threads 2; no worker may run both, so each
#          run replays on its own (three stages, each handed out once both sides answer).
# For each it trains the runs, then times `reproctl localize` from asked to answered and
# prints the answer's batch, op and the workers' seconds.
#
#   bench/localize.sh [--build DIR] [--train-limit N] [--epochs N]
#
# Needs Debian's dataset-fashion-mnist and a build (configured in DIR, default
# build-bench, when DIR has no CMakeCache.txt).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
train_limit=2000
epochs=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --train-limit) train_limit=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "localize.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
service_build localize.sh "$build" ""
dir=$(mktemp -d /tmp/repro-localize-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

plan_head() {
  cat <<PLAN
experiment: localize-$1
runs: 1
epochs: $epochs
dataset: {kind: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: $train_limit, test_limit: 500}
model: {kind: small-cnn}
training: {batch_size: 64, optimizer: adam, lr: 0.001}
PLAN
}

# run_mode MODE ARM_A ARM_B WORKER_ARGS...: one coordinator, the workers, the runs, then
# localize timed. WORKER_ARGS: one quoted string of flags per worker.
run_mode() {
  local mode=$1 a=$2 b=$3 port started ended
  shift 3
  rm -f "$dir/port"
  # shellcheck disable=SC2154  # $coordinator, $worker, $reproctl: set by service_build
  "$coordinator" --plan "$dir/$mode.yaml" --db "$dir/$mode.db" --listen 127.0.0.1:0 \
      --port-file "$dir/port" > "$dir/$mode.coordinator.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do [[ -s $dir/port ]] && break; sleep 0.1; done
  port=$(cat "$dir/port")
  local n=0
  for flags in "$@"; do
    # shellcheck disable=SC2086  # the flags are words
    "$worker" --coordinator "127.0.0.1:$port" --name "$mode-w$n" --stay $flags \
        > "$dir/$mode.worker$n.log" 2>&1 &
    pids+=($!)
    n=$((n + 1))
  done
  until "$reproctl" --coordinator "127.0.0.1:$port" status --format json 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["complete"] else 1)'; do
    sleep 0.5
  done
  started=$(date +%s.%N)
  "$reproctl" --coordinator "127.0.0.1:$port" localize "$a" "$b" --format json > "$dir/$mode.json"
  ended=$(date +%s.%N)
  python3 - "$mode" "$dir/$mode.json" "$started" "$ended" <<'PY'
import json, sys
mode, path, started, ended = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
l = json.load(open(path))
a = l["answer"]
op = a["op"] or {}
workers = l["worker"] + (" + " + l["worker_b"] if l["worker_b"] else "")
print(f"| {mode} | {workers} | {a['batches']} | {a['batch']} | {op.get('name', '-')} "
      f"({'inputs equal' if op.get('inputs_equal') else 'inputs differ'}, {op.get('max_ulps', 0)} ulps) "
      f"| {a['seconds']['replay']:.2f} s | {a['seconds']['total']:.2f} s | {ended - started:.2f} s |")
PY
}

{ plan_head one; printf 'determinism: {deterministic_algorithms: true, threads: 1, device: cpu}\n'
  printf 'arms:\n  t1: {seed: fixed}\n  t2: {seed: fixed, determinism: {threads: 2}}\n'; } > "$dir/one.yaml"
{ plan_head apart; printf 'determinism: {deterministic_algorithms: true, threads: 0, device: cpu}\n'
  printf 'arms:\n  one: {seed: fixed, placement: {labels: {group: one}}}\n'
  printf '  two: {seed: fixed, placement: {labels: {group: two}}}\n'; } > "$dir/apart.yaml"
echo "| mode | workers | batches | parting batch | first op that differs | epoch replays (2 sides) | on the workers | asked to answered |"
echo "|---|---|---|---|---|---|---|---|"
run_mode one t1#0 t2#0 "--threads 2"
run_mode apart one#0 two#0 "--threads 1 --label group=one" "--threads 2 --label group=two"
