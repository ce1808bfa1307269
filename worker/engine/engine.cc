#include "worker/engine/engine.h"

#include <ATen/Context.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/empty.h>
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
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "worker/engine/augment.h"
#include "worker/engine/checkpoint.h"
#include "data/dataset_check.h"
#include "worker/engine/environment.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/models.h"
#include "worker/engine/noop.h"
#include "worker/engine/schedule.h"
#include "worker/engine/shuffle.h"
#include "worker/engine/tensor_dataset.h"
#include "worker/engine/weights_export.h"

namespace repro::engine {
namespace {

constexpr int64_t kEvalBatch = 1000;

// The learning-rate, augmentation and export settings.
absl::Status ValidateRecipe(const RunSpec& spec) {
  if (absl::Status s = CheckLrSchedule(spec.lr_schedule); !s.ok()) return s;
  if (spec.plateau) {
    if (!(spec.plateau_factor > 0 && spec.plateau_factor < 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plateau_factor must be between 0 and 1 (exclusive), got ", spec.plateau_factor));
    }
    if (spec.plateau_patience < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("plateau_patience must be 0 or positive, got ", spec.plateau_patience));
    }
    if (!(spec.plateau_min_lr >= 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("plateau_min_lr must be 0 or positive, got ", spec.plateau_min_lr));
    }
  }
  if (spec.augment && !(spec.augment_shift >= 0 && spec.augment_shift <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("augment_shift must be between 0 and 0.5, got ", spec.augment_shift));
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const RunSpec& spec) {
  if (absl::Status s = data::CheckDatasetKind(spec.dataset_kind); !s.ok()) return s;
  if (absl::Status s = CheckModel(ModelOptions{spec.model_kind, spec.model_version,
                                                 spec.model_depth});
      !s.ok()) {
    return s;
  }
  if (absl::Status s = data::CheckSplitLimit("train_limit", spec.train_limit); !s.ok()) return s;
  if (absl::Status s = data::CheckSplitLimit("test_limit", spec.test_limit); !s.ok()) return s;
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
  return ValidateRecipe(spec);
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
  at::globalContext().setBenchmarkCuDNN(spec.cudnn_benchmark);
}

LrPolicyOptions LrOptions(const RunSpec& spec) {
  LrPolicyOptions options;
  options.schedule = spec.lr_schedule;
  options.base_lr = spec.lr;
  options.plateau = spec.plateau;
  options.plateau_options.factor = spec.plateau_factor;
  options.plateau_options.patience = spec.plateau_patience;
  options.plateau_options.min_lr = spec.plateau_min_lr;
  return options;
}

void SetLearningRate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

// The augmented copies of training samples `indices` (x: float [N, C, H, W],
// contiguous on the CPU), drawn as augment.h says, and the batch's draws.
at::Tensor AugmentedBatch(const at::Tensor& x, const int64_t* indices, int64_t count,
                          const RunSpec& spec, int epoch, std::vector<AugmentDraw>* draws) {
  const int64_t channels = x.size(1), height = x.size(2), width = x.size(3);
  const int64_t per_image = channels * height * width;
  at::Tensor out = at::empty({count, channels, height, width}, at::kFloat);
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  draws->resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    AugmentDraw& draw = (*draws)[static_cast<size_t>(i)];
    draw = DrawAugment(spec.augment_seed, epoch, indices[i], spec.augment_shift,
                       spec.augment_flip, height, width);
    AugmentImage(src + indices[i] * per_image, dst + i * per_image, channels, height, width,
                 draw);
  }
  return out;
}

// Writes `model`'s weights to <export_dir>/<name>.safetensors; returns the absolute path.
absl::StatusOr<std::string> Export(const ClassifierImpl& model, const RunSpec& spec,
                                   const std::string& name, const std::string& model_hash,
                                   const std::string& when) {
  std::error_code error;
  const std::filesystem::path dir = std::filesystem::absolute(spec.export_dir, error);
  if (!error) std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create the export directory ", spec.export_dir, ": ", error.message()));
  }
  const std::string path = (dir / (name + ".safetensors")).string();
  const SafetensorsMetadata metadata = {
      {"format", "pt"}, {"repro.model_hash", model_hash}, {"repro.weights", when},
      {"repro.model_kind", spec.model_kind}};
  if (absl::Status s = ExportModelWeights(model, path, metadata); !s.ok()) return s;
  return path;
}

struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};

