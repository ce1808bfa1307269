// Tests of the training engine: IDX data as tensors (the reader itself is tested in
// data/idx_dataset_test.cc), data errors in a run, fingerprints, the epoch order, and
// TrainRun's reproducibility on a few hundred real Fashion-MNIST images.
#include "worker/engine/engine.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/ones.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "data/data_test_support.h"
#include "data/dataset_check.h"
#include "data/idx_dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/shuffle.h"
#include "worker/engine/tensor_dataset.h"

namespace repro::engine {
namespace {

using ::testing::HasSubstr;
using data::test_support::IdxTest;
using data::test_support::ImageFile;
using data::test_support::LabelFile;
using data::test_support::WriteGzip;

// ---------------------------------------------------------------- (a) real data

TEST(RealDataTest, FashionMnistLoadsWithShapesRangesAndLabels) {
  auto train = LoadSplit("fashion-mnist", REPRO_FASHION_MNIST, data::Split::kTrain, 0);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->x.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(train->x.scalar_type(), at::kFloat);
  EXPECT_EQ(train->y.sizes(), (std::vector<int64_t>{60000}));
  EXPECT_EQ(train->y.scalar_type(), at::kLong);
  EXPECT_GE(train->x.min().item<float>(), 0.0f);
  EXPECT_LE(train->x.max().item<float>(), 1.0f);
  EXPECT_EQ(train->x.max().item<float>(), 1.0f);  // some pixel is 255
  EXPECT_EQ(train->y.min().item<int64_t>(), 0);
  EXPECT_EQ(train->y.max().item<int64_t>(), 9);

  auto test = LoadSplit("fashion-mnist", REPRO_FASHION_MNIST, data::Split::kTest, 2000);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(test->x.sizes(), (std::vector<int64_t>{2000, 1, 28, 28}));
  EXPECT_EQ(test->y.sizes(), (std::vector<int64_t>{2000}));

  EXPECT_TRUE(data::CheckDataset("fashion-mnist", REPRO_FASHION_MNIST).ok());
  EXPECT_TRUE(data::CheckDataset("fashion-mnist", REPRO_FASHION_MNIST, 10000, 2000).ok());
}

// ---------------------------------------------------------------- (b) small files

TEST_F(IdxTest, SmallValidDatasetReadsAndPreprocesses) {
  WriteDataset(20, 5);
  ASSERT_TRUE(data::CheckDataset("mnist", dir_.string()).ok());
  auto train = LoadSplit("mnist", dir_.string(), data::Split::kTrain, 7);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_EQ(train->size(), 7);
  // Pixel i of the file is i % 251; preprocessing is exactly float(p) / 255.
  const float* x = train->x.data_ptr<float>();
  for (int i : {0, 1, 250, 251, 5000}) EXPECT_EQ(x[i], static_cast<float>(i % 251) / 255.0f);
  EXPECT_EQ(train->y.data_ptr<int64_t>()[6], 6);
}

TEST_F(IdxTest, TrainRunReportsDataErrorsAsInvalidArgument) {
  WriteGzip(Path("train-images-idx3-ubyte.gz"), ImageFile(100, 10));
  WriteGzip(Path("train-labels-idx1-ubyte.gz"), LabelFile(100, 100));
  RunSpec spec;
  spec.dataset_path = dir_.string();
  auto result = TrainRun(spec);
  ASSERT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("truncated"));
}

// ---------------------------------------------------------------- (f) fingerprints

TEST(FingerprintTest, TensorHashIsSensitiveToShapeAndDtype) {
  std::vector<int32_t> values(6);
  std::iota(values.begin(), values.end(), 1);
  const at::Tensor a = at::from_blob(values.data(), {2, 3}, at::kInt);
  const at::Tensor b = at::from_blob(values.data(), {3, 2}, at::kInt);
  const at::Tensor c = at::from_blob(values.data(), {6}, at::kInt);
  const at::Tensor d = at::from_blob(values.data(), {2, 3}, at::kFloat);  // same bytes
  EXPECT_NE(HashTensor(a), HashTensor(b));
  EXPECT_NE(HashTensor(a), HashTensor(c));
  EXPECT_NE(HashTensor(a), HashTensor(d));
  EXPECT_EQ(HashTensor(a), HashTensor(a.clone()));
  // Canonical form: a transposed view hashes as its contiguous copy.
  EXPECT_EQ(HashTensor(b.t()), HashTensor(b.t().contiguous()));
  EXPECT_EQ(HashTensor(a).size(), 32u);
}

TEST(FingerprintTest, TensorHashIsThePublishedFormula) {
  std::vector<float> values = {1.5f, -2.0f};
  const at::Tensor t = at::from_blob(values.data(), {2}, at::kFloat);
  Hasher hasher;
  hasher.UpdateField("Float");
  hasher.UpdateU64(1);
  hasher.UpdateU64(2);
  hasher.Update(values.data(), sizeof(float) * values.size());
  EXPECT_EQ(HashTensor(t), hasher.HexDigest());
}

// ---------------------------------------------------------------- epoch order

TEST(ShuffleTest, EpochOrderIsAPermutationThatDependsOnSeedAndEpoch) {
  const std::vector<int64_t> order = EpochOrder(1000, 7, 0);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(order, EpochOrder(1000, 7, 0));
  EXPECT_NE(order, EpochOrder(1000, 8, 0));
  EXPECT_NE(order, EpochOrder(1000, 7, 1));
  EXPECT_NE(EpochOrder(1000, 7, 1), EpochOrder(1000, 8, 0));
  EXPECT_TRUE(EpochOrder(0, 1, 0).empty());
  EXPECT_EQ(EpochOrder(1, 1, 0), std::vector<int64_t>{0});
}

TEST(ShuffleTest, GoldenOrderAndDigestArePinned) {
  // Stored batch digests depend on these exact values: a change here is a format change.
  EXPECT_EQ(EpochOrder(10, 0, 0), (std::vector<int64_t>{2, 8, 1, 9, 6, 0, 7, 5, 4, 3}));
  const std::vector<int64_t> indices = {3, 1, 4};
  Hasher hasher;
  for (int64_t i : indices) hasher.UpdateU64(static_cast<uint64_t>(i));
  EXPECT_EQ(BatchDigest(indices.data(), indices.size()), hasher.HexDigest());
  EXPECT_EQ(BatchDigest(indices.data(), indices.size()),
            HashBytes(indices.data(), indices.size() * sizeof(int64_t)));
}

TEST(ShuffleTest, BelowIsInRange) {
  SplitMix64 rng(42);
  for (uint64_t bound : {1ull, 2ull, 3ull, 1000ull, (1ull << 63) + 1}) {
    for (int i = 0; i < 100; ++i) EXPECT_LT(rng.Below(bound), bound);
  }
}

// ---------------------------------------------------------------- TrainRun

RunSpec SmallSpec() {
  RunSpec spec;
  spec.dataset_path = REPRO_FASHION_MNIST;
  spec.train_limit = 256;
  spec.test_limit = 200;
  spec.batch_size = 48;  // 256 = 5 x 48 + 16: the last batch is partial
  spec.epochs = 2;
  spec.init_seed = 1;
  spec.shuffle_seed = 2;
  spec.threads = 1;
  spec.deterministic_algorithms = true;
  spec.keep_batch_digests = true;
  return spec;
}

std::vector<std::string> AllBatchDigests(const RunResult& r) {
  std::vector<std::string> all;
  for (const auto& e : r.epochs) all.insert(all.end(), e.batch_digests.begin(), e.batch_digests.end());
  return all;
}

TEST(TrainRunTest, SameSeedsGiveBitIdenticalRuns) {
  const RunSpec spec = SmallSpec();
  int batch_calls = 0, epoch_calls = 0;
  Callbacks callbacks;
  callbacks.on_batch = [&](int, int64_t batch, int64_t batches) {
    ++batch_calls;
    EXPECT_EQ(batches, 6);
    EXPECT_GE(batch, 1);
    EXPECT_LE(batch, 6);
  };
  callbacks.on_epoch = [&](const EpochRecord&) { ++epoch_calls; };
  auto a = TrainRun(spec, callbacks);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(batch_calls, 12);
  EXPECT_EQ(epoch_calls, 2);
  auto b = TrainRun(spec);
  ASSERT_TRUE(b.ok()) << b.status();

  EXPECT_EQ(a->initial_hash, b->initial_hash);
  EXPECT_EQ(a->final_hash, b->final_hash);
  EXPECT_NE(a->initial_hash, a->final_hash);
  EXPECT_EQ(a->data_x_hash, b->data_x_hash);
  EXPECT_EQ(a->data_y_hash, b->data_y_hash);
  EXPECT_EQ(a->test_loss, b->test_loss);  // bit-equal, not near
  EXPECT_EQ(a->test_accuracy, b->test_accuracy);
  ASSERT_EQ(a->epochs.size(), 2u);
  ASSERT_EQ(b->epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(a->epochs[e].batch_digest, b->epochs[e].batch_digest);
    EXPECT_EQ(a->epochs[e].batch_digests, b->epochs[e].batch_digests);
    EXPECT_EQ(a->epochs[e].weights_hash, b->epochs[e].weights_hash);
    EXPECT_EQ(a->epochs[e].loss, b->epochs[e].loss);
    EXPECT_EQ(a->epochs[e].epoch, static_cast<int>(e));
    ASSERT_EQ(a->epochs[e].batch_digests.size(), 6u);
    EXPECT_EQ(a->epochs[e].batch_digest, HashSequence(a->epochs[e].batch_digests));
  }
  EXPECT_NE(a->epochs[0].batch_digest, a->epochs[1].batch_digest);
  EXPECT_EQ(a->final_hash, a->epochs.back().weights_hash);
  EXPECT_EQ(a->test_loss, a->epochs.back().val_loss);
  EXPECT_EQ(a->test_accuracy, a->epochs.back().val_accuracy);

  // Batches are the epoch order cut in batch_size pieces, the last one partial.
  const std::vector<int64_t> order = EpochOrder(256, spec.shuffle_seed, 1);
  EXPECT_EQ(a->epochs[1].batch_digests[0], BatchDigest(order.data(), 48));
  EXPECT_EQ(a->epochs[1].batch_digests[5], BatchDigest(order.data() + 240, 16));

  // Data hashes are of the tensors as fed to the model.
  auto train = LoadSplit("fashion-mnist", REPRO_FASHION_MNIST, data::Split::kTrain, 256);
  ASSERT_TRUE(train.ok());
  EXPECT_EQ(a->data_x_hash, HashBytes(train->x.data_ptr(), train->x.nbytes()));
  EXPECT_EQ(a->data_y_hash, HashBytes(train->y.data_ptr(), train->y.nbytes()));

  // Per-tensor hashes: parameters in registration order, and the model hash over them.
  ASSERT_EQ(a->initial_tensors.size(), 8u);
  EXPECT_EQ(a->initial_tensors[0].name, "conv1.weight");
  EXPECT_EQ(a->initial_tensors[7].name, "fc2.bias");
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& t : a->final_tensors) named.emplace_back(t.name, t.hash);
  EXPECT_EQ(HashNamed(named), a->final_hash);
}

