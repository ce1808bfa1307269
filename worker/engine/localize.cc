#include "worker/engine/localize.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/replay.h"

namespace repro::engine {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::optional<bool> Reproduced(const ReplayResult& replay, const std::string& recorded) {
  if (recorded.empty() || replay.batch_hashes.empty()) return std::nullopt;
  return replay.batch_hashes.back() == recorded;
}

}  // namespace

absl::StatusOr<Localization> Localize(const LocalizeRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  if (request.a.model_kind != request.b.model_kind ||
      request.a.dataset_kind != request.b.dataset_kind) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the runs train different models or data (", request.a.model_kind, " on ",
        request.a.dataset_kind, ", ", request.b.model_kind, " on ", request.b.dataset_kind,
        "): there is no batch at which they part"));
  }
  Localization out;
  out.epoch = request.epoch;
  ReplayRequest epoch;
  epoch.epoch = request.epoch;
  ASSIGN_OR_RETURN(const ReplayResult a, ReplayEpoch(request.a, epoch));
  ASSIGN_OR_RETURN(const ReplayResult b, ReplayEpoch(request.b, epoch));
  out.replay_seconds = a.seconds + b.seconds;
  out.batches = static_cast<int64_t>(a.batch_hashes.size());
  out.a_reproduced = Reproduced(a, request.recorded_a);
  out.b_reproduced = Reproduced(b, request.recorded_b);
  out.batch = FirstDifferentBatch(a.batch_hashes, b.batch_hashes);
  if (!out.batch) {
    out.seconds = SecondsSince(started);
    return out;
  }
  ReplayRequest traced = epoch;
  traced.trace_batch = *out.batch;
  ASSIGN_OR_RETURN(const ReplayResult ta, ReplayEpoch(request.a, traced));
  ASSIGN_OR_RETURN(const ReplayResult tb, ReplayEpoch(request.b, traced));
  out.op = CompareTraces(ta.trace, tb.trace);
  out.trace_changed_nothing =
      TraceChangedNothing(ta, *out.batch) && TraceChangedNothing(tb, *out.batch);
  out.trace_ops = static_cast<int64_t>(ta.trace.size());
  out.trace_bytes = ta.trace_bytes;
  out.step_seconds = ta.batch_seconds;
  out.traced_step_seconds = ta.traced_batch_seconds;
  if (out.op.kind == OpDivergence::Kind::kOutputs) {
    ReplayRequest dumped = traced;
    dumped.dump_op = out.op.index;
    ASSIGN_OR_RETURN(const ReplayResult da, ReplayEpoch(request.a, dumped));
    ASSIGN_OR_RETURN(const ReplayResult db, ReplayEpoch(request.b, dumped));
    if (da.dump && db.dump) {
      ASSIGN_OR_RETURN(out.difference, CompareOutputs(*da.dump, *db.dump));
    }
  }
  out.seconds = SecondsSince(started);
  return out;
}

}  // namespace repro::engine
