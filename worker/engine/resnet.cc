#include "worker/engine/resnet.h"

#include <ATen/ops/avg_pool2d.h>
#include <ATen/ops/constant_pad_nd.h>
#include <ATen/ops/flatten.h>
#include <ATen/ops/relu.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace repro::engine {
namespace {

constexpr int64_t kStemFilters = 16;
constexpr int64_t kPool = 8;           // AveragePooling2D(pool_size=8)
constexpr double kBnEpsilon = 1e-3;    // Keras's BatchNormalization default
constexpr double kBnMomentum = 0.01;   // 1 - Keras's momentum 0.99

// The side after `stride`'s "same" convolutions: ceil(side / stride).
int64_t SameSide(int64_t side, int64_t stride) { return (side + stride - 1) / stride; }

// A convolution with Keras's padding="same". With stride 1 and an odd kernel, "same"
// pads (kernel - 1) / 2 on every side, which LibTorch's own padding does. Otherwise
// Keras (TensorFlow) may pad less before (top/left) than after (bottom/right)
// (KerasSamePadding): for the 3x3 stride-2 convolutions of v1 on 32x32 and 16x16 inputs
// it pads 0 before and 1 after, where LibTorch's symmetric padding 1 would shift every
// window by one pixel. So such convolutions get padding 0 and the input is padded
// explicitly (constant_pad_nd with zeros) in forward. 1x1 stride-2 convolutions (v2's
// downsampling, every shortcut) on even sides need no padding at all.
struct SameConv {
  torch::nn::Conv2d conv{nullptr};
  int64_t kernel = 1;
  int64_t stride = 1;
  bool explicit_padding = false;

  at::Tensor operator()(const at::Tensor& x) {
    if (!explicit_padding) return conv->forward(x);
    const std::array<int64_t, 4> pad = KerasSamePadding(x.size(2), x.size(3), kernel, stride);
    if (pad == std::array<int64_t, 4>{0, 0, 0, 0}) return conv->forward(x);
    // constant_pad_nd takes (left, right, top, bottom) for the last two dimensions.
    return conv->forward(at::constant_pad_nd(x, pad, 0));
  }
};

SameConv MakeConv(torch::nn::Module& parent, const std::string& name, int64_t in, int64_t out,
                  int64_t kernel, int64_t stride) {
  SameConv c;
  c.kernel = kernel;
  c.stride = stride;
  c.explicit_padding = stride != 1 || kernel % 2 == 0;
  const int64_t padding = c.explicit_padding ? 0 : (kernel - 1) / 2;
  c.conv = parent.register_module(
      name, torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                  .stride(stride)
                                  .padding(padding)
                                  .bias(true)));
  return c;
}

torch::nn::BatchNorm2d MakeBn(torch::nn::Module& parent, const std::string& name,
                              int64_t channels) {
  return parent.register_module(
      name, torch::nn::BatchNorm2d(
                torch::nn::BatchNorm2dOptions(channels).eps(kBnEpsilon).momentum(kBnMomentum)));
}

// ResNet v1's basic block: conv3x3(stride)-BN-ReLU, conv3x3-BN, plus the shortcut (a
// 1x1 conv with the stride when `project`), then ReLU.
struct BasicBlockImpl : ResidualBlockImpl {
  BasicBlockImpl(int64_t in, int64_t filters, int64_t stride, bool project) {
    conv1 = MakeConv(*this, "conv1", in, filters, 3, stride);
    bn1 = MakeBn(*this, "bn1", filters);
    conv2 = MakeConv(*this, "conv2", filters, filters, 3, 1);
    bn2 = MakeBn(*this, "bn2", filters);
    if (project) shortcut = MakeConv(*this, "shortcut", in, filters, 1, stride);
  }

  at::Tensor forward(at::Tensor x) override {
    at::Tensor y = at::relu(bn1->forward(conv1(x)));
    y = bn2->forward(conv2(y));
    const at::Tensor skip = shortcut.conv ? shortcut(x) : x;
    return at::relu(skip + y);  // keras.layers.add([x, y]), Activation('relu')
  }

