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
