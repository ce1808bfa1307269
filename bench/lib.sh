# shellcheck shell=bash
# Shared by the bench/*.sh scripts (sourced, not run).

# bench_build SCRIPT BUILD_DIR LOG TARGET...: configures BUILD_DIR as a Release build
# with the benchmarks (once), then builds TARGETs, logging to BUILD_DIR/LOG. Exits with
# a message naming SCRIPT and the log when either step fails.
bench_build() {
  local script=$1 build=$2 log=$3 here
  shift 3
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  if [[ ! -f $build/CMakeCache.txt ]]; then
    cmake -S "$here" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DREPRO_BUILD_BENCH=ON \
          -DREPRO_BUILD_TESTS=OFF > "$build.configure.log" 2>&1 ||
      { echo "$script: configuring $build failed (see $build.configure.log)" >&2; exit 1; }
  fi
  cmake --build "$build" --target "$@" > "$build/$log" 2>&1 ||
    { echo "$script: building $* failed (see $build/$log)" >&2; exit 1; }
}

# service_build SCRIPT BUILD_DIR DEPS_DIR: builds coordinator, worker and reproctl into
# BUILD_DIR, with the host's Debian packages (bench_build) or, when DEPS_DIR is not
# empty, with deploy/gpu/build-worker.sh --all against the dependencies carried in
# DEPS_DIR (a GPU host without them), and sets $coordinator, $worker and $reproctl.
service_build() {
  local script=$1 build=$2 deps=$3 here b
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  mkdir -p "$build"
  if [[ -n $deps ]]; then
    "$here/deploy/gpu/build-worker.sh" --all --deps "$deps" --build "$build" > "$build.log" 2>&1 ||
      { echo "$script: building failed (see $build.log)" >&2; tail -20 "$build.log" >&2; exit 1; }
  else
    bench_build "$script" "$build" service.build.log coordinator worker reproctl
  fi
  for b in coordinator worker reproctl; do
    printf -v "$b" '%s' "$(find "$build" -type f -name "$b" -perm -u+x | head -n 1)"
    [[ -n ${!b} ]] || { echo "$script: no $b built under $build" >&2; exit 1; }
  done
}

# start_coordinator SCRIPT DIR ARGS...: starts $coordinator on a loopback port of its
# choosing with --exit-when-done and ARGS, logging to DIR/coordinator.log; sets
# $coordinator_pid and $address.
start_coordinator() {
  local script=$1 dir=$2
  shift 2
  rm -f "$dir/port"
  # shellcheck disable=SC2154  # $coordinator: set by service_build
  "$coordinator" "$@" --listen 127.0.0.1:0 --port-file "$dir/port" --exit-when-done \
      > "$dir/coordinator.log" 2>&1 &
  # shellcheck disable=SC2034  # coordinator_pid and address are the caller's
  coordinator_pid=$!
  for _ in $(seq 300); do [[ -s $dir/port ]] && break; sleep 0.1; done
  [[ -s $dir/port ]] ||
    { echo "$script: the coordinator did not start:" >&2; tail "$dir/coordinator.log" >&2; exit 1; }
  # shellcheck disable=SC2034
  address=127.0.0.1:$(cat "$dir/port")
}

# engine_build SCRIPT BUILD_DIR JOBS TARGET... [-- CMAKE_ARG...]: builds engine-side
# TARGETs (repro-train, train_bench) without the services, so a GPU host needs only
# LibTorch, Abseil, xxHash's header and zlib: LibTorch from CMAKE_PREFIX_PATH (a
# LibTorch unpacked somewhere), else python3's torch, else the system's; what the host
# lacks from REPRO_DEPS (a loose folder or pack-deps.sh's); the stand-ins of
# deploy/gpu/lib.sh (shared with deploy/gpu/build-worker.sh) where a config cannot load,
# and empty ones for what these targets do not use (yaml-cpp, nlohmann_json, Google
# Benchmark). REPRO_BENCH_FORCE_STUBS=1 forces the stand-ins and REPRO_BENCH_TORCH_ROOT
# names LibTorch's folders for them (tests). Exits with a message naming SCRIPT and the
# log on failure; sets deps and puts REPRO_DEPS's libraries on LD_LIBRARY_PATH.
engine_build() {
  local script=$1 build_dir=$2 jobs=$3 here
  shift 3
  local targets=() extra=()
  while [[ $# -gt 0 && $1 != -- ]]; do targets+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  extra=("$@")
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  mkdir -p "$build_dir"
  build_dir=$(cd "$build_dir" && pwd)
  # shellcheck source=deploy/gpu/lib.sh
  . "$here/deploy/gpu/lib.sh"
  # deploy/gpu/lib.sh's functions work on these globals.
  stubs="$build_dir/cmake-stubs"
  gpu_force_standins=${REPRO_BENCH_FORCE_STUBS:-0}
  cmake_args=(-S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DREPRO_BUILD_SERVICES=OFF
              -DREPRO_BUILD_TESTS=OFF)
  prefixes=()
  command -v ninja > /dev/null 2>&1 && cmake_args+=(-G Ninja)
  local package target
  for package in yaml-cpp:yaml-cpp nlohmann_json:nlohmann_json::nlohmann_json \
                 benchmark:benchmark::benchmark; do
    target=${package#*:} package=${package%%:*}
    mkdir -p "$stubs/$package"
    printf '# Stand-in: the engine-side targets do not use %s (bench/lib.sh).\nif(NOT TARGET %s)\n  add_library(%s INTERFACE IMPORTED)\nendif()\n' \
      "$package" "$target" "$target" > "$stubs/$package/${package}Config.cmake"
    printf 'set(PACKAGE_VERSION 99)\nset(PACKAGE_VERSION_COMPATIBLE TRUE)\n' \
      > "$stubs/$package/${package}ConfigVersion.cmake"
    cmake_args+=("-D${package}_DIR=$stubs/$package")
  done
  if [[ -n ${CMAKE_PREFIX_PATH:-} ]]; then
    torch_prefix=$CMAKE_PREFIX_PATH torch_root=""
    prefixes+=("$torch_prefix")
  else
    gpu_locate_torch ""
  fi
  [[ -n ${REPRO_BENCH_TORCH_ROOT:-} ]] && torch_root=$REPRO_BENCH_TORCH_ROOT
  echo "LibTorch: ${torch_prefix:-the system default}"
  deps=""
  [[ -n ${REPRO_DEPS:-} ]] && gpu_use_deps "$REPRO_DEPS" "$here"
  gpu_standin_xxhash "$deps"
  cmake_args+=(${extra[@]+"${extra[@]}"})
  echo "configuring in $build_dir (log: $build_dir/configure.log)"
  gpu_configure_torch "$build_dir/configure.log" "$build_dir" || exit 1
  echo "building ${targets[*]} (-j$jobs)"
  if ! cmake --build "$build_dir" --target "${targets[@]}" -j "$jobs" > "$build_dir/build.log" 2>&1; then
    echo "$script: the build failed; the end of $build_dir/build.log:" >&2
    tail -n 30 "$build_dir/build.log" >&2
    exit 1
  fi
  if [[ -n $deps ]]; then  # RPATH covers them too; this is for libraries found indirectly
    local deps_lib_dirs
    deps_lib_dirs=$(find "$deps" -name '*.so*' -printf '%h\n' | sort -u | paste -sd: -)
    export LD_LIBRARY_PATH="$deps_lib_dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
}
