#!/usr/bin/env bash
# deploy/slurm/repro-workers.sbatch under a real Slurm (issue 16), run by ctest as
# `slurm_cluster`:
#
#   tests/slurm_test.sh COORDINATOR WORKER REPROCTL
#
# Starts munged, slurmctld and slurmd (Debian 12's Slurm 22.05) for one node on this
# machine: every config file, key, state, log and socket in a temp folder, every port
# on 127.0.0.1, no cgroups (proctrack/linuxproc, task/none). Then, against the real
# coordinator on 127.0.0.1 (a free port):
#
#   1. a small noop experiment: `sbatch repro-workers.sbatch` (REPRO_GPUS_PER_TASK=0, as
#      the node has no GPU) starts the workers through srun; the experiment completes
#      with workers named slurm-JOBID-N only, the workers exit on their own and the job
#      ends COMPLETED, exit 0;
#   2. a Fashion-MNIST experiment whose runs last seconds: once every worker is mid-run,
#      `scancel` the job. Slurm's SIGTERM reaches the workers, which hand their runs back
#      (attempts 'released'); no run failed and no attempt counts as failed. A second
#      sbatch of the script then completes the experiment, every run counted exactly
#      once (one 'done' attempt, the one whose result counts, and attempts = 1).
#
# Exit status: 0 passed; 1 failed (Slurm ran, the experiment did not go as it should);
# 77 (ctest: skipped) Slurm cannot run here: packages missing (slurmctld slurmd
# slurm-client munge), or munged/slurmctld/slurmd would not start or run a trivial job.
# The reason is printed. 35 to 50 s on 2 cores.
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 COORDINATOR WORKER REPROCTL" >&2
  exit 2
fi
COORDINATOR=$1 WORKER=$2 REPROCTL=$3
for bin in "$COORDINATOR" "$WORKER" "$REPROCTL"; do
  [ -x "$bin" ] || { echo "slurm_test: not an executable: $bin" >&2; exit 1; }
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SBATCH_SCRIPT=$ROOT/deploy/slurm/repro-workers.sbatch
DATASET=/usr/share/datasets/fashion-mnist

# Every wait below ends by END at the latest: ctest's TIMEOUT (300 s) kills the test
# without its clean-up, and Slurm's job processes are not this script's children.
END=$((SECONDS + 240))
deadline() { local d=$((SECONDS + $1)); echo $((d < END ? d : END)); }  # deadline SECONDS

