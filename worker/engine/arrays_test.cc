// Dataset kind arrays in the engine: .npy files written here from the first real
// Fashion-MNIST images train as the same images read from their IDX files do, bit for
// bit (same data hashes, same fingerprints); float32 files load as they are; a model is
// built for the K classes of the labels; bad files fail the run naming the plan key.
#include <torch/utils.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "common/run_spec.h"
#include "data/array_dataset.h"
#include "data/data_test_support.h"
#include "data/idx_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/engine.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/models.h"
#include "worker/engine/tensor_dataset.h"

namespace repro::engine {
namespace {

using ::testing::HasSubstr;
using data::test_support::DatasetDirTest;
using data::test_support::Float32Bytes;
using data::test_support::Int64Bytes;
using data::test_support::NpyFile;
using data::test_support::WriteFile;

constexpr int64_t kTrain = 300;
constexpr int64_t kTest = 200;

class ArraysEngineTest : public DatasetDirTest {
 protected:
  // A 1-epoch run of small-cnn with fixed seeds; the data left to the caller.
  static RunSpec BaseSpec() {
    RunSpec spec;
    spec.batch_size = 64;  // 300 = 4 x 64 + 44: the last batch is partial
    spec.epochs = 1;
    spec.init_seed = 11;
    spec.shuffle_seed = 12;
    spec.threads = 1;
    spec.keep_batch_digests = true;
    return spec;
  }
  // The same images from Fashion-MNIST's IDX files.
  static RunSpec IdxSpec() {
    RunSpec spec = BaseSpec();
    spec.dataset_kind = "fashion-mnist";
    spec.dataset_path = REPRO_FASHION_MNIST;
    spec.train_limit = kTrain;
    spec.test_limit = kTest;
    return spec;
  }
  RunSpec ArraysSpec(const std::string& prefix) const {
    RunSpec spec = BaseSpec();
    spec.dataset_kind = "arrays";
    spec.dataset_path.clear();
    for (const char* role : {"train_x", "train_y", "test_x", "test_y"}) {
      spec.inputs.push_back(InputFile{role, Path(prefix + role + ".npy"), "", 0});
    }
    return spec;
  }
  // The first kTrain / kTest Fashion-MNIST samples as .npy files named prefix + role:
  // x as uint8 (N, 28, 28), or as float32 (N, 1, 28, 28) of byte / 255 (version 2.0
  // headers); labels int64.
  void WriteFashionMnist(const std::string& prefix, bool as_float) {
    for (auto [split, n, name] : {std::tuple{data::Split::kTrain, kTrain, "train"},
                                  std::tuple{data::Split::kTest, kTest, "test"}}) {
      auto read = data::ReadIdxSplit(REPRO_FASHION_MNIST, split, n);
      ASSERT_TRUE(read.ok()) << read.status();
      const std::vector<uint8_t>& pixels = read->images.pixels;
      if (as_float) {
        std::vector<float> x(pixels.size());
        for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(pixels[i]) / 255.0f;
        WriteFile(Path(prefix + name + "_x.npy"), NpyFile("<f4", {n, 1, 28, 28}, Float32Bytes(x), 2));
      } else {
        WriteFile(Path(prefix + name + "_x.npy"), NpyFile("|u1", {n, 28, 28}, pixels));
      }
      std::vector<int64_t> y(read->labels.labels.begin(), read->labels.labels.end());
      WriteFile(Path(prefix + name + "_y.npy"), NpyFile("<i8", {n}, Int64Bytes(y)));
    }
  }
};

void ExpectSameRun(const RunResult& a, const RunResult& b) {
  EXPECT_EQ(a.data_x_hash, b.data_x_hash);
  EXPECT_EQ(a.data_y_hash, b.data_y_hash);
  EXPECT_EQ(a.initial_hash, b.initial_hash);
  EXPECT_EQ(a.final_hash, b.final_hash);
  EXPECT_EQ(a.test_loss, b.test_loss);  // bit-equal
  EXPECT_EQ(a.predictions, b.predictions);
  ASSERT_EQ(a.epochs.size(), b.epochs.size());
  for (size_t e = 0; e < a.epochs.size(); ++e) {
    EXPECT_EQ(a.epochs[e].loss, b.epochs[e].loss);
    EXPECT_EQ(a.epochs[e].batch_digests, b.epochs[e].batch_digests);
    EXPECT_EQ(a.epochs[e].weights_hash, b.epochs[e].weights_hash);
  }
}

TEST_F(ArraysEngineTest, Uint8ArraysTrainBitIdenticallyToTheSameImagesFromIdx) {
  WriteFashionMnist("u8_", /*as_float=*/false);
  const RunSpec arrays = ArraysSpec("u8_");
  auto data = LoadDataset(arrays);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->classes, 10);
  EXPECT_EQ(data->train.x.sizes(), (std::vector<int64_t>{kTrain, 1, 28, 28}));
  EXPECT_EQ(data->test.y.sizes(), (std::vector<int64_t>{kTest}));
  auto idx = LoadDataset(IdxSpec());
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_TRUE(data->train.x.equal(idx->train.x));
  EXPECT_TRUE(data->test.x.equal(idx->test.x));
  EXPECT_TRUE(data->train.y.equal(idx->train.y));

