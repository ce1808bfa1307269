// Tests of model kind torchscript (torchscript_model.h): the mirror shares the jit
// module's tensors, runs train and repeat bit for bit, fingerprints and exports carry
// Python's names, init file ignores the init seed and init seeded follows the stated
// rule, checkpoints resume bit-identically (dropout included), a replay traces the
// scripted ops with their modules, and bad files fail
// before any step with the file named. The modules are built and saved in C++, as
// torch.jit.script(model).save would, so no Python is needed.
#include "worker/engine/torchscript_model.h"

#include <ATen/ops/allclose.h>
#include <ATen/ops/equal.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <stdlib.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/records.h"
#include "common/run_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/engine.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/op_trace.h"
#include "worker/engine/replay.h"
#include "worker/engine/safetensors.h"

namespace repro::engine {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;
using torch::jit::Module;

// What Python's named_parameters() then named_buffers() give for Net below.
const std::vector<std::string> kNetNames = {
    "temperature", "features.0.weight", "features.0.bias", "bn.weight",        "bn.bias",
    "fc.weight",   "fc.bias",           "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"};

// Modules as torch.jit.script names their types ("...conv.Conv2d"), in one compilation
// unit (mangled where a type repeats), so that they save into one file.
class ModuleBuilder {
 public:
  Module Conv2d(int64_t in, int64_t out, int64_t k) {
    Module m = New("__torch__.torch.nn.modules.conv.Conv2d");
    m.register_parameter("weight", Param(at::randn({out, in, k, k}) * 0.2), false);
    m.register_parameter("bias", Param(at::randn({out}) * 0.1), false);
    m.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, self.bias)\n");
    return m;
  }

  Module Linear(int64_t in, int64_t out) {
    Module m = New("__torch__.torch.nn.modules.linear.Linear");
    m.register_parameter("weight", Param(at::randn({out, in}) * 0.05), false);
    m.register_parameter("bias", Param(at::randn({out}) * 0.1), false);
    m.define("def forward(self, x):\n    return torch.linear(x, self.weight, self.bias)\n");
    return m;
  }

  // Not at PyTorch's initial values, so that init seeded visibly resets them.
  Module BatchNorm2d(int64_t channels) {
    Module m = New("__torch__.torch.nn.modules.batchnorm.BatchNorm2d");
    m.register_parameter("weight", Param(at::ones({channels}) * 1.5), false);
    m.register_parameter("bias", Param(at::ones({channels}) * 0.25), false);
    m.register_buffer("running_mean", at::ones({channels}) * 0.5);
    m.register_buffer("running_var", at::ones({channels}) * 2);
    m.register_buffer("num_batches_tracked", at::ones({}, at::kLong) * 7);
    m.define(R"(
def forward(self, x):
    if self.training:
        self.num_batches_tracked.add_(1)
    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                            self.training, 0.1, 1e-05, False)
)");
    return m;
  }

  Module Sequential(const Module& first) {
    Module m = New("__torch__.torch.nn.modules.container.Sequential");
    m.register_module("0", first);
    m.define("def forward(self, x):\n    return getattr(self, \"0\").forward(x)\n");
    return m;
  }

  // Conv 1->4 (5x5), batch norm, ReLU, 2x2 max pooling, dropout 0.2, a linear layer to
  // `classes` logits from `fc_in` features (576 fits 1x28x28), times a parameter of
  // the net's own ("temperature", registered last but listed first by Python).
  Module Net(int64_t classes = 10, int64_t fc_in = 4 * 12 * 12) {
    Module m = New("__torch__.Net");
    m.register_module("features", Sequential(Conv2d(1, 4, 5)));
    m.register_module("bn", BatchNorm2d(4));
    m.register_module("fc", Linear(fc_in, classes));
    m.register_parameter("temperature", Param(at::ones({1})), false);
    m.define(R"(
def forward(self, x):
    x = self.bn.forward(self.features.forward(x))
    x = torch.max_pool2d(torch.relu(x), [2, 2])
    x = torch.dropout(x, 0.2, self.training)
    return self.fc.forward(torch.flatten(x, 1)) * self.temperature
)");
    return m;
  }

  Module New(const std::string& type) {
    Module m(type, cu_, /*shouldMangle=*/true);
    m.register_attribute("training", c10::BoolType::get(), true);
    return m;
  }

 private:
  static at::Tensor Param(const at::Tensor& t) { return t.detach().requires_grad_(true); }

  std::shared_ptr<torch::jit::CompilationUnit> cu_ =
      std::make_shared<torch::jit::CompilationUnit>();
};

class TorchScriptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "torchscript_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    net_ = Save("net.pt", [](ModuleBuilder& b) { return b.Net(); });
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Builds a module under a fixed seed and saves it as dir_/name.
  template <typename Build>
  std::string Save(const std::string& name, Build build) {
    torch::manual_seed(1234);
    ModuleBuilder builder;
    Module m = build(builder);
    const std::string path = dir_ + "/" + name;
    m.save(path);
    return path;
  }

  RunSpec Spec(const std::string& model, const std::string& init = "file") const {
    RunSpec spec;
    spec.dataset_path = REPRO_FASHION_MNIST;
    spec.train_limit = 256;
    spec.test_limit = 100;
    spec.batch_size = 32;
    spec.epochs = 2;
    spec.init_seed = 1;
    spec.shuffle_seed = 2;
    spec.threads = 1;
    spec.model_kind = "torchscript";
    spec.model_init = init;
    spec.inputs = {InputFile{"model", model, "", 0}};
    return spec;
  }

  std::string dir_;
  std::string net_;  // Net() saved
};

std::vector<std::string> Names(const std::vector<TensorHash>& tensors) {
  std::vector<std::string> names;
  for (const TensorHash& t : tensors) names.push_back(t.name);
  return names;
}

std::string HashOf(const std::vector<TensorHash>& tensors, const std::string& name) {
  for (const TensorHash& t : tensors) {
    if (t.name == name) return t.hash;
  }
  return "";
}

std::shared_ptr<TorchScriptClassifierImpl> Load(const std::string& path,
                                                const std::string& init = "file") {
  auto made = LoadTorchScriptModel(path, "", init, InputShape{});
  EXPECT_TRUE(made.ok()) << made.status();
  if (!made.ok()) return nullptr;
  return std::dynamic_pointer_cast<TorchScriptClassifierImpl>(*made);
}

TEST_F(TorchScriptTest, TheMirrorSharesTheJitModulesTensors) {
  auto model = Load(net_);
  ASSERT_NE(model, nullptr);
  Module jit = model->jit_module();

  // Python's names and order; each the very tensor the jit module holds.
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  for (const auto& b : model->named_buffers()) names.push_back(b.key());
  EXPECT_THAT(names, ElementsAreArray(kNetNames));
  for (const auto& p : jit.named_parameters()) {
    EXPECT_EQ(model->named_parameters()[p.name].unsafeGetTensorImpl(),
              p.value.unsafeGetTensorImpl())
        << p.name;
  }
  for (const auto& b : jit.named_buffers()) {
    EXPECT_EQ(model->named_buffers()[b.name].unsafeGetTensorImpl(),
              b.value.unsafeGetTensorImpl())
        << b.name;
  }

  // A step through the nn::Module side is what the jit module's forward computes with.
  const at::Tensor x = at::ones({3, 1, 28, 28});
  model->eval();
  EXPECT_FALSE(jit.attr("bn").toModule().attr("training").toBool());
  const at::Tensor before = model->forward(x).detach();
  {
    torch::NoGradGuard no_grad;
    model->named_parameters()["fc.bias"].add_(1);
  }
  const at::Tensor after = jit.forward({x}).toTensor().detach();
  EXPECT_TRUE(at::allclose(after, before + 1)) << after - before;

  // Training mode reaches the jit modules; gradients reach the mirror's tensors.
  model->train();
  EXPECT_TRUE(jit.attr("bn").toModule().attr("training").toBool());
  model->forward(x).sum().backward();
  const at::Tensor grad = model->named_parameters()["features.0.weight"].grad();
  ASSERT_TRUE(grad.defined());
  EXPECT_GT(grad.abs().sum().item<double>(), 0);

  // L2 applies to the conv weights only.
  const std::vector<at::Tensor> regularized = model->RegularizedWeights();
  ASSERT_EQ(regularized.size(), 1u);
  EXPECT_EQ(regularized[0].unsafeGetTensorImpl(),
            model->named_parameters()["features.0.weight"].unsafeGetTensorImpl());

  // nn::Module::to's set_data reaches the jit module (as a move to the GPU would).
  model->to(at::kDouble);
  EXPECT_EQ(jit.attr("fc").toModule().attr("weight").toTensor().scalar_type(), at::kDouble);
  EXPECT_EQ(jit.attr("bn").toModule().attr("running_var").toTensor().scalar_type(), at::kDouble);
  model->eval();
  EXPECT_EQ(model->forward(x.to(at::kDouble)).scalar_type(), at::kDouble);
}

