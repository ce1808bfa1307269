// The models the engine trains, built by kind from the plan's `model.kind`. Each is a
// torch::nn::Module in the pytorch/examples style (XImpl + TORCH_MODULE(X)) deriving
// from ClassifierImpl, so the training loop sees one interface whatever the model.
// The kinds: "small-cnn" (below), "resnet" (resnet.h: Keras's ResNet v1 and v2) and
// "torchscript" (torchscript_model.h: a module scripted and saved from Python, loaded
// from its file, its parameters and buffers mirrored into this same interface; a model
// from another format, such as torch.export, would come in the same way).
// To add a model: derive from ClassifierImpl, register submodules in a fixed order (the
// order is part of the model's fingerprint) and add its kind to MakeModel, CheckModel
// and CheckModelKind in models.cc.
//
// Thread safety: a model is not thread-safe; MakeModel draws from LibTorch's global
// generator, so the caller seeds it (torch::manual_seed) right before.
#ifndef REPRO_WORKER_ENGINE_MODELS_H_
#define REPRO_WORKER_ENGINE_MODELS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace repro::engine {

// Images in, one logit per class out.
struct ClassifierImpl : torch::nn::Module {
  // x: float32 [N, channels, height, width]; returns float32 [N, classes] logits.
  virtual at::Tensor forward(at::Tensor x) = 0;

  // The weights an L2 penalty applies to (RunSpec::l2; Keras's kernel_regularizer on
  // every Conv2D of its ResNets): by default the kernel (weight) of every Conv2d in
  // the model, in module order; never biases, batch-norm or dense weights.
  virtual std::vector<at::Tensor> RegularizedWeights() const;

  // What RunResult::environment records about the model besides the spec (where a
  // loaded model came from, how it was initialized); none for the built-in models.
  virtual std::map<std::string, std::string> ModelEnvironment() const { return {}; }
};

// What a model is built for.
struct InputShape {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t classes = 10;
};

// "small-cnn": two 5x5 convolutions (8 and 16 channels), each with ReLU and 2x2 max
// pooling, then a 64-unit hidden layer and the classifier. Small enough that one
// Fashion-MNIST epoch of 10,000 images takes seconds on one CPU thread.
struct SmallCnnImpl : ClassifierImpl {
  explicit SmallCnnImpl(const InputShape& shape = {});
  at::Tensor forward(at::Tensor x) override;

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  torch::nn::Linear fc1{nullptr};
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(SmallCnn);

// Which model to build (RunSpec's model_kind, model_version, model_depth, model_init
// and the input of role "model").
struct ModelOptions {
  ModelOptions(std::string kind = "small-cnn", int version = 2, int depth = 29)
      : kind(std::move(kind)), version(version), depth(depth) {}

  std::string kind;   // small-cnn | resnet | torchscript
  int version;        // resnet: 1 (depth 6n+2) or 2 (depth 9n+2)
  int depth;          // resnet
  std::string file;   // torchscript: the module's file (torch.jit.save)
  // torchscript: the SHA-256 the plan addressed the file by (InputFile::sha256), which
  // the bytes read must have; empty: not checked (repro-train).
  std::string file_sha256;
  std::string init = "file";  // torchscript: file | seeded (torchscript_model.h)
};

// OK for the model kinds MakeModel builds; INVALID_ARGUMENT naming the kind otherwise.
absl::Status CheckModelKind(const std::string& kind);

// CheckModelKind, for resnet a version and depth that Keras's example builds, for
// torchscript a file and an init of file or seeded (the file itself is read by MakeModel).
absl::Status CheckModel(const ModelOptions& options);

// Builds the model `options` describe on the CPU, initialized from LibTorch's default
// generator (torchscript: loaded from its file, and drawn again when init is seeded),
// in training mode. INVALID_ARGUMENT for an unknown kind, a bad version or depth, a
// shape the model cannot take, or a torchscript file that does not load or fit the
// shape (torchscript_model.h). May throw c10::Error (LibTorch), as any LibTorch call.
absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(const ModelOptions& options,
                                                          const InputShape& shape);
// The same with the other options at their defaults (resnet: ResNet29v2).
absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(const std::string& kind,
                                                          const InputShape& shape);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_MODELS_H_
