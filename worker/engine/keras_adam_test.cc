// KerasAdam (keras_adam.h) against Keras 2.2.4's Adam formula, computed here apart in
// double with plain loops; its learning rate through param_groups, its save and load
// (alone and in a checkpoint), its difference from LibTorch's Adam, and a run with it.
#include "worker/engine/keras_adam.h"

#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/engine.h"

namespace repro::engine {
namespace {

// Keras 2.2.4's Adam, written out from keras/optimizers.py with its defaults.
struct Reference {
  std::vector<double> p, m, v;
  double lr = 1e-3;
  int64_t t = 0;

  explicit Reference(std::vector<double> initial)
      : p(std::move(initial)), m(p.size(), 0.0), v(p.size(), 0.0) {}

  void Step(const std::vector<double>& g) {
    const double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7;
    ++t;
    const double lr_t = lr * std::sqrt(1 - std::pow(beta2, static_cast<double>(t))) /
                        (1 - std::pow(beta1, static_cast<double>(t)));
    for (size_t i = 0; i < p.size(); ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      p[i] = p[i] - lr_t * m[i] / (std::sqrt(v[i]) + epsilon);
    }
  }
};

const std::vector<double> kInitial = {1.0, -0.5, 0.25, 2.0, -3.0, 0.1, 0.0, 7.5};

// Step s's gradients (s from 0): magnitudes from 3 to 1e-6, where epsilon matters most,
// with signs and sizes that change from step to step.
std::vector<double> Gradient(int s) {
  const std::vector<double> base = {0.5, -1e-3, 2e-5, -0.1, 3.0, 1e-6, -4e-4, 0.02};
  std::vector<double> g(base.size());
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = base[i] * (1 + 0.37 * s) * ((s + static_cast<int>(i)) % 3 == 2 ? -1 : 1);
  }
  return g;
}

torch::Tensor Parameter(const std::vector<double>& values, torch::Dtype dtype) {
  return torch::tensor(values, torch::dtype(torch::kDouble)).to(dtype).requires_grad_(true);
}

void SetGradient(torch::Tensor& p, const std::vector<double>& g) {
  p.mutable_grad() = torch::tensor(g, torch::dtype(torch::kDouble)).to(p.scalar_type());
}

std::vector<double> Values(const torch::Tensor& t) {
  const torch::Tensor d = t.detach().to(torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

// The distance between consecutive values of `dtype` at `x`.
double Ulp(double x, torch::Dtype dtype) {
  if (dtype == torch::kFloat) {
    const float f = std::fabs(static_cast<float>(x));
    return static_cast<double>(std::nextafter(f, std::numeric_limits<float>::infinity()) - f);
  }
  const double a = std::fabs(x);
  return std::nextafter(a, std::numeric_limits<double>::infinity()) - a;
}

// Steps a KerasAdam and the reference side by side, checking p after every step within
// `ulps` of the reference (in units of the parameter's dtype).
void ExpectMatchesFormula(torch::Dtype dtype, double ulps) {
  torch::Tensor p = Parameter(kInitial, dtype);
  Reference ref(Values(p));  // float32: the reference starts from the rounded values
  KerasAdam adam({p}, KerasAdamOptions(1e-3));
  for (int s = 0; s < 6; ++s) {
    std::vector<double> g = Gradient(s);
    SetGradient(p, g);
    if (dtype == torch::kFloat) g = Values(p.grad());  // the gradients as float32 holds them
    adam.step();
    ref.Step(g);
    const std::vector<double> got = Values(p);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], ref.p[i], ulps * Ulp(ref.p[i], dtype))
          << "step " << s + 1 << ", element " << i;
    }
  }
  EXPECT_EQ(adam.param_groups()[0].options().get_lr(), 1e-3);
}

TEST(KerasAdamTest, MatchesKerasFormulaStepByStepInFloat64) {
  ExpectMatchesFormula(torch::kDouble, 2);
}

TEST(KerasAdamTest, MatchesKerasFormulaStepByStepInFloat32WithinAFewUlp) {
  ExpectMatchesFormula(torch::kFloat, 4);
}

