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
