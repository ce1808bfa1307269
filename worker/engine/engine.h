// The training engine: one run spec (common/run_spec.h) in, a stream of epoch records
// and one final RunResult out. No gRPC here, so the engine is testable alone and builds on a GPU
// host that has only LibTorch.
//
// Thread safety: TrainRun sets process-wide LibTorch state (thread count, deterministic
// algorithms, the default generator's seed), so one run at a time per process.
#ifndef REPRO_WORKER_ENGINE_ENGINE_H_
#define REPRO_WORKER_ENGINE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/records.h"
#include "common/run_spec.h"

namespace repro::engine {

struct Callbacks {
  // After every epoch, with its record (also kept in the final RunResult).
  std::function<void(const EpochRecord&)> on_epoch;
  // After every training batch: epoch (0-based), batches done in it, batches per epoch.
  std::function<void(int epoch, int64_t batch, int64_t batches)> on_batch;
  // Polled at batch boundaries; true stops the run with a CANCELLED status.
  std::function<bool()> should_stop;
  // After epoch `epoch` when spec.checkpoint_every says so: the state to resume from.
  std::function<void(int epoch, const std::string& state)> on_checkpoint;
};

// Trains one run. Bad input (missing or truncated data files, unknown model kind, a
// device this LibTorch cannot use) gives INVALID_ARGUMENT or FAILED_PRECONDITION with
// one sentence naming the file or value; LibTorch exceptions never escape. An error of
// the plan itself, which every run of it would meet alike (a model file that does not
// load, has no forward or does not fit the data), is marked IsPlanError.
absl::StatusOr<RunResult> TrainRun(const RunSpec& spec, const Callbacks& callbacks = {});

// `status` marked as the plan's own error (above).
absl::Status PlanError(absl::Status status);
bool IsPlanError(const absl::Status& status);

// "1.13.1" etc. and "cpu"/"cuda" availability, for worker registration.
std::string TorchVersion();
bool CudaAvailable();

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_ENGINE_H_
