#!/usr/bin/env bash
# bench/memory.sh: peak resident memory (VmHWM) of
#  1. the coordinator holding 10,000 runs x 200 epochs (the synthetic store of
#     bench/report.sh): started on the store (it resumes the stored experiment, every
#     run done), then asked over gRPC for `status` and for the text report (which
#     reads every run's records); its peak after each step;
#  2. a worker training ResNet29v2 (batch 32, one thread) on synthetic CIFAR-10-format
#     data (5 x 200 training and 200 test records, as bench/gpu-determinism.sh writes
#     them), one epoch, leased from a coordinator like any run; GNU time's maximum RSS.
#
#   bench/memory.sh [--build DIR] [--db PATH]
#
# Needs a build with -DREPRO_BUILD_BENCH=ON (configured in DIR, default build-bench,
# when DIR has no CMakeCache.txt), GNU time and python3.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
db=/tmp/repro-report-bench-5000-200.db
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --db) db=$2; shift ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "memory.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
bench_build memory.sh "$build" memory.build.log coordinator worker reproctl synth_store
if [[ ! -f $db ]]; then
  echo "writing $db (10,000 runs x 200 epochs)"
  "$build/bench/synth_store" --db "$db" | tail -n 1
fi
work=$(mktemp -d /tmp/repro-memory.XXXXXX)
pid=""
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
peak() { awk '/^VmHWM/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status"; }
now() { awk '/^VmRSS/ {printf "%.0f MB", $2 / 1024}' "/proc/$1/status"; }

# ---- 1. the coordinator on the large store (a copy: resuming writes to it)
cp "$db" "$work/big.db"
"$build/coordinator/coordinator" --db "$work/big.db" --listen 127.0.0.1:0 \
    --port-file "$work/port" --skip-data-check > "$work/coordinator.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [[ -s $work/port ]] && break; sleep 0.1; done
[[ -s $work/port ]] || { echo "memory.sh: the coordinator did not start:" >&2; tail "$work/coordinator.log" >&2; exit 1; }
address="127.0.0.1:$(cat "$work/port")"
echo "coordinator holding 10,000 runs x 200 epochs ($(du -h "$db" | cut -f1) store):"
echo "  serving, idle:               peak $(peak $pid) (now $(now $pid))"
"$build/reproctl/reproctl" --coordinator "$address" status > /dev/null
echo "  after reproctl status:       peak $(peak $pid) (now $(now $pid))"
"$build/reproctl/reproctl" --coordinator "$address" report --format text > "$work/report.txt"
echo "  after reproctl report text:  peak $(peak $pid) (now $(now $pid))"
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""

# ---- 2. a worker training ResNet29v2
mkdir -p "$work/cifar"
python3 "$here/bench/write_cifar.py" "$work/cifar" 200 200
cat > "$work/resnet.yaml" <<EOF
experiment: memory-resnet29v2
runs: 1
epochs: 1
dataset: {kind: cifar10, path: $work/cifar}
model: {kind: resnet, version: 2, depth: 29}
training: {batch_size: 32, optimizer: adam, lr: 0.001}
determinism: {deterministic_algorithms: true, threads: 1, device: cpu}
arms: {only: {seed: fixed}}
EOF
rm -f "$work/port"
"$build/coordinator/coordinator" --plan "$work/resnet.yaml" --db "$work/resnet.db" \
    --listen 127.0.0.1:0 --port-file "$work/port" --exit-when-done > "$work/coordinator2.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [[ -s $work/port ]] && break; sleep 0.1; done
/usr/bin/time -f "%M %e" -o "$work/worker.time" "$build/worker/worker" \
    --coordinator "127.0.0.1:$(cat "$work/port")" --artifacts "$work/artifacts" > "$work/worker.log" 2>&1
wait "$pid"; pid=""
read -r kb seconds < "$work/worker.time"
echo "worker training ResNet29v2 (batch 32, 1 thread, 1,000 images, 1 epoch + validation):"
echo "  peak $((kb / 1024)) MB (the run took ${seconds} s)"
