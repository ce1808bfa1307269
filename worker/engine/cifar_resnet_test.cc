// Tests of the CIFAR-10 preprocessing into tensors and of data errors in a run (on small
// files written in the binary format; the reader itself is tested in
// data/cifar_dataset_test.cc), of Keras's ResNets (parameter counts, names, padding,
// initialization) and of short TrainRuns of ResNet20v1 and ResNet29v2 on CIFAR-format
// data with a learnable pattern.
#include <ATen/ops/zeros.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/hash.h"
#include "data/cifar_dataset.h"
#include "data/data_test_support.h"
#include "data/dataset_check.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/engine.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/models.h"
#include "worker/engine/resnet.h"
#include "worker/engine/tensor_dataset.h"

namespace repro::engine {
namespace {

using ::testing::HasSubstr;
using data::test_support::CifarTest;
using data::test_support::LabelFn;
using data::test_support::PatternPixel;
using data::test_support::PixelFn;

// LoadDataset for a run reading cifar10 from `dir` with these limits.
absl::StatusOr<TensorDataset> LoadCifar(const std::string& dir, int64_t train_limit,
                                        int64_t test_limit) {
  RunSpec spec;
  spec.dataset_kind = "cifar10";
  spec.dataset_path = dir;
  spec.train_limit = train_limit;
  spec.test_limit = test_limit;
  return LoadDataset(spec);
}
namespace fs = std::filesystem;

// The mean over samples 0..n-1 of PatternPixel(g, i) / 255, as the loader defines it.
float ExpectedMean(int64_t n, int64_t i) {
  double sum = 0;
  for (int64_t g = 0; g < n; ++g) sum += static_cast<float>(PatternPixel(g, i)) / 255.0f;
  return static_cast<float>(sum / static_cast<double>(n));
}

// ---------------------------------------------------------------- preprocessing

TEST_F(CifarTest, PreprocessingDividesBy255AndSubtractsTheTrainingPixelMean) {
  WriteDataset(20, 10);
  auto data = LoadCifar(dir_.string(), 0, 0);
  ASSERT_TRUE(data.ok()) << data.status();
  const at::Tensor& x = data->train.x;
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{100, 3, 32, 32}));
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_TRUE(x.is_contiguous());
  EXPECT_EQ(data->train.y.sizes(), (std::vector<int64_t>{100}));
  EXPECT_EQ(data->train.y.scalar_type(), at::kLong);
  EXPECT_EQ(data->test.x.sizes(), (std::vector<int64_t>{10, 3, 32, 32}));
  EXPECT_EQ(data->train.y[57].item<int64_t>(), 7);

  // Sample 57, green channel, row 5, column 9: NCHW index [57][1][5][9].
  const int64_t i = 1 * 1024 + 5 * 32 + 9;
  const float expected = static_cast<float>(PatternPixel(57, i)) / 255.0f - ExpectedMean(100, i);
  EXPECT_EQ(x[57][1][5][9].item<float>(), expected);  // bit-equal: plain C++ arithmetic
  // The test split is centred on the training mean, not its own.
  EXPECT_EQ(data->test.x[3][2][31][0].item<float>(),
            static_cast<float>(PatternPixel(3, 2 * 1024 + 31 * 32)) / 255.0f -
                ExpectedMean(100, 2 * 1024 + 31 * 32));

  // Per pixel and channel, the training mean is now about zero; the test one is not.
  EXPECT_LT(x.mean(0).abs().max().item<float>(), 1e-6f);
  EXPECT_GT(data->test.x.mean(0).abs().max().item<float>(), 1e-3f);

  // With train_limit, the mean is that of the samples kept.
  auto limited = LoadCifar(dir_.string(), 30, 0);
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_EQ(limited->train.x.size(0), 30);
  EXPECT_LT(limited->train.x.mean(0).abs().max().item<float>(), 1e-6f);
  EXPECT_EQ(limited->test.x[3][2][31][0].item<float>(),
            static_cast<float>(PatternPixel(3, 2 * 1024 + 31 * 32)) / 255.0f -
                ExpectedMean(30, 2 * 1024 + 31 * 32));

  // LoadSplit agrees with LoadDataset for the training split.
  auto split = LoadSplit("cifar10", dir_.string(), data::Split::kTrain, 30);
  ASSERT_TRUE(split.ok()) << split.status();
  EXPECT_TRUE(split->x.equal(limited->train.x));
}

