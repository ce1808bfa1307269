// The steps of one run, shared by TrainRun (engine.h), which takes them all in order,
// and ReplayEpoch (replay.h), which takes the same steps up to one epoch and then wraps
// each of its batches (RunState::wrap_step): so a replay trains exactly as the run did,
// by the same code, and its weights after the epoch are the run's.
//
// Engine-internal: only engine.cc and replay.cc include this header.
//
// Thread safety: as TrainRun; the steps set process-wide LibTorch state.
#ifndef REPRO_WORKER_ENGINE_TRAINING_H_
#define REPRO_WORKER_ENGINE_TRAINING_H_

#include <c10/util/Exception.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/records.h"
#include "common/run_spec.h"
#include "worker/engine/engine.h"
#include "worker/engine/models.h"
#include "worker/engine/schedule.h"
#include "worker/engine/tensor_dataset.h"

namespace repro::engine {

// Calls `run`; a LibTorch (or other) exception becomes INTERNAL, so none escapes.
template <typename T>
absl::StatusOr<T> CatchTorchErrors(const std::function<absl::StatusOr<T>()>& run) {
  try {
    return run();
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("LibTorch failed during the run: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the run failed: ", e.what()));
  } catch (...) {
    return absl::InternalError("the run failed with an unknown exception");
  }
}

// Process-wide determinism settings (threads, deterministic algorithms, cuDNN); on a GPU
// they must be set before any CUDA work.
void ApplyDeterminism(const RunSpec& spec);

// What the steps of one run share: the spec, the data, the model and optimizer, and the
// result as it grows. StartRun builds it and hands it down the steps in order.
struct RunState {
  RunState(const RunSpec& spec, const Callbacks& callbacks, at::Device device,
           TensorDataset data);

  const RunSpec& spec;
  const Callbacks& callbacks;
  const at::Device device;
  TensorDataset data;
  RunResult result;
  std::shared_ptr<ClassifierImpl> model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  LrPolicy lr_policy;
  // Both splits on the device, moved there once (on the CPU, the same tensors as data's).
  TensorSplit train, test;
  int64_t n = 0;        // training samples
  int64_t batches = 0;  // per epoch, the last one partial
  // When set, TrainBatches hands it each batch's step instead of running it: the wrapper
  // runs `step` (the optimizer step on that batch, exactly as without it) and may look
  // at the model around it. An error ends the epoch with that status.
  std::function<absl::Status(int64_t batch, const std::function<void()>& step)> wrap_step;
};

// Checks the spec, sets the determinism switches, loads the data and builds the model
// from init_seed (fingerprinting and exporting the initial weights), on the device.
absl::StatusOr<std::unique_ptr<RunState>> StartRun(const RunSpec& spec,
                                                   const Callbacks& callbacks);

// Continues from spec.resume_state when there is one; returns the first epoch to train.
absl::StatusOr<int> Resume(RunState& s);

// What an epoch's batches add up to.
struct BatchTotals {
  double loss_sum = 0;  // per-sample loss, summed
  int64_t correct = 0;
  std::vector<std::string> digests;  // one per batch, when fingerprinting
  std::string diverged;  // RunResult::diverged when a batch's loss was not finite
};

// The learning rate of `epoch` from the policy, set on the optimizer; returned.
double StartEpoch(RunState& s, int epoch);

// Trains the epoch's batches (StartEpoch first) in the order the shuffle seed gives.
absl::StatusOr<BatchTotals> TrainBatches(RunState& s, int epoch);

// StartEpoch, TrainBatches, then validates, fingerprints and records the epoch, exports
// and checkpoints as the spec asks. A non-finite loss sets s.result.diverged instead.
absl::Status TrainEpoch(RunState& s, int epoch);

// The training state at a batch boundary, to step one batch twice (a replay's traced
// batch, replay.h): the weights, buffers, optimizer state and generators
// (SaveTrainingState), and which parameters have a gradient yet, since the first step
// writes its gradients where later ones add to zeroed ones (and -0 + 0 is +0).
struct StepSnapshot {
  std::string state;
  std::vector<bool> has_grad;  // per model->parameters()
};
StepSnapshot SaveStep(RunState& s);

// Puts the snapshot back exactly. The optimizer is built anew before its state is loaded,
// as loading adds to the state it has (an optimizer that had none before its first step
// would keep the traced step's).
absl::Status RestoreStep(RunState& s, const StepSnapshot& snapshot);

// The scores, the final fingerprint and the final export.
absl::Status FinishRun(RunState& s);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_TRAINING_H_