TEST(TrainRunTest, ShuffleSeedChangesOnlyTheOrderAndInitSeedOnlyTheWeights) {
  RunSpec spec = SmallSpec();
  spec.epochs = 1;
  auto base = TrainRun(spec);
  ASSERT_TRUE(base.ok()) << base.status();

  RunSpec reshuffled = spec;
  reshuffled.shuffle_seed = 3;
  auto other_order = TrainRun(reshuffled);
  ASSERT_TRUE(other_order.ok()) << other_order.status();
  EXPECT_EQ(other_order->initial_hash, base->initial_hash);
  EXPECT_NE(other_order->epochs[0].batch_digest, base->epochs[0].batch_digest);
  EXPECT_NE(other_order->final_hash, base->final_hash);

  RunSpec reinitialized = spec;
  reinitialized.init_seed = 4;
  auto other_init = TrainRun(reinitialized);
  ASSERT_TRUE(other_init.ok()) << other_init.status();
  EXPECT_NE(other_init->initial_hash, base->initial_hash);
  ASSERT_EQ(other_init->initial_tensors.size(), base->initial_tensors.size());
  size_t first_difference = 0;
  while (first_difference < base->initial_tensors.size() &&
         other_init->initial_tensors[first_difference].hash ==
             base->initial_tensors[first_difference].hash) {
    ++first_difference;
  }
  EXPECT_EQ(first_difference, 0u);
  EXPECT_EQ(other_init->initial_tensors[0].name, "conv1.weight");
  EXPECT_EQ(AllBatchDigests(*other_init), AllBatchDigests(*base));
  EXPECT_EQ(other_init->epochs[0].batch_digest, base->epochs[0].batch_digest);
  EXPECT_EQ(other_init->data_x_hash, base->data_x_hash);
}

