#!/usr/bin/env bash
# bench/gpu-throughput.sh: training throughput (images/s) of the engine against
# PyTorch's Python front end on the same GPU, side by side in one run (issue 13): the
# same model, data, batch size, recipe (Adam, lr 0.001, the L2 penalty on the ResNet's
# conv kernels), sample order and thread count (1), with deterministic algorithms on
# and off.
#   resnet29v2  ResNet29v2 on synthetic CIFAR-10-format data (bench/write_cifar.py,
#               5 x 2,000 training and 1,000 test records): 313 steps an epoch at 32
#   small-cnn   the small CNN on Fashion-MNIST (60,000 / 10,000), when
#               /usr/share/datasets/fashion-mnist is there (else skipped, with a message)
# Each model: the Python model's (name, shape) list and its sample order of every
# epoch are checked against the engine's first, then ROUNDS rounds, each mode in turn,
# each side its own process, interleaved (odd rounds the engine first, even rounds
# Python first): the engine (bench/train_bench: TrainRun, the worker's own code
# path, with its fingerprints), Python with the engine's Adam arithmetic (one parameter
# at a time) and Python with PyTorch's default Adam (on CUDA: foreach).
#
# What is timed, on both sides alike: an epoch's training whole (the order's move to
# the device, every batch gather on the device and step, the loss and correct-count
# bookkeeping on the device, the finiteness checks), with a device synchronisation at
# both ends; not the validation pass or the weight hash. images/s = the epoch's images
# / that time; the mean step time is that time / steps. Epoch 0 is left out (warm-up);
# the figure per side is the median over the other epochs of every round. The
# deterministic-mode overhead per side is the median epoch time with deterministic
# algorithms over the one without.
#
#   bench/gpu-throughput.sh [--cpu] [--build DIR] [--rounds N] [--epochs N] [--batch N]
#                           [--models "resnet29v2 small-cnn"]
#                           [--deterministic|--nondeterministic|--both] [--jobs N]
#   --cpu runs the same on the CPU with tiny sizes (5 x 40 CIFAR records, 1,000
#   Fashion-MNIST images, 1 round): a check of the script, not a figure.
#   Defaults: --device cuda, 3 rounds, 3 epochs (2 measured), batch 32 for both
#   models, both modes, build folder build-gpu-bench.
#
# Needs: what bench/lib.sh's engine_build needs to build train_bench (CMake, a C++17
# compiler, the LibTorch of python3's torch or the system's, REPRO_DEPS for Abseil,
# xxHash's header and zlib where the host lacks them), and a python3 with torch (CUDA
# for the GPU; no NumPy needed): REPRO_BENCH_PYTHON if set, else the first of python3
# and /usr/bin/python3 that imports torch.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
device=cuda
build=""
rounds=""
epochs=3
batch=32
models="resnet29v2 small-cnn"
modes="deterministic nondeterministic"
jobs=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) device=cpu ;;
    --build) build=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --batch) batch=$2; shift ;;
    --models) models=$2; shift ;;
    --deterministic) modes="deterministic" ;;
    --nondeterministic) modes="nondeterministic" ;;
    --both) modes="deterministic nondeterministic" ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,39p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-throughput.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for model in $models; do
  case "$model" in
    resnet29v2|small-cnn) ;;
    *) echo "gpu-throughput.sh: unknown model $model (resnet29v2 or small-cnn)" >&2; exit 2 ;;
  esac
done
if [[ $epochs -lt 2 ]]; then
  echo "gpu-throughput.sh: --epochs must be at least 2 (the first is warm-up)" >&2
  exit 2
fi
if [[ $device == cpu ]]; then
  rounds=${rounds:-1}
  cifar_records=40; cifar_test=100; fashion_train=1000; fashion_test=200
else
  rounds=${rounds:-3}
  cifar_records=2000; cifar_test=1000; fashion_train=60000; fashion_test=10000
fi
build=${build:-$here/build-gpu-bench}
jobs=${jobs:-$(nproc)}

