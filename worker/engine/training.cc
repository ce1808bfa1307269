#include "worker/engine/training.h"

#include <ATen/Context.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/cross_entropy_loss.h>
#include <ATen/ops/empty.h>
#include <torch/cuda.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
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
#include "common/status_macros.h"
#include "data/dataset_check.h"
#include "worker/engine/batches.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/environment.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/keras_adam.h"
#include "worker/engine/op_trace.h"
#include "worker/engine/weights_export.h"

namespace repro::engine {
namespace {

constexpr int64_t kEvalBatch = 1000;
// On a GPU, the batches' losses are checked for a non-finite value every this many
// batches (each check waits for the device); on the CPU every batch (no wait there).
constexpr int64_t kCudaCheckEvery = 64;

// The model the spec asks for; torchscript's file is its input of role "model".
ModelOptions ModelOptionsFor(const RunSpec& spec) {
  ModelOptions options(spec.model_kind, spec.model_version, spec.model_depth);
  options.init = spec.model_init;
  for (const InputFile& input : spec.inputs) {
    if (input.role != "model") continue;
    options.file = input.path;
    options.file_sha256 = input.sha256;
  }
  return options;
}

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
  if (absl::Status s = CheckModel(ModelOptionsFor(spec)); !s.ok()) return s;
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
  if (spec.optimizer != "adam" && spec.optimizer != "adam-keras" && spec.optimizer != "sgd") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown optimizer \"", spec.optimizer,
                     "\" (this engine has adam, adam-keras and sgd)"));
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

// `split` is on the model's device. Also fills `predictions` (argmax class per example,
// in order) when it is not null. The per-batch sums stay on the device until the end,
// then add up in double in batch order, as when each was read at once.
Evaluation Evaluate(ClassifierImpl& model, const TensorSplit& split, double l2,
                    std::vector<uint8_t>* predictions = nullptr) {
  torch::NoGradGuard no_grad;
  model.eval();
  const int64_t n = split.size();
  const int64_t batches = (n + kEvalBatch - 1) / kEvalBatch;
  const at::TensorOptions on_device = split.x.options();
  at::Tensor losses = at::empty({batches}, on_device.dtype(at::kFloat));
  at::Tensor right = at::empty({batches}, on_device.dtype(at::kLong));
  std::vector<at::Tensor> classes;
  for (int64_t b = 0; b < batches; ++b) {
    const int64_t start = b * kEvalBatch, end = std::min(n, start + kEvalBatch);
    const at::Tensor y = split.y.slice(0, start, end);
    const at::Tensor logits = model.forward(split.x.slice(0, start, end));
    losses[b].copy_(at::cross_entropy_loss(logits, y, {}, at::Reduction::Sum));
    const at::Tensor predicted = logits.argmax(1);
    right[b].copy_(predicted.eq(y).sum());
    if (predictions != nullptr) classes.push_back(predicted.to(at::kByte));
  }
  const at::Tensor penalty = L2Penalty(model, l2);
  model.train();
  const at::Tensor loss_sums = losses.to(at::kCPU).contiguous();
  double loss_sum = 0;
  for (int64_t b = 0; b < batches; ++b) loss_sum += static_cast<double>(loss_sums.data_ptr<float>()[b]);
  const int64_t correct = right.sum().item<int64_t>();
  if (predictions != nullptr && !classes.empty()) {
    const at::Tensor all = at::cat(classes).to(at::kCPU).contiguous();
    predictions->insert(predictions->end(), all.data_ptr<uint8_t>(),
                        all.data_ptr<uint8_t>() + all.numel());
  }
  return {loss_sum / static_cast<double>(n) + (penalty.defined() ? penalty.item<double>() : 0),
          static_cast<double>(correct) / static_cast<double>(n)};
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const RunSpec& spec,
                                                       ClassifierImpl& model) {
  if (spec.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        model.parameters(), torch::optim::SGDOptions(spec.lr).momentum(spec.momentum));
  }
  if (spec.optimizer == "adam-keras") {
    return std::make_unique<KerasAdam>(model.parameters(), KerasAdamOptions(spec.lr));
  }
  return std::make_unique<torch::optim::Adam>(model.parameters(),
                                              torch::optim::AdamOptions(spec.lr));
}