TEST(TrainRunTest, TrainingLossFalls) {
  RunSpec spec = SmallSpec();
  spec.train_limit = 512;
  spec.batch_size = 32;
  spec.epochs = 4;
  spec.keep_batch_digests = false;
  auto r = TrainRun(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->epochs.size(), 4u);
  EXPECT_TRUE(r->epochs[0].batch_digests.empty());
  EXPECT_LT(r->epochs[3].loss, r->epochs[0].loss * 0.8);
  EXPECT_GT(r->epochs[3].accuracy, r->epochs[0].accuracy);
  EXPECT_GT(r->test_accuracy, 0.5);
  for (const auto& e : r->epochs) EXPECT_GT(e.seconds, 0);

  RunSpec sgd = spec;
  sgd.optimizer = "sgd";
  sgd.lr = 0.05;
  auto s = TrainRun(sgd);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_LT(s->epochs[3].loss, s->epochs[0].loss);
}

TEST(TrainRunTest, ShouldStopCancelsAtABatchBoundary) {
  RunSpec spec = SmallSpec();
  int batches = 0;
  Callbacks callbacks;
  callbacks.on_batch = [&](int, int64_t, int64_t) { ++batches; };
  callbacks.should_stop = [&] { return batches == 3; };
  auto r = TrainRun(spec, callbacks);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(batches, 3);
}