// ---------------------------------------------------------------- errors

TEST_F(CifarTest, MissingDirectoryFileAndTooLargeLimitAreErrors) {
  const std::string missing = (dir_ / "nope").string();
  absl::Status s = data::CheckDataset("cifar10", missing);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(missing + ": dataset directory does not exist"));

  WriteDataset(20, 10);
  fs::remove(dir_ / "data_batch_5.bin");
  s = data::CheckDataset("cifar10", dir_.string());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(Path("data_batch_5.bin") + ": file does not exist"));

  WriteDataset(20, 10);
  s = data::CheckDataset("cifar10", dir_.string(), 101, 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("train_limit 101 is larger than the 100 samples"));
  s = data::CheckDataset("cifar10", dir_.string(), 0, 11);
  EXPECT_THAT(std::string(s.message()),
              HasSubstr("test_limit 11 is larger than the 10 samples in test_batch.bin"));
  s = data::CheckDataset("cifar10", dir_.string(), -1, 0);
  EXPECT_THAT(std::string(s.message()), HasSubstr("train_limit must be 0 (all) or positive"));

  // A run reports the same as INVALID_ARGUMENT.
  fs::remove(dir_ / "test_batch.bin");
  RunSpec spec;
  spec.dataset_kind = "cifar10";
  spec.dataset_path = dir_.string();
  auto run = TrainRun(spec);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(run.status().message()), HasSubstr("test_batch.bin: file does not exist"));
}

// ---------------------------------------------------------------- ResNet structure

struct KerasCounts {
  int64_t total = 0;
  int64_t trainable = 0;
};

// Keras's count: parameters are trainable; BN moving mean and variance are not;
// LibTorch's num_batches_tracked is no Keras weight.
KerasCounts CountAsKeras(const torch::nn::Module& model) {
  KerasCounts counts;
  for (const auto& p : model.parameters()) counts.trainable += p.numel();
  counts.total = counts.trainable;
  for (const auto& b : model.named_buffers()) {
    if (absl::EndsWith(b.key(), ".running_mean") || absl::EndsWith(b.key(), ".running_var")) {
      counts.total += b.value().numel();
    }
  }
  return counts;
}

std::shared_ptr<ClassifierImpl> Build(int version, int depth, uint64_t seed = 0) {
  torch::manual_seed(seed);
  InputShape shape{3, 32, 32, 10};
  auto made = MakeModel(ModelOptions{"resnet", version, depth}, shape);
  EXPECT_TRUE(made.ok()) << made.status();
  return made.ok() ? *made : nullptr;
}

TEST(ResNetTest, ParameterCountsEqualKeras) {
  const KerasCounts v1_20 = CountAsKeras(*Build(1, 20));
  EXPECT_EQ(v1_20.total, 274442);
  EXPECT_EQ(v1_20.trainable, 273066);
  const KerasCounts v2_56 = CountAsKeras(*Build(2, 56));
  EXPECT_EQ(v2_56.total, 1673738);
  EXPECT_EQ(v2_56.trainable, 1663338);
  const KerasCounts v2_29 = CountAsKeras(*Build(2, 29));
  std::printf("ResNet29v2: %lld parameters, %lld trainable\n",
              static_cast<long long>(v2_29.total), static_cast<long long>(v2_29.trainable));
  EXPECT_EQ(v2_29.total, 849002);
  EXPECT_EQ(v2_29.trainable, 843786);
}

TEST(ResNetTest, NamesOrderAndRegularizedKernels) {
  auto v1 = Build(1, 20);
  std::vector<std::string> names;
  for (const auto& p : v1->named_parameters()) names.push_back(p.key());
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "conv1.weight");
  EXPECT_EQ(names[2], "bn1.weight");
  EXPECT_EQ(names[4], "stage0.block0.conv1.weight");
  EXPECT_THAT(names, ::testing::Contains("stage1.block0.shortcut.weight"));
  EXPECT_THAT(names, ::testing::Not(::testing::Contains("stage0.block0.shortcut.weight")));
  EXPECT_EQ(names.back(), "fc.bias");
  // Every conv kernel, shortcuts included: stem + 3 stages x 3 blocks x 2 + 2 shortcuts.
  EXPECT_EQ(v1->RegularizedWeights().size(), 21u);

  auto v2 = Build(2, 29);
  names.clear();
  for (const auto& p : v2->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names[4], "stage0.block0.conv1.weight");  // the very first block has no bn1
  EXPECT_THAT(names, ::testing::Contains("stage0.block1.bn1.weight"));
  EXPECT_THAT(names, ::testing::Contains("stage2.block0.shortcut.weight"));
  EXPECT_THAT(names, ::testing::Contains("bn_final.weight"));
  EXPECT_EQ(names.back(), "fc.bias");
  EXPECT_EQ(v2->RegularizedWeights().size(), 31u);  // stem + 9 blocks x 3 + 3 shortcuts
  for (const at::Tensor& w : v2->RegularizedWeights()) EXPECT_EQ(w.dim(), 4);

  // BN as Keras's: epsilon 1e-3, momentum 0.99.
  for (const auto& m : v2->modules(false)) {
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm2dImpl*>(m.get())) {
      EXPECT_DOUBLE_EQ(bn->options.eps(), 1e-3);
      EXPECT_DOUBLE_EQ(bn->options.momentum().value(), 0.01);
    }
  }
}

