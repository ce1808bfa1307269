#include "worker/engine/models.h"

#include <ATen/ops/flatten.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/relu.h>

#include "absl/strings/str_cat.h"
#include "worker/engine/resnet.h"
#include "worker/engine/torchscript_model.h"

namespace repro::engine {
namespace {

constexpr char kSmallCnn[] = "small-cnn";
constexpr char kResNet[] = "resnet";
constexpr char kTorchScript[] = "torchscript";

// Output side of a valid 5x5 convolution followed by 2x2 max pooling.
int64_t ConvPoolSide(int64_t side) { return (side - 4) / 2; }

}  // namespace

std::vector<at::Tensor> ClassifierImpl::RegularizedWeights() const {
  std::vector<at::Tensor> weights;
  for (const auto& module : modules(/*include_self=*/false)) {
    if (const auto* conv = dynamic_cast<const torch::nn::Conv2dImpl*>(module.get())) {
      weights.push_back(conv->weight);
    }
  }
  return weights;
}

SmallCnnImpl::SmallCnnImpl(const InputShape& shape) {
  const int64_t side_h = ConvPoolSide(ConvPoolSide(shape.height));
  const int64_t side_w = ConvPoolSide(ConvPoolSide(shape.width));
  conv1 = register_module("conv1", torch::nn::Conv2d(
                                       torch::nn::Conv2dOptions(shape.channels, 8, 5)));
  conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 16, 5)));
  fc1 = register_module("fc1", torch::nn::Linear(16 * side_h * side_w, 64));
  fc2 = register_module("fc2", torch::nn::Linear(64, shape.classes));
}

at::Tensor SmallCnnImpl::forward(at::Tensor x) {
  x = at::max_pool2d(at::relu(conv1->forward(x)), {2, 2});
  x = at::max_pool2d(at::relu(conv2->forward(x)), {2, 2});
  x = at::relu(fc1->forward(at::flatten(x, 1)));
  return fc2->forward(x);
}

absl::Status CheckModelKind(const std::string& kind) {
  if (kind == kSmallCnn || kind == kResNet || kind == kTorchScript) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("unknown model kind \"", kind,
                                                 "\" (this engine builds: ", kSmallCnn, ", ",
                                                 kResNet, ", ", kTorchScript, ")"));
}

absl::Status CheckModel(const ModelOptions& options) {
  if (absl::Status s = CheckModelKind(options.kind); !s.ok()) return s;
  if (options.kind == kResNet) return CheckResNet(options.version, options.depth);
  if (options.kind == kTorchScript) return CheckTorchScriptOptions(options.file, options.init);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(const std::string& kind,
                                                          const InputShape& shape) {
  ModelOptions options;
  options.kind = kind;
  return MakeModel(options, shape);
}

absl::StatusOr<std::shared_ptr<ClassifierImpl>> MakeModel(const ModelOptions& options,
                                                          const InputShape& shape) {
  if (absl::Status s = CheckModel(options); !s.ok()) return s;
  const std::string& kind = options.kind;
  if (kind == kResNet) {
    if (absl::Status s = CheckResNetShape(shape); !s.ok()) return s;
    return std::shared_ptr<ClassifierImpl>(
        ResNet(options.version, options.depth, shape).ptr());
  }
  if (shape.channels < 1 || shape.classes < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model ", kind, " needs at least 1 input channel and 2 classes, got ", shape.channels,
        " and ", shape.classes));
  }
  if (kind == kTorchScript) {
    return LoadTorchScriptModel(options.file, options.file_sha256, options.init, shape);
  }
  // kind == small-cnn
  if (ConvPoolSide(ConvPoolSide(shape.height)) < 1 ||
      ConvPoolSide(ConvPoolSide(shape.width)) < 1) {
    return absl::InvalidArgumentError(absl::StrCat("model ", kind, " needs images of at least ",
                                                   "16x16, got ", shape.height, "x",
                                                   shape.width));
  }
  return std::shared_ptr<ClassifierImpl>(SmallCnn(shape).ptr());
}

}  // namespace repro::engine