TEST(TrainRunTest, ALossThatIsNoNumberEndsTheRunAsDivergedWhereItHappened) {
  RunSpec spec = SmallSpec();
  spec.optimizer = "sgd";
  spec.lr = 1e30;  // the first step throws the weights far past what a float holds
  int last_epoch = -1;
  int64_t last_batch = 0;
  int epochs_reported = 0;
  Callbacks callbacks;
  callbacks.on_batch = [&](int epoch, int64_t batch, int64_t) {
    last_epoch = epoch;
    last_batch = batch;
  };
  callbacks.on_epoch = [&](const EpochRecord&) { ++epochs_reported; };
  auto r = TrainRun(spec, callbacks);
  ASSERT_TRUE(r.ok()) << r.status();
  // The run stopped at the batch whose loss was not finite (on_batch counts batches
  // done, 1-based; the message is 0-based like the epochs), within a few batches.
  ASSERT_EQ(last_epoch, 0);
  EXPECT_LE(last_batch, 3);
  EXPECT_THAT(r->diverged, ::testing::MatchesRegex(absl::StrCat(
                               "diverged: loss -?(nan|inf) at epoch 0, batch ", last_batch - 1)));
  EXPECT_EQ(epochs_reported, 0);
  EXPECT_TRUE(r->epochs.empty());
  EXPECT_TRUE(r->predictions.empty());
  EXPECT_EQ(r->test_loss, 0);
  EXPECT_EQ(r->test_accuracy, 0);
  EXPECT_EQ(r->final_tensors.size(), r->initial_tensors.size());
  EXPECT_NE(r->final_hash, r->initial_hash);

  // A learning rate that trains keeps the run whole.
  auto fine = TrainRun(SmallSpec());
  ASSERT_TRUE(fine.ok()) << fine.status();
  EXPECT_EQ(fine->diverged, "");
  EXPECT_EQ(fine->epochs.size(), 2u);
}