TEST_F(TorchScriptTest, TrainsRepeatsAndNamesTensorsAsPython) {
  RunSpec spec = Spec(net_);
  spec.export_dir = dir_ + "/weights";
  spec.export_initial = spec.export_final = true;
  auto a = TrainRun(spec);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = TrainRun(spec);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->final_hash, b->final_hash);
  EXPECT_EQ(a->initial_hash, b->initial_hash);
  EXPECT_EQ(a->predictions, b->predictions);
  ASSERT_EQ(a->epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) EXPECT_EQ(a->epochs[e].weights_hash, b->epochs[e].weights_hash);
  EXPECT_TRUE(std::isfinite(a->epochs[1].loss));
  EXPECT_LT(a->epochs[1].loss, a->epochs[0].loss);
  EXPECT_NE(a->final_hash, a->initial_hash);
  // Batch norm's statistics train too: 2 epochs of 8 batches on top of the file's 7.
  EXPECT_NE(HashOf(a->final_tensors, "bn.running_mean"),
            HashOf(a->initial_tensors, "bn.running_mean"));

  EXPECT_THAT(Names(a->initial_tensors), ElementsAreArray(kNetNames));
  EXPECT_THAT(Names(a->final_tensors), ElementsAreArray(kNetNames));
  for (const std::string& path : {a->initial_weights, a->final_weights}) {
    auto file = ReadSafetensors(path);
    ASSERT_TRUE(file.ok()) << file.status();
    std::vector<std::string> exported;
    for (const SafetensorsTensor& t : file->tensors) exported.push_back(t.name);
    EXPECT_THAT(exported, ElementsAreArray(kNetNames)) << path;
  }

  const auto& env = a->environment;
  EXPECT_EQ(env.at("model_init"), "file");
  EXPECT_EQ(env.at("model_file"), net_);
  EXPECT_EQ(env.at("model_type"), "Net");
  EXPECT_EQ(env.at("model_file_hash").size(), 32u);
  EXPECT_EQ(env.count("model_init_kept"), 0u);
  EXPECT_EQ(env.count("model_file_sha256"), 0u);  // repro-train's way: no plan, no hash

  // model.l2 penalizes the conv kernel, so it changes the run.
  RunSpec l2 = Spec(net_);
  l2.l2 = 0.05;
  auto c = TrainRun(l2);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->initial_hash, a->initial_hash);
  EXPECT_NE(c->final_hash, a->final_hash);
}

TEST_F(TorchScriptTest, InitFileKeepsTheFilesWeightsWhateverTheInitSeed) {
  RunSpec spec = Spec(net_);
  spec.epochs = 1;
  auto one = TrainRun(spec);
  spec.init_seed = 99;
  auto other = TrainRun(spec);
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(one->initial_hash, other->initial_hash);
  auto loaded = Load(net_);
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(one->initial_hash, FingerprintModel(*loaded).hash);
}

