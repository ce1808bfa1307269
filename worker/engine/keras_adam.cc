#include "worker/engine/keras_adam.h"

#include <torch/optim/serialize.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include <cmath>
#include <memory>
#include <string>

namespace repro::engine {
namespace {

// `x` as a parameter of dtype `type` holds it: rounded to float32 for float32 parameters.
double InDtype(double x, at::ScalarType type) {
  return type == at::kFloat ? static_cast<double>(static_cast<float>(x)) : x;
}

// The step's constants for a parameter of dtype `type` at step `t` (keras_adam.h).
struct Constants {
  double beta1, one_minus_beta1, beta2, one_minus_beta2, eps, lr_t;
};

Constants ConstantsFor(const KerasAdamOptions& options, int64_t t, at::ScalarType type) {
  Constants c;
  c.beta1 = InDtype(options.beta1(), type);
  c.beta2 = InDtype(options.beta2(), type);
  c.one_minus_beta1 = InDtype(1.0 - c.beta1, type);
  c.one_minus_beta2 = InDtype(1.0 - c.beta2, type);
  c.eps = InDtype(options.eps(), type);
  const double steps = static_cast<double>(t);
  c.lr_t = InDtype(options.lr(), type) * std::sqrt(1.0 - std::pow(c.beta2, steps)) /
           (1.0 - std::pow(c.beta1, steps));
  return c;
}

}  // namespace

KerasAdamOptions::KerasAdamOptions(double lr) : lr_(lr) {}

void KerasAdamOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
}

void KerasAdamOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
}

double KerasAdamOptions::get_lr() const { return lr(); }

void KerasAdamOptions::set_lr(const double lr) { this->lr(lr); }

void KerasAdamParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void KerasAdamParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

KerasAdam::KerasAdam(std::vector<torch::optim::OptimizerParamGroup> param_groups,
                     KerasAdamOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<KerasAdamOptions>(defaults)) {
  TORCH_CHECK(defaults.lr() >= 0, "Invalid learning rate: ", defaults.lr());
  TORCH_CHECK(defaults.eps() >= 0, "Invalid epsilon value: ", defaults.eps());
  TORCH_CHECK(defaults.beta1() >= 0 && defaults.beta1() < 1, "Invalid beta1: ",
              defaults.beta1());
  TORCH_CHECK(defaults.beta2() >= 0 && defaults.beta2() < 1, "Invalid beta2: ",
              defaults.beta2());
}

torch::Tensor KerasAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const KerasAdamOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const torch::Tensor& grad = p.grad();
      TORCH_CHECK(!grad.is_sparse(), "KerasAdam does not support sparse gradients");
      TORCH_CHECK(p.scalar_type() == at::kFloat || p.scalar_type() == at::kDouble,
                  "KerasAdam updates float32 and float64 parameters only, got ",
                  p.scalar_type());
      const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto fresh = std::make_unique<KerasAdamParamState>();
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(fresh)).first;
      }
      auto& state = static_cast<KerasAdamParamState&>(*it->second);
      state.step(state.step() + 1);
      const Constants c = ConstantsFor(options, state.step(), p.scalar_type());
      torch::Tensor& m = state.exp_avg();
      torch::Tensor& v = state.exp_avg_sq();
      // One rounding per operation, in Keras's order (keras_adam.h); add_ and sub_ with
      // their default alpha of 1 round once, as a + b does.
      m.mul_(c.beta1).add_(grad.mul(c.one_minus_beta1));
      v.mul_(c.beta2).add_(grad.mul(grad).mul_(c.one_minus_beta2));
      p.sub_(m.mul(c.lr_t).div_(v.sqrt().add_(c.eps)));
    }
  }
  return loss;
}

void KerasAdam::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<KerasAdamParamState, KerasAdamOptions>(archive, *this);
}

void KerasAdam::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<KerasAdamParamState, KerasAdamOptions>(archive, *this);
}

}  // namespace repro::engine
