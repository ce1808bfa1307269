#include "worker/engine/localize.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/replay.h"

namespace repro::engine {

absl::StatusOr<SideReplay> ReplaySide(const RunSpec& spec, const SideRequest& request,
                                      const Callbacks& callbacks) {
  const auto started = std::chrono::steady_clock::now();
  ReplayRequest replay;
  replay.epoch = request.epoch;
  replay.trace_batch = request.trace_batch;
  replay.dump_op = request.dump_op;
  replay.end_after_trace = request.trace_batch.has_value();  // the stage needs no more
  ASSIGN_OR_RETURN(ReplayResult r, ReplayEpoch(spec, replay, callbacks));
  SideReplay side;
  side.batch_hashes = std::move(r.batch_hashes);
  side.trace = std::move(r.trace);
  side.traced_batch_end_hash = std::move(r.traced_batch_end_hash);
  side.trace_bytes = r.trace_bytes;
  side.batch_seconds = r.batch_seconds;
  side.traced_batch_seconds = r.traced_batch_seconds;
  if (r.dump) side.dump = OutputsOf(*r.dump);
  side.seconds = r.seconds;
  side.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return side;
}

absl::StatusOr<LocalizationResult> Localize(const LocalizeRequest& request,
                                            const Callbacks& callbacks) {
  if (request.a.model_kind != request.b.model_kind ||
      request.a.dataset_kind != request.b.dataset_kind) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the runs train different models or data (", request.a.model_kind, " on ",
        request.a.dataset_kind, ", ", request.b.model_kind, " on ", request.b.dataset_kind,
        "): there is no batch at which they part"));
  }
  LocalizationResult out;
  out.epoch = request.epoch;
  for (LocalizeStage stage = LocalizeStage::kEpoch; stage != LocalizeStage::kDone;) {
    const SideRequest side = RequestFor(stage, out);
    ASSIGN_OR_RETURN(const SideReplay a, ReplaySide(request.a, side, callbacks));
    ASSIGN_OR_RETURN(const SideReplay b, ReplaySide(request.b, side, callbacks));
    ASSIGN_OR_RETURN(stage, FoldStage(stage, a, b, request.recorded_a, request.recorded_b, &out));
  }
  return out;
}

}  // namespace repro::engine