TEST_F(TorchScriptTest, InitSeededDrawsFromTheInitSeedByTheStatedRule) {
  RunSpec spec = Spec(net_, "seeded");
  spec.epochs = 1;
  auto a = TrainRun(spec);
  auto again = TrainRun(spec);
  spec.init_seed = 2;
  auto b = TrainRun(spec);
  auto file = TrainRun(Spec(net_, "file"));
  for (const auto* r : {&a, &again, &b, &file}) ASSERT_TRUE(r->ok()) << r->status();
  EXPECT_EQ(a->initial_hash, again->initial_hash);
  EXPECT_EQ(a->final_hash, again->final_hash);
  EXPECT_NE(a->initial_hash, b->initial_hash);
  EXPECT_NE(a->initial_hash, file->initial_hash);
  EXPECT_EQ(a->environment.at("model_init"), "seeded");
  // The net's own parameter follows no rule: kept from the file, and said so.
  EXPECT_EQ(a->environment.at("model_init_kept"), "temperature");
  EXPECT_EQ(HashOf(a->initial_tensors, "temperature"), HashOf(file->initial_tensors, "temperature"));

  // The rule: under one seed, the draws of LibTorch's Conv2d and Linear (PyTorch's
  // reset_parameters) in module order; batch norm at its initial values.
  torch::manual_seed(7);
  auto seeded = Load(net_, "seeded");
  ASSERT_NE(seeded, nullptr);
  torch::manual_seed(7);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(1, 4, 5));
  torch::nn::Linear fc(576, 10);
  auto params = seeded->named_parameters();
  auto buffers = seeded->named_buffers();
  EXPECT_TRUE(at::equal(params["features.0.weight"], conv->weight));
  EXPECT_TRUE(at::equal(params["features.0.bias"], conv->bias));
  EXPECT_TRUE(at::equal(params["fc.weight"], fc->weight));
  EXPECT_TRUE(at::equal(params["fc.bias"], fc->bias));
  EXPECT_TRUE(at::equal(params["bn.weight"], at::ones({4})));
  EXPECT_TRUE(at::equal(params["bn.bias"], at::zeros({4})));
  EXPECT_TRUE(at::equal(buffers["bn.running_mean"], at::zeros({4})));
  EXPECT_TRUE(at::equal(buffers["bn.running_var"], at::ones({4})));
  EXPECT_EQ(buffers["bn.num_batches_tracked"].item<int64_t>(), 0);
  EXPECT_TRUE(at::equal(params["temperature"], at::ones({1})));
}

// Dropout draws from LibTorch's generator as the net trains, so the checkpoint must
// carry the generator's state for the resumed run to match.
TEST_F(TorchScriptTest, ACheckpointResumesBitIdentically) {
  for (const std::string init : {"file", "seeded"}) {
    RunSpec spec = Spec(net_, init);
    spec.epochs = 3;
    spec.checkpoint_every = 1;
    std::vector<std::string> states;
    Callbacks callbacks;
    callbacks.on_checkpoint = [&](int, const std::string& state) { states.push_back(state); };
    auto whole = TrainRun(spec, callbacks);
    ASSERT_TRUE(whole.ok()) << whole.status();
    ASSERT_EQ(states.size(), 2u);
    RunSpec resumed_spec = spec;
    resumed_spec.resume_state = states[0];
    auto resumed = TrainRun(resumed_spec);
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_EQ(resumed->final_hash, whole->final_hash) << init;
    ASSERT_EQ(resumed->epochs.size(), 3u);
    for (size_t e = 0; e < 3; ++e) {
      EXPECT_EQ(resumed->epochs[e].weights_hash, whole->epochs[e].weights_hash) << init << e;
    }
    EXPECT_EQ(resumed->test_loss, whole->test_loss);
  }
}

