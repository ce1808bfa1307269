#!/usr/bin/env bash
# deploy/gpu/build-worker.sh: builds the worker daemon (gRPC included) and repro-train
# against a CUDA LibTorch, on a GPU host that need not have Debian's gRPC, Protobuf,
# Abseil, ... packages: those come from a folder that deploy/gpu/pack-deps.sh filled on
# a Debian 12 machine.
#
#   deploy/gpu/build-worker.sh [--deps DIR] [--torch PREFIX] [--build DIR] [--jobs N]
#                              [--all] [-- CMAKE_ARG...]
#
#   --deps DIR      what pack-deps.sh packed (copy it to the host as it is); without it,
#                   the host's own packages (Debian 12 with quickstart.sh's list)
#   --torch PREFIX  LibTorch: an unpacked LibTorch archive (the folder with include/,
#                   lib/, share/), a CMake prefix (a pip torch's
#                   torch.utils.cmake_prefix_path) or a Torch_DIR; default: python3's
#                   torch if it imports, else the system's (Debian's libtorch-dev, CPU)
#   --build DIR     the build folder (default build-gpu-worker in the repository)
#   --jobs N        parallel compile jobs (default: the number of cores)
#   --all           the coordinator and reproctl too (SQLite and yaml-cpp from DIR or
#                   the host), for a whole experiment on one GPU host (bench/gpu-study.sh)
#   -- CMAKE_ARG... more arguments for CMake, e.g. -DCUDAToolkit_ROOT=/usr
#
# What the host needs besides: x86-64 Linux with glibc >= 2.36 (the packed libraries
# are Debian 12's), CMake >= 3.22, a C++17 compiler whose libstdc++ is GCC 12's or newer,
# python3 (for a pip torch), and ninja if you like. No pkg-config, no CUDA toolkit: when
# LibTorch's own CMake config cannot load (a pip torch's looks for a CUDA toolkit), its
# include and lib folders are used directly (deploy/gpu/lib.sh, as bench/gpu-determinism.sh
# does). No network.
#
# It configures with REPRO_WORKER_ONLY=ON (no coordinator, reproctl, store, SQLite,
# yaml-cpp or tests) in Release, builds the targets worker and repro-train, and links
# them with an RPATH (DT_RPATH, which also serves the libraries' own dependencies) to
# DIR/lib and LibTorch's lib folder, so they run without LD_LIBRARY_PATH: keep both
# folders where they are. Then it runs `worker --help` and `repro-train --help` to show
# they load, and prints where the worker is and which libraries it loads.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
deps="" torch="" build="" jobs="" all=0 extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --deps) deps=${2:?--deps needs a folder}; shift ;;
    --torch) torch=${2:?--torch needs a folder}; shift ;;
    --build) build=${2:?--build needs a folder}; shift ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift ;;
    --all) all=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "build-worker.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
build=${build:-$here/build-gpu-worker}
jobs=${jobs:-$(nproc)}
mkdir -p "$build"
build=$(cd "$build" && pwd)

# shellcheck source=deploy/gpu/lib.sh
. "$here/deploy/gpu/lib.sh"
stubs="$build/cmake-stubs"
gpu_force_standins=${REPRO_FORCE_STANDINS:-0}
cmake_args=(-S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release
            "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags")
targets=(worker repro-train)
if (( all )); then
  cmake_args+=(-DREPRO_WORKER_ONLY=OFF -DREPRO_BUILD_TESTS=OFF)
  targets+=(coordinator reproctl)
else
  cmake_args+=(-DREPRO_WORKER_ONLY=ON)
fi
prefixes=()
command -v ninja >/dev/null 2>&1 && [[ ! -f $build/Makefile ]] && cmake_args+=(-G Ninja)

gpu_locate_torch "$torch"
echo "LibTorch: ${torch_prefix:-the system default}"
if [[ -n $deps ]]; then
  gpu_use_deps "$deps" "$here"
  cmake_args+=("-DCMAKE_BUILD_RPATH=$deps/lib")
fi
gpu_standin_xxhash "$deps"
# Some LibTorch archives carry their own Protobuf headers. DIR/include comes before
# LibTorch's on the command line; /usr/include, where Debian's are, comes after it.
if [[ -z $deps && -n $torch_root && -d $torch_root/include/google/protobuf ]]; then
  gpu_die "$torch_root/include/google holds LibTorch's own Protobuf headers, which would hide the system's from the generated code: delete that folder (deploy/docker/Dockerfile.cuda does) or build with --deps"
fi
cmake_args+=("${extra[@]}")

echo "configuring in $build (log: $build/configure.log)"
gpu_configure_torch "$build/configure.log" "$build" || exit 1
echo "building ${targets[*]} (-j$jobs; log: $build/build.log)"
start=$SECONDS
if ! cmake --build "$build" --target "${targets[@]}" -j "$jobs" > "$build/build.log" 2>&1; then
  echo "build-worker.sh: the build failed; the end of $build/build.log:" >&2
  tail -n 30 "$build/build.log" >&2
  exit 1
fi
echo "built in $((SECONDS - start)) s"

worker=$build/worker/worker
train=$build/worker/engine/repro-train
# What a user's shell would see: no LD_LIBRARY_PATH, only the binaries' RPATH.
if env -u LD_LIBRARY_PATH ldd "$worker" | grep 'not found'; then
  echo "build-worker.sh: $worker does not find the libraries above" >&2
  exit 1
fi
programs=("$worker" "$train")
(( all )) && programs+=("$build/coordinator/coordinator" "$build/reproctl/reproctl")
for program in "${programs[@]}"; do
  help="$build/$(basename "$program")-help.txt"
  if ! env -u LD_LIBRARY_PATH "$program" --help > "$help" 2>&1; then
    echo "build-worker.sh: $program does not start:" >&2
    cat "$help" >&2
    exit 1
  fi
done
echo "\$ worker --help"
head -n 3 "$build/worker-help.txt"
echo "  ..."
echo "libraries the worker loads:"
env -u LD_LIBRARY_PATH ldd "$worker" |
  grep -E 'lib(grpc\+\+|protobuf|absl_base|ssl|crypto|torch|torch_cpu|torch_cuda|c10)\.so' |
  sed 's/ (0x[0-9a-f]*)$//; s/^[[:space:]]*/  /'
echo "worker:      $worker"
echo "repro-train: $train"
(( all )) && echo "coordinator: $build/coordinator/coordinator" && echo "reproctl:    $build/reproctl/reproctl"
exit 0