// The model's fingerprint as it is now (initial or final), and its weights in
// <export_dir>/<name>.safetensors when the spec exports them.
absl::Status Snapshot(RunState& s, const std::string& name, bool exported, std::string* hash,
                      std::vector<TensorHash>* tensors, std::string* weights) {
  ModelFingerprint fingerprint = FingerprintModel(*s.model);
  *hash = std::move(fingerprint.hash);
  *tensors = std::move(fingerprint.tensors);
  if (!s.spec.export_dir.empty() && exported) {
    ASSIGN_OR_RETURN(*weights, Export(*s.model, s.spec, name, *hash, name));
  }
  return absl::OkStatus();
}

// The spec checked, the process-wide determinism switches set, the device it asks for.
absl::StatusOr<at::Device> PrepareDevice(const RunSpec& spec) {
  RETURN_IF_ERROR(ValidateSpec(spec));
  ApplyDeterminism(spec);
  if (spec.device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        "device cuda requested but this LibTorch has no CUDA (or no GPU visible)");
  }
  return at::Device(spec.device == "cuda" ? at::kCUDA : at::kCPU);
}

// Initialization depends only on init_seed (and a torchscript model's file): seed, build
// on the CPU, fingerprint (and export) the initial weights, then move to the device.
absl::Status BuildModel(RunState& s) {
  const TensorSplit& train = s.data.train;
  InputShape shape;
  shape.channels = train.x.size(1);
  shape.height = train.x.size(2);
  shape.width = train.x.size(3);
  shape.classes = s.data.classes;
  torch::manual_seed(s.spec.init_seed);
  ASSIGN_OR_RETURN(s.model, MakeModel(ModelOptionsFor(s.spec), shape));
  for (const auto& [key, value] : s.model->ModelEnvironment()) s.result.environment[key] = value;
  RETURN_IF_ERROR(Snapshot(s, "initial", s.spec.export_initial, &s.result.initial_hash,
                           &s.result.initial_tensors, &s.result.initial_weights));
  s.model->to(s.device);
  s.model->train();
  s.optimizer = MakeOptimizer(s.spec, *s.model);
  s.train = TensorSplit{train.x.to(s.device), train.y.to(s.device)};
  s.test = TensorSplit{s.data.test.x.to(s.device), s.data.test.y.to(s.device)};
  s.n = train.size();
  s.batches = (s.n + s.spec.batch_size - 1) / s.spec.batch_size;
  return absl::OkStatus();
}

// One optimizer step on `batch`; its loss and correct count go to `metrics`. The phase
// scopes cost nothing unless an op tracer (op_trace.h) is on, which traces only the ops
// inside them.
void Step(RunState& s, const EpochBatches::Batch& batch, int64_t index, BatchMetrics& metrics) {
  s.optimizer->zero_grad();
  at::Tensor logits, loss;
  {
    const PhaseScope forward(OpPhase::kForward);
    logits = s.model->forward(batch.x);
    loss = at::cross_entropy_loss(logits, batch.y);
    if (const at::Tensor penalty = L2Penalty(*s.model, s.spec.l2); penalty.defined()) {
      loss = loss + penalty;
    }
  }
  {
    const PhaseScope backward(OpPhase::kBackward);
    loss.backward();
  }
  {
    const PhaseScope update(OpPhase::kUpdate);
    s.optimizer->step();
  }
  metrics.Record(index, loss, logits.detach().argmax(1).eq(batch.y).sum());
}

}  // namespace

// cuBLAS reads its workspace setting when its first handle is created, so this runs
// before any CUDA work.
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

RunState::RunState(const RunSpec& spec, const Callbacks& callbacks, at::Device device,
                   TensorDataset data)
    : spec(spec), callbacks(callbacks), device(device), data(std::move(data)),
      lr_policy(LrOptions(spec)) {}

