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
#   - Abseil, xxHash's header and zlib: the system's, or REPRO_DEPS=DIR holding
#       DIR/include/absl/...           Abseil's headers (the version the .so files are)
#       DIR/include/xxhash.h           (header-only use: XXH_INLINE_ALL)
#       DIR/include/zlib.h, zconf.h    when the host has no zlib headers
#       DIR/lib/libabsl_*.so*          Abseil's shared libraries (any depth under DIR)
#       DIR/lib/libz.so*               optional: else the host's libz.so / libz.so.1
#     for example Debian 12's files copied from /usr/include and
#     /usr/lib/x86_64-linux-gnu (the host needs a glibc and libstdc++ at least as new).
#   The project's root CMakeLists.txt also asks for yaml-cpp and nlohmann_json, which
#   repro-train does not use: this script hands CMake empty stand-ins for them, and
#   stand-ins for Abseil (from REPRO_DEPS), xxHash (pkg-config-free) and, when the pip
#   torch's own CMake config needs a CUDA toolkit the host lacks, for LibTorch itself
#   (its include and lib folders, linked with --no-as-needed so libtorch_cuda loads).
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
    -h|--help) sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
mkdir -p "$build"
log="$build/configure.log"

# ---------------------------------------------------------------- LibTorch
torch_prefix="${CMAKE_PREFIX_PATH:-}"
torch_python_dir=""
if [[ -n ${REPRO_BENCH_TORCH_ROOT:-} ]]; then
  torch_python_dir=$REPRO_BENCH_TORCH_ROOT  # a folder with include/ and lib/ (tests)
elif [[ -z $torch_prefix ]] && python3 -c 'import torch' >/dev/null 2>&1; then
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null | tail -n 1)
  torch_python_dir=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null | tail -n 1)
fi
echo "LibTorch: ${torch_prefix:-(the system default)}"

# ---------------------------------------------------------------- stand-ins
stubs="$build/cmake-stubs"
mkdir -p "$stubs/yaml-cpp" "$stubs/nlohmann_json" "$stubs/modules" "$stubs/absl" "$stubs/Torch"
cat > "$stubs/yaml-cpp/yaml-cppConfig.cmake" <<'EOF'
# Stand-in: repro-train does not use yaml-cpp (bench/gpu-determinism.sh).
if(NOT TARGET yaml-cpp)
  add_library(yaml-cpp INTERFACE IMPORTED)
endif()
EOF
cat > "$stubs/nlohmann_json/nlohmann_jsonConfig.cmake" <<'EOF'
# Stand-in: repro-train does not use nlohmann_json (bench/gpu-determinism.sh).
if(NOT TARGET nlohmann_json::nlohmann_json)
  add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
endif()
EOF
cat > "$stubs/nlohmann_json/nlohmann_jsonConfigVersion.cmake" <<'EOF'
set(PACKAGE_VERSION 3.11.2)
set(PACKAGE_VERSION_COMPATIBLE TRUE)
EOF
cmake_args=(-S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DREPRO_BUILD_SERVICES=OFF
            -DREPRO_BUILD_TESTS=OFF -DREPRO_BUILD_ENGINE=ON
            "-Dyaml-cpp_DIR=$stubs/yaml-cpp" "-Dnlohmann_json_DIR=$stubs/nlohmann_json")
command -v ninja >/dev/null 2>&1 && cmake_args+=(-G Ninja)
prefixes=()
[[ -n $torch_prefix ]] && prefixes+=("$torch_prefix")