TEST(TrainRunTest, BadSpecsAreRejectedWithTheValueNamed) {
  struct Case {
    void (*edit)(RunSpec&);
    absl::StatusCode code;
    const char* text;
  };
  const Case cases[] = {
      {[](RunSpec& s) { s.batch_size = 0; }, absl::StatusCode::kInvalidArgument, "batch_size"},
      {[](RunSpec& s) { s.epochs = 0; }, absl::StatusCode::kInvalidArgument, "epochs"},
      {[](RunSpec& s) { s.lr = 0; }, absl::StatusCode::kInvalidArgument, "lr"},
      {[](RunSpec& s) { s.optimizer = "lbfgs"; }, absl::StatusCode::kInvalidArgument, "lbfgs"},
      {[](RunSpec& s) { s.device = "tpu"; }, absl::StatusCode::kInvalidArgument, "tpu"},
      {[](RunSpec& s) { s.model_kind = "resnet-9"; }, absl::StatusCode::kInvalidArgument,
       "resnet-9"},
      {[](RunSpec& s) { s.train_limit = 70000; }, absl::StatusCode::kInvalidArgument,
       "train_limit 70000"},
  };
  for (const Case& c : cases) {
    RunSpec spec = SmallSpec();
    c.edit(spec);
    auto r = TrainRun(spec);
    EXPECT_EQ(r.status().code(), c.code) << c.text;
    EXPECT_THAT(r.status().message(), HasSubstr(c.text));
  }
  if (!CudaAvailable()) {
    RunSpec spec = SmallSpec();
    spec.device = "cuda";
    auto r = TrainRun(spec);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(r.status().message(), HasSubstr("device cuda requested"));
  }
}

// The size of the quick experiment the design started from: 10,000 training and 2,000
// test images, batch 128, one thread. Disabled (it takes seconds); run it with
//   engine_test --gtest_also_run_disabled_tests --gtest_filter='*Timing*'
TEST(TrainRunTest, DISABLED_TimingOneEpochOfTenThousandImages) {
  RunSpec spec;
  spec.train_limit = 10000;
  spec.test_limit = 2000;
  spec.batch_size = 128;
  spec.epochs = 1;
  spec.threads = 1;
  const auto started = std::chrono::steady_clock::now();
  auto r = TrainRun(spec);
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("epoch: %.2f s (training + validation), whole run with loading: %.2f s, "
              "loss %.4f, train accuracy %.4f, test loss %.4f, test accuracy %.4f\n",
              r->epochs[0].seconds, total, r->epochs[0].loss, r->epochs[0].accuracy,
              r->test_loss, r->test_accuracy);
}

TEST(TrainRunTest, NoopRunReturnsAtOnceWithAnEmptyModel) {
  RunSpec spec;
  spec.model_kind = "noop";
  spec.dataset_path = "/nonexistent";  // a noop run reads no data
  spec.epochs = 3;
  spec.init_seed = 7;
  int epochs_reported = 0;
  Callbacks callbacks;
  callbacks.on_epoch = [&](const EpochRecord& e) { EXPECT_EQ(e.epoch, epochs_reported++); };
  auto result = TrainRun(spec, callbacks);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(epochs_reported, 3);
  ASSERT_EQ(result->epochs.size(), 3u);
  // One empty float tensor named "noop", hashed as any empty float tensor is.
  ASSERT_EQ(result->initial_tensors.size(), 1u);
  EXPECT_EQ(result->initial_tensors[0].name, "noop");
  EXPECT_EQ(result->initial_tensors[0].hash, HashTensor(at::empty({0}, at::kFloat)));
  EXPECT_EQ(result->final_hash, result->initial_hash);
  EXPECT_EQ(result->data_x_hash, HashBytes("", 0));
  EXPECT_EQ(result->epochs[2].batch_digest, HashSequence({}));
  EXPECT_EQ(result->epochs[2].weights_hash, result->initial_hash);
  EXPECT_TRUE(result->predictions.empty());
  EXPECT_EQ(result->environment.at("device"), "cpu");
  // Seeds change nothing: every noop run is the same run.
  spec.init_seed = 8;
  EXPECT_EQ(TrainRun(spec)->initial_hash, result->initial_hash);
}

TEST(TrainRunTest, TorchVersionIsDotted) {
  EXPECT_THAT(TorchVersion(), ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
}

}  // namespace
}  // namespace repro::engine