absl::StatusOr<std::unique_ptr<RunState>> StartRun(const RunSpec& spec,
                                                   const Callbacks& callbacks) {
  ASSIGN_OR_RETURN(const at::Device device, PrepareDevice(spec));
  std::map<std::string, std::string> environment = RunEnvironment(spec.device);
  ASSIGN_OR_RETURN(TensorDataset data, LoadDataset(spec));
  auto s = std::make_unique<RunState>(spec, callbacks, device, std::move(data));
  s->result.environment = std::move(environment);
  const TensorSplit& train = s->data.train;
  s->result.data_x_hash = HashBytes(train.x.data_ptr(), train.x.nbytes());
  s->result.data_y_hash = HashBytes(train.y.data_ptr(), train.y.nbytes());
  RETURN_IF_ERROR(BuildModel(*s));
  return s;
}

absl::StatusOr<int> Resume(RunState& s) {
  if (s.spec.resume_state.empty()) return 0;
  ASSIGN_OR_RETURN(std::vector<EpochRecord> epochs,
                   LoadCheckpoint(s.spec.resume_state, s.result.initial_hash, *s.model,
                                  *s.optimizer, s.device));
  if (static_cast<int>(epochs.size()) >= s.spec.epochs) {
    return absl::InvalidArgumentError("checkpoint: it has every epoch of the run already");
  }
  // The learning-rate policy is rebuilt by replaying the epochs it saw.
  for (const EpochRecord& e : epochs) {
    s.lr_policy.BeginEpoch(e.epoch);
    s.lr_policy.EndEpoch(e.val_loss);
  }
  s.result.epochs = std::move(epochs);
  return static_cast<int>(s.result.epochs.size());
}

double StartEpoch(RunState& s, int epoch) {
  const double lr = s.lr_policy.BeginEpoch(epoch);
  SetLearningRate(*s.optimizer, lr);
  return lr;
}

// CANCELLED when the
// caller asks to stop at a batch boundary. A batch whose loss is not finite ends the
// epoch with totals.diverged set: the weights it stepped to are no model, and every
// later step would only carry the NaN on. On the CPU the check follows every batch, so
// the run stops at that batch; on a GPU it follows every kCudaCheckEvery batches (the
// message still names the first such batch). A run that stays finite computes exactly
// what it would without the check.
absl::StatusOr<BatchTotals> TrainBatches(RunState& s, int epoch) {
  const EpochBatches batches(s.train.x, s.train.y, s.spec, epoch);
  BatchMetrics metrics(s.batches, s.device);
  const int64_t check_every = s.device.is_cpu() ? 1 : kCudaCheckEvery;
  BatchTotals totals;
  totals.digests.reserve(static_cast<size_t>(s.batches));
  int64_t checked = 0;  // batches whose losses were found finite
  for (int64_t batch = 0; batch < s.batches; ++batch) {
    if (s.callbacks.should_stop && s.callbacks.should_stop()) {
      return absl::CancelledError(
          absl::StrCat("run stopped on request at epoch ", epoch, ", batch ", batch));
    }
    EpochBatches::Batch inputs = batches.Get(batch);
    if (s.spec.fingerprints) totals.digests.push_back(std::move(inputs.digest));
    const auto step = [&] { Step(s, inputs, batch, metrics); };
    if (s.wrap_step) {
      RETURN_IF_ERROR(s.wrap_step(batch, step));
    } else {
      step();
    }
    if (s.callbacks.on_batch) s.callbacks.on_batch(epoch, batch + 1, s.batches);
    if (batch + 1 - checked < check_every && batch + 1 < s.batches) continue;
    if (auto bad = metrics.FirstNonFinite(checked, batch + 1)) {
      totals.diverged = absl::StrCat(kDivergedPrefix, "loss ", bad->second, " at epoch ", epoch,
                                     ", batch ", bad->first);
      return totals;
    }
    checked = batch + 1;
  }
  metrics.Totals(batches, &totals.loss_sum, &totals.correct);
  return totals;
}