  SameConv conv1, conv2, shortcut;
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};

// ResNet v2's bottleneck block: [BN-ReLU]-conv1x1(stride) to `in` filters, BN-ReLU-
// conv3x3 to `in`, BN-ReLU-conv1x1 to `out`, plus the shortcut (a 1x1 conv to `out`
// with the stride when `project`). `preactivate` false skips the first BN-ReLU.
struct BottleneckBlockImpl : ResidualBlockImpl {
  BottleneckBlockImpl(int64_t block_in, int64_t in, int64_t out, int64_t stride,
                      bool preactivate, bool project) {
    if (preactivate) bn1 = MakeBn(*this, "bn1", block_in);
    conv1 = MakeConv(*this, "conv1", block_in, in, 1, stride);
    bn2 = MakeBn(*this, "bn2", in);
    conv2 = MakeConv(*this, "conv2", in, in, 3, 1);
    bn3 = MakeBn(*this, "bn3", in);
    conv3 = MakeConv(*this, "conv3", in, out, 1, 1);
    if (project) shortcut = MakeConv(*this, "shortcut", block_in, out, 1, stride);
  }

  at::Tensor forward(at::Tensor x) override {
    at::Tensor y = bn1 ? at::relu(bn1->forward(x)) : x;
    y = conv1(y);
    y = conv2(at::relu(bn2->forward(y)));
    y = conv3(at::relu(bn3->forward(y)));
    const at::Tensor skip = shortcut.conv ? shortcut(x) : x;
    return skip + y;  // keras.layers.add([x, y]); v2 has no activation after the add
  }

  SameConv conv1, conv2, conv3, shortcut;
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
};

// Keras's he_normal (2.2.x): truncated normal, stddev sqrt(2 / fan_in) / 0.8796 before
// truncation at 2 of those stddevs (0.8796 is the stddev of a unit normal truncated at
// +-2, so the values drawn have stddev sqrt(2 / fan_in)). Drawn by inverse CDF, one
// uniform per value, from LibTorch's default generator.
void HeNormal(at::Tensor weight, int64_t fan_in) {
  constexpr double kTruncatedStddev = 0.87962566103423978;
  const double stddev = std::sqrt(2.0 / static_cast<double>(fan_in)) / kTruncatedStddev;
  const double bound = std::erf(2.0 / std::sqrt(2.0));  // P(|z| < 2) as erf's argument
  torch::NoGradGuard no_grad;
  weight.uniform_(-bound, bound);
  weight.erfinv_();
  weight.mul_(stddev * std::sqrt(2.0));
  weight.clamp_(-2.0 * stddev, 2.0 * stddev);
}

// Keras initialization of every conv and dense layer: he_normal kernel, zero bias. BN
// layers keep LibTorch's initial values, which are Keras's (gamma 1, beta 0, moving
// mean 0, moving variance 1).
void InitializeAsKeras(torch::nn::Module& model) {
  for (const auto& module : model.modules(/*include_self=*/false)) {
    if (auto* conv = dynamic_cast<torch::nn::Conv2dImpl*>(module.get())) {
      const at::Tensor& w = conv->weight;  // [out, in, kh, kw]
      HeNormal(conv->weight, w.size(1) * w.size(2) * w.size(3));
      torch::NoGradGuard no_grad;
      conv->bias.zero_();
    } else if (auto* linear = dynamic_cast<torch::nn::LinearImpl*>(module.get())) {
      HeNormal(linear->weight, linear->weight.size(1));  // [out, in]
      torch::NoGradGuard no_grad;
      linear->bias.zero_();
    }
  }
}

}  // namespace

std::array<int64_t, 4> KerasSamePadding(int64_t height, int64_t width, int64_t kernel,
                                        int64_t stride) {
  auto total = [&](int64_t in) {
    return std::max<int64_t>((SameSide(in, stride) - 1) * stride + kernel - in, 0);
  };
  const int64_t h = total(height);
  const int64_t w = total(width);
  return {w / 2, w - w / 2, h / 2, h - h / 2};
}

