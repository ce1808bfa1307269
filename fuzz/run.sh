#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz (clang-14, ASan+UBSan) and runs each for a
# bounded time, then prints a table: target, executions, seconds, crashes.
#
#   fuzz/run.sh [SECONDS] [TARGET ...]     # default 60 s each, every target
#
# Seeds come from fuzz/corpus/<target>/ (read only); what the fuzzer adds goes to
# build-fuzz/fuzz-corpus/<target>/, crashing inputs to build-fuzz/fuzz-artifacts/<target>/
# and each run's log to build-fuzz/fuzz-logs/<target>.log. A crash stops that target's
# run; replay it with build-fuzz/fuzz/<target> FILE. Environment: JOBS (ninja -j,
# default 2), CXX_FUZZ (default clang++-14), FUZZ_FLAGS (extra libFuzzer flags).
# Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail

seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$root/build-fuzz"
all_targets=(plan_fuzzer idx_fuzzer cifar_fuzzer npy_fuzzer safetensors_fuzzer op_outputs_fuzzer)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

cxx="${CXX_FUZZ:-clang++-14}"
cc="${cxx/clang++/clang}"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DREPRO_BUILD_FUZZERS=ON \
    -DREPRO_BUILD_SERVICES=OFF -DREPRO_BUILD_ENGINE=OFF -DREPRO_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$build" -j "${JOBS:-2}" "${targets[@]}" >/dev/null

max_len() {
  case "$1" in
    plan_fuzzer) echo 4096 ;;         # plans are small; aliases need no more
    idx_fuzzer) echo 4096 ;;          # a 16-byte header and up to 5 images of 784 bytes
    cifar_fuzzer) echo 8192 ;;        # two 3073-byte records and then some
    npy_fuzzer) echo 1024 ;;          # a header of up to a few hundred bytes and its data
    safetensors_fuzzer) echo 2048 ;;  # a header of a few tensors and their data
    op_outputs_fuzzer) echo 2048 ;;   # a name, a few small tensors and their bytes
    *) echo 4096 ;;
  esac
}
dict() {
  case "$1" in
    plan_fuzzer) echo "-dict=$root/fuzz/dict/plan.dict" ;;
    safetensors_fuzzer) echo "-dict=$root/fuzz/dict/safetensors.dict" ;;
  esac
}

# A smaller quarantine than the default 256 MB keeps long runs under -rss_limit_mb.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=64}"

failed=0
rows=()
for target in "${targets[@]}"; do
  corpus="$build/fuzz-corpus/$target"
  artifacts="$build/fuzz-artifacts/$target"
  log="$build/fuzz-logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  echo "fuzzing $target for ${seconds}s (log: $log)" >&2
  start=$(date +%s)
  status=0
  # shellcheck disable=SC2046,SC2086
  "$build/fuzz/$target" "$corpus" "$root/fuzz/corpus/$target" \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -timeout=10 -use_value_profile=1 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" $(dict "$target") ${FUZZ_FLAGS:-} >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then  # a crash ends the run before the final stats
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  crashes=$(find "$artifacts" -newermt "@$start" -type f \
            \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    [ "$crashes" -eq 0 ] && crashes="exit $status"
  fi
  rows+=("$(printf '%-20s %12s %8s %8s' "$target" "${execs:-?}" "$elapsed" "$crashes")")
done

printf '%-20s %12s %8s %8s\n' target executions seconds crashes
printf '%s\n' "${rows[@]}"
if [ "$failed" -ne 0 ]; then
  echo "crashing inputs are under $build/fuzz-artifacts/ (see the logs in $build/fuzz-logs/)" >&2
fi
exit "$failed"
