// The ResNets of Keras's example cifar10_resnet.py, which the study trained (ResNet29v2),
// layer for layer:
// - resnet_v1 (depth 6n+2; ResNet20v1 at n = 3): a conv-BN-ReLU stem with 16 filters,
//   then 3 stages of n basic blocks (conv3x3-BN-ReLU, conv3x3-BN, add, ReLU) with 16,
//   32 and 64 filters; the first block of stages 1 and 2 has stride 2 and a 1x1 conv
//   shortcut (no BN, no activation). Then average pooling 8, flatten, dense.
// - resnet_v2 (depth 9n+2; ResNet29v2 at n = 3): a conv-BN-ReLU stem with 16 filters,
//   then 3 stages of n pre-activation bottleneck blocks (BN-ReLU-conv1x1,
//   BN-ReLU-conv3x3, BN-ReLU-conv1x1, add) with 64, 128 and 256 output filters; the
//   very first block skips its first BN-ReLU (the stem's output is already activated);
//   the first block of every stage has a 1x1 conv shortcut, with stride 2 (on its first
//   1x1 conv and on the shortcut) from stage 1 on. Then BN-ReLU, average pooling 8,
//   flatten, dense.
// As Keras: every conv has a bias, "same" padding (asymmetric for stride 2: see
// resnet.cc) and he_normal initialization; the dense layer also has he_normal (the
// example sets kernel_initializer='he_normal' on it), biases are zero; BN has epsilon
// 1e-3 and momentum 0.99 (LibTorch's momentum 0.01). he_normal is Keras 2.2's: a normal
// of stddev sqrt(2 / fan_in) / 0.8796 truncated at 2 of those stddevs, so that the
// truncated values have stddev sqrt(2 / fan_in). Keras's softmax is in the loss
// (cross-entropy on logits), so forward returns logits.
//
// Parameter names (as the fingerprints list them): "conv1.*", "bn1.*" (stem),
// "stage<s>.block<b>.{bn1,conv1,bn2,conv2,bn3,conv3,shortcut}.*" (v2; v1 blocks have
// conv1, bn1, conv2, bn2 and shortcut), "bn_final.*" (v2), "fc.*".
//
// Parameter counts equal Keras's when the BN running mean and variance are counted as
// its non-trainable weights: ResNet20v1 274,442 (273,066 trainable), ResNet29v2
// 849,002 (843,786 trainable), ResNet56v2 1,673,738 (1,663,338 trainable). LibTorch's
// BN also keeps a num_batches_tracked buffer (the step count; unused with a fixed
// momentum); it is kept, so the fingerprints include it: it is the same in runs that
// took the same number of steps, and it is not a Keras weight, so it is not counted.
//
// Thread safety: a model is not thread-safe. Construction draws from LibTorch's global
// generator, so the caller seeds it (torch::manual_seed) right before.
#ifndef REPRO_WORKER_ENGINE_RESNET_H_
#define REPRO_WORKER_ENGINE_RESNET_H_

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "absl/status/status.h"
#include "worker/engine/models.h"

namespace repro::engine {

// OK when (version, depth) names a model of Keras's example: version 1 with depth 6n+2
// or version 2 with depth 9n+2, n >= 1. INVALID_ARGUMENT with one sentence otherwise.
absl::Status CheckResNet(int version, int depth);

// OK when the model can take images of `shape` (at least 29x29 so that the 8x8 average
// pooling after two stride-2 stages has an output, at least 2 classes).
absl::Status CheckResNetShape(const InputShape& shape);

// Keras's (TensorFlow's) padding="same" for one convolution on a height x width input:
// {left, right, top, bottom}. Per dimension the total is
// max((ceil(in / stride) - 1) * stride + kernel - in, 0), the smaller half before. For
// 3x3 stride 2 on 32x32 that is {0, 1, 0, 1}, which LibTorch's symmetric padding cannot
// express; 3x3 stride 1 gives {1, 1, 1, 1}, 1x1 stride 2 on even sides {0, 0, 0, 0}.
std::array<int64_t, 4> KerasSamePadding(int64_t height, int64_t width, int64_t kernel,
                                        int64_t stride);

// A residual block, basic (v1) or bottleneck (v2).
struct ResidualBlockImpl : torch::nn::Module {
  virtual at::Tensor forward(at::Tensor x) = 0;
};

// Call CheckResNet and CheckResNetShape first; the constructor throws c10::Error on
// arguments they reject.
struct ResNetImpl : ClassifierImpl {
  ResNetImpl(int version, int depth, const InputShape& shape);
  at::Tensor forward(at::Tensor x) override;

  int version() const { return version_; }
  int depth() const { return depth_; }

 private:
  int version_;
  int depth_;
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr};
  std::vector<std::shared_ptr<ResidualBlockImpl>> blocks_;  // stage by stage
  torch::nn::BatchNorm2d bn_final_{nullptr};                // v2 only
  torch::nn::Linear fc_{nullptr};
};
TORCH_MODULE(ResNet);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_RESNET_H_