// Keras's kernel_regularizer=l2(l2) on the model's regularized kernels (every conv
// kernel): the sum over them of l2 * sum(w^2), added to the loss in training and in
// evaluation alike, as Keras's loss and val_loss (and evaluate's score) include it.
// Undefined when l2 is 0 or the model has no such kernels.
at::Tensor L2Penalty(const ClassifierImpl& model, double l2) {
  at::Tensor penalty;
  if (!(l2 > 0)) return penalty;
  for (const at::Tensor& w : model.RegularizedWeights()) {
    const at::Tensor term = w.square().sum() * l2;
    penalty = penalty.defined() ? penalty + term : term;
  }
  return penalty;
}

// Also fills `predictions` (argmax class per example, in order) when it is not null.
Evaluation Evaluate(ClassifierImpl& model, const TensorSplit& split, const at::Device& device,
                    double l2, std::vector<uint8_t>* predictions = nullptr) {
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
    const at::Tensor predicted = logits.argmax(1);
    correct += predicted.eq(y).sum().item<int64_t>();
    if (predictions != nullptr) {
      const at::Tensor classes = predicted.to(at::kCPU).to(at::kByte).contiguous();
      const uint8_t* p = classes.data_ptr<uint8_t>();
      predictions->insert(predictions->end(), p, p + classes.numel());
    }
  }
  const at::Tensor penalty = L2Penalty(model, l2);
  model.train();
  return {loss_sum / static_cast<double>(n) + (penalty.defined() ? penalty.item<double>() : 0),
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

// The run itself; LibTorch may throw anywhere in here.
absl::StatusOr<RunResult> Train(const RunSpec& spec, const Callbacks& callbacks) {
  if (spec.model_kind == kNoopModel) return NoopRun(spec, callbacks);
  if (absl::Status s = ValidateSpec(spec); !s.ok()) return s;
  ApplyDeterminism(spec);
  if (spec.device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        "device cuda requested but this LibTorch has no CUDA (or no GPU visible)");
  }
  const at::Device device(spec.device == "cuda" ? at::kCUDA : at::kCPU);
  const std::map<std::string, std::string> environment = RunEnvironment(spec.device);

  auto data = LoadDataset(spec.dataset_kind, spec.dataset_path, spec.train_limit,
                          spec.test_limit);
  if (!data.ok()) return data.status();
  TensorSplit* const train = &data->train;
  TensorSplit* const test = &data->test;

  RunResult result;
  result.environment = environment;
  result.data_x_hash = HashBytes(train->x.data_ptr(), train->x.nbytes());
  result.data_y_hash = HashBytes(train->y.data_ptr(), train->y.nbytes());

  // Initialization depends only on init_seed: seed, build on the CPU, then move.
  InputShape shape;
  shape.channels = train->x.size(1);
  shape.height = train->x.size(2);
  shape.width = train->x.size(3);
  torch::manual_seed(spec.init_seed);
  auto made =
      MakeModel(ModelOptions{spec.model_kind, spec.model_version, spec.model_depth}, shape);
  if (!made.ok()) return made.status();
  std::shared_ptr<ClassifierImpl> model = std::move(*made);
  {
    ModelFingerprint initial = FingerprintModel(*model);
    result.initial_hash = std::move(initial.hash);
    result.initial_tensors = std::move(initial.tensors);
  }
  const bool exporting = !spec.export_dir.empty();
  if (exporting && spec.export_initial) {
    auto path = Export(*model, spec, "initial", result.initial_hash, "initial");
    if (!path.ok()) return path.status();
    result.initial_weights = std::move(*path);
  }
  model->to(device);
  model->train();
  std::unique_ptr<torch::optim::Optimizer> optimizer = MakeOptimizer(spec, *model);

  // Augmented batches are assembled on the CPU from train->x; otherwise the whole
  // training set moves to the device once.
  const at::Tensor train_x = spec.augment ? at::Tensor() : train->x.to(device);
  const at::Tensor train_y = train->y.to(device);
  const int64_t n = train->size();
  const int64_t batches = (n + spec.batch_size - 1) / spec.batch_size;  // last one partial

  LrPolicy lr_policy(LrOptions(spec));
  int first_epoch = 0;
  if (!spec.resume_state.empty()) {
    auto epochs = LoadCheckpoint(spec.resume_state, result.initial_hash, *model, *optimizer, device);
    if (!epochs.ok()) return epochs.status();
    if (static_cast<int>(epochs->size()) >= spec.epochs) {
      return absl::InvalidArgumentError("checkpoint: it has every epoch of the run already");
    }
    // The learning-rate policy is rebuilt by replaying the epochs it saw.
    for (const EpochRecord& e : *epochs) {
      lr_policy.BeginEpoch(e.epoch);
      lr_policy.EndEpoch(e.val_loss);
    }
    first_epoch = static_cast<int>(epochs->size());
    result.epochs = std::move(*epochs);
  }
  std::vector<AugmentDraw> draws;
  for (int epoch = first_epoch; epoch < spec.epochs; ++epoch) {
    const auto started = std::chrono::steady_clock::now();
    const double lr = lr_policy.BeginEpoch(epoch);
    SetLearningRate(*optimizer, lr);
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
      const at::Tensor index = at::from_blob(indices, {size}, at::kLong).to(device);
      at::Tensor x;
      if (spec.augment) {
        x = AugmentedBatch(train->x, indices, size, spec, epoch, &draws).to(device);
        if (spec.fingerprints) {
          digests.push_back(AugmentedBatchDigest(indices, draws.data(), static_cast<size_t>(size)));
        }
      } else {
        x = train_x.index_select(0, index);
        if (spec.fingerprints) digests.push_back(BatchDigest(indices, static_cast<size_t>(size)));
      }
      const at::Tensor y = train_y.index_select(0, index);

      optimizer->zero_grad();
      const at::Tensor logits = model->forward(x);
      at::Tensor loss = at::cross_entropy_loss(logits, y);
      if (const at::Tensor penalty = L2Penalty(*model, spec.l2); penalty.defined()) {
        loss = loss + penalty;
      }
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
    const bool last = epoch + 1 == spec.epochs;
    const Evaluation val = Evaluate(*model, *test, device, spec.l2,
                                    last && spec.keep_predictions ? &result.predictions : nullptr);
    record.val_loss = val.loss;
    record.val_accuracy = val.accuracy;
    record.lr = lr;
    lr_policy.EndEpoch(val.loss);
    if (spec.fingerprints) {
      record.batch_digest = HashSequence(digests);
      if (spec.keep_batch_digests) record.batch_digests = std::move(digests);
      record.weights_hash = FingerprintModel(*model).hash;
    }
    record.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (exporting && spec.export_every_epoch) {  // not counted in the epoch's seconds
      auto path = Export(*model, spec, absl::StrCat("epoch-", epoch), record.weights_hash,
                         absl::StrCat("after epoch ", epoch));
      if (!path.ok()) return path.status();
      result.epoch_weights.push_back(std::move(*path));
    }
    result.epochs.push_back(std::move(record));
    if (callbacks.on_epoch) callbacks.on_epoch(result.epochs.back());
    if (spec.checkpoint_every > 0 && (epoch + 1) % spec.checkpoint_every == 0 &&
        epoch + 1 < spec.epochs && callbacks.on_checkpoint) {
      callbacks.on_checkpoint(epoch, SaveCheckpoint(result.initial_hash, result.epochs, *model, *optimizer));
    }
  }

  // The last epoch's validation is the evaluation after training: nothing has changed
  // the weights since, so it is not run twice.
  result.test_loss = result.epochs.back().val_loss;
  result.test_accuracy = result.epochs.back().val_accuracy;
  ModelFingerprint final_fingerprint = FingerprintModel(*model);
  result.final_hash = std::move(final_fingerprint.hash);
  result.final_tensors = std::move(final_fingerprint.tensors);
  if (exporting && spec.export_final) {
    auto path = Export(*model, spec, "final", result.final_hash, "final");
    if (!path.ok()) return path.status();
    result.final_weights = std::move(*path);
  }
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