  auto from_arrays = TrainRun(arrays);
  ASSERT_TRUE(from_arrays.ok()) << from_arrays.status();
  auto from_idx = TrainRun(IdxSpec());
  ASSERT_TRUE(from_idx.ok()) << from_idx.status();
  ExpectSameRun(*from_arrays, *from_idx);
  EXPECT_EQ(from_arrays->predictions.size(), static_cast<size_t>(kTest));
}

TEST_F(ArraysEngineTest, Float32ArraysLoadAsTheyAre) {
  WriteFashionMnist("f32_", /*as_float=*/true);
  const RunSpec arrays = ArraysSpec("f32_");
  auto data = LoadDataset(arrays);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.x.scalar_type(), at::kFloat);
  EXPECT_EQ(data->train.x.sizes(), (std::vector<int64_t>{kTrain, 1, 28, 28}));
  // byte / 255 written as float32 is what the uint8 path computes: the same run again.
  auto from_arrays = TrainRun(arrays);
  ASSERT_TRUE(from_arrays.ok()) << from_arrays.status();
  auto from_idx = TrainRun(IdxSpec());
  ASSERT_TRUE(from_idx.ok()) << from_idx.status();
  ExpectSameRun(*from_arrays, *from_idx);
}

TEST_F(ArraysEngineTest, TheModelIsBuiltForTheClassesOfTheLabels) {
  // 3 classes of 3-channel 16x16 float images; a class's images are brighter.
  constexpr int64_t n = 60, values = 3 * 16 * 16;
  std::vector<float> x(static_cast<size_t>(n * values));
  std::vector<int64_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    y[static_cast<size_t>(i)] = i % 3;
    for (int64_t v = 0; v < values; ++v) {
      x[static_cast<size_t>(i * values + v)] = static_cast<float>(i % 3) - 1.0f + static_cast<float>(v % 7) * 0.01f;
    }
  }
  for (const char* split : {"train", "test"}) {
    WriteFile(Path(std::string("k3_") + split + "_x.npy"), NpyFile("<f4", {n, 3, 16, 16}, Float32Bytes(x)));
    WriteFile(Path(std::string("k3_") + split + "_y.npy"), NpyFile("<i8", {n}, Int64Bytes(y)));
  }
  RunSpec spec = ArraysSpec("k3_");
  spec.batch_size = 16;
  spec.train_limit = 48;
  auto run = TrainRun(spec);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->predictions.size(), static_cast<size_t>(n));
  for (uint8_t p : run->predictions) EXPECT_LT(p, 3);
  // The initial weights are those of small-cnn built for 3 classes from the init seed.
  torch::manual_seed(spec.init_seed);
  auto model = MakeModel("small-cnn", InputShape{3, 16, 16, 3});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(run->initial_hash, FingerprintModel(**model).hash);
  torch::manual_seed(spec.init_seed);
  auto ten = MakeModel("small-cnn", InputShape{3, 16, 16, 10});
  ASSERT_TRUE(ten.ok()) << ten.status();
  EXPECT_NE(run->initial_hash, FingerprintModel(**ten).hash);
  auto data = LoadDataset(spec);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->classes, 3);
  EXPECT_EQ(data->train.size(), 48);
  EXPECT_EQ(data->train.x.sizes(), (std::vector<int64_t>{48, 3, 16, 16}));
}

TEST_F(ArraysEngineTest, BadFilesFailTheRunNamingTheKeyAndTheFile) {
  WriteFashionMnist("bad_", /*as_float=*/false);
  WriteFile(Path("bad_test_y.npy"), NpyFile("<i8", {kTest}, Int64Bytes(std::vector<int64_t>(kTest, 10))));
  auto run = TrainRun(ArraysSpec("bad_"));
  ASSERT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(run.status().message(),
              HasSubstr("dataset.test.y: " + Path("bad_test_y.npy") + ": label 10 at index 0 is outside 0..9"));
  RunSpec missing = ArraysSpec("bad_");
  missing.inputs.pop_back();
  run = TrainRun(missing);
  ASSERT_EQ(run.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(run.status().message(), HasSubstr("dataset.test.y: no file given"));
  EXPECT_FALSE(LoadSplit("arrays", dir_.string(), data::Split::kTrain, 0).ok());
}

}  // namespace
}  // namespace repro::engine
