#include "worker/engine/engine.h"

#include <ATen/Context.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/from_blob.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "worker/engine/dataset.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/models.h"
#include "worker/engine/shuffle.h"
#include "worker/engine/tensor_dataset.h"

namespace repro::engine {
namespace {

constexpr int64_t kEvalBatch = 1000;

absl::Status ValidateSpec(const RunSpec& spec) {
  if (absl::Status s = CheckDatasetKind(spec.dataset_kind); !s.ok()) return s;
  if (absl::Status s = CheckModelKind(spec.model_kind); !s.ok()) return s;
  if (spec.train_limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("train_limit must be 0 (all) or positive, got ", spec.train_limit));
  }
  if (spec.test_limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("test_limit must be 0 (all) or positive, got ", spec.test_limit));
  }
  if (spec.batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size must be positive, got ", spec.batch_size));
  }
  if (spec.epochs < 1) {
    return absl::InvalidArgumentError(absl::StrCat("epochs must be at least 1, got ", spec.epochs));
  }
  if (!(spec.lr > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("lr must be positive, got ", spec.lr));
  }
  if (spec.optimizer != "adam" && spec.optimizer != "sgd") {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown optimizer \"", spec.optimizer, "\" (this engine has adam and sgd)"));
  }
  if (spec.optimizer == "sgd" && !(spec.momentum >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("momentum must be 0 or positive, got ", spec.momentum));
  }
  if (spec.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be 0 (LibTorch's default) or positive, got ", spec.threads));
  }
  if (spec.device != "cpu" && spec.device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown device \"", spec.device, "\" (this engine runs on cpu or cuda)"));
  }
  return absl::OkStatus();
}

// Process-wide determinism settings; cuBLAS reads its workspace setting when its
// first handle is created, so this runs before any CUDA work.
void ApplyDeterminism(const RunSpec& spec) {
  if (spec.device == "cuda" && spec.deterministic_algorithms) {
    const char* current = std::getenv("CUBLAS_WORKSPACE_CONFIG");
    const bool deterministic_already =
        current != nullptr &&
        (std::strcmp(current, ":4096:8") == 0 || std::strcmp(current, ":16:8") == 0);
    if (!deterministic_already) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/1);
  }
  if (spec.threads > 0) torch::set_num_threads(spec.threads);
  at::globalContext().setDeterministicAlgorithms(spec.deterministic_algorithms,
                                                 /*warn_only=*/false);
  at::globalContext().setDeterministicCuDNN(spec.deterministic_algorithms);
  at::globalContext().setBenchmarkCuDNN(false);
}

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

Evaluation Evaluate(ClassifierImpl& model, const TensorSplit& split, const at::Device& device) {
  torch::NoGradGuard no_grad;
  model.eval();
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t n = split.size();
  for (int64_t start = 0; start < n; start += kEvalBatch) {
    const int64_t end = std::min(n, start + kEvalBatch);
    const at::Tensor x = split.x.slice(0, start, end).to(device);
    const at::Tensor y = split.y.slice(0, start, end).to(device);
    const at::Tensor logits = model.forward(x);
    loss_sum += at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum).item<double>();
    correct += logits.argmax(1).eq(y).sum().item<int64_t>();
  }
  model.train();
  return {loss_sum / static_cast<double>(n),
          static_cast<double>(correct) / static_cast<double>(n)};
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const RunSpec& spec,
                                                       ClassifierImpl& model) {
  if (spec.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        model.parameters(), torch::optim::SGDOptions(spec.lr).momentum(spec.momentum));
  }
  return std::make_unique<torch::optim::Adam>(model.parameters(),
                                              torch::optim::AdamOptions(spec.lr));
}