TEST(ResNetTest, BadVersionDepthAndShapeAreRejected) {
  InputShape cifar{3, 32, 32, 10};
  EXPECT_EQ(MakeModel(ModelOptions{"resnet", 3, 29}, cifar).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto s = MakeModel(ModelOptions{"resnet", 2, 21}, cifar).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("9n+2"));
  EXPECT_FALSE(CheckModel(ModelOptions{"resnet", 1, 2}).ok());
  EXPECT_TRUE(CheckModel(ModelOptions{"resnet", 1, 20}).ok());
  s = MakeModel(ModelOptions{"resnet", 1, 20}, InputShape{1, 28, 28, 10}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("29x29"));
  EXPECT_FALSE(CheckModelKind("resnet50").ok());
}

TEST(ResNetTest, KerasSamePaddingIsAsymmetricForStrideTwo) {
  EXPECT_EQ(KerasSamePadding(32, 32, 3, 2), (std::array<int64_t, 4>{0, 1, 0, 1}));
  EXPECT_EQ(KerasSamePadding(16, 16, 3, 2), (std::array<int64_t, 4>{0, 1, 0, 1}));
  EXPECT_EQ(KerasSamePadding(32, 32, 3, 1), (std::array<int64_t, 4>{1, 1, 1, 1}));
  EXPECT_EQ(KerasSamePadding(32, 32, 1, 2), (std::array<int64_t, 4>{0, 0, 0, 0}));
  EXPECT_EQ(KerasSamePadding(7, 8, 3, 2), (std::array<int64_t, 4>{0, 1, 1, 1}));
}

TEST(ResNetTest, ForwardGivesLogitsPerClass) {
  for (const auto& [version, depth] : {std::pair{1, 20}, std::pair{2, 29}}) {
    auto model = Build(version, depth);
    model->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor logits = model->forward(at::zeros({2, 3, 32, 32}));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 10})) << version;
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
  }
}

TEST(ResNetTest, InitializationIsKerasHeNormalAndSeeded) {
  auto model = Build(2, 29, /*seed=*/7);
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    const at::Tensor& w = p.value();
    if (absl::EndsWith(name, ".bias")) {
      if (name.find("bn") == std::string::npos) {
        EXPECT_EQ(w.abs().max().item<float>(), 0) << name;
      }
      continue;
    }
    if (w.dim() == 4 || name == "fc.weight") {
      const int64_t fan_in = w.numel() / w.size(0);
      const double stddev = std::sqrt(2.0 / static_cast<double>(fan_in));
      EXPECT_LE(w.abs().max().item<double>(), 2 * stddev / 0.87962566103423978 + 1e-6) << name;
      if (w.numel() >= 10000) {  // enough values for the stddev to be close
        EXPECT_NEAR(w.std().item<double>() / stddev, 1.0, 0.03) << name;
        EXPECT_NEAR(w.mean().item<double>() / stddev, 0.0, 0.03) << name;
      }
    }
  }
  // Same seed, same model; another seed, another model.
  EXPECT_EQ(FingerprintModel(*Build(2, 29, 7)).hash, FingerprintModel(*model).hash);
  EXPECT_NE(FingerprintModel(*Build(2, 29, 8)).hash, FingerprintModel(*model).hash);
  EXPECT_EQ(FingerprintModel(*Build(1, 20, 7)).hash, FingerprintModel(*Build(1, 20, 7)).hash);
}

// ---------------------------------------------------------------- training

