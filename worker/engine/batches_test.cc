// EpochBatches and AugmentOnDevice against what they replaced: the CPU loop of
// augment.h (AugmentImage) and the host-side gather, byte for byte.
#include "worker/engine/batches.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/tensor.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "worker/engine/augment.h"
#include "worker/engine/shuffle.h"

namespace repro::engine {
namespace {

// Distinct values per pixel, so any misplaced copy shows.
at::Tensor Images(int64_t count, int64_t channels, int64_t height, int64_t width) {
  return at::arange(count * channels * height * width, at::kFloat)
      .mul(0.37)
      .view({count, channels, height, width});
}

// The CPU loop's output for one image.
std::vector<float> Reference(const at::Tensor& image, const AugmentDraw& draw) {
  const at::Tensor src = image.contiguous();
  std::vector<float> out(static_cast<size_t>(src.numel()));
  AugmentImage(src.data_ptr<float>(), out.data(), src.size(0), src.size(1), src.size(2), draw);
  return out;
}

TEST(AugmentOnDeviceTest, EqualsTheCpuLoopForEveryShiftAndFlip) {
  for (const auto& [channels, height, width] : {std::tuple<int64_t, int64_t, int64_t>{1, 28, 28},
                                                {3, 32, 32}, {2, 5, 7}}) {
    std::vector<AugmentDraw> draws;
    for (int64_t dy : {-9, -3, -1, 0, 2, 3, 40}) {
      for (int64_t dx : {-40, -2, 0, 1, 3, 8}) {
        for (bool flip : {false, true}) draws.push_back(AugmentDraw{dy, dx, flip});
      }
    }
    const auto count = static_cast<int64_t>(draws.size());
    const at::Tensor images = Images(count, channels, height, width);
    std::vector<int64_t> dy, dx;
    std::vector<uint8_t> flip;
    for (const AugmentDraw& d : draws) {
      dy.push_back(d.dy);
      dx.push_back(d.dx);
      flip.push_back(d.flip ? 1 : 0);
    }
    const at::Tensor out =
        AugmentOnDevice(images, at::tensor(dy, at::kLong), at::tensor(dx, at::kLong),
                        at::tensor(std::vector<int64_t>(flip.begin(), flip.end()), at::kLong)
                            .to(at::kBool))
            .contiguous();
    ASSERT_EQ(out.sizes(), images.sizes());
    for (int64_t i = 0; i < count; ++i) {
      const std::vector<float> want = Reference(images[i], draws[static_cast<size_t>(i)]);
      EXPECT_EQ(std::memcmp(out[i].contiguous().data_ptr<float>(), want.data(),
                            want.size() * sizeof(float)),
                0)
          << channels << "x" << height << "x" << width << " image " << i << ": dy "
          << draws[static_cast<size_t>(i)].dy << " dx " << draws[static_cast<size_t>(i)].dx
          << " flip " << draws[static_cast<size_t>(i)].flip;
    }
  }
}

TEST(EpochBatchesTest, BatchesAreTheShuffledSamplesAugmentedAsDrawnWithTheirDigests) {
  const int64_t n = 37;
  const at::Tensor x = Images(n, 3, 8, 8);
  const at::Tensor y = at::arange(n, at::kLong);
  RunSpec spec;
  spec.batch_size = 10;
  spec.shuffle_seed = 11;
  spec.augment_seed = 12;
  spec.augment = true;
  spec.augment_shift = 0.3;
  const int epoch = 2;
  const EpochBatches batches(x, y, spec, epoch);
  ASSERT_EQ(batches.count(), 4);
  EXPECT_EQ(batches.size(3), 7);
  const std::vector<int64_t> order = EpochOrder(n, spec.shuffle_seed, epoch);
  for (int64_t b = 0; b < batches.count(); ++b) {
    const EpochBatches::Batch batch = batches.Get(b);
    std::vector<AugmentDraw> draws;
    for (int64_t i = 0; i < batches.size(b); ++i) {
      const int64_t sample = order[static_cast<size_t>(b * 10 + i)];
      EXPECT_EQ(batch.y[i].item<int64_t>(), sample);
      draws.push_back(DrawAugment(spec.augment_seed, epoch, sample, 0.3, true, 8, 8));
      const std::vector<float> want = Reference(x[sample], draws.back());
      EXPECT_EQ(std::memcmp(batch.x[i].contiguous().data_ptr<float>(), want.data(),
                            want.size() * sizeof(float)),
                0)
          << "batch " << b << " sample " << sample;
    }
    EXPECT_EQ(batch.digest,
              AugmentedBatchDigest(order.data() + b * 10, draws.data(), draws.size()));
  }
}

TEST(BatchMetricsTest, TotalsAddEachBatchsMeanLossTimesItsSizeInOrder) {
  RunSpec spec;
  spec.batch_size = 4;
  const at::Tensor x = Images(10, 1, 2, 2);
  const EpochBatches batches(x, at::arange(10, at::kLong), spec, 0);
  BatchMetrics metrics(batches.count(), at::kCPU);
  const float losses[] = {0.1f, 0.7f, 1e-8f};
  for (int64_t b = 0; b < 3; ++b) {
    metrics.Record(b, at::scalar_tensor(losses[b]), at::scalar_tensor(b + 1, at::kLong));
  }
  double sum = 0;
  int64_t correct = 0;
  metrics.Totals(batches, &sum, &correct);
  EXPECT_EQ(sum, static_cast<double>(0.1f) * 4 + static_cast<double>(0.7f) * 4 +
                     static_cast<double>(1e-8f) * 2);
  EXPECT_EQ(correct, 6);
  EXPECT_FALSE(metrics.FirstNonFinite(0, 3).has_value());
  metrics.Record(1, at::scalar_tensor(std::numeric_limits<float>::quiet_NaN()),
                 at::scalar_tensor(0, at::kLong));
  metrics.Record(2, at::scalar_tensor(std::numeric_limits<float>::infinity()),
                 at::scalar_tensor(0, at::kLong));
  const auto bad = metrics.FirstNonFinite(0, 3);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->first, 1);
  EXPECT_TRUE(std::isnan(bad->second));
  EXPECT_EQ(metrics.FirstNonFinite(2, 3)->first, 2);
}

}  // namespace
}  // namespace repro::engine
