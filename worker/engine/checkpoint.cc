#include "worker/engine/checkpoint.h"

#include <ATen/Context.h>
#include <ATen/core/Generator.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace repro::engine {
namespace {

constexpr char kMagic[] = "repro-checkpoint 1";

constexpr char kCpuGenerator[] = "generator.cpu";
constexpr char kCudaGenerator[] = "generator.cuda";

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("checkpoint: ", what));
}

std::string Real(double value) { return absl::StrFormat("%.17g", value); }

// LibTorch's default generator for `device`'s type (CPU, or the model's GPU).
at::Generator DefaultGenerator(const at::Device& device) {
  return at::globalContext().defaultGenerator(device);
}

at::Tensor GeneratorState(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void SetGeneratorState(at::Generator& generator, const at::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// One epoch record per line: numbers, then the digests, space-separated.
std::string EpochLine(const EpochRecord& e) {
  std::string line = absl::StrCat(e.epoch, " ", Real(e.loss), " ", Real(e.accuracy), " ",
                                  Real(e.val_loss), " ", Real(e.val_accuracy), " ",
                                  Real(e.seconds), " ", Real(e.lr), " ", e.batch_digest, " ",
                                  e.weights_hash, " ", e.batch_digests.size());
  for (const auto& d : e.batch_digests) absl::StrAppend(&line, " ", d);
  return line;
}

bool ParseEpochLine(const std::string& line, EpochRecord* e) {
  std::istringstream in(line);
  size_t digests = 0;
  if (!(in >> e->epoch >> e->loss >> e->accuracy >> e->val_loss >> e->val_accuracy >>
        e->seconds >> e->lr >> e->batch_digest >> e->weights_hash >> digests)) {
    return false;
  }
  if (digests > (1u << 24)) return false;
  e->batch_digests.resize(digests);
  for (auto& d : e->batch_digests) {
    if (!(in >> d)) return false;
  }
  return true;
}

}  // namespace

std::string SaveTrainingState(const torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  for (const auto& p : model.named_parameters()) archive.write("model." + p.key(), p.value().detach());
  for (const auto& b : model.named_buffers()) archive.write("model." + b.key(), b.value(), true);
  // The default generators, for a model that draws as it trains (a TorchScript model's
  // dropout): on the CPU, and on the GPU the model is on.
  archive.write(kCpuGenerator, GeneratorState(DefaultGenerator(at::kCPU)));
  const std::vector<at::Tensor> parameters = model.parameters();
  if (!parameters.empty() && parameters.front().is_cuda()) {
    archive.write(kCudaGenerator, GeneratorState(DefaultGenerator(parameters.front().device())));
  }
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  std::ostringstream tensors;
  archive.save_to(tensors);
  return tensors.str();
}

std::string SaveCheckpoint(const std::string& initial_hash, const std::vector<EpochRecord>& epochs,
                           const torch::nn::Module& model, torch::optim::Optimizer& optimizer) {
  const std::string state = SaveTrainingState(model, optimizer);
  std::string out = absl::StrCat(kMagic, "\ninitial ", initial_hash, "\nepochs ", epochs.size(), "\n");
  for (const EpochRecord& e : epochs) absl::StrAppend(&out, EpochLine(e), "\n");
  absl::StrAppend(&out, "archive ", state.size(), "\n", state);
  return out;
}

absl::Status LoadTrainingState(const std::string& state, torch::nn::Module& model,
                               torch::optim::Optimizer& optimizer, const torch::Device& device) {
  std::istringstream stream(state);
  torch::serialize::InputArchive archive;
  archive.load_from(stream, device);
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    at::Tensor saved;
    archive.read("model." + p.key(), saved);
    if (!saved.sizes().equals(p.value().sizes())) return Bad(absl::StrCat("tensor ", p.key(), " has another shape"));
    p.value().copy_(saved);
  }
  for (auto& b : model.named_buffers()) {
    at::Tensor saved;
    archive.read("model." + b.key(), saved, true);
    if (!saved.sizes().equals(b.value().sizes())) return Bad(absl::StrCat("buffer ", b.key(), " has another shape"));
    b.value().copy_(saved);
  }
  // A checkpoint written before the generators were saved has none.
  at::Tensor generator_state;
  if (archive.try_read(kCpuGenerator, generator_state)) {
    at::Generator cpu = DefaultGenerator(at::kCPU);
    SetGeneratorState(cpu, generator_state.to(at::kCPU));
  }
  if (device.is_cuda() && archive.try_read(kCudaGenerator, generator_state)) {
    at::Generator cuda = DefaultGenerator(device);
    SetGeneratorState(cuda, generator_state.to(at::kCPU));
  }
  torch::serialize::InputArchive optimizer_archive;
  archive.read("optimizer", optimizer_archive);
  optimizer.load(optimizer_archive);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EpochRecord>> LoadCheckpoint(const std::string& bytes,
                                                        const std::string& initial_hash,
                                                        torch::nn::Module& model,
                                                        torch::optim::Optimizer& optimizer,
                                                        const torch::Device& device) {
  size_t pos = 0;
  auto next_line = [&](std::string* line) {
    const size_t end = bytes.find('\n', pos);
    if (end == std::string::npos) return false;
    *line = bytes.substr(pos, end - pos);
    pos = end + 1;
    return true;
  };
  std::string line;
  if (!next_line(&line) || line != kMagic) return Bad("not a repro checkpoint");
  if (!next_line(&line) || line.rfind("initial ", 0) != 0) return Bad("no initial model hash");
  if (line.substr(8) != initial_hash) {
    return Bad(absl::StrCat("saved by a run whose initial model is ", line.substr(8),
                            ", not this run's ", initial_hash));
  }
  if (!next_line(&line) || line.rfind("epochs ", 0) != 0) return Bad("no epoch count");
  const long count = std::strtol(line.c_str() + 7, nullptr, 10);
  if (count <= 0 || count > 1000000) return Bad("bad epoch count");
  std::vector<EpochRecord> epochs(static_cast<size_t>(count));
  for (long i = 0; i < count; ++i) {
    if (!next_line(&line) || !ParseEpochLine(line, &epochs[i]) || epochs[i].epoch != i) {
      return Bad(absl::StrCat("epoch record ", i, " is malformed"));
    }
  }
  if (!next_line(&line) || line.rfind("archive ", 0) != 0) return Bad("no tensor archive");
  const size_t size = std::strtoull(line.c_str() + 8, nullptr, 10);
  if (size != bytes.size() - pos) return Bad("the tensor archive is truncated");

  RETURN_IF_ERROR(LoadTrainingState(bytes.substr(pos), model, optimizer, device));
  return epochs;
}

}  // namespace repro::engine