# ---------------------------------------------------------------- Python
python=${REPRO_BENCH_PYTHON:-}
if [[ -z $python ]]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import torch' >/dev/null 2>&1; then python=$candidate; break; fi
  done
fi
if [[ -z $python ]]; then
  echo "gpu-throughput.sh: no python3 with torch (set REPRO_BENCH_PYTHON)" >&2
  exit 1
fi
if [[ $device == cuda ]] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  echo "gpu-throughput.sh: $python's torch sees no GPU (use --cpu for the CPU check)" >&2
  exit 1
fi

# ---------------------------------------------------------------- build
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
engine_build gpu-throughput.sh "$build" "$jobs" train_bench -- -DREPRO_BUILD_BENCH=ON
build=$(cd "$build" && pwd)
engine="$build/bench/train_bench"
script="$here/bench/train_throughput.py"

# ---------------------------------------------------------------- data
cifar="$build/bench-data/cifar-synthetic-$cifar_records-$cifar_test"
if [[ ! -f $cifar/test_batch.bin ]]; then
  echo "writing synthetic CIFAR-10 data: 5 x $cifar_records training and $cifar_test test records"
  mkdir -p "$cifar"
  "$python" "$here/bench/write_cifar.py" "$cifar" "$cifar_records" "$cifar_test"
fi
fashion=/usr/share/datasets/fashion-mnist

args_for() {
  local common="--threads 1 --epochs $epochs --batch-size $batch --device $device"
  case "$1" in
    resnet29v2) echo "--dataset-kind cifar10 --dataset $cifar --model resnet --version 2 --depth 29 --train-limit $((5 * cifar_records)) --test-limit $cifar_test $common" ;;
    small-cnn) echo "--dataset-kind fashion-mnist --dataset $fashion --model small-cnn --train-limit $fashion_train --test-limit $fashion_test $common" ;;
  esac
}

# ---------------------------------------------------------------- runs
results="$build/bench-results/throughput-$device"
rm -rf "$results"
mkdir -p "$results"
unset CUBLAS_WORKSPACE_CONFIG  # each process sets it as its mode asks, before CUDA starts

echo "engine: $engine"
echo "Python: $python, $("$python" -c 'import sys, torch
cuda = torch.version.cuda or "none"
cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none"
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print("torch %s, CUDA %s, cuDNN %s, GPU %s, Python %s" % (torch.__version__, cuda, cudnn, gpu, sys.version.split()[0]))')"
if [[ $device == cuda ]] && command -v nvidia-smi >/dev/null 2>&1; then
  echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)"
fi
echo "device $device; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); batch $batch;" \
     "$rounds round(s) x $epochs epochs per side and mode (epoch 0 left out); modes: $modes"

run_side() {  # SIDE MODEL MODE OUT: one process, its JSON lines appended to OUT
  local side=$1 model=$2 mode=$3 out=$4 err
  err="$results/$model-$side-$mode.err"
  local ok=0
  case "$side" in
    engine) "$engine" "${a[@]}" "--$mode" >> "$out" 2> "$err" || ok=$? ;;
    python) "$python" "$script" "${a[@]}" "--$mode" >> "$out" 2> "$err" || ok=$? ;;
    python-default) "$python" "$script" "${a[@]}" "--$mode" --adam default >> "$out" 2> "$err" || ok=$? ;;
  esac
  if [[ $ok != 0 ]]; then
    echo "gpu-throughput.sh: $model, $side, $mode failed (exit $ok): $(tail -n 3 "$err")" >&2
    exit 1
  fi
}

