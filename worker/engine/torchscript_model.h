// Model kind "torchscript": a module scripted and saved from Python
// (torch.jit.script(model).save("model.pt")), loaded with torch::jit::load and trained
// by the engine like the built-in models, behind the same ClassifierImpl interface.
//
// The mirror. TorchScriptClassifierImpl holds the jit module and registers its
// parameters and buffers as its own, in a tree of plain torch::nn::Module submodules
// with the jit module's names, sharing the very tensors (the same TensorImpl): the
// optimizer's in-place steps, a checkpoint's copy_ and nn::Module::to's set_data all
// reach the tensors the jit module's forward reads. So the engine's fingerprints,
// exports and checkpoints name them as Python's named_parameters() and
// named_buffers() do ("features.0.weight", "bn.running_mean"): parameters of each
// module before its submodules', modules in order, a tensor held twice listed once.
// forward calls the jit module's forward with the graph executor's optimizations off,
// so every op runs as in eager mode and the bits depend neither on how many calls came
// before (profiling, fusion) nor on the JIT's own autodiff; train(bool) switches the
// jit modules' `training` too. RegularizedWeights (RunSpec::l2): the weight of every
// module whose type is Conv1d, Conv2d or Conv3d.
//
// Initialization (ModelSpec::init):
//   "file"    the file's own weights; the init seed changes nothing.
//   "seeded"  drawn again on the CPU from LibTorch's default generator, which the
//             caller seeds with the run's init seed (torch::manual_seed) right before,
//             module by module in named_modules() order (the module itself first,
//             then its submodules, depth first), by the module's type name (Python's
//             original_name, e.g. "Conv2d"), as PyTorch's reset_parameters does:
//     Conv1d, Conv2d, Conv3d, Linear: weight kaiming_uniform_(a = sqrt(5)), then bias
//         uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in from the weight;
//     BatchNorm1d/2d/3d (any type named BatchNorm*), LayerNorm, GroupNorm: weight 1,
//         bias 0, running_mean 0, running_var 1, num_batches_tracked 0;
//     Embedding: weight normal(0, 1), the row padding_idx (when set) 0.
//   Every other parameter and buffer keeps the file's value and is listed in
//   ModelEnvironment()'s "model_init_kept".
//
// ModelEnvironment(): model_init ("file" or "seeded"), model_file (the path),
// model_file_hash (XXH3-128 of the bytes loaded, common/hash.h), model_file_sha256
// (the plan's, which the worker checked the file against before the run,
// worker/inputs.h; absent without a plan), model_type (the
// module's type name) and, when seeded, model_init_kept ("none" or the names, cut at
// about 1000 characters).
//
// Thread safety: as any model, not thread-safe; loading and seeded initialization use
// LibTorch's default generator and the process-wide graph-executor setting.
#ifndef REPRO_WORKER_ENGINE_TORCHSCRIPT_MODEL_H_
#define REPRO_WORKER_ENGINE_TORCHSCRIPT_MODEL_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/csrc/jit/api/module.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "worker/engine/models.h"

namespace repro::engine {

class TorchScriptClassifierImpl : public ClassifierImpl {
 public:
  // Mirrors `module`'s parameters and buffers (see above).
  explicit TorchScriptClassifierImpl(torch::jit::Module module);

  at::Tensor forward(at::Tensor x) override;
  void train(bool on = true) override;
  std::vector<at::Tensor> RegularizedWeights() const override;
  std::map<std::string, std::string> ModelEnvironment() const override { return environment_; }

  // Draws the weights again by the "seeded" rule above from the default generator;
  // returns the names (as named_parameters() then named_buffers()) of those it kept.
  std::vector<std::string> Reseed();

  void SetModelEnvironment(std::map<std::string, std::string> environment) {
    environment_ = std::move(environment);
  }

  // The jit module (a handle: it shares the module's state with this one).
  torch::jit::Module jit_module() const { return module_; }

 private:
  torch::jit::Module module_;
  std::map<std::string, std::string> environment_;
};

// OK for a non-empty file and init "file" or "seeded"; INVALID_ARGUMENT otherwise.
absl::Status CheckTorchScriptOptions(const std::string& file, const std::string& init);

// Loads `file` on the CPU (`sha256`: the plan's, recorded; the worker checked it),
// initializes it as `init` says, and checks that it fits `shape`: forward, in eval mode
// and without gradients, on 2 zero images [2, channels, height, width] must return a
// floating-point tensor [2, classes]. Returns it in training mode. INVALID_ARGUMENT
// naming the file and what is wrong when it cannot be read, is not a TorchScript module,
// has no forward method, or does not fit.
absl::StatusOr<std::shared_ptr<ClassifierImpl>> LoadTorchScriptModel(const std::string& file,
                                                                     const std::string& sha256,
                                                                     const std::string& init,
                                                                     const InputShape& shape);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_TORCHSCRIPT_MODEL_H_