// A replay (replay.h) of a scripted net: the interpreter's ops are traced at the top
// level with the modules their parameters belong to, dropout's draws are put back with
// the generators, so the traced step changes nothing, and the last batch's hash is the
// run's epoch hash.
TEST_F(TorchScriptTest, AReplayTracesTheScriptedOpsWithTheirModules) {
  const RunSpec spec = Spec(net_);
  auto run = TrainRun(spec);
  ASSERT_TRUE(run.ok()) << run.status();
  ReplayRequest request;
  request.epoch = 1;
  request.trace_batch = 0;
  auto a = ReplayEpoch(spec, request);
  auto b = ReplayEpoch(spec, request);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->batch_hashes.back(), run->epochs[1].weights_hash);
  EXPECT_TRUE(TraceChangedNothing(*a, 0));
  EXPECT_EQ(CompareTraces(a->trace, b->trace).kind, OpDivergence::Kind::kNone);
  std::map<std::string, std::string> module_of;  // the first forward op of each name
  for (const OpRecord& r : a->trace) {
    if (r.phase == OpPhase::kForward) module_of.try_emplace(r.name, r.module);
  }
  EXPECT_EQ(module_of["aten::conv2d"], "features.0");
  EXPECT_EQ(module_of["aten::batch_norm"], "bn");
  EXPECT_EQ(module_of["aten::linear"], "fc");
  EXPECT_EQ(module_of["aten::mul"], "");  // times the net's own parameter
  EXPECT_TRUE(module_of.count("aten::dropout"));
}

TEST_F(TorchScriptTest, BadModelFilesFailBeforeTrainingWithTheFileNamed) {
  const std::string missing = dir_ + "/missing.pt";
  const std::string garbage = dir_ + "/garbage.pt";
  {
    std::mt19937 bytes(5);
    std::ofstream out(garbage, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>(bytes() & 0xff));
  }
  const std::string no_forward = Save("no_forward.pt", [](ModuleBuilder& b) {
    Module m = b.New("__torch__.Headless");
    m.register_parameter("weight", at::ones({3}).requires_grad_(), false);
    return m;
  });
  const std::string five = Save("five.pt", [](ModuleBuilder& b) { return b.Net(5); });
  const std::string misfit = Save("misfit.pt", [](ModuleBuilder& b) { return b.Net(10, 100); });
  const std::string tuple = Save("tuple.pt", [](ModuleBuilder& b) {
    Module m = b.New("__torch__.Pair");
    m.define("def forward(self, x):\n    return x, x\n");
    return m;
  });
  struct Case {
    std::string file;
    std::string message;
  };
  const std::vector<Case> cases = {
      {missing, "model file " + missing + " does not exist"},
      {garbage, "model file " + garbage + " is not a TorchScript module"},
      {no_forward, "model file " + no_forward + " has no forward method"},
      {five, "model file " + five + " does not fit the data: forward on 2 zero images "
             "[2, 1, 28, 28] gives [2, 5], not [2, 10] (one logit per class)"},
      {misfit, "model file " + misfit + " does not fit the data: forward on 2 zero images "
               "[2, 1, 28, 28] fails: mat1 and mat2 shapes cannot be multiplied"},
      {tuple, "model file " + tuple + " does not fit the data: forward on 2 zero images "
              "[2, 1, 28, 28] returns a Tuple, not a tensor of logits [2, 10]"},
  };
  for (const Case& c : cases) {
    int batches = 0;
    Callbacks callbacks;
    callbacks.on_batch = [&](int, int64_t, int64_t) { ++batches; };
    auto run = TrainRun(Spec(c.file), callbacks);
    ASSERT_FALSE(run.ok()) << c.file;
    EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument) << run.status();
    EXPECT_TRUE(IsPlanError(run.status())) << c.file;  // every run would meet it
    EXPECT_THAT(std::string(run.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(run.status().message()), Not(HasSubstr("\n")));
    EXPECT_EQ(batches, 0) << c.file;
  }

  RunSpec no_file = Spec(net_);
  no_file.inputs.clear();
  EXPECT_THAT(std::string(TrainRun(no_file).status().message()),
              HasSubstr("model kind torchscript needs a model file"));
  RunSpec bad_init = Spec(net_, "random");
  EXPECT_THAT(std::string(TrainRun(bad_init).status().message()),
              HasSubstr("model init must be file or seeded, got \"random\""));
}

}  // namespace
}  // namespace repro::engine