TEST(KerasAdamTest, LearningRateSetThroughParamGroupsTakesEffectAtTheNextStep) {
  torch::Tensor p = Parameter(kInitial, torch::kDouble);
  Reference ref(kInitial);
  KerasAdam adam({p}, KerasAdamOptions(1e-3));
  for (int s = 0; s < 5; ++s) {
    if (s == 2 || s == 4) {
      const double lr = s == 2 ? 0.05 : 1e-4;
      for (auto& group : adam.param_groups()) group.options().set_lr(lr);  // as the engine
      ref.lr = lr;
    }
    SetGradient(p, Gradient(s));
    adam.step();
    ref.Step(Gradient(s));
    const std::vector<double> got = Values(p);
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], ref.p[i], 2 * Ulp(ref.p[i], torch::kDouble)) << s << " " << i;
    }
  }
  EXPECT_EQ(adam.param_groups()[0].options().get_lr(), 1e-4);
  // Not the same as never changing it.
  Reference constant(kInitial);
  for (int s = 0; s < 5; ++s) constant.Step(Gradient(s));
  EXPECT_GT(std::fabs(Values(p)[0] - constant.p[0]), 1e-3);
}

// Saved after 3 steps and loaded into a new optimizer over a new tensor with the same
// values, it continues bit-identically to the optimizer never saved.
TEST(KerasAdamTest, SaveAndLoadContinueBitIdentically) {
  for (torch::Dtype dtype : {torch::kFloat, torch::kDouble}) {
    torch::Tensor p = Parameter(kInitial, dtype);
    KerasAdam adam({p}, KerasAdamOptions(2e-3));
    for (int s = 0; s < 3; ++s) {
      SetGradient(p, Gradient(s));
      adam.step();
    }
    std::stringstream bytes;
    {
      torch::serialize::OutputArchive archive;
      adam.save(archive);
      archive.save_to(bytes);
    }
    torch::Tensor q = p.detach().clone().requires_grad_(true);
    KerasAdam resumed({q}, KerasAdamOptions(2e-3));
    {
      torch::serialize::InputArchive archive;
      archive.load_from(bytes);
      resumed.load(archive);
    }
    ASSERT_EQ(resumed.state().size(), 1u);
    const auto& state = static_cast<const KerasAdamParamState&>(
        *resumed.state().at(c10::guts::to_string(q.unsafeGetTensorImpl())));
    EXPECT_EQ(state.step(), 3);
    EXPECT_EQ(state.exp_avg().scalar_type(), dtype);
    for (int s = 3; s < 7; ++s) {
      SetGradient(p, Gradient(s));
      SetGradient(q, Gradient(s));
      adam.step();
      resumed.step();
      EXPECT_TRUE(torch::equal(p, q)) << "step " << s + 1;
    }
  }
}

// The same through the engine's checkpoint (checkpoint.h), with a module and its state.
TEST(KerasAdamTest, CheckpointRoundTripContinuesBitIdentically) {
  torch::manual_seed(3);
  torch::nn::Linear model(4, 3);
  torch::manual_seed(4);
  torch::nn::Linear other(4, 3);  // other weights, overwritten by the checkpoint
  KerasAdam adam(model->parameters(), KerasAdamOptions(1e-2));
  KerasAdam resumed(other->parameters(), KerasAdamOptions(1e-2));
  const torch::Tensor x = torch::linspace(-1, 1, 8).reshape({2, 4});
  auto train_step = [&x](torch::nn::Linear& m, KerasAdam& opt) {
    opt.zero_grad();
    m->forward(x).square().sum().backward();
    opt.step();
  };
  for (int s = 0; s < 3; ++s) train_step(model, adam);
  EpochRecord epoch;
  epoch.epoch = 0;
  epoch.batch_digest = "digest";
  epoch.weights_hash = "hash";
  const std::string bytes = SaveCheckpoint("initial", {epoch}, *model, adam);
  auto loaded = LoadCheckpoint(bytes, "initial", *other, resumed, torch::kCPU);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (int s = 0; s < 4; ++s) {
    train_step(model, adam);
    train_step(other, resumed);
    EXPECT_TRUE(torch::equal(model->weight, other->weight)) << s;
    EXPECT_TRUE(torch::equal(model->bias, other->bias)) << s;
  }
}