// The run itself; LibTorch may throw anywhere in here.
absl::StatusOr<RunResult> Train(const RunSpec& spec, const Callbacks& callbacks) {
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  ApplyDeterminism(spec);
  if (spec.device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        "device cuda requested but this LibTorch has no CUDA (or no GPU visible)");
  }
  const at::Device device(spec.device == "cuda" ? at::kCUDA : at::kCPU);

  auto train = LoadSplit(spec.dataset_kind, spec.dataset_path, Split::kTrain, spec.train_limit);
  if (!train.ok()) return train.status();
  auto test = LoadSplit(spec.dataset_kind, spec.dataset_path, Split::kTest, spec.test_limit);
  if (!test.ok()) return test.status();

  RunResult result;
  result.data_x_hash = HashBytes(train->x.data_ptr(), train->x.nbytes());
  result.data_y_hash = HashBytes(train->y.data_ptr(), train->y.nbytes());

  // Initialization depends only on init_seed: seed, build on the CPU, then move.
  InputShape shape;
  shape.channels = train->x.size(1);
  shape.height = train->x.size(2);
  shape.width = train->x.size(3);
  torch::manual_seed(spec.init_seed);
  auto made = MakeModel(spec.model_kind, shape);
  if (!made.ok()) return made.status();
  std::shared_ptr<ClassifierImpl> model = std::move(*made);
  {
    ModelFingerprint initial = FingerprintModel(*model);
    result.initial_hash = std::move(initial.hash);
    result.initial_tensors = std::move(initial.tensors);
  }
  model->to(device);
  model->train();
  std::unique_ptr<torch::optim::Optimizer> optimizer = MakeOptimizer(spec, *model);

  const at::Tensor train_x = train->x.to(device);
  const at::Tensor train_y = train->y.to(device);
  const int64_t n = train->size();
  const int64_t batches = (n + spec.batch_size - 1) / spec.batch_size;  // last one partial

  for (int epoch = 0; epoch < spec.epochs; ++epoch) {
    const auto started = std::chrono::steady_clock::now();
    std::vector<int64_t> order = EpochOrder(n, spec.shuffle_seed, epoch);
    std::vector<std::string> digests;
    digests.reserve(static_cast<size_t>(batches));
    double loss_sum = 0;
    int64_t correct = 0;
    for (int64_t batch = 0; batch < batches; ++batch) {
      if (callbacks.should_stop && callbacks.should_stop()) {
        return absl::CancelledError(
            absl::StrCat("run stopped on request at epoch ", epoch, ", batch ", batch));
      }
      const int64_t start = batch * spec.batch_size;
      const int64_t size = std::min(spec.batch_size, n - start);
      int64_t* indices = order.data() + start;
      digests.push_back(BatchDigest(indices, static_cast<size_t>(size)));
      const at::Tensor index = at::from_blob(indices, {size}, at::kLong).to(device);
      const at::Tensor x = train_x.index_select(0, index);
      const at::Tensor y = train_y.index_select(0, index);

      optimizer->zero_grad();
      const at::Tensor logits = model->forward(x);
      const at::Tensor loss = at::cross_entropy_loss(logits, y);
      loss.backward();
      optimizer->step();

      loss_sum += loss.item<double>() * static_cast<double>(size);
      correct += logits.detach().argmax(1).eq(y).sum().item<int64_t>();
      if (callbacks.on_batch) callbacks.on_batch(epoch, batch + 1, batches);
    }

    EpochRecord record;
    record.epoch = epoch;
    record.loss = loss_sum / static_cast<double>(n);
    record.accuracy = static_cast<double>(correct) / static_cast<double>(n);
    const Evaluation val = Evaluate(*model, *test, device);
    record.val_loss = val.loss;
    record.val_accuracy = val.accuracy;
    record.batch_digest = HashSequence(digests);
    if (spec.keep_batch_digests) record.batch_digests = std::move(digests);
    record.weights_hash = FingerprintModel(*model).hash;
    record.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    result.epochs.push_back(std::move(record));
    if (callbacks.on_epoch) callbacks.on_epoch(result.epochs.back());
  }

  // The last epoch's validation is the evaluation after training: nothing has changed
  // the weights since, so it is not run twice.
  result.test_loss = result.epochs.back().val_loss;
  result.test_accuracy = result.epochs.back().val_accuracy;
  ModelFingerprint final_fingerprint = FingerprintModel(*model);
  result.final_hash = std::move(final_fingerprint.hash);
  result.final_tensors = std::move(final_fingerprint.tensors);
  return result;
}

}  // namespace

absl::StatusOr<RunResult> TrainRun(const RunSpec& spec, const Callbacks& callbacks) {
  try {
    return Train(spec, callbacks);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat("LibTorch failed during the run: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the run failed: ", e.what()));
  } catch (...) {
    return absl::InternalError("the run failed with an unknown exception");
  }
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