log() { printf '[slurm_test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
indent() { sed 's/^/    /'; }
skip() {
  echo "slurm_test: SKIP: $*"
  exit 77
}

# Packages first: nothing to clean up yet.
missing=()
for tool in munged munge unmunge slurmctld slurmd sbatch srun scancel squeue scontrol sinfo sqlite3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  skip "not installed: ${missing[*]} (Debian packages: slurmctld slurmd slurm-client munge sqlite3)"
fi
[ -f "$DATASET/train-images-idx3-ubyte.gz" ] ||
  skip "no Fashion-MNIST in $DATASET (Debian package: dataset-fashion-mnist)"

# Whatever Slurm job or configuration this runs inside, the commands below talk to the
# cluster started here only.
while IFS= read -r name; do
  unset "$name"
done < <(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC|SQUEUE|SCANCEL|SINFO|SCONTROL)_' || true)

# In /tmp, not $TMPDIR: munged wants every folder above its socket searchable by all,
# and a Unix socket's path must stay short.
TMP=$(mktemp -d /tmp/repro-slurm.XXXXXX)
chmod 755 "$TMP"
CONF=$TMP/slurm.conf
MUNGE_SOCKET=$TMP/munge/munge.socket
export SLURM_CONF=$CONF
NODE=reprotest
MUNGED_PID="" SLURMCTLD_PID="" SLURMD_PID="" JOB=""
COORD_PIDS=() JOBS=()

# stop PID...: SIGTERM, up to 10 s, then SIGKILL.
stop() {
  local pid t
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for ((t = 0; t < 50; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# Jobs before slurmd (their processes belong to slurmstepd, not to slurmd), slurmd and
# slurmctld before munged (they need it to talk).
stop_cluster() {
  local t
  if [ "${#JOBS[@]}" -gt 0 ] && [ -n "$SLURMCTLD_PID" ] && kill -0 "$SLURMCTLD_PID" 2>/dev/null; then
    scancel --full --signal=KILL "${JOBS[@]}" 2>/dev/null || true
    scancel "${JOBS[@]}" 2>/dev/null || true
    for ((t = 0; t < 100; t++)); do
      [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  [ -n "$SLURMD_PID" ] && stop "$SLURMD_PID"
  [ -n "$SLURMCTLD_PID" ] && stop "$SLURMCTLD_PID"
  SLURMD_PID="" SLURMCTLD_PID=""
  kill_job_leftovers
}

# Last resort, when Slurm could not cancel them (slurmctld gone, say): the processes of
# this cluster's jobs and their slurmstepd, known by their environment (this SLURM_CONF,
# and a SLURM_JOB_ID or the name slurmstepd).
kill_job_leftovers() {
  local f pid
  while IFS= read -r f; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    if grep -qz '^SLURM_JOB_ID=' "$f" 2>/dev/null || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = slurmstepd ]; then
      kill -KILL "$pid" 2>/dev/null
    fi
  done < <(grep -lzxF "SLURM_CONF=$CONF" /proc/[0-9]*/environ 2>/dev/null || true)
  return 0
}

cleanup() {
  local rc=$?
  set +e
  [ "${#COORD_PIDS[@]}" -gt 0 ] && stop "${COORD_PIDS[@]}"
  stop_cluster
  [ -n "$MUNGED_PID" ] && stop "$MUNGED_PID"
  if [ -n "${REPRO_KEEP_TMP:-}" ]; then
    echo "slurm_test: kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The last lines of every log there is, for a failure or a skip. A daemon's own output
# (.out) only when it wrote no log file: it repeats the log, but has what it printed
# before opening one (a bad slurm.conf, say).
show_logs() {
  local f
  for f in "$TMP"/munge/munged.log "$TMP"/log/slurmctld.log "$TMP"/log/slurmd.log \
           "$TMP"/log/slurmctld.out "$TMP"/log/slurmd.out "$TMP"/job/slurm-*.out \
           "$TMP"/c*/coordinator.log; do
    [ -s "$f" ] || continue
    case "$f" in *.out) [ -s "${f%.out}.log" ] && continue ;; esac
    echo "--- last lines of ${f#"$TMP"/}"
    tail -n 25 "$f"
  done
}
fail() {
  echo "slurm_test: FAIL (after ${SECONDS} s): $*"
  show_logs
  exit 1
}
skip_with_logs() {
  show_logs
  skip "$*"
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  local p
  while :; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

# ---------------------------------------------------------------------------------------
log "munged in $TMP/munge"
mkdir -p "$TMP/munge" "$TMP/state" "$TMP/spool" "$TMP/log" "$TMP/job"
(umask 077; head -c 1024 /dev/urandom > "$TMP/munge/munge.key")
# -F: in the foreground (its PID is $!), logging to stderr.
munged -F --origin=127.0.0.1 --socket="$MUNGE_SOCKET" --key-file="$TMP/munge/munge.key" \
  --pid-file="$TMP/munge/munged.pid" --seed-file="$TMP/munge/munged.seed" \
  > "$TMP/munge/munged.log" 2>&1 &
MUNGED_PID=$!
for ((t = 0; t < 50; t++)); do
  [ -S "$MUNGE_SOCKET" ] && break
  kill -0 "$MUNGED_PID" 2>/dev/null || break
  sleep 0.2
done
if ! munge -S "$MUNGE_SOCKET" -n 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
  skip_with_logs "munged does not start here (or its credentials do not decode)"
fi

CPUS=$(nproc)
NTASKS=$((CPUS >= 2 ? 2 : 1))   # one worker per CPU, two at most
USER_NAME=$(id -un)

write_conf() {  # write_conf CTLD_PORT SLURMD_PORT
  cat > "$CONF" <<CONF
# One node on 127.0.0.1, everything in $TMP (tests/slurm_test.sh).
ClusterName=reprotest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$1
SlurmdPort=$2
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
StateSaveLocation=$TMP/state
SlurmdSpoolDir=$TMP/spool
SlurmctldPidFile=$TMP/slurmctld.pid
SlurmdPidFile=$TMP/slurmd.pid
SlurmctldLogFile=$TMP/log/slurmctld.log
SlurmdLogFile=$TMP/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# scancel: SIGTERM, then SIGKILL after KillWait seconds.
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$CPUS State=UNKNOWN
PartitionName=repro Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

# start_cluster: slurmctld and slurmd up, the node idle; 1 (daemons stopped) if not.
start_cluster() {
  local t state
  write_conf "$(free_port)" "$(free_port)"
  rm -rf "${TMP:?}"/state/* "${TMP:?}"/spool/*
  slurmctld -D -i -f "$CONF" > "$TMP/log/slurmctld.out" 2>&1 &
  SLURMCTLD_PID=$!
  for ((t = 0; t < 100; t++)); do
    scontrol ping 2>/dev/null | grep -q 'is UP' && break
    kill -0 "$SLURMCTLD_PID" 2>/dev/null || break
    sleep 0.2
  done
  if ! scontrol ping 2>/dev/null | grep -q 'is UP'; then
    echo "slurm_test: slurmctld did not come up"
    stop_cluster
    return 1
  fi
  slurmd -D -N "$NODE" -f "$CONF" > "$TMP/log/slurmd.out" 2>&1 &
  SLURMD_PID=$!
  for ((t = 0; t < 150; t++)); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    kill -0 "$SLURMD_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "slurm_test: node $NODE is '${state:-unknown}', not idle"
  stop_cluster
  return 1
}

# queued JOB: whether JOB is still in the queue (pending, running or completing).
queued() {
  local out
  out=$(squeue -h -j "$1" -o %i 2>&1) || {
    # squeue fails on a job that has left the queue since it last looked.
    grep -q 'Invalid job id' <<< "$out" && return 1
    fail "squeue -j $1 failed (is slurmctld gone?): $out"
  }
  [ -n "$out" ]
}
# wait_job JOB SECONDS: until JOB has left the queue (0) or SECONDS passed (1).
wait_job() {
  local deadline
  deadline=$(deadline "$2")
  while queued "$1"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.3
  done
}
job_field() {  # job_field JOB FIELD: e.g. JobState, ExitCode
  scontrol show job "$1" 2>/dev/null | grep -o "\\b$2=[^ ]*" | head -1 | cut -d= -f2
}
# submit ARGS...: sbatch; JOB is the new job's id, remembered for the clean-up.
submit() {
  local out
  out=$(sbatch --parsable "$@") || return 1
  JOB=${out%%;*}
  JOBS+=("$JOB")
}

log "slurmctld and slurmd for node $NODE ($CPUS CPUs) on 127.0.0.1"
started=0
for attempt in 1 2 3; do
  if start_cluster; then started=1; break; fi
  log "cluster start $attempt of 3 failed"
done
[ "$started" = 1 ] || skip_with_logs "slurmctld/slurmd do not start here"

# A trivial job and step first: Slurm itself must be able to run jobs here.
submit --chdir="$TMP/job" --output="$TMP/job/slurm-%j.out" --time=2 --wrap 'srun --ntasks=1 true' ||
  skip_with_logs "sbatch of a trivial job failed"
job=$JOB
wait_job "$job" 60 || skip_with_logs "a trivial job (srun true) was still queued or running after 60 s"
[ "$(job_field "$job" JobState)" = COMPLETED ] ||
  skip_with_logs "a trivial job (srun true) ended $(job_field "$job" JobState), exit $(job_field "$job" ExitCode): Slurm cannot run jobs here"
log "Slurm is up: trivial job $job completed"

# ---------------------------------------------------------------------------------------
# The coordinator for an experiment: start_coordinator NAME PLAN-TEXT [FLAGS...] sets
# COORD_PID, COORD_ADDR and DB (in $TMP/NAME).
start_coordinator() {
  local dir=$TMP/$1 plan=$2 t
  shift 2
  mkdir -p "$dir"
  printf '%s\n' "$plan" > "$dir/plan.yaml"
  DB=$dir/experiment.db
  "$COORDINATOR" --plan "$dir/plan.yaml" --db "$DB" --listen 127.0.0.1:0 --port-file "$dir/port" \
    --exit-when-done "$@" > "$dir/coordinator.log" 2>&1 &
  COORD_PID=$!
  COORD_PIDS+=("$COORD_PID")
  for ((t = 0; t < 150; t++)); do
    [ -s "$dir/port" ] && break
    kill -0 "$COORD_PID" 2>/dev/null || break
    sleep 0.2
  done
  [ -s "$dir/port" ] || fail "the coordinator ($1) did not come up (no port in $dir/port)"
  COORD_ADDR=127.0.0.1:$(tr -d '[:space:]' < "$dir/port")
}

# submit_workers: the script under test, one worker per task, no GPU; sets JOB.
submit_workers() {
  REPRO_WORKER="$WORKER" REPRO_GPUS_PER_TASK=0 REPRO_ARTIFACTS="$TMP/job/artifacts" \
    submit --gpus-per-task=0 --ntasks-per-node="$NTASKS" --cpus-per-task=1 --time=10 \
      --chdir="$TMP/job" --output="$TMP/job/slurm-%j.out" "$SBATCH_SCRIPT" "$COORD_ADDR" ||
    fail "sbatch $SBATCH_SCRIPT $COORD_ADDR was refused"
}

# wait_exit PID SECONDS: PID's exit status, or 124 when still running after SECONDS.
wait_exit() {
  local pid=$1 deadline
  deadline=$(deadline "$2")
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -ge "$deadline" ] && return 124
    sleep 0.2
  done
  wait "$pid"
}

sql() { sqlite3 -batch -noheader -cmd '.timeout 5000' "$DB" "$1"; }

# job_finishes_experiment JOB SECONDS EXPERIMENT RUNS: the job ends by itself within
# SECONDS, COMPLETED with every worker exiting 0; the coordinator (--exit-when-done) then
# exits 0; and status says the experiment's RUNS runs are all done, none failed.
job_finishes_experiment() {
  local job=$1 seconds=$2 experiment=$3 runs=$4 state code rc=0 status
  wait_job "$job" "$seconds" ||
    fail "job $job still in the queue after $seconds s; want it to finish experiment $experiment and end"
  state=$(job_field "$job" JobState) code=$(job_field "$job" ExitCode)
  [[ "$state" = COMPLETED && "$code" = 0:0 ]] ||
    fail "job $job ended $state, exit $code; want COMPLETED, exit 0:0 (every worker exiting 0)"
  wait_exit "$COORD_PID" 30 || rc=$?
  [ "$rc" = 0 ] || fail "the coordinator (--exit-when-done) exited $rc after job $job (124: still running); want 0"
  status=$("$REPROCTL" --db "$DB" status) || fail "reproctl --db $DB status failed"
  indent <<< "$status"
  grep -q "^Experiment $experiment: complete, $runs of $runs runs done, 0 running, 0 pending, 0 failed" <<< "$status" ||
    fail "status after job $job: want '$experiment: complete, $runs of $runs runs done, ... 0 failed', got: $(head -1 <<< "$status")"
}

# ---------------------------------------------------------------------------------------
log "1. a noop experiment, workers from sbatch $SBATCH_SCRIPT"
start_coordinator c1 "experiment: slurm-noop
runs: 3
epochs: 1
model: {kind: noop}"
submit_workers
job=$JOB
log "job $job submitted ($NTASKS task(s)) for the coordinator on $COORD_ADDR"
job_finishes_experiment "$job" 90 slurm-noop 6
workers=$(sql "SELECT name FROM workers ORDER BY name" | tr '\n' ' ')
want=""
for ((k = 0; k < NTASKS; k++)); do want+="slurm-$job-$k "; done
[ "$workers" = "$want" ] || fail "workers of the noop experiment: want '$want' (job $job), got '$workers'"
others=$(sql "SELECT count(*) FROM attempts WHERE worker NOT LIKE 'slurm-$job-%'")
[ "$others" = 0 ] || fail "$others attempt(s) of the noop experiment by workers outside job $job"
finished=$(grep -c 'the experiment has finished; exiting' "$TMP/job/slurm-$job.out" || true)
[ "$finished" = "$NTASKS" ] ||
  fail "job $job's output has $finished 'the experiment has finished; exiting' line(s), want $NTASKS (one per worker)"
log "PASS 1: 6/6 runs done by ${workers% }; job $job COMPLETED 0:0 by itself"

# ---------------------------------------------------------------------------------------
log "2. scancel mid-run, then sbatch again"
# Runs of several seconds each (1,875 batches of 32 over 3 epochs: 15 to 30 s on 2 busy
# cores): long enough to be cancelled mid-run, short enough for the test.
start_coordinator c2 "experiment: slurm-drain
runs: 1
epochs: 3
base_seed: 0
dataset: {kind: fashion-mnist, path: $DATASET, train_limit: 20000, test_limit: 1000}
model: {kind: small-cnn}
training: {batch_size: 32, optimizer: adam, lr: 0.001}
determinism: {deterministic_algorithms: true, threads: 1, device: cpu}" --heartbeat-ms 500
RUNS=2   # runs: 1 in each of the two default arms
busy=$((NTASKS < RUNS ? NTASKS : RUNS))
submit_workers
first=$JOB
log "job $first submitted; waiting until $busy run(s) are past their first batch"
until=$(deadline 90)
while :; do
  mid=$(sql "SELECT count(*) FROM runs WHERE state = 'running' AND progress_batch > 0" 2>/dev/null || echo 0)
  [ "$mid" -ge "$busy" ] && break
  queued "$first" ||
    fail "job $first ended ($(job_field "$first" JobState), exit $(job_field "$first" ExitCode)) before its workers were mid-run"
  [ "$SECONDS" -lt "$until" ] ||
    fail "after 90 s, $mid run(s) of job $first are past their first batch; want $busy"
  sleep 0.2
done
sql "SELECT 'running before scancel: run ' || id || ' epoch ' || progress_epoch || ' batch ' || progress_batch || '/' || progress_batches FROM runs WHERE state = 'running'" | indent
scancel "$first" || fail "scancel $first failed"
log "scancel $first"
# The workers hand back at the next batch boundary: well within KillWait (30 s).
wait_job "$first" 60 || fail "job $first still in the queue 60 s after scancel"
state=$(job_field "$first" JobState)
[ "$state" = CANCELLED ] || fail "job $first is $state after scancel; want CANCELLED"
sql "SELECT '    attempt ' || id || ' of run ' || run_id || ' by ' || worker || ': ' || outcome || ' (' || error || ')' FROM attempts ORDER BY id"
released=$(sql "SELECT count(*) FROM attempts WHERE outcome = 'released' AND worker LIKE 'slurm-$first-%'")
bad=$(sql "SELECT count(*) FROM attempts WHERE outcome IN ('failed', 'expired', 'running')")
failed_runs=$(sql "SELECT count(*) FROM runs WHERE state = 'failed'")
counted=$(sql "SELECT count(*) FROM runs WHERE state <> 'done' AND attempts <> 0")
[ "$released" -ge "$busy" ] ||
  fail "$released attempt(s) released by job $first's workers after scancel; want $busy (each worker hands its run back on SIGTERM)"
[ "$bad" = 0 ] || fail "$bad attempt(s) failed, expired or still running after scancel; want 0"
[ "$failed_runs" = 0 ] || fail "$failed_runs run(s) failed after scancel; want 0"
[ "$counted" = 0 ] || fail "$counted unfinished run(s) have an attempt counted against them after scancel; want 0"
handed=$(grep -c 'handed run .* back to the coordinator' "$TMP/job/slurm-$first.out" || true)
[ "$handed" -ge "$busy" ] || fail "job $first's output has $handed 'handed run ... back' line(s); want $busy"
kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator exited after scancel; the experiment is not finished"
log "PASS 2a: scancel: $released run(s) handed back (released), none failed, no attempt counted"

submit_workers
second=$JOB
log "job $second submitted to finish the experiment"
job_finishes_experiment "$second" 150 slurm-drain "$RUNS"
sql "SELECT '    attempt ' || id || ' of run ' || run_id || ' by ' || worker || ': ' || outcome FROM attempts ORDER BY id"
# Every run: done, attempts = 1, exactly one 'done' attempt, and it is the one that counts.
wrong=$(sql "SELECT r.id || ' (' || r.arm || '#' || r.idx || ': ' || r.state || ', attempts ' || r.attempts || ', ' ||
               (SELECT count(*) FROM attempts a WHERE a.run_id = r.id AND a.outcome = 'done') || ' done)'
             FROM runs r
             WHERE r.state <> 'done' OR r.attempts <> 1
                OR (SELECT count(*) FROM attempts a WHERE a.run_id = r.id AND a.outcome = 'done') <> 1
                OR r.result_attempt IS NOT (SELECT a.id FROM attempts a WHERE a.run_id = r.id AND a.outcome = 'done')")
[ -z "$wrong" ] || fail "runs not counted exactly once: $wrong; want each done, attempts 1, one 'done' attempt that counts"
bad=$(sql "SELECT count(*) FROM attempts WHERE outcome IN ('failed', 'expired', 'running')")
[ "$bad" = 0 ] || fail "$bad attempt(s) failed or expired in the drain experiment; want 0"
strays=$(sql "SELECT count(*) FROM attempts WHERE outcome = 'done' AND worker NOT LIKE 'slurm-$second-%'")
[ "$strays" = 0 ] || fail "$strays run(s) done by workers outside job $second (job $first was cancelled before any run ended)"
log "PASS 2b: job $second finished the experiment: $RUNS/$RUNS runs done, each counted once, 0 failed"

log "all passed"