done_models=()
for model in $models; do
  if [[ $model == small-cnn ]] && [[ ! -f $fashion/train-images-idx3-ubyte.gz && ! -f $fashion/train-images-idx3-ubyte ]]; then
    echo "small-cnn: skipped: no Fashion-MNIST in $fashion (Debian's dataset-fashion-mnist)"
    continue
  fi
  read -r -a a <<< "$(args_for "$model")"
  "$engine" "${a[@]}" --shapes > "$results/$model-shapes-engine.json"
  "$python" "$script" "${a[@]}" --shapes > "$results/$model-shapes-python.json"
  if ! cmp -s "$results/$model-shapes-engine.json" "$results/$model-shapes-python.json"; then
    echo "gpu-throughput.sh: $model: the Python model's layers differ from the engine's" >&2
    exit 1
  fi
  "$engine" "${a[@]}" --order > "$results/$model-order-engine.json"
  "$python" "$script" "${a[@]}" --order > "$results/$model-order-python.json"
  if ! cmp -s "$results/$model-order-engine.json" "$results/$model-order-python.json"; then
    echo "gpu-throughput.sh: $model: the Python side's sample order differs from the engine's" >&2
    exit 1
  fi
  echo "$model: layers and the order of $epochs epochs checked against the engine's; timing"
  out="$results/$model.jsonl"
  for ((r = 1; r <= rounds; ++r)); do
    for mode in $modes; do
      if ((r % 2)); then sides="engine python python-default"; else sides="python-default python engine"; fi
      for side in $sides; do
        run_side "$side" "$model" "$mode" "$out"
      done
    done
  done
  done_models+=("$model")
done
[[ ${#done_models[@]} -gt 0 ]] || { echo "gpu-throughput.sh: no model was run" >&2; exit 1; }

"$python" - "$results" "$batch" "${done_models[@]}" <<'EOF'
import json, os, statistics, sys
results, batch, models = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
TARGET = 1.3
for model in models:
    rows = [json.loads(l) for l in open(os.path.join(results, model + ".jsonl")) if l.strip()]
    def side(name, det):
        if name == "engine":
            rs = [r for r in rows if r["side"] == "engine"]
        else:
            adam = "for-loop" if name == "python" else "default"
            rs = [r for r in rows if r["side"] == "python" and r.get("adam") == adam]
        return [r for r in rs if r["deterministic"] == det and r["epoch"] > 0]
    first = rows[0]
    print("%s: batch %d, %d images, %d steps an epoch, on %s; %d measured epochs per side and mode:"
          % (model, batch, first["images"], first["steps"], first["device"],
             len(side("engine", first["deterministic"]))))
    seconds = {}
    for det in (True, False):
        eng, py, pyd = side("engine", det), side("python", det), side("python-default", det)
        if not eng:
            continue
        def fig(rs):
            t = statistics.median(r["train_seconds"] for r in rs)
            seconds[(rs[0]["side"] + rs[0].get("adam", ""), det)] = t
            ips = sorted(r["train_images_per_second"] for r in rs)
            return (statistics.median(ips), 1e3 * t / rs[0]["steps"], ips[0], ips[-1])
        e, p, d = fig(eng), fig(py), fig(pyd)
        ratio = e[0] / p[0]
        print("  %-16s engine %9.1f images/s (%7.3f ms/step, %.1f..%.1f)   Python %9.1f (%7.3f ms, "
              "%.1f..%.1f)   engine/Python %.3fx%s"
              % ("deterministic" if det else "nondeterministic", e[0], e[1], e[2], e[3],
                 p[0], p[1], p[2], p[3], ratio,
                 "  (target >= %.1fx: %s)" % (TARGET, "met" if ratio >= TARGET else "missed")
                 if batch == 32 and first["device"] == "cuda" else ""))
        print("  %-16s Python with PyTorch's default Adam (foreach on CUDA, for-loop on the CPU) %9.1f images/s "
              "(%7.3f ms/step): engine / that %.3fx" % ("", d[0], d[1], e[0] / d[0]))
    overhead = []
    for key, label in (("engine", "engine"), ("pythonfor-loop", "Python"),
                       ("pythondefault", "Python, default Adam")):
        if (key, True) in seconds and (key, False) in seconds:
            overhead.append("%s %.3fx" % (label, seconds[(key, True)] / seconds[(key, False)]))
    if overhead:
        print("  deterministic-mode overhead (epoch time, deterministic / not): " + ", ".join(overhead))
EOF
