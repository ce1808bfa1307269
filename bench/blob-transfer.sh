#!/usr/bin/env bash
# bench/blob-transfer.sh: how fast do a plan's files travel from the coordinator to a
# worker (GetBlob over loopback into the worker's --cache: 1 MiB chunks, SHA-256 of
# every byte, fsync before the file is kept), side by side with a plain copy of the same
# bytes (cp, then sync of the copy) on the same disk. One file of SIZE MB (random bytes
# as a uint8 .npy), a plan of dataset kind arrays and model noop (so the run itself
# costs nothing); per round: the plain copy, then a fresh worker's fetch (the worker's
# own "fetched ... (N MB/s)" line, timed around the transfer alone), interleaved.
#
#   bench/blob-transfer.sh [--build DIR] [--size MB] [--rounds N]
#
# Also prints the coordinator's start-up ingestion of the file (copy into its blob store
# with the SHA-256 checked), from its start to its port file.
#
# Then the way back, when /usr/bin/python3 has torch: a TorchScript model of about SIZE
# MB (one wide linear layer) trained one step on 10 images, its final weights exported;
# per round the worker's upload of them (PutBlob into the coordinator's blob store:
# 1 MiB pieces, SHA-256 checked, fsync, rename; its "uploaded ..." line), then
# `reproctl --db fetch` of the same file (read from the store, hashed, written, renamed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$here/build-bench size=256 rounds=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --size) size=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "blob-transfer.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# Set by bench/lib.sh's service_build and start_coordinator.
# shellcheck disable=SC2034
coordinator="" worker="" reproctl="" coordinator_pid="" address=""
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
service_build blob-transfer.sh "$build" ""

work=$(mktemp -d /tmp/repro-blob-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 - "$work" "$size" <<'PY'
import os, struct, sys
out, mb = sys.argv[1], int(sys.argv[2])
def npy(path, descr, shape, data):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(data)
n = mb * 1000000 // 784
npy(os.path.join(out, "train_x.npy"), "|u1", "(%d, 28, 28)" % n, os.urandom(n * 784))
npy(os.path.join(out, "train_y.npy"), "<i8", "(%d,)" % n, bytes(8 * n))
npy(os.path.join(out, "test_x.npy"), "|u1", "(10, 28, 28)", bytes(7840))
npy(os.path.join(out, "test_y.npy"), "<i8", "(10,)", bytes(80))
PY
bytes=$(stat -c %s "$work/train_x.npy")
echo "file: $bytes bytes; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); disk $(df --output=source,fstype "$work" | tail -n 1)"
for round in $(seq "$rounds"); do
  rm -f "$work/copy.npy"
  start=$(date +%s.%N)
  cp "$work/train_x.npy" "$work/copy.npy" && sync "$work/copy.npy"
  end=$(date +%s.%N)
  copy_rate=$(python3 -c "print('%.0f' % ($bytes / 1e6 / ($end - $start)))")

  dir="$work/r$round"
  mkdir -p "$dir"
  cat > "$dir/plan.yaml" <<EOF
experiment: blobs-$round
runs: 1
epochs: 1
dataset: {kind: arrays, train: {x: $work/train_x.npy, y: $work/train_y.npy}, test: {x: $work/test_x.npy, y: $work/test_y.npy}}
model: {kind: noop}
arms: {only: {seed: fixed}}
EOF
  start=$(date +%s.%N)
  start_coordinator blob-transfer.sh "$dir" --plan "$dir/plan.yaml" --db "$dir/store.db"
  end=$(date +%s.%N)
  ingest=$(python3 -c "print('%.2f' % ($end - $start))")
  "$worker" --coordinator "$address" --name w --cache "$dir/cache" > "$dir/worker.log" 2>&1 ||
    { echo "blob-transfer.sh: the worker failed:" >&2; tail "$dir/worker.log" >&2; exit 1; }
  wait "$coordinator_pid"
  fetch=$(grep -o 'fetched input train_x ([0-9a-f]*): [0-9]* bytes in [0-9.]* s ([0-9]* MB/s)' "$dir/worker.log" |
          sed 's/.* in \([0-9.]*\) s (\([0-9]*\) MB\/s)/\1 s, \2 MB\/s/')
  echo "round $round: plain copy + sync $copy_rate MB/s; GetBlob into the worker's cache: $fetch; coordinator start with ingestion ${ingest} s"
  rm -rf "$dir"
done

if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "upload: skipped (/usr/bin/python3 has no torch to script the model with)"
  exit 0
fi
/usr/bin/python3 - "$work" "$size" <<'PY'
import sys, torch
out, mb = sys.argv[1], int(sys.argv[2])
width = mb * 1000000 // 4 // 794  # 784 inputs + 10 outputs per hidden unit, float32
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, width), torch.nn.ReLU(),
                            torch.nn.Linear(width, 10))
torch.jit.script(model).save(out + "/wide.pt")
import numpy as np
np.save(out + "/small_x.npy", np.zeros((10, 28, 28), np.uint8))
np.save(out + "/small_y.npy", np.arange(10, dtype=np.int64))
PY
for round in $(seq "$rounds"); do
  dir="$work/u$round"
  mkdir -p "$dir"
  cat > "$dir/plan.yaml" <<EOF
experiment: upload-$round
runs: 1
epochs: 1
dataset: {kind: arrays, train: {x: $work/small_x.npy, y: $work/small_y.npy}, test: {x: $work/small_x.npy, y: $work/small_y.npy}}
model: {kind: torchscript, path: $work/wide.pt, init: file}
training: {batch_size: 10, optimizer: sgd, lr: 0.01}
exports: {weights: [final]}
arms: {only: {seed: fixed}}
EOF
  start_coordinator blob-transfer.sh "$dir" --plan "$dir/plan.yaml" --db "$dir/store.db"
  "$worker" --coordinator "$address" --name w --cache "$dir/cache" --artifacts "$dir/artifacts" \
    > "$dir/worker.log" 2>&1 ||
    { echo "blob-transfer.sh: the worker failed:" >&2; tail "$dir/worker.log" >&2; exit 1; }
  wait "$coordinator_pid"
  line=$(grep -o 'uploaded the final weights of run only#0: [0-9]* bytes in [0-9.]* s' "$dir/worker.log")
  up_bytes=$(echo "$line" | sed 's/.*: \([0-9]*\) bytes.*/\1/')
  up_s=$(echo "$line" | sed 's/.* in \([0-9.]*\) s/\1/')
  start=$(date +%s.%N)
  "$reproctl" --db "$dir/store.db" fetch 'only#0' -o "$dir/fetched" > /dev/null
  end=$(date +%s.%N)
  python3 - "$up_bytes" "$up_s" "$start" "$end" "$round" <<'PY'
import sys
n, up, start, end, r = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
print("upload round %s: %d bytes; PutBlob into the store %.3f s, %.0f MB/s; reproctl --db fetch %.3f s, %.0f MB/s"
      % (r, n, up, n / 1e6 / up, end - start, n / 1e6 / (end - start)))
PY
  rm -rf "$dir"
done