// On the same inputs LibTorch's Adam (eps 1e-8 after the bias correction) lands
// elsewhere, most where gradients are small: this test cannot pass with it.
TEST(KerasAdamTest, DiffersFromLibTorchsAdam) {
  torch::Tensor keras_p = Parameter(kInitial, torch::kDouble);
  torch::Tensor torch_p = Parameter(kInitial, torch::kDouble);
  KerasAdam keras({keras_p}, KerasAdamOptions(1e-3));
  torch::optim::Adam libtorch({torch_p}, torch::optim::AdamOptions(1e-3));
  SetGradient(keras_p, Gradient(0));
  SetGradient(torch_p, Gradient(0));
  keras.step();
  libtorch.step();
  // Step 1 moves each weight by lr * g / (|g| + eps'): Keras's eps' is
  // 1e-7 / sqrt(0.001) = 3.16e-6, LibTorch's 1e-8. For |g| = 1e-6 (element 5): Keras
  // moves it by lr * 0.240, LibTorch by lr * 0.990.
  const double g = Gradient(0)[5];
  ASSERT_EQ(std::fabs(g), 1e-6);
  const double keras_move = kInitial[5] - Values(keras_p)[5];
  const double torch_move = kInitial[5] - Values(torch_p)[5];
  EXPECT_NEAR(keras_move, 1e-3 * g / (1e-6 + 1e-7 / std::sqrt(0.001)), 1e-15);
  EXPECT_NEAR(torch_move, 1e-3 * g / (1e-6 + 1e-8), 1e-15);
  EXPECT_GT(std::fabs(keras_move - torch_move), 1e-4);
  EXPECT_FALSE(torch::equal(keras_p, torch_p));
}

TEST(KerasAdamTest, RefusesBadOptions) {
  torch::Tensor p = Parameter(kInitial, torch::kDouble);
  EXPECT_THROW(KerasAdam({p}, KerasAdamOptions(-1)), c10::Error);
  EXPECT_THROW(KerasAdam({p}, KerasAdamOptions(1e-3).beta1(1.0)), c10::Error);
  EXPECT_THROW(KerasAdam({p}, KerasAdamOptions(1e-3).beta2(-0.1)), c10::Error);
  EXPECT_THROW(KerasAdam({p}, KerasAdamOptions(1e-3).eps(-1e-7)), c10::Error);
}

// TrainRun with optimizer adam-keras: it trains, differs from adam, and a run resumed
// from its checkpoint ends bit-identical to the run never interrupted.
TEST(KerasAdamTest, TrainRunWithAdamKerasResumesBitIdentically) {
  RunSpec spec;
  spec.dataset_path = REPRO_FASHION_MNIST;
  spec.train_limit = 256;
  spec.test_limit = 200;
  spec.batch_size = 48;
  spec.epochs = 3;
  spec.init_seed = 1;
  spec.shuffle_seed = 2;
  spec.threads = 1;
  spec.deterministic_algorithms = true;
  spec.optimizer = "adam-keras";
  spec.checkpoint_every = 1;
  std::vector<std::string> states;
  Callbacks callbacks;
  callbacks.on_checkpoint = [&](int, const std::string& state) { states.push_back(state); };
  auto whole = TrainRun(spec, callbacks);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_LT(whole->epochs[2].loss, whole->epochs[0].loss);

  RunSpec resumed_spec = spec;
  resumed_spec.resume_state = states[0];
  auto resumed = TrainRun(resumed_spec);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->final_hash, whole->final_hash);
  EXPECT_EQ(resumed->test_loss, whole->test_loss);

  RunSpec libtorch_adam = spec;
  libtorch_adam.optimizer = "adam";
  libtorch_adam.checkpoint_every = 0;
  auto adam = TrainRun(libtorch_adam);
  ASSERT_TRUE(adam.ok()) << adam.status();
  EXPECT_EQ(adam->initial_hash, whole->initial_hash);
  EXPECT_NE(adam->final_hash, whole->final_hash);
}

}  // namespace
}  // namespace repro::engine