absl::Status CheckResNet(int version, int depth) {
  if (version != 1 && version != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ResNet version must be 1 (depth 6n+2) or 2 (depth 9n+2), got ", version));
  }
  const int step = version == 1 ? 6 : 9;
  if (depth < step + 2 || (depth - 2) % step != 0) {
    return absl::InvalidArgumentError(absl::StrCat("ResNet v", version, " needs a depth of ",
                                                   step, "n+2 with n >= 1 (for example ",
                                                   3 * step + 2, "), got ", depth));
  }
  return absl::OkStatus();
}

absl::Status CheckResNetShape(const InputShape& shape) {
  const int64_t side_h = SameSide(SameSide(shape.height, 2), 2);
  const int64_t side_w = SameSide(SameSide(shape.width, 2), 2);
  if (shape.channels < 1 || shape.classes < 2 || side_h < kPool || side_w < kPool) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model resnet needs at least 1 input channel, 2 classes and images of at least "
        "29x29 (two stride-2 stages, then 8x8 average pooling), got ",
        shape.channels, " channels, ", shape.classes, " classes, ", shape.height, "x",
        shape.width));
  }
  return absl::OkStatus();
}

ResNetImpl::ResNetImpl(int version, int depth, const InputShape& shape)
    : version_(version), depth_(depth) {
  TORCH_CHECK(CheckResNet(version, depth).ok(), "bad ResNet version ", version, " or depth ",
              depth);
  TORCH_CHECK(CheckResNetShape(shape).ok(), "bad ResNet input shape");
  const SameConv stem = MakeConv(*this, "conv1", shape.channels, kStemFilters, 3, 1);
  conv1_ = stem.conv;
  bn1_ = MakeBn(*this, "bn1", kStemFilters);

  const int blocks = (depth - 2) / (version == 1 ? 6 : 9);
  int64_t channels = kStemFilters;  // what the next block takes in
  int64_t filters_in = kStemFilters;  // v1: its filters; v2: num_filters_in
  for (int stage = 0; stage < 3; ++stage) {
    auto holder = register_module(absl::StrCat("stage", stage),
                                  std::make_shared<torch::nn::Module>("ResNetStage"));
    const int64_t filters_out = version == 1 ? filters_in : filters_in * (stage == 0 ? 4 : 2);
    for (int block = 0; block < blocks; ++block) {
      const int64_t stride = stage > 0 && block == 0 ? 2 : 1;
      std::shared_ptr<ResidualBlockImpl> made;
      if (version == 1) {
        made = std::make_shared<BasicBlockImpl>(channels, filters_in, stride,
                                                /*project=*/stage > 0 && block == 0);
      } else {
        made = std::make_shared<BottleneckBlockImpl>(
            channels, filters_in, filters_out, stride,
            /*preactivate=*/!(stage == 0 && block == 0), /*project=*/block == 0);
      }
      holder->register_module(absl::StrCat("block", block), made);
      blocks_.push_back(std::move(made));
      channels = filters_out;
    }
    filters_in = version == 1 ? filters_in * 2 : filters_out;
  }
  if (version == 2) bn_final_ = MakeBn(*this, "bn_final", channels);

  const int64_t pooled_h = SameSide(SameSide(shape.height, 2), 2) / kPool;
  const int64_t pooled_w = SameSide(SameSide(shape.width, 2), 2) / kPool;
  fc_ = register_module("fc", torch::nn::Linear(channels * pooled_h * pooled_w, shape.classes));
  InitializeAsKeras(*this);
}

at::Tensor ResNetImpl::forward(at::Tensor x) {
  x = at::relu(bn1_->forward(conv1_->forward(x)));  // stride 1, odd kernel: symmetric
  for (const auto& block : blocks_) x = block->forward(x);
  if (bn_final_) x = at::relu(bn_final_->forward(x));
  x = at::avg_pool2d(x, {kPool, kPool});
  return fc_->forward(at::flatten(x, 1));
}

}  // namespace repro::engine
