#!/usr/bin/env bash
# repro-train from the outside: text and --json output, same seeds give the same hashes,
# exports, checkpoints and replays, and exit codes (2 for bad flags or input, 1 for a
# failed run).
# Usage: repro_train_test.sh PATH/TO/repro-train FASHION_MNIST_DIR
set -euo pipefail
bin=$1
data=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
small=(--dataset "$data" --train-limit 96 --test-limit 40 --batch-size 32 --epochs 2 --seed 3)

fail() { echo "FAIL: $*" >&2; exit 1; }

# Text: one line per epoch, then the hashes and the environment.
"$bin" "${small[@]}" --augment --batch-digests > "$work/text"
grep -qE '^epoch 0  loss [0-9.]+  acc [0-9.]+  val_loss [0-9.]+  val_acc [0-9.]+  lr 0.001  ' \
  "$work/text" || fail "no epoch 0 line: $(cat "$work/text")"
grep -qE '^  batch 2 [0-9a-f]{32}$' "$work/text" || fail "no per-batch digests"
grep -qE '^final        [0-9a-f]{32}$' "$work/text" || fail "no final hash"
grep -qE '^  threads +1$' "$work/text" || fail "no environment"

# JSON: one object; the same seeds give the same hashes; the text run agrees with it.
"$bin" "${small[@]}" --augment --json > "$work/a.json"
"$bin" "${small[@]}" --augment --json > "$work/b.json"
python3 - "$work/a.json" "$work/b.json" "$work/text" <<'PY'
import json, re, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
text = open(sys.argv[3]).read()
assert len(a["epochs"]) == 2 and a["epochs"][1]["epoch"] == 1, a["epochs"]
assert a["final_hash"] == b["final_hash"] and a["initial_hash"] == b["initial_hash"]
assert a["spec"]["augment"] is True and a["spec"]["augment_seed"] == 3
assert a["predictions_count"] == 40 and a["environment"]["device"] == "cpu"
assert re.search("final +" + a["final_hash"], text), "text and JSON runs differ"
assert len(a["final_tensors"]) == 8 and a["final_tensors"][0]["name"] == "conv1.weight"
PY

# Exports.
"$bin" "${small[@]}" --export "$work/weights" --export-epochs > /dev/null
for f in initial epoch-0 epoch-1 final; do
  [[ -s $work/weights/$f.safetensors ]] || fail "no $f.safetensors"
done

# Replays: the last batch's hash is the epoch's weights hash, from a checkpoint too; a
# traced batch ends with the untraced weights; the trace and a dumped op go to files.
"$bin" "${small[@]}" --checkpoints "$work/checkpoints" > "$work/run"
[[ -s $work/checkpoints/checkpoint-0 && ! -e $work/checkpoints/checkpoint-1 ]] ||
  fail "not one checkpoint: $(ls "$work/checkpoints")"
"$bin" "${small[@]}" --replay-epoch 1 --from-checkpoint "$work/checkpoints/checkpoint-0" \
  --trace-batch 1 --trace-out "$work/trace" > "$work/replay"
"$bin" "${small[@]}" --replay-epoch 0 --trace-batch 0 --dump-op 0 \
  --dump-out "$work/op.safetensors" --json > "$work/replay.json"
python3 - "$work/run" "$work/replay" "$work/trace" "$work/replay.json" <<'PY'
import json, re, sys
run, replay, trace = (open(p).read() for p in sys.argv[1:4])
weights = re.findall(r"^epoch \d .* weights ([0-9a-f]{32})$", run, re.M)
batches = re.findall(r"^batch (\d+) +([0-9a-f]{32})$", replay, re.M)
assert [b for b, _ in batches] == ["0", "1", "2"], replay
assert batches[-1][1] == weights[1], (batches, weights)
assert re.search(r"^traced batch 1: \d+ ops, .* ends with the untraced weights$", replay,
                 re.M), replay
assert trace.startswith("op 0 forward aten::conv2d conv1 in "), trace[:200]
r = json.load(open(sys.argv[4]))["replay"]
assert r["batch_hashes"][-1] == weights[0] and r["trace_changed_nothing"] is True, r
assert r["trace"][0]["name"] == "aten::conv2d" and r["dump"]["index"] == 0, r["dump"]
assert r["trace"][0]["outputs"][0]["shape"] == [32, 8, 24, 24], r["trace"][0]
PY
[[ -s $work/op.safetensors ]] || fail "no dumped op"

# Exit codes: 2 for bad flags or input, with one line on stderr.
expect_exit() {  # expect_exit CODE TEXT ARGS...
  local code=$1 text=$2; shift 2
  local got=0
  "$bin" "$@" > /dev/null 2> "$work/err" || got=$?
  [[ $got == "$code" ]] || fail "$* exited $got, not $code: $(cat "$work/err")"
  [[ $(wc -l < "$work/err") == 1 ]] || fail "$*: not one line on stderr: $(cat "$work/err")"
  grep -q -- "$text" "$work/err" || fail "$*: stderr lacks '$text': $(cat "$work/err")"
}
expect_exit 2 "unknown flag --bogus" --bogus
expect_exit 2 "--epochs" "${small[@]}" --epochs 0
expect_exit 2 "--lr: expected a number" --lr abc
expect_exit 2 "exclude each other" --deterministic --nondeterministic
expect_exit 2 "--export-epochs needs --export" --export-epochs
expect_exit 2 "unknown device" "${small[@]}" --device tpu
expect_exit 2 "does not exist" --dataset "$work/none"
expect_exit 2 "unexpected argument" extra
# A TorchScript model alone (--model-file): a file that is none is refused before training.
expect_exit 2 "is not a TorchScript module" "${small[@]}" --model-file "$work/text"
expect_exit 2 "does not exist" "${small[@]}" --model-file "$work/none.pt" --model-init seeded
expect_exit 2 "needs --model-file" --model torchscript
expect_exit 2 "applies to --model torchscript only" --model-init seeded
expect_exit 2 "needs --replay-epoch" "${small[@]}" --trace-batch 0
expect_exit 2 "go together" "${small[@]}" --replay-epoch 0 --trace-batch 0 --dump-op 1
expect_exit 2 "not to --replay-epoch" "${small[@]}" --replay-epoch 0 --checkpoints "$work/c"
expect_exit 2 "no batch 3" "${small[@]}" --replay-epoch 0 --trace-batch 3
expect_exit 2 "no epoch 2" "${small[@]}" --replay-epoch 2
expect_exit 2 "cannot open" "${small[@]}" --replay-epoch 1 --from-checkpoint "$work/none"
echo "repro-train: all checks passed"
