// The training engine: one run spec in, a stream of epoch records and one final
// RunResult out. No gRPC here, so the engine is testable alone and builds on a GPU
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

namespace repro::engine {

struct RunSpec {
  // Data
  std::string dataset_kind = "fashion-mnist";  // fashion-mnist | mnist (IDX files)
  std::string dataset_path = "/usr/share/datasets/fashion-mnist";
  int64_t train_limit = 0;  // first N training samples; 0 = all
  int64_t test_limit = 0;   // first N test samples; 0 = all
  // Model and training
  std::string model_kind = "small-cnn";
  int64_t batch_size = 128;
  std::string optimizer = "adam";  // adam | sgd
  double lr = 0.001;
  double momentum = 0.9;           // sgd only
  int epochs = 1;
  // Seeds by source of randomness
  uint64_t init_seed = 0;
  uint64_t shuffle_seed = 0;
  // Determinism
  bool deterministic_algorithms = true;
  int threads = 1;                 // intra-op threads; 0 = leave LibTorch's default
  std::string device = "cpu";
  bool keep_batch_digests = false; // fill EpochRecord::batch_digests
};

struct Callbacks {
  // After every epoch, with its record (also kept in the final RunResult).
  std::function<void(const EpochRecord&)> on_epoch;
  // After every training batch: epoch (0-based), batches done in it, batches per epoch.
  std::function<void(int epoch, int64_t batch, int64_t batches)> on_batch;
  // Polled at batch boundaries; true stops the run with a CANCELLED status.
  std::function<bool()> should_stop;
};

// Trains one run. Bad input (missing or truncated data files, unknown model kind, a
// device this LibTorch cannot use) gives INVALID_ARGUMENT or FAILED_PRECONDITION with
// one sentence naming the file or value; LibTorch exceptions never escape.
absl::StatusOr<RunResult> TrainRun(const RunSpec& spec, const Callbacks& callbacks = {});

// "1.13.1" etc. and "cpu"/"cuda" availability, for worker registration.
std::string TorchVersion();
bool CudaAvailable();

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_ENGINE_H_
