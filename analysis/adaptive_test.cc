// An adaptive experiment's looks (analysis/adaptive.h), each interval against the
// formula written out apart from the code (tests/delta_method_reference.h), and the
// decisions on views built by hand.
#include "analysis/adaptive.h"

#include <cmath>
#include <string>
#include <vector>

#include "analysis/inference.h"
#include "gtest/gtest.h"
#include "tests/delta_method_reference.h"

namespace repro {
namespace {

using reference::Kurtosis;
using reference::LogRatioError;
using reference::Moment;

// Standard normal quantiles, from Python's statistics.NormalDist().inv_cdf.
constexpr double kZ975 = 1.9599639845400536;      // level 0.95: one look
constexpr double kZ99875 = 3.0233414397391534;    // level 1 - 0.05 / 20: twenty looks

TEST(AdaptiveTest, NormalQuantileMatchesPython) {
  EXPECT_NEAR(NormalQuantile(0.975), kZ975, 1e-12);
  EXPECT_NEAR(NormalQuantile(1 - 0.0025 / 2), kZ99875, 1e-12);
  EXPECT_NEAR(NormalQuantile(0.6), 0.2533471031357998, 1e-12);
  EXPECT_NEAR(NormalQuantile(0.4), -0.2533471031357998, 1e-12);
  EXPECT_TRUE(std::isnan(NormalQuantile(1)));
  EXPECT_DOUBLE_EQ(AdaptiveLevel(20), 0.9975);
}

TEST(AdaptiveTest, TheIntervalIsTheDeltaMethodsAtTheBonferroniLevel) {
  const std::vector<double> arm = {0.81, 0.83, 0.80, 0.86, 0.82, 0.84, 0.79, 0.85};
  const std::vector<double> ref = {0.78, 0.84, 0.88, 0.80, 0.83, 0.91, 0.76, 0.85, 0.82, 0.87};
  const double ratio = std::sqrt(Moment(arm, 2) / Moment(ref, 2));
  const double k_arm = Kurtosis(arm);
  const double k_ref = Kurtosis(ref);
  const double se = LogRatioError(arm, ref);
  const AdaptiveArmLook look = LookAtArm(arm, ref, AdaptiveLevel(20), 0.1);
  ASSERT_TRUE(look.ratio && look.low && look.high);
  EXPECT_EQ(look.runs, 8);
  EXPECT_EQ(look.reference_runs, 10);
  EXPECT_NEAR(*look.ratio, ratio, 1e-12);
  EXPECT_NEAR(*look.low, ratio * std::exp(-kZ99875 * se), 1e-9);
  EXPECT_NEAR(*look.high, ratio * std::exp(kZ99875 * se), 1e-9);
  EXPECT_FALSE(look.settled);
  // The runs projected: the smallest n with 2 r sinh(z sqrt((k_arm + k_ref - 2) / (4 n))) <= 0.1.
  ASSERT_TRUE(look.runs_needed.has_value());
  auto width_at = [&](double n) {
    return 2 * ratio * std::sinh(kZ99875 * std::sqrt((k_arm + k_ref - 2) / (4 * n)));
  };
  EXPECT_LE(width_at(static_cast<double>(*look.runs_needed)), 0.1);
  EXPECT_GT(width_at(static_cast<double>(*look.runs_needed - 1)), 0.1);
  // A wide target settles it; one look at level 0.95 is narrower than twenty's.
  EXPECT_TRUE(LookAtArm(arm, ref, AdaptiveLevel(20), 10).settled);
  const AdaptiveArmLook once = LookAtArm(arm, ref, AdaptiveLevel(1), 0.1);
  EXPECT_NEAR(*once.high - *once.low, 2 * ratio * std::sinh(kZ975 * se), 1e-9);
}

TEST(AdaptiveTest, NoSpreadInTheArmSettlesAtZeroAndNoneInTheReferenceNever) {
  const std::vector<double> alike = {0.8, 0.8, 0.8};
  const std::vector<double> spread = {0.7, 0.8, 0.9};
  const AdaptiveArmLook zero = LookAtArm(alike, spread, 0.99, 0.1);
  EXPECT_EQ(zero.ratio, 0.0);
  EXPECT_EQ(zero.low, 0.0);
  EXPECT_EQ(zero.high, 0.0);
  EXPECT_TRUE(zero.settled);
  const AdaptiveArmLook undefined = LookAtArm(spread, alike, 0.99, 0.1);
  EXPECT_FALSE(undefined.ratio || undefined.low || undefined.high || undefined.runs_needed);
  EXPECT_FALSE(undefined.settled);
  EXPECT_FALSE(LookAtArm({0.8}, spread, 0.99, 0.1).ratio);  // one run: no stdev to compare
}

// A view of three arms: `alike` scores the same every run, `wide` and the reference
// spread alike; `runs` runs of each, the last of `wide` failed.
ExperimentView View(int runs, int reference_runs) {
  ExperimentView view;
  view.arms = {"alike", "wide", "ref"};
  auto add = [&](const std::string& arm, int n) {
    for (int i = 0; i < n; ++i) {
      RunView run;
      run.arm = arm;
      run.index = i;
      run.state = arm == "wide" && i == n - 1 ? RunState::kFailed : RunState::kDone;
      run.result.test_accuracy = arm == "alike" ? 0.5 : 0.5 + 0.01 * (i % 4);
      run.result.test_loss = 1 + 0.1 * (i % 3);
      view.runs.push_back(run);
    }
  };
  add("alike", runs);
  add("wide", runs);
  add("ref", reference_runs);
  return view;
}

AdaptiveState Rule(int min, int max, int step) {
  return AdaptiveRule(min, max, step, 0.1, "accuracy", "ref");
}

TEST(AdaptiveTest, ARoundGrowsTheReferenceAndTheArmsNotSettled) {
  const AdaptiveLook look = TakeLook(View(10, 10), Rule(10, 25, 10));
  ASSERT_EQ(look.arms.size(), 2u);
  EXPECT_EQ(look.arms[0].arm, "alike");
  EXPECT_TRUE(look.arms[0].settled);
  EXPECT_EQ(look.arms[1].arm, "wide");
  EXPECT_EQ(look.arms[1].runs, 9);  // the failed run has no score
  EXPECT_FALSE(look.arms[1].settled);
  EXPECT_EQ(look.decision, "more");
  EXPECT_EQ(look.added, (std::map<std::string, int>{{"ref", 10}, {"wide", 10}}));
  // The last round only up to max.
  EXPECT_EQ(TakeLook(View(20, 20), Rule(10, 25, 10)).added,
            (std::map<std::string, int>{{"ref", 5}, {"wide", 5}}));
  // The reference at max: stopped, the interval still too wide.
  const AdaptiveLook last = TakeLook(View(25, 25), Rule(10, 25, 10));
  EXPECT_EQ(last.decision, "max");
  EXPECT_TRUE(last.added.empty());
}

TEST(AdaptiveTest, EveryArmSettledStopsAndTheMetricIsTheRules) {
  AdaptiveState rule = Rule(10, 100, 10);
  rule.ratio_ci_width = 100;  // any finite interval settles
  const AdaptiveLook look = TakeLook(View(10, 10), rule);
  EXPECT_EQ(look.decision, "reached");
  EXPECT_TRUE(look.added.empty());
  // By loss, "alike" spreads as the reference does: ratio 1 on the same ten values.
  rule.metric = "loss";
  const AdaptiveLook by_loss = TakeLook(View(10, 10), rule);
  ASSERT_TRUE(by_loss.arms[0].ratio.has_value());
  EXPECT_NEAR(*by_loss.arms[0].ratio, 1.0, 1e-12);
}

}  // namespace
}  // namespace repro
