#!/usr/bin/env bash
# bench/report.sh: how long `reproctl --db X report` takes on a large store (issue 4:
# 10,000 runs x 200 epochs; goal under 2 s for JSON on one core), and its peak memory.
#
# Writes the synthetic store once with bench/synth_store (through the RunStore API: two
# arms of 5,000 runs, 200 epochs, 8 tensors and 10,000 test predictions per run; some
# 440 MB), then times `report --format json` and `--format text` written to a file,
# pinned to one core (taskset -c 0), REPEAT times each, and prints the best and median
# wall time, CPU time and peak resident memory. With --baseline PATH, another reproctl
# binary (an older build) is timed the same way, interleaved, and its outputs are
# compared byte for byte with this build's.
#
#   bench/report.sh [--build DIR] [--db PATH] [--repeat N] [--baseline PATH]
#                   [--runs-per-arm N] [--epochs N]
#
# Needs a build with -DREPRO_BUILD_BENCH=ON (configured in DIR, default build-bench,
# when DIR has no CMakeCache.txt), GNU time (/usr/bin/time) and taskset.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
db=""
repeat=3
baseline=""
runs_per_arm=5000
epochs=200
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --db) db=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --baseline) baseline=$2; shift ;;
    --runs-per-arm) runs_per_arm=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "report.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
bench_build report.sh "$build" report.build.log reproctl synth_store
db=${db:-/tmp/repro-report-bench-$runs_per_arm-$epochs.db}
if [[ ! -f $db ]]; then
  echo "writing $db ($((2 * runs_per_arm)) runs x $epochs epochs)"
  "$build/bench/synth_store" --db "$db" --runs-per-arm "$runs_per_arm" --epochs "$epochs" | tail -n 1
fi
out=$(mktemp -d /tmp/repro-report-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
echo "store: $db ($(du -h "$db" | cut -f1)); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

time_one() {  # label binary format -> appends "wall user sys maxrss_kb bytes" to $out/label-format
  local label=$1 bin=$2 format=$3
  /usr/bin/time -f "%e %U %S %M" -o "$out/time" taskset -c 0 \
      "$bin" --db "$db" report --format "$format" --output "$out/$label.$format" > /dev/null
  echo "$(cat "$out/time") $(stat -c %s "$out/$label.$format")" >> "$out/$label-$format.times"
}

for ((i = 0; i < repeat; ++i)); do
  for format in json text; do
    [[ -n $baseline ]] && time_one baseline "$baseline" "$format"
    time_one current "$build/reproctl/reproctl" "$format"
  done
done
for format in json text; do
  for label in baseline current; do
    [[ -f $out/$label-$format.times ]] || continue
    sort -n "$out/$label-$format.times" | awk -v l="$label" -v f="$format" '
      { w[NR] = $1; c[NR] = $2 + $3; m = ($4 > m ? $4 : m); b = $5 }
      END { printf "%-8s %-4s: best %.2f s, median %.2f s wall (CPU %.2f s); peak RSS %.0f MB; output %.0f MB\n",
                   l, f, w[1], w[int((NR + 1) / 2)], c[1], m / 1024, b / 1e6 }'
  done
  if [[ -n $baseline ]]; then
    if cmp -s "$out/baseline.$format" "$out/current.$format"; then
      echo "$format: this build's output is byte for byte the baseline's"
    else
      echo "$format: OUTPUTS DIFFER"
    fi
  fi
done