class CifarTrainTest : public CifarTest {
 protected:
  // Writes 5 x 8 training and 8 test samples whose label (0..3) lights one quadrant of
  // the image, and returns a spec that trains `version`/`depth` on them for 2 x 5 steps.
  RunSpec Spec(int version, int depth) {
    const LabelFn label = [](int64_t g) { return static_cast<uint8_t>((g * 3 + g / 4) % 4); };
    const PixelFn pixel = [label](int64_t g, int64_t i) {
      const int64_t row = (i % 1024) / 32, col = i % 32;
      const int64_t quadrant = (row / 16) * 2 + col / 16;
      const int64_t noise = (g * 31 + i * 17) % 23;
      return static_cast<uint8_t>((quadrant == label(g) ? 200 : 30) + noise);
    };
    WriteDataset(8, 8, label, pixel);
    RunSpec spec;
    spec.dataset_kind = "cifar10";
    spec.dataset_path = dir_.string();
    spec.model_kind = "resnet";
    spec.model_version = version;
    spec.model_depth = depth;
    spec.l2 = 1e-4;
    spec.batch_size = 8;
    spec.epochs = 2;
    spec.lr = 0.001;
    spec.threads = 1;
    spec.deterministic_algorithms = true;
    return spec;
  }
};

TEST_F(CifarTrainTest, ResNet20v1LossFallsAndDataHashIsOfThePreprocessedX) {
  const auto started = std::chrono::steady_clock::now();
  const RunSpec spec = Spec(1, 20);
  auto run = TrainRun(spec);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->epochs.size(), 2u);
  std::printf("ResNet20v1 losses %.4f -> %.4f (val %.4f), %.2f s\n", run->epochs[0].loss,
              run->epochs[1].loss, run->test_loss,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  EXPECT_LT(run->epochs[1].loss, run->epochs[0].loss);
  EXPECT_EQ(run->initial_tensors.front().name, "conv1.weight");

  auto data = LoadCifar(dir_.string(), 0, 0);
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(run->data_x_hash, HashBytes(data->train.x.data_ptr(), data->train.x.nbytes()));
  EXPECT_EQ(run->data_y_hash, HashBytes(data->train.y.data_ptr(), data->train.y.nbytes()));

  // The engine builds the model as MakeModel does after torch::manual_seed(init_seed).
  auto built = Build(1, 20, spec.init_seed);
  EXPECT_EQ(run->initial_hash, FingerprintModel(*built).hash);
}

TEST_F(CifarTrainTest, L2TermOnConvKernelsIsInTheTrainingAndValidationLoss) {
  // With a learning rate too small to move the weights, l2 = 1 adds sum(w^2) over the
  // conv kernels (about 1,570 at initialization) to every loss, and nothing else moves.
  RunSpec spec = Spec(1, 20);
  spec.epochs = 1;
  spec.lr = 1e-12;
  spec.l2 = 0;
  auto plain = TrainRun(spec);
  ASSERT_TRUE(plain.ok()) << plain.status();
  spec.l2 = 1.0;
  auto penalized = TrainRun(spec);
  ASSERT_TRUE(penalized.ok()) << penalized.status();

  double squares = 0;
  for (const at::Tensor& w : Build(1, 20, spec.init_seed)->RegularizedWeights()) {
    squares += w.square().sum().item<double>();
  }
  EXPECT_GT(squares, 1000);
  EXPECT_EQ(penalized->initial_hash, plain->initial_hash);
  EXPECT_NEAR(penalized->epochs[0].val_loss - plain->epochs[0].val_loss, squares, 1e-3 * squares);
  EXPECT_NEAR(penalized->epochs[0].loss - plain->epochs[0].loss, squares, 1e-3 * squares);
  // The penalty's gradient is trained on: the weights end up different.
  EXPECT_NE(penalized->final_hash, plain->final_hash);
}

TEST_F(CifarTrainTest, ResNet29v2LossFalls) {
  const auto started = std::chrono::steady_clock::now();
  auto run = TrainRun(Spec(2, 29));
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->epochs.size(), 2u);
  std::printf("ResNet29v2 losses %.4f -> %.4f (val %.4f), %.2f s\n", run->epochs[0].loss,
              run->epochs[1].loss, run->test_loss,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  EXPECT_LT(run->epochs[1].loss, run->epochs[0].loss);
  EXPECT_EQ(run->initial_tensors.back().name, "bn_final.num_batches_tracked");
}

}  // namespace
}  // namespace repro::engine
