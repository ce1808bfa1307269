#!/usr/bin/env bash
# bench/local-scaling.sh: parallel efficiency of local workers. The same experiment
# (small CNN on the first 20,000 Fashion-MNIST images, 2 epochs, 1 thread per run,
# 2 arms x 4 runs) is run with `--local-workers 1` and then 2, each from a fresh store.
# For each: the makespan (from the command to the last result stored, so it includes
# checking the plan's data and starting the worker processes; also shown to the
# coordinator's exit, which lingers a second so that idle workers learn the experiment
# has finished), the sum of its runs' times (each counted attempt, lease to
# completion, from the store), and the parallel efficiency
#   sum of run times / (workers x makespan),
# which is 100 % when the workers are never idle; also the same over the span from the
# first lease to the last completion (without process start-up). That figure does not
# see runs slowing each other down (sharing the cores, the memory bandwidth), so the
# scaling efficiency is printed too: makespan with 1 worker / (N x makespan with N),
# and the CPU time the coordinator and its workers used (GNU time, children included):
# on a machine whose cores other processes share, runs wait for a core.
#
#   bench/local-scaling.sh [--build DIR] [--workers "1 2"] [--runs-per-arm N]
#                          [--epochs N] [--train-limit N]
#
# Needs a build (configured in DIR, default build-bench, when DIR has no
# CMakeCache.txt), Debian's dataset-fashion-mnist and python3 (its sqlite3 module).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$here/build-bench"
workers_list="1 2"
runs_per_arm=4
epochs=2
train_limit=20000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) build=$2; shift ;;
    --workers) workers_list=$2; shift ;;
    --runs-per-arm) runs_per_arm=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --train-limit) train_limit=$2; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "local-scaling.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
bench_build local-scaling.sh "$build" scaling.build.log coordinator worker
build=$(cd "$build" && pwd)  # the experiments run in their own directories

work=$(mktemp -d /tmp/repro-scaling.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/plan.yaml" <<EOF
experiment: scaling
runs: $runs_per_arm
epochs: $epochs
dataset: {kind: fashion-mnist, path: /usr/share/datasets/fashion-mnist, train_limit: $train_limit, test_limit: 2000}
model: {kind: small-cnn}
training: {batch_size: 128, optimizer: adam, lr: 0.001}
determinism: {deterministic_algorithms: true, threads: 1, device: cpu}
EOF
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $((2 * runs_per_arm)) runs of $epochs epoch(s) x $train_limit images, 1 thread each"
for workers in $workers_list; do
  dir="$work/w$workers"
  mkdir -p "$dir"
  start=$(date +%s.%N)
  (cd "$dir" && /usr/bin/time -f "%U %S" -o "$dir/cpu" "$build/coordinator/coordinator" --plan "$work/plan.yaml" --db "$dir/store.db" \
      --listen 127.0.0.1:0 --local-workers "$workers" --exit-when-done > "$dir/coordinator.log" 2>&1) ||
    { echo "local-scaling.sh: the experiment failed:" >&2; tail "$dir/coordinator.log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 - "$dir/store.db" "$workers" "$start" "$end" "$work/makespan-1" "$dir/cpu" <<'EOF'
import os, sqlite3, sys
db, workers, start, end = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
first = sys.argv[5]
cpu = sum(float(x) for x in open(sys.argv[6]).read().split()[-2:])
c = sqlite3.connect(db)
rows = c.execute("SELECT a.started_ms, a.ended_ms FROM runs r JOIN attempts a ON a.id = r.result_attempt "
                 "WHERE r.state = 'done'").fetchall()
total = sum(e - s for s, e in rows) / 1000.0
makespan = max(e for _, e in rows) / 1000.0 - start  # from the command to the last result
process = end - start
span = (max(e for _, e in rows) - min(s for s, _ in rows)) / 1000.0
print("%d worker(s): %d runs, sum of run times %.1f s, makespan %.1f s: efficiency %.1f %%"
      " (first lease to last result %.1f s: %.1f %%; to the coordinator's exit %.1f s: %.1f %%)"
      % (workers, len(rows), total, makespan, 100 * total / (workers * makespan), span,
         100 * total / (workers * span), process, 100 * total / (workers * process)))
print("  CPU time of the coordinator and its workers: %.1f s (%.0f %% of the sum of run times:"
      " below 100 %%, the runs waited for a core)" % (cpu, 100 * cpu / total))
if workers == 1:
    open(first, "w").write(str(makespan))
elif os.path.exists(first):
    one = float(open(first).read())
    print("  scaling: %.2fx faster than 1 worker, scaling efficiency %.1f %%"
          % (one / makespan, 100 * one / (workers * makespan)))
EOF
done