// Trains one epoch, validates, fingerprints and records it, then exports and
// checkpoints as the spec asks. An epoch whose training or validation loss is not
// finite is not recorded: it sets s.result.diverged, and the run ends there.
absl::Status TrainEpoch(RunState& s, int epoch) {
  const RunSpec& spec = s.spec;
  const auto started = std::chrono::steady_clock::now();
  const double lr = StartEpoch(s, epoch);
  ASSIGN_OR_RETURN(BatchTotals totals, TrainBatches(s, epoch));
  if (!totals.diverged.empty()) {
    s.result.diverged = std::move(totals.diverged);
    return absl::OkStatus();
  }

  EpochRecord record;
  record.epoch = epoch;
  record.loss = totals.loss_sum / static_cast<double>(s.n);
  record.accuracy = static_cast<double>(totals.correct) / static_cast<double>(s.n);
  const bool last = epoch + 1 == spec.epochs;
  const Evaluation val = Evaluate(*s.model, s.test, spec.l2,
                                  last && spec.keep_predictions ? &s.result.predictions : nullptr);
  if (!std::isfinite(val.loss)) {  // the last step left weights that overflow
    s.result.diverged =
        absl::StrCat(kDivergedPrefix, "validation loss ", val.loss, " after epoch ", epoch);
    return absl::OkStatus();
  }
  record.val_loss = val.loss;
  record.val_accuracy = val.accuracy;
  record.lr = lr;
  s.lr_policy.EndEpoch(val.loss);
  if (spec.fingerprints) {
    record.batch_digest = HashSequence(totals.digests);
    if (spec.keep_batch_digests) record.batch_digests = std::move(totals.digests);
    record.weights_hash = FingerprintModel(*s.model).hash;
  }
  record.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!spec.export_dir.empty() && spec.export_every_epoch) {  // not counted in the seconds
    ASSIGN_OR_RETURN(std::string path,
                     Export(*s.model, spec, absl::StrCat("epoch-", epoch), record.weights_hash,
                            absl::StrCat("after epoch ", epoch)));
    s.result.epoch_weights.push_back(std::move(path));
  }
  s.result.epochs.push_back(std::move(record));
  if (s.callbacks.on_epoch) s.callbacks.on_epoch(s.result.epochs.back());
  if (spec.checkpoint_every > 0 && (epoch + 1) % spec.checkpoint_every == 0 &&
      epoch + 1 < spec.epochs && s.callbacks.on_checkpoint) {
    s.callbacks.on_checkpoint(
        epoch, SaveCheckpoint(s.result.initial_hash, s.result.epochs, *s.model, *s.optimizer));
  }
  return absl::OkStatus();
}

StepSnapshot SaveStep(RunState& s) {
  StepSnapshot snapshot;
  snapshot.state = SaveTrainingState(*s.model, *s.optimizer);
  for (const at::Tensor& p : s.model->parameters()) snapshot.has_grad.push_back(p.grad().defined());
  return snapshot;
}

absl::Status RestoreStep(RunState& s, const StepSnapshot& snapshot) {
  s.optimizer = MakeOptimizer(s.spec, *s.model);
  RETURN_IF_ERROR(LoadTrainingState(snapshot.state, *s.model, *s.optimizer, s.device));
  std::vector<at::Tensor> parameters = s.model->parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (!snapshot.has_grad[i]) parameters[i].mutable_grad().reset();
  }
  return absl::OkStatus();
}

// The scores, the final fingerprint and the final export. A diverged run has no
// scores (RunResult::diverged) but its final weights are fingerprinted all the same.
absl::Status FinishRun(RunState& s) {
  if (!s.result.diverged.empty()) {
    s.result.test_loss = 0;
    s.result.test_accuracy = 0;
    s.result.predictions.clear();  // of weights that no longer give a number
  } else {
    // The last epoch's validation is the evaluation after training: nothing has changed
    // the weights since, so it is not run twice.
    s.result.test_loss = s.result.epochs.back().val_loss;
    s.result.test_accuracy = s.result.epochs.back().val_accuracy;
  }
  return Snapshot(s, "final", s.spec.export_final, &s.result.final_hash,
                  &s.result.final_tensors, &s.result.final_weights);
}

}  // namespace repro::engine
