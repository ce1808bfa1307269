#!/usr/bin/env bash
# bench/gpu-study.sh: the study, scaled down, on one GPU, end to end: plan ->
# coordinator -> one worker with several slots packed on the GPU -> report. Four arms
# of ResNet29v2 (the study's model, batch 32, Keras's Adam) on real learnable data
# (Debian's Fashion-MNIST, written in CIFAR-10's format, 32x32x3: bench/fashion_to_cifar.py):
#   same_seed, different_seeds            deterministic algorithms off (the study's condition)
#   same_seed_det, different_seeds_det    deterministic algorithms on
# and prints the report (equality per arm, where same-seed runs first part and, for each
# same-seed arm whose runs part, the batch and the operation where its first two such
# runs part (localize: true, issue 15), each arm's
# spread against different_seeds with its bootstrap interval, and the deterministic
# pair's ratio against different_seeds_det), the time per step and images/s per arm,
# the deterministic-mode overhead, and the study's full protocol (2 arms x 50 runs x
# 200 epochs x 50,000 images) projected from the measured throughput.
#
#   bench/gpu-study.sh                        # on a GPU host (device cuda)
#   bench/gpu-study.sh --cpu                  # the same path on the CPU, small sizes
#   options: --runs N (per arm)  --epochs N  --slots N  --train N  --test N
#            --build DIR  --deps DIR  --keep (keep the work folder)
#
# Defaults: on a GPU 6 runs per arm x 2 epochs x 20,000 training images, 8 slots (sized
# to fit one 10-minute call with the build); with --cpu 2 runs x 1 epoch x 300
# images, 2 slots, 1 thread each (about 2 minutes on a 2-core VM after the build).
#
# Building: a host with the project's Debian packages builds coordinator, worker and
# reproctl with them (bench/lib.sh's bench_build, into --build, default
# build-gpu-study). A GPU host without them builds with deploy/gpu/build-worker.sh
# --all --deps DIR (DIR from deploy/gpu/pack-deps.sh on a Debian 12 machine) and
# LibTorch from python3's torch. Data: /usr/share/datasets/fashion-mnist, or
# REPRO_FASHION_MNIST=DIR holding the four .gz files (carried to the GPU host).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
device=cuda runs="" epochs="" slots="" train="" test_images="" build="" deps="" keep=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) device=cpu ;;
    --runs) runs=$2; shift ;;
    --epochs) epochs=$2; shift ;;
    --slots) slots=$2; shift ;;
    --train) train=$2; shift ;;
    --test) test_images=$2; shift ;;
    --build) build=$2; shift ;;
    --deps) deps=$2; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-study.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ $device == cuda ]]; then
  runs=${runs:-6} epochs=${epochs:-2} slots=${slots:-8} train=${train:-20000} test_images=${test_images:-10000}
  threads=1
else
  runs=${runs:-2} epochs=${epochs:-1} slots=${slots:-2} train=${train:-300} test_images=${test_images:-100}
  threads=1
fi
build=${build:-$here/build-gpu-study}
fashion=${REPRO_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
[[ -f $fashion/train-images-idx3-ubyte.gz ]] ||
  { echo "gpu-study.sh: no Fashion-MNIST in $fashion (set REPRO_FASHION_MNIST)" >&2; exit 1; }

# --- build ------------------------------------------------------------------------------
started=$SECONDS
# Set by bench/lib.sh's service_build and start_coordinator.
# shellcheck disable=SC2034
coordinator="" worker="" reproctl="" coordinator_pid="" address=""
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
service_build gpu-study.sh "$build" "$deps"
echo "built in $(( SECONDS - started )) s: $coordinator"

# --- data and plan ----------------------------------------------------------------------
work=$(mktemp -d /tmp/repro-gpu-study.XXXXXX)
if (( keep )); then echo "work folder: $work"; else trap 'rm -rf "$work"' EXIT; fi
python3 "$here/bench/fashion_to_cifar.py" "$fashion" "$work/data" "$train" "$test_images"
cat > "$work/plan.yaml" <<EOF
experiment: gpu-study
runs: $runs
epochs: $epochs
base_seed: 0
dataset: {kind: cifar10, path: $work/data}
model: {kind: resnet, version: 2, depth: 29}
training: {batch_size: 32, optimizer: adam-keras, lr: 0.001}
determinism: {threads: $threads, device: $device, deterministic_algorithms: false}
arms:
  same_seed:           {seed: fixed, localize: true}
  different_seeds:     {seed: per_run}
  same_seed_det:       {seed: fixed, localize: true, determinism: {deterministic_algorithms: true}}
  different_seeds_det: {seed: per_run, determinism: {deterministic_algorithms: true}}
EOF

# --- the experiment ---------------------------------------------------------------------
echo "$device: 4 arms x $runs runs x $epochs epochs x $train images, $slots slots on one worker"
if [[ $device == cuda ]] && command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
start_coordinator gpu-study.sh "$work" --plan "$work/plan.yaml" --db "$work/study.db"
started=$SECONDS
"$worker" --coordinator "$address" --name study --slots "$slots" --threads "$threads" \
    --artifacts "$work/artifacts" > "$work/worker.log" 2>&1 &
worker_pid=$!
# Peak GPU memory while the slots train, sampled every 2 s.
if [[ $device == cuda ]] && command -v nvidia-smi > /dev/null; then
  ( while kill -0 "$worker_pid" 2> /dev/null; do
      nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits
      sleep 2
    done ) > "$work/gpu-samples.csv" &
fi
wait "$worker_pid" || { echo "gpu-study.sh: the worker failed:" >&2; tail -20 "$work/worker.log" >&2; exit 1; }
wall=$(( SECONDS - started ))
wait "$coordinator_pid" || { echo "gpu-study.sh: the coordinator failed:" >&2; tail "$work/coordinator.log" >&2; exit 1; }

# --- what it says -----------------------------------------------------------------------
"$reproctl" --db "$work/study.db" report
echo
echo "== the deterministic pair against its own reference"
"$reproctl" --db "$work/study.db" report --format json --reference-arm different_seeds_det |
  python3 -c '
import json, sys
r = json.load(sys.stdin)
for c in r["comparisons"]:
    if c["arm"] != "same_seed_det":
        continue
    for column in ("accuracy", "loss"):
        ci = c["ci95"][column] or [None, None]
        print("  %s vs %s, %s: stdev ratio %s, 95%% interval [%s, %s]" % (
            c["arm"], c["reference"], column, c["stdev_ratio"][column], ci[0], ci[1]))
'
echo
python3 "$here/bench/gpu_study_timing.py" "$work/study.db" --train "$train" --batch 32 \
    --wall "$wall" --slots "$slots" --gpu-samples "$work/gpu-samples.csv"