deps="${REPRO_DEPS:-}"
if [[ -n $deps ]]; then
  [[ -d $deps ]] || { echo "gpu-determinism.sh: REPRO_DEPS=$deps is not a directory" >&2; exit 2; }
  deps=$(cd "$deps" && pwd)
  # Abseil: every libabsl_*.so under REPRO_DEPS behind the targets the project names.
  mapfile -t absl_libs < <(find "$deps" -name 'libabsl_*.so*' \( -type f -o -type l \) | sort)
  if [[ ${#absl_libs[@]} -gt 0 && -d $deps/include/absl ]]; then
    mapfile -t absl_targets < <(grep -rhoE 'absl::[A-Za-z0-9_]+' --include=CMakeLists.txt \
      --include='*.cmake' "$here/common" "$here/data" "$here/worker" "$here/CMakeLists.txt" | sort -u)
    # One library per name: the .so the linker would pick (unversioned first).
    declare -A seen=()
    absl_link=()
    for lib in "${absl_libs[@]}"; do
      name=$(basename "$lib"); name=${name%%.so*}
      [[ -n ${seen[$name]:-} ]] && continue
      seen[$name]=1
      absl_link+=("$lib")
    done
    {
      echo "# Stand-in for Abseil from REPRO_DEPS (bench/gpu-determinism.sh)."
      echo "set(absl_FOUND TRUE)"
      for target in "${absl_targets[@]}"; do
        echo "if(NOT TARGET $target)"
        echo "  add_library($target INTERFACE IMPORTED)"
        echo "  set_target_properties($target PROPERTIES INTERFACE_INCLUDE_DIRECTORIES \"$deps/include\""
        echo "    INTERFACE_LINK_LIBRARIES \"$(IFS=';'; echo "${absl_link[*]}")\")"
        echo "endif()"
      done
    } > "$stubs/absl/abslConfig.cmake"
    cmake_args+=("-Dabsl_DIR=$stubs/absl")
    echo "Abseil: ${#absl_libs[@]} libraries from $deps"
  fi
  [[ -f $deps/include/zlib.h ]] && cmake_args+=("-DZLIB_INCLUDE_DIR=$deps/include")
  zlib_lib=$(find "$deps" -name 'libz.so*' \( -type f -o -type l \) | sort | head -n 1)
  if [[ -z $zlib_lib && -f $deps/include/zlib.h ]]; then
    for candidate in /usr/lib/x86_64-linux-gnu/libz.so /usr/lib/x86_64-linux-gnu/libz.so.1 \
                     /lib/x86_64-linux-gnu/libz.so.1 /usr/lib64/libz.so.1 /usr/lib/libz.so.1; do
      [[ -e $candidate ]] && { zlib_lib=$candidate; break; }
    done
  fi
  [[ -n $zlib_lib ]] && cmake_args+=("-DZLIB_LIBRARY=$zlib_lib")
  prefixes+=("$deps")
fi

# xxHash: header-only (common/hash.cc defines XXH_INLINE_ALL), so a pkg-config module is
# not needed: without one, a FindPkgConfig stand-in gives PkgConfig::XXHASH its header.
if ! { command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libxxhash; } \
   || [[ ${REPRO_BENCH_FORCE_STUBS:-0} == 1 ]]; then
  xxhash_dir=""
  for dir in ${deps:+"$deps/include"} /usr/include /usr/local/include; do
    [[ -f $dir/xxhash.h ]] && { xxhash_dir=$dir; break; }
  done
  if [[ -z $xxhash_dir ]]; then
    echo "gpu-determinism.sh: xxhash.h not found: put it in \$REPRO_DEPS/include" >&2
    exit 1
  fi
  cat > "$stubs/modules/FindPkgConfig.cmake" <<EOF
# Stand-in for pkg-config: only xxHash's header is needed (bench/gpu-determinism.sh).
set(PkgConfig_FOUND TRUE)
set(PKG_CONFIG_FOUND TRUE)
macro(pkg_check_modules prefix)
  if(NOT TARGET PkgConfig::\${prefix})
    add_library(PkgConfig::\${prefix} INTERFACE IMPORTED)
    set_target_properties(PkgConfig::\${prefix} PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "$xxhash_dir")
  endif()
  set(\${prefix}_FOUND TRUE)
endmacro()
EOF
  cmake_args+=("-DCMAKE_MODULE_PATH=$stubs/modules")
  echo "xxHash: header $xxhash_dir/xxhash.h"
fi

# LibTorch stand-in: the pip torch's folders, for when its CMake config cannot load
# (it looks for a CUDA toolkit; the runtime libraries come with the wheel).
write_torch_stub() {
  local root=$1 abi
  abi=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null \
        | tail -n 1 || true)
  local libs=("-Wl,--no-as-needed")
  for name in torch torch_cpu torch_cuda c10 c10_cuda; do
    [[ -e $root/lib/lib$name.so ]] && libs+=("$root/lib/lib$name.so")
  done
  libs+=("-Wl,--as-needed")
  # LibTorch's headers need C++20 from 2.12 on (its own config says so; this one must).
  local standard=${REPRO_BENCH_CXX_STANDARD:-}
  if [[ -z $standard ]]; then
    standard=$(python3 -c 'import torch; v = torch.__version__.split("+")[0].split(".")
print(20 if (int(v[0]), int(v[1])) >= (2, 12) else 17)' 2>/dev/null | tail -n 1 || true)
  fi
  cat > "$stubs/Torch/TorchConfig.cmake" <<EOF
# Stand-in for LibTorch's CMake config (bench/gpu-determinism.sh).
if(NOT TARGET torch_stub)
  add_library(torch_stub INTERFACE IMPORTED)
  set_target_properties(torch_stub PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "$root/include;$root/include/torch/csrc/api/include"
    INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${abi:-1}"
    INTERFACE_COMPILE_FEATURES "cxx_std_${standard:-17}"
    INTERFACE_LINK_LIBRARIES "$(IFS=';'; echo "${libs[*]}")")
endif()
set(Torch_FOUND TRUE)
set(TORCH_FOUND TRUE)
set(TORCH_LIBRARIES torch_stub)
set(TORCH_INCLUDE_DIRS "$root/include;$root/include/torch/csrc/api/include")
EOF
}

configure() {
  local prefix_list
  prefix_list=$(IFS=';'; echo "${prefixes[*]:-}")
  cmake "${cmake_args[@]}" ${prefix_list:+"-DCMAKE_PREFIX_PATH=$prefix_list"} "$@" > "$log" 2>&1
}

echo "configuring in $build (log: $log)"
if [[ ${REPRO_BENCH_FORCE_STUBS:-0} == 1 && -n $torch_python_dir ]] || ! configure; then
  if [[ -z $torch_python_dir ]]; then
    echo "gpu-determinism.sh: CMake configuration failed; the end of $log:" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
  echo "LibTorch's CMake config did not load (see $log); using its folders directly"
  write_torch_stub "$torch_python_dir"
  rm -f "$build/CMakeCache.txt"
  if ! configure "-DTorch_DIR=$stubs/Torch"; then
    echo "gpu-determinism.sh: CMake configuration failed; the end of $log:" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
fi
echo "building repro-train (-j$jobs)"
if ! cmake --build "$build" --target repro-train -j "$jobs" > "$build/build.log" 2>&1; then
  echo "gpu-determinism.sh: the build failed; the end of $build/build.log:" >&2
  tail -n 30 "$build/build.log" >&2
  exit 1
fi
train_bin="$build/worker/engine/repro-train"
if [[ -n $deps ]]; then  # RPATH covers them too; this is for libraries found indirectly
  deps_lib_dirs=$(find "$deps" -name '*.so*' -printf '%h\n' | sort -u | paste -sd: -)
  export LD_LIBRARY_PATH="$deps_lib_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

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
