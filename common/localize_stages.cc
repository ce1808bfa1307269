#include "common/localize_stages.h"

#include "absl/strings/str_cat.h"

namespace repro {
namespace {

int Reproduced(const SideReplay& replay, std::string_view recorded) {
  if (recorded.empty() || replay.batch_hashes.empty()) return -1;
  return replay.batch_hashes.back() == recorded ? 1 : 0;
}

bool TraceChangedNothing(const SideReplay& replay, int64_t batch) {
  return repro::TraceChangedNothing(replay.batch_hashes, replay.traced_batch_end_hash, batch);
}

const char* KindName(OpDivergence::Kind kind) {
  switch (kind) {
    case OpDivergence::Kind::kNone: return "none";
    case OpDivergence::Kind::kOutputs: return "outputs";
    case OpDivergence::Kind::kOps: return "ops";
  }
  return "none";
}

LocalizeStage FoldEpoch(const SideReplay& a, const SideReplay& b, std::string_view recorded_a,
                        std::string_view recorded_b, LocalizationResult& r) {
  r.replay_seconds = a.seconds + b.seconds;
  r.batches = static_cast<int64_t>(a.batch_hashes.size());
  r.a_reproduced = Reproduced(a, recorded_a);
  r.b_reproduced = Reproduced(b, recorded_b);
  r.batch = FirstDifferentBatch(a.batch_hashes, b.batch_hashes).value_or(-1);
  return r.batch < 0 ? LocalizeStage::kDone : LocalizeStage::kTrace;
}

LocalizeStage FoldTrace(const SideReplay& a, const SideReplay& b, LocalizationResult& r) {
  const OpDivergence op = CompareTraces(a.trace, b.trace);
  r.op_kind = KindName(op.kind);
  r.op_index = op.index;
  r.op_name = op.name;
  r.op_name_b = op.name_b;
  r.op_module = op.module;
  r.op_phase = op.kind == OpDivergence::Kind::kNone ? "" : PhaseName(op.phase);
  r.inputs_equal = op.inputs_equal;
  r.differing_outputs = op.differing_outputs;
  r.trace_changed_nothing = TraceChangedNothing(a, r.batch) && TraceChangedNothing(b, r.batch);
  r.trace_ops = static_cast<int64_t>(a.trace.size());
  r.trace_bytes = a.trace_bytes;
  r.step_seconds = a.batch_seconds;
  r.traced_step_seconds = a.traced_batch_seconds;
  return op.kind == OpDivergence::Kind::kOutputs ? LocalizeStage::kDump : LocalizeStage::kDone;
}

absl::Status FoldDump(const SideReplay& a, const SideReplay& b, LocalizationResult& r) {
  if (!a.dump || !b.dump) return absl::OkStatus();  // the op did not run again: not measured
  absl::StatusOr<OutputDifference> d = CompareOpOutputs(*a.dump, *b.dump);
  if (!d.ok()) return d.status();
  r.values = d->elements;
  r.differing_values = d->differing;
  r.max_abs = d->max_abs;
  r.max_ulps = d->max_ulps;
  return absl::OkStatus();
}

}  // namespace

bool TraceChangedNothing(const std::vector<std::string>& batch_hashes,
                         const std::string& traced_batch_end_hash, int64_t batch) {
  return batch >= 0 && batch < static_cast<int64_t>(batch_hashes.size()) &&
         traced_batch_end_hash == batch_hashes[static_cast<size_t>(batch)];
}

const char* StageName(LocalizeStage stage) {
  switch (stage) {
    case LocalizeStage::kEpoch: return "epoch";
    case LocalizeStage::kTrace: return "trace";
    case LocalizeStage::kDump: return "dump";
    case LocalizeStage::kDone: return "done";
  }
  return "?";
}

std::optional<LocalizeStage> StageNamed(std::string_view name) {
  for (LocalizeStage stage : {LocalizeStage::kEpoch, LocalizeStage::kTrace, LocalizeStage::kDump,
                              LocalizeStage::kDone}) {
    if (name == StageName(stage)) return stage;
  }
  return std::nullopt;
}

SideRequest RequestFor(LocalizeStage stage, const LocalizationResult& so_far) {
  SideRequest request;
  request.epoch = so_far.epoch;
  if (stage == LocalizeStage::kTrace || stage == LocalizeStage::kDump) {
    request.trace_batch = so_far.batch;
  }
  if (stage == LocalizeStage::kDump) request.dump_op = so_far.op_index;
  return request;
}

absl::StatusOr<LocalizeStage> FoldStage(LocalizeStage stage, const SideReplay& a,
                                        const SideReplay& b, std::string_view recorded_a,
                                        std::string_view recorded_b, LocalizationResult* result) {
  result->seconds += a.wall_seconds + b.wall_seconds;
  switch (stage) {
    case LocalizeStage::kEpoch:
      return FoldEpoch(a, b, recorded_a, recorded_b, *result);
    case LocalizeStage::kTrace:
      return FoldTrace(a, b, *result);
    case LocalizeStage::kDump:
      if (absl::Status s = FoldDump(a, b, *result); !s.ok()) return s;
      return LocalizeStage::kDone;
    case LocalizeStage::kDone:
      break;
  }
  return absl::InvalidArgumentError("a localization that is done has no stage to fold");
}

}  // namespace repro
