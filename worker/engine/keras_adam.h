// KerasAdam: Keras 2.2.4's Adam (keras/optimizers.py, class Adam), the optimizer of the
// study, as a LibTorch optimizer (plan: `training: {optimizer: adam-keras}`).
//
// Per parameter p with gradient g, at step t (from 1), with Keras's defaults beta1 0.9,
// beta2 0.999, epsilon 1e-7 (K.epsilon()), no amsgrad and no decay:
//
//   m    = beta1 * m + (1 - beta1) * g
//   v    = beta2 * v + (1 - beta2) * g * g
//   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
//   p    = p - lr_t * m / (sqrt(v) + epsilon)
//
// It differs from torch::optim::Adam (`adam`) in where epsilon goes: LibTorch adds its
// 1e-8 to sqrt(v / (1 - beta2^t)), Keras adds 1e-7 to sqrt(v) before the bias
// correction is folded into lr_t, so Keras's epsilon is in effect 1e-7 / sqrt(1 - beta2^t)
// (about 3.2e-6 at step 1) and the two differ most where gradients are small.
//
// The arithmetic, chosen to follow Keras's graph op for op:
// - Each line above is done in the parameter's dtype with one rounding per operation and
//   in Keras's order: beta1 * m and (1 - beta1) * g, then their sum; g * g, times
//   (1 - beta2), plus beta2 * v; (lr_t * m) / (sqrt(v) + epsilon), subtracted from p. No
//   fused ops (addcmul_, addcdiv_, add_ with alpha), whose rounding differs from Keras's.
// - The constants are the parameter's dtype: for a float32 parameter lr, beta1, beta2
//   and epsilon are first rounded to float32, as Keras's variables are float32, and
//   1 - beta is taken from the rounded beta (exact in float32, as Keras's 1. - beta_1).
// - lr_t is computed on the host in double from those rounded constants
//   (std::pow(beta, t), t as a double) and rounded to the parameter's dtype once, when
//   the tensor op takes it as a scalar. Keras computes it in float32 op by op (t cast to
//   float32, pow, sqrt, divide); so our lr_t is the correctly rounded value and may differ
//   from Keras's by a few float32 ULP. Nothing else differs in float32.
// - t counts per parameter (as LibTorch's Adam), from that parameter's first gradient;
//   Keras has one counter for all. They agree whenever every parameter gets a gradient
//   at every step, as in every model of this engine. A parameter without a gradient is
//   skipped and its t does not advance.
// - Only float32 and float64 parameters, dense gradients. Deterministic: the same
//   inputs give the same bits on a given device and LibTorch build (element-wise ops
//   only, no reductions, no randomness).
//
// State per parameter (saved and loaded with the optimizer, so that a checkpoint resumes
// bit-identically): step (int64), exp_avg (m) and exp_avg_sq (v), in the parameter's
// dtype and on its device. The learning rate lives in the param groups' options, so
// set_lr through param_groups() changes it from the next step on.
//
// Thread safety: as any torch::optim::Optimizer, one thread at a time.
#ifndef REPRO_WORKER_ENGINE_KERAS_ADAM_H_
#define REPRO_WORKER_ENGINE_KERAS_ADAM_H_

#include <torch/arg.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>
#include <torch/types.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace repro::engine {

struct KerasAdamOptions : public torch::optim::OptimizerCloneableOptions<KerasAdamOptions> {
  KerasAdamOptions(double lr = 1e-3);  // NOLINT(google-explicit-constructor): as AdamOptions
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-7;  // Keras's K.epsilon()

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override;
  void set_lr(const double lr) override;
};

struct KerasAdamParamState
    : public torch::optim::OptimizerCloneableParamState<KerasAdamParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class KerasAdam : public torch::optim::Optimizer {
 public:
  // Throws c10::Error when lr or eps is negative or a beta is outside [0, 1).
  explicit KerasAdam(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                     KerasAdamOptions defaults = {});
  explicit KerasAdam(std::vector<torch::Tensor> params, KerasAdamOptions defaults = {})
      : KerasAdam(std::vector<torch::optim::OptimizerParamGroup>{
                      torch::optim::OptimizerParamGroup(std::move(params))},
                  std::move(defaults)) {}

  // One update of every parameter that has a gradient; returns the closure's loss (the
  // closure, if given, runs first, with gradients on), else an undefined tensor.
  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_KERAS_ADAM_H_
