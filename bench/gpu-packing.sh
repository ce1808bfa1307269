#!/usr/bin/env bash
# bench/gpu-packing.sh: how much does packing several runs on one GPU buy, and does it
# change any run's fingerprints? For each slot count S (default 1 2 4 8 16): one
# experiment of S runs of ResNet29v2 (batch 32, Keras's Adam, deterministic algorithms
# on, every run the same seeds) on Fashion-MNIST written as CIFAR-10, trained by one
# worker with --slots S, so all S runs train at once. Prints per S: the aggregate
# images/s over the worker's wall time (start-up included), its speed-up over S = 1,
# whether all S runs ended with the same weights, whether those are the weights every
# other S gave (packing must change nothing in a deterministic arm), and the peak GPU
# memory (nvidia-smi, sampled every second).
#
#   bench/gpu-packing.sh                       # on a GPU host
#   bench/gpu-packing.sh --cpu                 # the same path on the CPU (a check)
#   options: --slots "1 2 4 8 16"  --epochs N  --train N  --build DIR  --deps DIR
#
# Building and data as bench/gpu-study.sh (--deps, REPRO_FASHION_MNIST).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
device=cuda slot_counts="" epochs=1 train="" build="" deps=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) device=cpu ;;
    --slots) slot_counts=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --train) train=$2; shift ;;
    --build) build=$2; shift ;;
    --deps) deps=$2; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-packing.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $device == cuda ]]; then
  slot_counts=${slot_counts:-1 2 4 8 16} train=${train:-10000}
else
  slot_counts=${slot_counts:-1 2} train=${train:-200}
fi
build=${build:-$here/build-gpu-study}
fashion=${REPRO_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
# Set by bench/lib.sh's service_build and start_coordinator.
# shellcheck disable=SC2034
coordinator="" worker="" reproctl="" coordinator_pid="" address=""
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
service_build gpu-packing.sh "$build" "$deps"

work=$(mktemp -d /tmp/repro-gpu-packing.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 "$here/bench/fashion_to_cifar.py" "$fashion" "$work/data" "$train" 1000 > /dev/null
echo "$device: ResNet29v2, $epochs epoch(s) x $train images per run, deterministic, same seeds"
first_hash="" base_rate=""
for slots in $slot_counts; do
  dir="$work/s$slots"
  mkdir -p "$dir"
  cat > "$dir/plan.yaml" <<EOF
experiment: packing-$slots
runs: $slots
epochs: $epochs
base_seed: 0
dataset: {kind: cifar10, path: $work/data}
model: {kind: resnet, version: 2, depth: 29}
training: {batch_size: 32, optimizer: adam-keras, lr: 0.001}
determinism: {threads: 1, device: $device, deterministic_algorithms: true}
arms:
  same_seed: {seed: fixed}
EOF
  start_coordinator gpu-packing.sh "$dir" --plan "$dir/plan.yaml" --db "$dir/store.db"
  started=$(date +%s.%N)
  "$worker" --coordinator "$address" --name pack --slots "$slots" --threads 1 \
      > "$dir/worker.log" 2>&1 &
  worker_pid=$!
  if [[ $device == cuda ]] && command -v nvidia-smi > /dev/null; then
    ( while kill -0 "$worker_pid" 2> /dev/null; do
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 1
      done ) > "$dir/memory.txt" &
  fi
  wait "$worker_pid" || { echo "gpu-packing.sh: $slots slots: the worker failed:" >&2; tail "$dir/worker.log" >&2; exit 1; }
  ended=$(date +%s.%N)
  wait "$coordinator_pid"
  read -r rate same hash <<< "$(python3 - "$dir/store.db" "$started" "$ended" "$train" "$epochs" <<'PY'
import sqlite3, sys
db, start, end, train, epochs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
hashes = [h for (h,) in sqlite3.connect(db).execute(
    "SELECT a.final_hash FROM runs r JOIN attempts a ON a.id = r.result_attempt")]
print("%.0f %s %s" % (len(hashes) * epochs * train / (end - start),
                      "yes" if len(set(hashes)) == 1 else "NO", hashes[0] if hashes else "-"))
PY
)"
  first_hash=${first_hash:-$hash}
  base_rate=${base_rate:-$rate}
  peak=$( [[ -s $dir/memory.txt ]] && sort -n "$dir/memory.txt" | tail -n 1 || echo "-")
  printf '%3d slots: %7d images/s aggregate (%5.2fx one run); runs identical: %s; same weights as the first count: %s; peak GPU memory %s MiB\n' \
    "$slots" "$rate" "$(python3 -c "print($rate / $base_rate)")" "$same" \
    "$([[ $hash == "$first_hash" ]] && echo yes || echo NO)" "$peak"
done
