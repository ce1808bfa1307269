// Tests of the learning-rate schedule and ReduceLROnPlateau against sequences worked
// out by hand from the Keras 2.2.4 source (see schedule.h).
#include "worker/engine/schedule.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro::engine {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

TEST(ScheduleTest, KerasCifar10StepsAtTheExamplesZeroBasedEpochs) {
  // The products are Python's: 1e-3 * 1e-1 == 0.0001, 1e-3 * 1e-2 == 1e-05, ... exactly.
  EXPECT_EQ(KerasCifar10Lr(1e-3, 0), 1e-3);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 80), 1e-3);  // "Epoch 81/200" still at the base rate
  EXPECT_EQ(KerasCifar10Lr(1e-3, 81), 1e-4);  // "Epoch 82/200"
  EXPECT_EQ(KerasCifar10Lr(1e-3, 120), 1e-4);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 121), 1e-5);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 160), 1e-5);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 161), 1e-6);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 180), 1e-6);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 181), 5e-7);
  EXPECT_EQ(KerasCifar10Lr(1e-3, 199), 5e-7);
  EXPECT_EQ(KerasCifar10Lr(0.1, 100), 0.1 * 0.1);
}

TEST(ScheduleTest, ScheduleNamesAreChecked) {
  EXPECT_TRUE(CheckLrSchedule("constant").ok());
  EXPECT_TRUE(CheckLrSchedule("keras-cifar10").ok());
  const absl::Status s = CheckLrSchedule("cosine");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cosine"));
}

TEST(PlateauTest, HandComputedSequence) {
  // factor 0.5, patience 2, min_lr 0.1, min_delta 1e-4 (absolute), base 1.0.
  //  e  val_loss  lr used  at the end
  //  0  1.0       1.0      best 1.0 (anything beats +inf)
  //  1  0.9       1.0      best 0.9
  //  2  0.95      1.0      wait 1
  //  3  0.9       1.0      wait 2 -> lr 0.5 (0.9 is no improvement on 0.9)
  //  4  0.89995   0.5      wait 1 (better, but by less than min_delta)
  //  5  0.5       0.5      best 0.5
  //  6  0.6       0.5      wait 1
  //  7  0.6       0.5      wait 2 -> lr 0.25
  //  8  0.6       0.25     wait 1
  //  9  0.6       0.25     wait 2 -> lr 0.125
  // 10  0.6       0.125    wait 1
  // 11  0.6       0.125    wait 2 -> lr max(0.0625, 0.1) = 0.1
  // 12  0.6       0.1      wait 1
  // 13  0.6       0.1      wait 2, but lr is not above min_lr: nothing, wait stays
  // 14  0.6       0.1      wait 3
  LrPolicyOptions options;
  options.schedule = kLrConstant;
  options.base_lr = 1.0;
  options.plateau = true;
  options.plateau_options.factor = 0.5;
  options.plateau_options.patience = 2;
  options.plateau_options.min_lr = 0.1;
  const std::vector<double> losses = {1.0, 0.9, 0.95, 0.9, 0.89995, 0.5, 0.6, 0.6,
                                      0.6, 0.6, 0.6,  0.6, 0.6,     0.6, 0.6};
  EXPECT_THAT(LrSequence(options, losses),
              ElementsAreArray({1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125,
                                0.1, 0.1, 0.1}));

  ReduceLrOnPlateau plateau(options.plateau_options);
  double lr = 1.0;
  for (double loss : losses) lr = plateau.OnEpochEnd(lr, loss);
  EXPECT_EQ(lr, 0.1);
  EXPECT_EQ(plateau.best(), 0.5);
  EXPECT_EQ(plateau.wait(), 3);
}

