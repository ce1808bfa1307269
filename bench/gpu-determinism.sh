#!/usr/bin/env bash
# bench/gpu-determinism.sh: does deterministic GPU training give bit-identical weights,
# and what does it cost? Builds repro-train alone against a CUDA LibTorch, writes a
# synthetic CIFAR-10-format data set, trains ResNet29v2 twice with deterministic
# algorithms and twice without (interleaved, each run its own process), and prints
# whether the final weight hashes match within each mode and the time per epoch.
#
#   bench/gpu-determinism.sh                 # on a GPU host (--device cuda)
#   bench/gpu-determinism.sh --cpu           # the same on the CPU, small sizes (a check)
#   options: --epochs N  --train N (records per training file, 5 files)  --test N
#            --batch N  --depth D  --build DIR  --jobs N  --keep (keep the data)
#
# What it needs on the host:
#   - CMake >= 3.22, a C++17 compiler, ninja (optional), python3 (no packages needed
#     to write the data; NumPy is not used).
#   - LibTorch: CMAKE_PREFIX_PATH if set (a LibTorch unpacked somewhere), else the
#     torch of `python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'`
#     (a pip torch: its libraries and headers; no CUDA toolkit is needed, see below),
#     else the system's (Debian's libtorch-dev, CPU only).
#   - Abseil, xxHash's header and zlib: the system's, or REPRO_DEPS=DIR: a folder that
#     deploy/gpu/pack-deps.sh filled on a Debian 12 machine, or one holding
#       DIR/include/absl/...           Abseil's headers (the version the .so files are)
#       DIR/include/xxhash.h           (header-only use: XXH_INLINE_ALL)
#       DIR/include/zlib.h, zconf.h    when the host has no zlib headers
#       DIR/lib/libabsl_*.so*          Abseil's shared libraries (any depth under DIR)
#       DIR/lib/libz.so*               optional: else the host's libz.so / libz.so.1
#     for example Debian 12's files copied from /usr/include and
#     /usr/lib/x86_64-linux-gnu (the host needs a glibc and libstdc++ at least as new).
#   It builds with bench/lib.sh's engine_build (REPRO_BUILD_SERVICES=OFF: no gRPC or
#   SQLite; empty stand-ins for yaml-cpp and nlohmann_json, which repro-train does not
#   use), and deploy/gpu/lib.sh (shared with deploy/gpu/build-worker.sh) hands CMake
#   stand-ins where needed: for Abseil from a
#   loose REPRO_DEPS, for xxHash without pkg-config, and, when the pip torch's own CMake
#   config needs a CUDA toolkit the host lacks, for LibTorch itself (its include and lib
#   folders, linked with --no-as-needed so libtorch_cuda loads).
#   Everything goes into the build folder (default build-gpu-bench, git-ignored).
#
# Output: one line per run (mode, final hash, test accuracy, seconds per epoch), then
# per mode whether the final hashes match and the mean time per epoch, and the GPU,
# driver, CUDA, cuDNN and LibTorch versions recorded by the runs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
device=cuda
epochs=1
train=2000   # records per training file; 5 files
test_records=1000
batch=32
depth=29
build=""
jobs=""
keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) device=cpu ;;
    --epochs) epochs=$2; shift ;;
    --train) train=$2; shift ;;
    --test) test_records=$2; shift ;;
    --batch) batch=$2; shift ;;
    --depth) depth=$2; shift ;;
    --build) build=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu-determinism.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $device == cpu ]]; then
  # Small enough for a 2-core machine: 5 x 200 records, 32 steps of ResNet29v2.
  [[ $train == 2000 ]] && train=200
  [[ $test_records == 1000 ]] && test_records=200
fi
build=${build:-$here/build-gpu-bench}
jobs=${jobs:-$(nproc)}

# ---------------------------------------------------------------- build
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
engine_build gpu-determinism.sh "$build" "$jobs" repro-train
train_bin="$build/worker/engine/repro-train"

# ---------------------------------------------------------------- data
data="$build/bench-data/cifar-synthetic-$train-$test_records"
if [[ ! -f $data/test_batch.bin ]]; then
  echo "writing synthetic CIFAR-10 data: 5 x $train training and $test_records test records"
  mkdir -p "$data"
  python3 "$here/bench/write_cifar.py" "$data" "$train" "$test_records"
fi

# ---------------------------------------------------------------- runs
results="$build/bench-results"
mkdir -p "$results"
common=(--dataset-kind cifar10 --dataset "$data" --model resnet --version 2 --depth "$depth"
        --epochs "$epochs" --batch-size "$batch" --seed 0 --threads 1 --device "$device" --json)
steps=$(( (5 * train + batch - 1) / batch ))
echo "training ResNet${depth}v2 on $device: $epochs epoch(s) of $steps steps (batch $batch), 4 runs"
for run in 1 2; do
  for mode in deterministic nondeterministic; do
    out="$results/$mode-$run.json"
    if ! "$train_bin" "${common[@]}" "--$mode" > "$out" 2> "$results/$mode-$run.err"; then
      echo "gpu-determinism.sh: run $mode #$run failed: $(tail -n 1 "$results/$mode-$run.err")" >&2
      exit 1
    fi
    python3 - "$out" "$mode" "$run" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
seconds = " ".join("%.2f" % e["seconds"] for e in r["epochs"])
print("  %-16s #%s  final %s  test accuracy %.4f  seconds per epoch: %s"
      % (sys.argv[2], sys.argv[3], r["final_hash"], r["test_accuracy"], seconds))
EOF
  done
done

python3 - "$results" <<'EOF'
import json, os, sys
d = sys.argv[1]
runs = {m: [json.load(open(os.path.join(d, "%s-%d.json" % (m, i)))) for i in (1, 2)]
        for m in ("deterministic", "nondeterministic")}
def per_epoch(r):
    # The last epoch: the first one also pays for cuDNN's and cuBLAS's start-up.
    return r["epochs"][-1]["seconds"]
times = {}
for mode, (a, b) in runs.items():
    same = a["final_hash"] == b["final_hash"]
    first = ""
    if not same:
        for ta, tb in zip(a["final_tensors"], b["final_tensors"]):
            if ta["hash"] != tb["hash"]:
                first = " (first differing tensor: %s)" % ta["name"]
                break
        diverged = next((e for e, (x, y) in enumerate(zip(a["epochs"], b["epochs"]))
                         if x["weights_hash"] != y["weights_hash"]), None)
        if diverged is not None:
            first += ", differing from epoch %d" % diverged
    times[mode] = (per_epoch(a) + per_epoch(b)) / 2
    print("%-16s final hashes %s%s; %.2f s for the last epoch (mean of 2 runs)"
          % (mode + ":", "MATCH (bit-identical)" if same else "DIFFER", first, times[mode]))
if times["nondeterministic"] > 0:
    print("deterministic / nondeterministic time for the last epoch: %.2fx"
          % (times["deterministic"] / times["nondeterministic"]))
env = runs["deterministic"][0]["environment"]
print("environment: " + ", ".join("%s %s" % (k, env[k]) for k in
      ("device", "gpu_name", "driver", "cuda", "cudnn", "torch", "compiler", "host") if k in env))
EOF
[[ $keep == 1 ]] || rm -rf "$build/bench-data"
