#include "analysis/inference.h"

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "analysis/stats.h"
#include "gtest/gtest.h"

// Unless said otherwise, every expected value below was computed independently of this
// code by analysis/inference_reference.py with Debian 12's python3-scipy (SciPy 1.10.1,
// NumPy 1.24.2): `/usr/bin/python3 analysis/inference_reference.py` prints them all.

namespace repro {
namespace {

const std::string kSameSeedCsv = std::string(REPRO_TEST_DATA) + "/resnet_same_seed.csv";

// Relative closeness, for values that span many orders of magnitude.
void ExpectClose(double actual, double expected, double relative) {
  EXPECT_NEAR(actual, expected, std::fabs(expected) * relative)
      << "expected " << expected << ", got " << actual;
}

TEST(InferenceTest, SplitMix64MatchesItsPublishedSequence) {
  // The first outputs for seed 1234567 given with the reference implementation
  // (Vigna, prng.di.unimi.it/splitmix64.c), also printed by the reference script.
  uint64_t state = 1234567;
  EXPECT_EQ(SplitMix64(&state), 6457827717110365317ULL);
  EXPECT_EQ(SplitMix64(&state), 3203168211198807973ULL);
  EXPECT_EQ(SplitMix64(&state), 9817491932198370423ULL);
}

TEST(InferenceTest, XoshiroMatchesThePythonReimplementation) {
  Rng rng(0);
  EXPECT_EQ(rng.Next(), 11091344671253066420ULL);
  EXPECT_EQ(rng.Next(), 13793997310169335082ULL);
  EXPECT_EQ(rng.Next(), 1900383378846508768ULL);
  Rng bounded(42);
  std::vector<uint64_t> draws;
  for (int i = 0; i < 10; ++i) draws.push_back(bounded.Below(10));
  EXPECT_EQ(draws, (std::vector<uint64_t>{0, 3, 6, 9, 9, 7, 7, 8, 7, 5}));
}

TEST(InferenceTest, BelowIsUniformEnough) {
  Rng rng(7);
  std::vector<int> counts(6);
  for (int i = 0; i < 60000; ++i) ++counts[rng.Below(6)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);  // > 10 binomial sigmas apart
  EXPECT_EQ(Rng(3).Below(1), 0u);
}

TEST(InferenceTest, DerivedSeedsDependOnSeedAndLabel) {
  EXPECT_EQ(DeriveSeed(0, "same_seed"), DeriveSeed(0, "same_seed"));
  EXPECT_NE(DeriveSeed(0, "same_seed"), DeriveSeed(1, "same_seed"));
  EXPECT_NE(DeriveSeed(0, "same_seed"), DeriveSeed(0, "different_seeds"));
}

TEST(InferenceTest, MedianAndQuantilesAsNumpy) {
  EXPECT_EQ(Median({3, 1, 2}), 2.0);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_TRUE(std::isnan(Median({})));
  EXPECT_TRUE(std::isnan(Median({1, std::nan("")})));
  const std::vector<double> v = {0.5, 1.5, 2.0, 7.0, 11.0};
  // np.percentile(v, [2.5, 97.5, 50]) = [0.6, 10.6, 2.0].
  EXPECT_DOUBLE_EQ(QuantileOfSorted(v, 0.025), 0.6);
  EXPECT_DOUBLE_EQ(QuantileOfSorted(v, 0.975), 10.6);
  EXPECT_EQ(QuantileOfSorted(v, 0.5), 2.0);
  EXPECT_EQ(QuantileOfSorted({1, INFINITY, INFINITY}, 0.9), INFINITY);
}

TEST(InferenceTest, LogGammaMatchesScipy) {
  // scipy.special.gammaln.
  const std::pair<double, double> cases[] = {
      {0.1, 2.252712651734206},    {0.5, 0.5723649429247},
      {2.5, 0.2846828704729192},   {10.0, 12.801827480081469},
      {171.3, 708.1149470389971},  {5000.0, 37582.62631568535}};
  for (const auto& [x, expected] : cases) ExpectClose(LogGamma(x), expected, 1e-13);
  EXPECT_NEAR(LogGamma(1.0), 0.0, 1e-15);
  EXPECT_NEAR(LogGamma(2.0), 0.0, 1e-15);
  EXPECT_TRUE(std::isnan(LogGamma(0)));
  EXPECT_TRUE(std::isnan(LogGamma(-1)));
}

TEST(InferenceTest, IncompleteBetaMatchesScipy) {
  // scipy.special.betainc(a, b, x).
  const struct {
    double a, b, x, expected;
  } cases[] = {{0.5, 0.5, 0.3, 0.3690101195655454},
               {2, 3, 0.4, 0.5247999999999999},  // exactly 0.5248 by hand
               {10, 20, 0.5, 0.9692858271300793},
               {0.5, 2500, 0.001, 0.9746819754350503},
               {50, 50, 0.48, 0.34488723787543607},
               {5, 0.5, 0.99, 0.7571581091015623},
               {49, 0.5, 0.2, 5.047365511004839e-36},
               {1e-3, 2, 0.5, 0.9998067465369479}};
  for (const auto& c : cases) {
    ExpectClose(RegularizedIncompleteBeta(c.a, c.b, c.x), c.expected, 1e-11);
  }
  EXPECT_EQ(RegularizedIncompleteBeta(2, 3, 0), 0.0);
  EXPECT_EQ(RegularizedIncompleteBeta(2, 3, 1), 1.0);
  EXPECT_NEAR(RegularizedIncompleteBeta(1, 1, 0.25), 0.25, 1e-14);  // uniform
  EXPECT_TRUE(std::isnan(RegularizedIncompleteBeta(0, 3, 0.5)));
  EXPECT_TRUE(std::isnan(RegularizedIncompleteBeta(2, 3, 1.5)));
}

TEST(InferenceTest, FDistributionMatchesScipy) {
  // scipy.stats.f.cdf(f, d1, d2) and scipy.stats.f.sf(f, d1, d2).
  const struct {
    double f, d1, d2, cdf, sf;
  } cases[] = {{3.2, 1, 98, 0.9232720982723911, 0.07672790172760896},
               {0.5, 3, 20, 0.313481387163597, 0.6865186128364029},
               {12.7, 1, 8, 0.9926391439007104, 0.007360856099289654},
               {100, 2, 5000, 0.9999999999999999, 2.6100675847462387e-43},
               {1.0, 1, 1, 0.5, 0.5},
               {40, 1, 98, 0.9999999924131101, 7.586889843877225e-09}};
  for (const auto& c : cases) {
    ExpectClose(FDistributionCdf(c.f, c.d1, c.d2), c.cdf, 1e-11);
    // The upper tail keeps its relative precision even at 1e-43.
    ExpectClose(FDistributionSf(c.f, c.d1, c.d2), c.sf, 1e-9);
  }
  EXPECT_EQ(FDistributionSf(0, 2, 3), 1.0);
  EXPECT_EQ(FDistributionCdf(-1, 2, 3), 0.0);
  EXPECT_EQ(FDistributionSf(INFINITY, 2, 3), 0.0);
  EXPECT_TRUE(std::isnan(FDistributionSf(1, 0, 3)));
  EXPECT_TRUE(std::isnan(FDistributionSf(std::nan(""), 1, 3)));
}

TEST(InferenceTest, BrownForsytheMatchesScipyLevene) {
  // scipy.stats.levene(..., center='median').
  const std::vector<double> a = {2, 4, 4, 4, 5, 5, 7, 9};
  const std::vector<double> b = {1, 3, 8, 12, 13};
  const std::vector<double> c = {10, 10.5, 9.75, 10.25};
  EqualVarianceTest two = BrownForsythe({a, b});
  ExpectClose(two.f, 5.764917325664991, 1e-12);
  ExpectClose(two.p, 0.0351687678115003, 1e-10);
  EXPECT_EQ(two.df1, 1);
  EXPECT_EQ(two.df2, 11);
  EqualVarianceTest three = BrownForsythe({a, b, c});
  ExpectClose(three.f, 6.279381743948674, 1e-12);
  ExpectClose(three.p, 0.011309444912808685, 1e-10);
  EXPECT_EQ(three.df1, 2);
  EXPECT_EQ(three.df2, 14);

  // The study's same-seed score file, rows 0-24 against rows 25-49.
  auto rows = ReadScoreCsv(kSameSeedCsv);
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::vector<double> first_loss, last_loss, first_accuracy, last_accuracy;
  for (size_t i = 0; i < rows->size(); ++i) {
    (i < 25 ? first_loss : last_loss).push_back((*rows)[i].first);
    (i < 25 ? first_accuracy : last_accuracy).push_back((*rows)[i].second);
  }
  EqualVarianceTest loss = BrownForsythe({first_loss, last_loss});
  ExpectClose(loss.f, 0.2158946673913182, 1e-11);
  ExpectClose(loss.p, 0.6442867718387224, 1e-11);
  EqualVarianceTest accuracy = BrownForsythe({first_accuracy, last_accuracy});
  ExpectClose(accuracy.f, 0.4503946295154504, 1e-11);
  ExpectClose(accuracy.p, 0.5053644861471194, 1e-11);
}

TEST(InferenceTest, BrownForsytheUndefinedCases) {
  EXPECT_TRUE(std::isnan(BrownForsythe({{1, 2, 3}}).p));          // one group
  EXPECT_TRUE(std::isnan(BrownForsythe({{1, 2}, {}}).p));         // an empty group
  EXPECT_TRUE(std::isnan(BrownForsythe({{1}, {2}}).p));           // N == k
  EXPECT_TRUE(std::isnan(BrownForsythe({{1, 1}, {2, 2}}).f));     // no spread at all
  EXPECT_TRUE(std::isnan(BrownForsythe({{1, 1}, {1, 3}}).f));     // deviations {0,0},{1,1}
  EXPECT_TRUE(std::isnan(BrownForsythe({{1, std::nan("")}, {1, 2, 4}}).p));
  // Identical spreads: F = 0 exactly, p = 1.
  EqualVarianceTest same = BrownForsythe({{1, 2, 4}, {11, 12, 14}});
  EXPECT_EQ(same.f, 0.0);
  EXPECT_EQ(same.p, 1.0);
}

std::vector<std::vector<double>> Columns(
    const std::vector<std::pair<double, double>>& rows) {
  std::vector<std::vector<double>> columns(2);
  for (const auto& [loss, accuracy] : rows) {
    columns[0].push_back(loss);
    columns[1].push_back(accuracy);
  }
  return columns;
}

const std::vector<std::vector<double>> kSmallArm =
    Columns({{0.5, 0.80}, {0.7, 0.79}, {0.4, 0.82}, {0.6, 0.78}, {0.9, 0.81}});
const std::vector<std::vector<double>> kSmallReference =
    Columns({{0.3, 0.9}, {0.8, 0.7}, {0.2, 0.95}, {1.0, 0.6}});

TEST(InferenceTest, BootstrapDrawsExactlyAsThePythonReimplementation) {
  // bootstrap_ratio() in the reference script: the same generator, the same draws,
  // NumPy's std and percentile on every resample.
  std::vector<BootstrapInterval> seed0 =
      BootstrapStdevRatio(kSmallArm, kSmallReference, 2000, 0);
  ASSERT_EQ(seed0.size(), 2u);
  ExpectClose(seed0[0].low, 0.17119408607861486, 1e-12);
  ExpectClose(seed0[0].high, 4.118575310883794, 1e-12);
  ExpectClose(seed0[1].low, 0.04301220788680273, 1e-12);
  ExpectClose(seed0[1].high, 0.6788225099390859, 1e-12);
  EXPECT_EQ(seed0[0].used, 2000);
  EXPECT_EQ(seed0[1].used, 2000);
  std::vector<BootstrapInterval> seed1 =
      BootstrapStdevRatio(kSmallArm, kSmallReference, 2000, 1);
  ExpectClose(seed1[0].low, 0.18908778369882612, 1e-12);
  ExpectClose(seed1[0].high, 4.233202097703346, 1e-12);
  ExpectClose(seed1[1].low, 0.0388028591724809, 1e-12);
}

TEST(InferenceTest, BootstrapIsReproducibleForASeedAndDiffersForAnother) {
  const auto a = BootstrapStdevRatio(kSmallArm, kSmallReference, 500, 12345);
  const auto b = BootstrapStdevRatio(kSmallArm, kSmallReference, 500, 12345);
  const auto c = BootstrapStdevRatio(kSmallArm, kSmallReference, 500, 12346);
  for (int col = 0; col < 2; ++col) {
    EXPECT_EQ(a[col].low, b[col].low);  // bit for bit
    EXPECT_EQ(a[col].high, b[col].high);
  }
  EXPECT_TRUE(a[0].low != c[0].low || a[0].high != c[0].high);
}

TEST(InferenceTest, BootstrapOnTheStudysFileAgreesWithScipy) {
  auto rows = ReadScoreCsv(kSameSeedCsv);
  ASSERT_TRUE(rows.ok()) << rows.status();
  std::vector<std::pair<double, double>> first(rows->begin(), rows->begin() + 25);
  std::vector<std::pair<double, double>> last(rows->begin() + 25, rows->end());
  const auto ci = BootstrapStdevRatio(Columns(first), Columns(last), 10000, 7);
  // The Python re-implementation, same draws.
  ExpectClose(ci[0].low, 0.7470946249928132, 1e-12);
  ExpectClose(ci[0].high, 1.6574400477972018, 1e-12);
  ExpectClose(ci[1].low, 0.672813323070732, 1e-12);
  ExpectClose(ci[1].high, 1.9179532515397604, 1e-12);
  // scipy.stats.bootstrap(method='percentile', n_resamples=10000), with NumPy's
  // generator: other draws, so only close: [0.7453, 1.6687] and [0.6625, 1.9278].
  EXPECT_NEAR(ci[0].low, 0.7453208761431775, 0.02);
  EXPECT_NEAR(ci[0].high, 1.6687196213650302, 0.05);
  EXPECT_NEAR(ci[1].low, 0.662461316330705, 0.02);
  EXPECT_NEAR(ci[1].high, 1.9278249162687744, 0.05);
}

TEST(InferenceTest, BootstrapEdgeCases) {
  // No spread in the arm: every ratio is exactly 0.
  const auto flat = Columns({{0.1, 0.7}, {0.1, 0.7}, {0.1, 0.7}});
  auto zero = BootstrapStdevRatio(flat, kSmallReference, 1000, 0);
  EXPECT_EQ(zero[0].low, 0.0);
  EXPECT_EQ(zero[0].high, 0.0);
  // A reference with no spread: x / 0 is +inf (unbounded), 0 / 0 is left out.
  auto unbounded = BootstrapStdevRatio(kSmallArm, flat, 100, 0);
  EXPECT_EQ(unbounded[0].low, INFINITY);
  EXPECT_GT(unbounded[0].used, 90);  // a constant resample of the arm is 0 / 0
  auto none = BootstrapStdevRatio(flat, flat, 100, 0);
  EXPECT_EQ(none[0].used, 0);
  EXPECT_TRUE(std::isnan(none[0].low));
  // Fewer than two rows, a NaN, or no resamples: undefined.
  EXPECT_TRUE(std::isnan(
      BootstrapStdevRatio(Columns({{1, 2}}), kSmallReference, 100, 0)[0].low));
  EXPECT_TRUE(std::isnan(
      BootstrapStdevRatio(Columns({{1, 2}, {std::nan(""), 3}}), kSmallReference, 100, 0)[1]
          .high));
  EXPECT_TRUE(std::isnan(BootstrapStdevRatio(kSmallArm, kSmallReference, 0, 0)[0].low));
}

}  // namespace
}  // namespace repro
