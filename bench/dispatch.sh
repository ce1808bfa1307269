#!/usr/bin/env bash
# bench/dispatch.sh: how fast the coordinator hands out runs that complete at once
# (`model: {kind: noop}`) to concurrent workers over loopback, every result durably
# in SQLite (synchronous=FULL, WAL), for 1, 8, 64 and 256 workers.
#
# For each worker count: a fresh store and the real coordinator binary
# (--exit-when-done, port 0 on 127.0.0.1), and bench/dispatch_bench's worker clients
# (each a thread with its own channel) registering, then Lease + Complete until the
# coordinator says the experiment has finished. Then the store is checked: every run
# done, exactly one counted attempt per run, no extra and no failed attempt.
# Prints runs/s and the client-side Lease latency percentiles per worker count.
#
#   bench/dispatch.sh [--build DIR] [--workers "1 8 64 256"] [--runs N] [--seconds S]
#                     [--coordinator PATH] [--run-ms MS]
#     --runs N     runs per experiment (two arms of N/2), default: about --seconds
#                  (default 5) of work at the rate the previous worker count reached
#     --coordinator PATH  another coordinator binary to measure (an older build, for
#                  a before/after comparison); default DIR's
#     --run-ms MS  each run takes MS milliseconds between Lease and Complete (default 0:
#                  clients call back to back, the throughput ceiling; there, by Little's
#                  law, a call's mean latency is workers / calls per second)
#
# Needs a build with -DREPRO_BUILD_BENCH=ON (configured in DIR, default build-bench,
# when DIR has no CMakeCache.txt) and python3 (its sqlite3 module) for the check.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
workers_list="1 8 64 256"
runs=""
seconds=5
coordinator=""
run_ms=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --workers) workers_list=$2; shift ;;
    --runs) runs=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --coordinator) coordinator=$2; shift ;;
    --run-ms) run_ms=$2; shift ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dispatch.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
bench_build dispatch.sh "$build" dispatch.build.log coordinator dispatch_bench
coordinator=${coordinator:-$build/coordinator/coordinator}

work=$(mktemp -d /tmp/repro-dispatch.XXXXXX)
coordinator_pid=""
cleanup() {
  if [[ -n $coordinator_pid ]]; then kill "$coordinator_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "coordinator: $coordinator"
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); store on $(df --output=source,fstype "$work" | tail -n 1)"
rate=200  # a first guess of runs/s, to size the first experiment
for workers in $workers_list; do
  n=${runs:-$(( rate * seconds ))}
  (( n < 2 * workers )) && n=$(( 2 * workers ))
  (( n % 2 )) && n=$(( n + 1 ))
  dir="$work/w$workers"
  mkdir -p "$dir"
  cat > "$dir/plan.yaml" <<EOF
experiment: dispatch-$workers
runs: $(( n / 2 ))
epochs: 1
model: {kind: noop}
EOF
  "$coordinator" --plan "$dir/plan.yaml" --db "$dir/store.db" \
      --listen 127.0.0.1:0 --port-file "$dir/port" --exit-when-done > "$dir/coordinator.log" 2>&1 &
  coordinator_pid=$!
  for _ in $(seq 100); do [[ -s $dir/port ]] && break; sleep 0.1; done
  [[ -s $dir/port ]] || { echo "dispatch.sh: the coordinator did not start:" >&2; tail "$dir/coordinator.log" >&2; exit 1; }
  if ! "$build/bench/dispatch_bench" --coordinator "127.0.0.1:$(cat "$dir/port")" \
         --workers "$workers" --run-ms "$run_ms" > "$dir/result.json"; then
    echo "dispatch.sh: $workers workers: calls failed: $(cat "$dir/result.json")" >&2
  fi
  wait "$coordinator_pid" || { echo "dispatch.sh: the coordinator failed:" >&2; tail "$dir/coordinator.log" >&2; exit 1; }
  coordinator_pid=""
  python3 - "$dir/result.json" "$dir/store.db" "$n" <<'EOF'
import json, sqlite3, sys
r = json.load(open(sys.argv[1]))
db = sqlite3.connect(sys.argv[2])
runs = int(sys.argv[3])
states = dict(db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall())
outcomes = dict(db.execute("SELECT outcome, COUNT(*) FROM attempts GROUP BY outcome").fetchall())
counted = db.execute("SELECT COUNT(DISTINCT result_attempt) FROM runs WHERE state = 'done'").fetchone()[0]
ok = (states == {"done": runs} and outcomes.get("done") == runs and counted == runs
      and not outcomes.get("extra") and not outcomes.get("failed") and r["runs"] == runs)
l = r["lease_ms"]
print("%4d workers%s: %6d runs in %6.2f s = %7.0f runs/s; Lease ms p50 %6.2f p90 %6.2f p99 %6.2f max %7.2f;"
      " Complete p50 %6.2f p99 %6.2f; store: %s"
      % (r["workers"], " (runs of %d ms)" % r["run_ms"] if r["run_ms"] else "", r["runs"], r["seconds"], r["runs_per_second"], l["p50"], l["p90"], l["p99"],
         l["max"], r["complete_ms"]["p50"], r["complete_ms"]["p99"],
         "every run done exactly once" if ok else "MISMATCH %s %s" % (states, outcomes)))
sys.exit(0 if ok else 1)
EOF
  rate=$(python3 -c "import json; print(max(50, int(json.load(open('$dir/result.json'))['runs_per_second'])))")
done
