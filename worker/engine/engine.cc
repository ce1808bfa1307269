#include "worker/engine/engine.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "worker/engine/environment.h"
#include "worker/engine/noop.h"
#include "worker/engine/training.h"

namespace repro::engine {
namespace {

// Model kind noop (noop.h): no data, no training, but the device must be usable and
// the environment is recorded, since checking the fleet is the point.
absl::StatusOr<RunResult> NoopRun(const RunSpec& spec, const Callbacks& callbacks) {
  if (spec.epochs < 1) {
    return absl::InvalidArgumentError(absl::StrCat("epochs must be at least 1, got ", spec.epochs));
  }
  if (spec.device != "cpu" && spec.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown device \"", spec.device, "\" (this engine runs on cpu or cuda)"));
  }
  ApplyDeterminism(spec);
  if (spec.device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        "device cuda requested but this LibTorch has no CUDA (or no GPU visible)");
  }
  if (callbacks.should_stop && callbacks.should_stop()) {
    return absl::CancelledError("run stopped on request at epoch 0, batch 0");
  }
  RunResult result = NoopResult(spec.epochs, spec.lr);
  result.environment = RunEnvironment(spec.device);
  if (callbacks.on_epoch) {
    for (const EpochRecord& record : result.epochs) callbacks.on_epoch(record);
  }
  return result;
}

// The run itself, step by step (training.h); LibTorch may throw anywhere in here.
absl::StatusOr<RunResult> Train(const RunSpec& spec, const Callbacks& callbacks) {
  if (spec.model_kind == kNoopModel) return NoopRun(spec, callbacks);
  ASSIGN_OR_RETURN(std::unique_ptr<RunState> s, StartRun(spec, callbacks));
  ASSIGN_OR_RETURN(const int first_epoch, Resume(*s));
  for (int epoch = first_epoch; epoch < spec.epochs && s->result.diverged.empty(); ++epoch) {
    RETURN_IF_ERROR(TrainEpoch(*s, epoch));
  }
  RETURN_IF_ERROR(FinishRun(*s));
  return std::move(s->result);
}

}  // namespace

absl::StatusOr<RunResult> TrainRun(const RunSpec& spec, const Callbacks& callbacks) {
  return CatchTorchErrors<RunResult>([&] { return Train(spec, callbacks); });
}

namespace {
constexpr char kPlanErrorPayload[] = "repro/plan-error";
}  // namespace

absl::Status PlanError(absl::Status status) {
  status.SetPayload(kPlanErrorPayload, absl::Cord("1"));
  return status;
}

bool IsPlanError(const absl::Status& status) {
  return status.GetPayload(kPlanErrorPayload).has_value();
}

std::string TorchVersion() {
  return absl::StrCat(TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR, ".", TORCH_VERSION_PATCH);
}

bool CudaAvailable() {
  try {
    return torch::cuda::is_available();
  } catch (...) {
    return false;
  }
}

}  // namespace repro::engine