TEST(PlateauTest, TheStudysSettingsAloneReduceEveryFiveStagnantEpochs) {
  // Adam 1e-3, factor sqrt(0.1), patience 5, min_lr 0.5e-6, a loss that never improves
  // after epoch 0: epochs 0-5 at 1e-3 (epoch 0 sets best; 1-5 make wait 5), then five
  // epochs per step: 1e-3 x sqrt(0.1)^k, until 1e-3 x sqrt(0.1)^7 < 0.5e-6 clamps.
  LrPolicyOptions options;
  options.base_lr = 1e-3;
  options.plateau = true;
  const std::vector<double> lrs = LrSequence(options, std::vector<double>(50, 2.0));
  const auto near = [](double expected) {
    return ::testing::DoubleNear(expected, expected * 1e-12);
  };
  for (int e = 0; e <= 5; ++e) EXPECT_EQ(lrs[e], 1e-3) << e;
  for (int e = 6; e <= 10; ++e) EXPECT_THAT(lrs[e], near(3.1622776601683794e-4)) << e;
  for (int e = 11; e <= 15; ++e) EXPECT_THAT(lrs[e], near(1e-4)) << e;
  EXPECT_THAT(lrs[16], near(3.1622776601683794e-5));
  EXPECT_THAT(lrs[21], near(1e-5));
  EXPECT_THAT(lrs[31], near(1e-6));  // k = 6
  EXPECT_EQ(lrs[36], 0.5e-6);        // k = 7 would be 3.16e-7: clamped to min_lr
  EXPECT_EQ(lrs[49], 0.5e-6);
}

TEST(PlateauTest, NanNeverImprovesAndCooldownHoldsOff) {
  PlateauOptions options;
  options.factor = 0.5;
  options.patience = 1;
  options.min_lr = 0;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  ReduceLrOnPlateau plateau(options);
  EXPECT_EQ(plateau.OnEpochEnd(1.0, nan), 0.5);  // NaN < inf is false: wait 1 -> reduce
  EXPECT_EQ(plateau.OnEpochEnd(0.5, 3.0), 0.5);  // improves
  EXPECT_EQ(plateau.OnEpochEnd(0.5, nan), 0.25);

  options.cooldown = 2;
  ReduceLrOnPlateau cooled(options);
  double lr = 1.0;
  std::vector<double> seen;
  for (double loss : {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}) {
    lr = cooled.OnEpochEnd(lr, loss);
    seen.push_back(lr);
  }
  // e0 best; e1 wait 1 -> 0.5, cooldown 2; e2 cooldown 2 -> 1, skipped; e3 cooldown
  // 1 -> 0, and the same call, out of cooldown, counts wait 1 -> 0.25 (Keras's order);
  // e4 skipped; e5 -> 0.125.
  EXPECT_THAT(seen, ElementsAreArray({1.0, 0.5, 0.5, 0.25, 0.25, 0.125}));
}

TEST(LrPolicyTest, TheScheduleOverridesThePlateauAsInKeras) {
  // Both callbacks, as the study: the plateau lowers the lr at an epoch's end, the
  // scheduler sets it back at the next epoch's begin, so every epoch trains at exactly
  // the schedule's rate however flat the validation loss is.
  LrPolicyOptions options;
  options.schedule = kLrKerasCifar10;
  options.base_lr = 1e-3;
  options.plateau = true;
  options.plateau_options.patience = 1;
  const std::vector<double> lrs = LrSequence(options, std::vector<double>(200, 1.0));
  for (int e = 0; e < 200; ++e) EXPECT_EQ(lrs[e], KerasCifar10Lr(1e-3, e)) << e;

  LrPolicy policy(options);
  EXPECT_EQ(policy.BeginEpoch(0), 1e-3);
  policy.EndEpoch(1.0);
  EXPECT_EQ(policy.BeginEpoch(1), 1e-3);
  policy.EndEpoch(1.0);  // no improvement, patience 1: the plateau reduces...
  EXPECT_DOUBLE_EQ(policy.lr(), 1e-3 * options.plateau_options.factor);
  EXPECT_EQ(policy.BeginEpoch(2), 1e-3);  // ...and the scheduler undoes it
}

TEST(LrPolicyTest, ConstantWithoutPlateauKeepsTheBaseRate) {
  LrPolicyOptions options;
  options.base_lr = 0.05;
  EXPECT_THAT(LrSequence(options, {3.0, 2.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0}),
              ElementsAreArray(std::vector<double>(8, 0.05)));
  options.schedule = kLrKerasCifar10;
  EXPECT_EQ(LrSequence(options, std::vector<double>(82, 1.0))[81], 0.05 * 0.1);
}

}  // namespace
}  // namespace repro::engine
