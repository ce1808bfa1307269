#!/usr/bin/env bash
# bench/train-throughput.sh: training throughput (images/s) of the engine against
# PyTorch's Python front end (Debian's python3-torch: the same LibTorch underneath) on
# the same model, data, batch size and thread count, side by side in one run:
#   small-cnn   on Fashion-MNIST (the first 10,000 training images), batch 128
#   ResNet20v1  on synthetic CIFAR-10-format data (5 x 200 records), batch 32
#   ResNet29v2  on the same, batch 32
# Each model: the Python models' (name, shape) lists are checked against the engine's
# first (bench/train_throughput.py writes them layer for layer), then ROUNDS rounds of
# three processes, interleaved: the engine, Python, the engine without fingerprints
# (no per-batch digests, no per-epoch weight hashes). Every process trains EPOCHS
# epochs; each epoch gives the median time of a training step (full batches, the
# first left out) in wall time and in the training thread's CPU time. The figure per
# side is the median over its epochs, and the ratio is engine / Python. Also the
# fingerprint work of one epoch timed alone (train_bench --fingerprint-cost), against
# the engine's epoch time: on a shared machine the with/without difference of whole
# runs is mostly noise, this is not.
#
#   bench/train-throughput.sh [--build DIR] [--rounds N] [--epochs N] [--threads N]
#                             [--models "small-cnn resnet20v1 resnet29v2"]
#
# Needs: a build with -DREPRO_BUILD_BENCH=ON (the script configures DIR, default
# build-bench, when it has no CMakeCache.txt, and builds train_bench), /usr/bin/python3
# with python3-torch (NumPy is not used), Debian's dataset-fashion-mnist.
# The GPU counterpart, engine against Python on one GPU: bench/gpu-throughput.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
rounds=3
epochs=3
threads=1
models="small-cnn resnet20v1 resnet29v2"
python=/usr/bin/python3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --threads) threads=$2; shift ;;
    --models) models=$2; shift ;;
    -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "train-throughput.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
bench_build train-throughput.sh "$build" train_bench.build.log train_bench
engine="$build/bench/train_bench"
script="$here/bench/train_throughput.py"

work=$(mktemp -d /tmp/repro-train-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cifar="$work/cifar"
mkdir -p "$cifar"
"$python" "$here/bench/write_cifar.py" "$cifar" 200 200

args_for() {
  local common="--threads $threads --epochs $epochs"
  case "$1" in
    small-cnn) echo "--model small-cnn --train-limit 10000 --test-limit 2000 --batch-size 128 $common" ;;
    resnet20v1) echo "--dataset-kind cifar10 --dataset $cifar --model resnet --version 1 --depth 20 --train-limit 1000 --test-limit 200 --batch-size 32 $common" ;;
    resnet29v2) echo "--dataset-kind cifar10 --dataset $cifar --model resnet --version 2 --depth 29 --train-limit 1000 --test-limit 200 --batch-size 32 $common" ;;
    *) echo "train-throughput.sh: unknown model $1" >&2; exit 2 ;;
  esac
}

echo "engine: $engine; Python: $("$python" -c 'import torch, sys; print("torch", torch.__version__, "Python", sys.version.split()[0])')"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $threads intra-op thread(s); $rounds rounds x $epochs epochs per side"
for model in $models; do
  read -r -a a <<< "$(args_for "$model")"
  "$engine" "${a[@]}" --shapes > "$work/shapes-engine.json"
  "$python" "$script" "${a[@]}" --shapes > "$work/shapes-python.json"
  if ! cmp -s "$work/shapes-engine.json" "$work/shapes-python.json"; then
    echo "train-throughput.sh: $model: the Python model's layers differ from the engine's" >&2
    exit 1
  fi
  out="$work/$model.jsonl"
  "$engine" "${a[@]}" --fingerprint-cost > "$out"
  for ((r = 1; r <= rounds; ++r)); do
    {
      "$engine" "${a[@]}"
      "$python" "$script" "${a[@]}"
      "$engine" "${a[@]}" --no-fingerprints
    } >> "$out"
  done
  "$python" - "$model" "$out" <<'EOF'
import json, statistics, sys
model, path = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in open(path) if line.strip()]
def side(name, fingerprints):
    return [r for r in rows if r["side"] == name and r.get("fingerprints") == fingerprints]
def med(rs, key):
    return statistics.median(r[key] for r in rs)
eng, py, eng_off = side("engine", True), side("python", False), side("engine", False)
tensors = len(json.loads(open(path.replace(model + ".jsonl", "shapes-engine.json")).read()))
print("%s (%d tensors, layers checked against the engine's):" % (model, tensors))
for key, label in (("images_per_second", "wall"), ("images_per_cpu_second", "CPU")):
    e, p, o = med(eng, key), med(py, key), med(eng_off, key)
    print("  %-4s images/s: engine %8.1f  Python %8.1f  engine/Python %.3fx   "
          "engine without fingerprints %8.1f (%.3fx Python; fingerprints cost %+.2f %%)"
          % (label, e, p, e / p, o, o / p, 100.0 * (o / e - 1.0)))
print("  epoch seconds (steps, validation, fingerprints): engine %.3f, Python %.3f"
      % (med(eng, "epoch_seconds"), med(py, "epoch_seconds")))
cost = [r for r in rows if r["side"] == "fingerprint-cost"][0]
print("  fingerprints timed alone: weights hash %.3f ms (%.1f MB), %d batch digests %.3f ms:"
      " %.4f %% of the engine's epoch"
      % (1e3 * cost["weights_hash_seconds"], cost["weight_bytes"] / 1e6, cost["batches"],
         1e3 * cost["batch_digests_seconds"],
         100.0 * cost["per_epoch_seconds"] / med(eng, "epoch_seconds")))
EOF
done
