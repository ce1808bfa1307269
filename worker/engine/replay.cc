#include "worker/engine/replay.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/localize_stages.h"
#include "common/status_macros.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/noop.h"
#include "worker/engine/training.h"

namespace repro::engine {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::Status CheckRequest(const RunSpec& spec, const ReplayRequest& request) {
  if (spec.model_kind == kNoopModel) {
    return absl::InvalidArgumentError("model noop trains nothing, so it has nothing to replay");
  }
  if (request.epoch < 0 || request.epoch >= spec.epochs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the run has epochs 0 to ", spec.epochs - 1, ", so no epoch ", request.epoch));
  }
  if (request.trace_batch && *request.trace_batch < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trace batch must be 0 or more, got ", *request.trace_batch));
  }
  if ((request.dump_op || request.end_after_trace) && !request.trace_batch) {
    return absl::InvalidArgumentError("dumping an op, or ending after the traced batch, needs a "
                                      "traced batch");
  }
  return absl::OkStatus();
}

// Steps the batch under an op tracer, then puts the training state back as it was before
// it, so that the batch's step proper runs as without the tracer.
absl::Status TraceBatch(RunState& s, const ReplayRequest& request,
                        const std::function<void()>& step, ReplayResult& result) {
  const StepSnapshot before = SaveStep(s);
  {
    ASSIGN_OR_RETURN(std::unique_ptr<OpTracer> tracer,
                     OpTracer::Start(*s.model, request.dump_op));
    const auto started = std::chrono::steady_clock::now();
    step();
    result.traced_batch_seconds = SecondsSince(started);
    result.trace = tracer->TakeTrace();
    result.dump = tracer->TakeDump();
  }
  result.trace_bytes = TraceBytes(result.trace);
  result.traced_batch_end_hash = FingerprintModel(*s.model).hash;
  return RestoreStep(s, before);
}

// What ReplayBatch returns to end the epoch after the traced batch (end_after_trace).
constexpr char kEndsHere[] = "the replay ends after its traced batch";

// RunState::wrap_step of the replayed epoch.
absl::Status ReplayBatch(RunState& s, const ReplayRequest& request, int64_t batch,
                         const std::function<void()>& step, ReplayResult& result) {
  const bool traced = request.trace_batch == batch;
  if (traced) RETURN_IF_ERROR(TraceBatch(s, request, step, result));
  const auto started = std::chrono::steady_clock::now();
  step();
  if (traced) result.batch_seconds = SecondsSince(started);
  result.batch_hashes.push_back(FingerprintModel(*s.model).hash);
  if (traced && request.end_after_trace) return absl::CancelledError(kEndsHere);
  return absl::OkStatus();
}

// The run up to the start of request.epoch, as TrainRun trains it.
absl::Status TrainUpTo(RunState& s, const ReplayRequest& request) {
  ASSIGN_OR_RETURN(const int first_epoch, Resume(s));
  if (first_epoch > request.epoch) {
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint is from after epoch ", first_epoch - 1,
                     "; replaying epoch ", request.epoch, " needs one from before it"));
  }
  for (int epoch = first_epoch; epoch < request.epoch; ++epoch) {
    RETURN_IF_ERROR(TrainEpoch(s, epoch));
    if (!s.result.diverged.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the run diverged before epoch ", request.epoch, ": ", s.result.diverged));
    }
  }
  if (request.trace_batch && *request.trace_batch >= s.batches) {
    return absl::InvalidArgumentError(absl::StrCat("an epoch of the run has batches 0 to ",
                                                   s.batches - 1, ", so no batch ",
                                                   *request.trace_batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayResult> Replay(const RunSpec& spec, const ReplayRequest& request,
                                    const Callbacks& callbacks) {
  RETURN_IF_ERROR(CheckRequest(spec, request));
  RunSpec run = spec;  // the same training, without what a run leaves behind
  run.resume_state = request.checkpoint;
  run.export_dir.clear();
  run.checkpoint_every = 0;
  run.keep_predictions = false;
  ASSIGN_OR_RETURN(std::unique_ptr<RunState> s, StartRun(run, callbacks));
  RETURN_IF_ERROR(TrainUpTo(*s, request));

  ReplayResult result;
  result.start_hash = FingerprintModel(*s->model).hash;
  s->wrap_step = [&](int64_t batch, const std::function<void()>& step) {
    return ReplayBatch(*s, request, batch, step, result);
  };
  const auto started = std::chrono::steady_clock::now();
  StartEpoch(*s, request.epoch);
  const absl::Status trained = TrainBatches(*s, request.epoch).status();
  if (!trained.ok() && trained != absl::CancelledError(kEndsHere)) return trained;
  result.seconds = SecondsSince(started);
  return result;
}

}  // namespace

absl::StatusOr<ReplayResult> ReplayEpoch(const RunSpec& spec, const ReplayRequest& request,
                                         const Callbacks& callbacks) {
  return CatchTorchErrors<ReplayResult>([&] { return Replay(spec, request, callbacks); });
}

bool TraceChangedNothing(const ReplayResult& result, int64_t trace_batch) {
  return repro::TraceChangedNothing(result.batch_hashes, result.traced_batch_end_hash, trace_batch);
}

}  // namespace repro::engine
