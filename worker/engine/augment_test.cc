// Tests of the augmentation draws, the pixel shifts and flips, and the augmented
// batch digest.
#include "worker/engine/augment.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <vector>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/engine/shuffle.h"

namespace repro::engine {
namespace {

using ::testing::ElementsAreArray;

bool Same(const AugmentDraw& a, const AugmentDraw& b) {
  return a.dy == b.dy && a.dx == b.dx && a.flip == b.flip;
}

TEST(AugmentDrawTest, DependsOnlyOnSeedEpochAndSample) {
  const AugmentDraw a = DrawAugment(7, 3, 11, 0.1, true, 32, 32);
  EXPECT_TRUE(Same(a, DrawAugment(7, 3, 11, 0.1, true, 32, 32)));
  int differ_seed = 0, differ_epoch = 0, differ_sample = 0;
  for (int64_t s = 0; s < 200; ++s) {
    const AugmentDraw base = DrawAugment(7, 3, s, 0.1, true, 32, 32);
    differ_seed += !Same(base, DrawAugment(8, 3, s, 0.1, true, 32, 32));
    differ_epoch += !Same(base, DrawAugment(7, 4, s, 0.1, true, 32, 32));
    differ_sample += !Same(base, DrawAugment(7, 3, s + 1, 0.1, true, 32, 32));
  }
  // 7 x 7 x 2 outcomes, the likeliest about 5 % of draws: most pairs differ.
  EXPECT_GT(differ_seed, 150);
  EXPECT_GT(differ_epoch, 150);
  EXPECT_GT(differ_sample, 150);
}

TEST(AugmentDrawTest, ShiftsAreRoundedKerasUniformsAndFlipsHalfTheTime) {
  // uniform(-0.1, 0.1) x 32 lies in [-3.2, 3.2): rounded, -3..3, the ends half as likely
  // as the others (|s| in [2.5, 3.2) against a whole unit).
  std::map<int64_t, int> dy_counts, dx_counts;
  int flips = 0;
  const int n = 20000;
  for (int64_t s = 0; s < n; ++s) {
    const AugmentDraw d = DrawAugment(1, 0, s, 0.1, true, 32, 32);
    ++dy_counts[d.dy];
    ++dx_counts[d.dx];
    flips += d.flip;
  }
  for (const auto* counts : {&dy_counts, &dx_counts}) {
    ASSERT_EQ(counts->size(), 7u);
    EXPECT_EQ(counts->begin()->first, -3);
    EXPECT_EQ(counts->rbegin()->first, 3);
    for (int64_t v = -2; v <= 2; ++v) EXPECT_NEAR(counts->at(v) / double(n), 1 / 6.4, 0.015) << v;
    EXPECT_NEAR(counts->at(3) / double(n), 0.7 / 6.4, 0.015);
    EXPECT_NEAR(counts->at(-3) / double(n), 0.7 / 6.4, 0.015);
  }
  EXPECT_NEAR(flips / double(n), 0.5, 0.02);
  // Shifts scale with each side: 28 x 0.1 = 2.8, still -3..3; 10 x 0.1 = 1.
  for (int64_t s = 0; s < 1000; ++s) {
    const AugmentDraw d = DrawAugment(1, 0, s, 0.1, true, 10, 40);
    EXPECT_LE(std::abs(d.dy), 1);
    EXPECT_LE(std::abs(d.dx), 4);
  }
}

TEST(AugmentDrawTest, TurningAPartOffLeavesTheOtherDrawsAlone) {
  for (int64_t s = 0; s < 100; ++s) {
    const AugmentDraw both = DrawAugment(5, 2, s, 0.1, true, 32, 32);
    const AugmentDraw no_flip = DrawAugment(5, 2, s, 0.1, false, 32, 32);
    const AugmentDraw no_shift = DrawAugment(5, 2, s, 0.0, true, 32, 32);
    EXPECT_EQ(no_flip.dy, both.dy);
    EXPECT_EQ(no_flip.dx, both.dx);
    EXPECT_FALSE(no_flip.flip);
    EXPECT_EQ(no_shift.dy, 0);
    EXPECT_EQ(no_shift.dx, 0);
    EXPECT_EQ(no_shift.flip, both.flip);
  }
}

TEST(AugmentDrawTest, GoldenDrawsArePinned) {
  // Batch digests of augmented runs mix these in: a change here is a format change.
  // Each draw is (dy, dx, flip) for seed 0, epoch 0, samples 0..5 of a 32x32 image.
  std::vector<int64_t> values;
  for (int64_t s = 0; s < 6; ++s) {
    const AugmentDraw d = DrawAugment(0, 0, s, 0.1, true, 32, 32);
    values.insert(values.end(), {d.dy, d.dx, int64_t{d.flip}});
  }
  EXPECT_THAT(values, ElementsAreArray(std::vector<int64_t>{1, -2, 0, 2, 0, 0, 2, -1, 0,  //
                                                            -1, 3, 0, 3, 2, 1, 1, -3, 1}));
}

// A 1-channel 3x4 image holding 0..11 row by row:
//   0  1  2  3
//   4  5  6  7
//   8  9 10 11
std::vector<float> Image(int channels = 1) {
  std::vector<float> image(static_cast<size_t>(12 * channels));
  std::iota(image.begin(), image.end(), 0.0f);
  return image;
}

std::vector<float> Apply(const AugmentDraw& draw, int channels = 1) {
  const std::vector<float> src = Image(channels);
  std::vector<float> dst(src.size(), -1.0f);
  AugmentImage(src.data(), dst.data(), channels, 3, 4, draw);
  return dst;
}

TEST(AugmentImageTest, IdentityCopies) { EXPECT_EQ(Apply({0, 0, false}), Image()); }

TEST(AugmentImageTest, ShiftReadsFromYPlusDyAndFillsWithTheNearestEdge) {
  // out(y, x) = in(clamp(y + 1), clamp(x - 1)).
  EXPECT_THAT(Apply({1, -1, false}), ElementsAreArray({4.0f, 4.0f, 5.0f, 6.0f,   //
                                                       8.0f, 8.0f, 9.0f, 10.0f,  //
                                                       8.0f, 8.0f, 9.0f, 10.0f}));
  // out(y, x) = in(clamp(y - 2), clamp(x + 3)).
  EXPECT_THAT(Apply({-2, 3, false}), ElementsAreArray({3.0f, 3.0f, 3.0f, 3.0f,  //
                                                       3.0f, 3.0f, 3.0f, 3.0f,  //
                                                       3.0f, 3.0f, 3.0f, 3.0f}));
}

TEST(AugmentImageTest, FlipComesAfterTheShift) {
  EXPECT_THAT(Apply({0, 0, true}), ElementsAreArray({3.0f, 2.0f, 1.0f, 0.0f,  //
                                                     7.0f, 6.0f, 5.0f, 4.0f,  //
                                                     11.0f, 10.0f, 9.0f, 8.0f}));
  // Shift by dx = 1 (out(x) = in(clamp(x + 1)): 1 2 3 3), then flip: 3 3 2 1.
  EXPECT_THAT(Apply({0, 1, true}), ElementsAreArray({3.0f, 3.0f, 2.0f, 1.0f,  //
                                                     7.0f, 7.0f, 6.0f, 5.0f,  //
                                                     11.0f, 11.0f, 10.0f, 9.0f}));
}

TEST(AugmentImageTest, EveryChannelMovesAlike) {
  const std::vector<float> out = Apply({1, -1, true}, 2);
  ASSERT_EQ(out.size(), 24u);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(out[i + 12], out[i] + 12.0f) << i;
  // Flip of the shifted rows 4 4 5 6 -> 6 5 4 4.
  EXPECT_THAT(std::vector<float>(out.begin(), out.begin() + 4),
              ElementsAreArray({6.0f, 5.0f, 4.0f, 4.0f}));
}

TEST(AugmentedBatchDigestTest, IsTheIndicesThenTheDraws) {
  const std::vector<int64_t> indices = {3, 1, 4};
  const std::vector<AugmentDraw> draws = {{1, -2, true}, {0, 0, false}, {-3, 3, false}};
  Hasher hasher;
  for (int64_t i : indices) hasher.UpdateU64(static_cast<uint64_t>(i));
  for (const AugmentDraw& d : draws) {
    hasher.UpdateU64(static_cast<uint64_t>(d.dy));
    hasher.UpdateU64(static_cast<uint64_t>(d.dx));
    hasher.UpdateU64(d.flip ? 1 : 0);
  }
  const std::string digest = AugmentedBatchDigest(indices.data(), draws.data(), 3);
  EXPECT_EQ(digest, hasher.HexDigest());
  EXPECT_NE(digest, BatchDigest(indices.data(), 3));
  // Any one draw changes it.
  for (size_t i = 0; i < 3; ++i) {
    for (int part = 0; part < 3; ++part) {
      std::vector<AugmentDraw> changed = draws;
      if (part == 0) changed[i].dy += 1;
      if (part == 1) changed[i].dx -= 1;
      if (part == 2) changed[i].flip = !changed[i].flip;
      EXPECT_NE(AugmentedBatchDigest(indices.data(), changed.data(), 3), digest) << i << part;
    }
  }
}

}  // namespace
}  // namespace repro::engine
