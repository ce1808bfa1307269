// Run-count planning (analysis/planning.h), the noise floor of test accuracy and the
// cost of determinism (analysis/analysis.h), each against a computation written here
// independently of the code under test.
#include "analysis/planning.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analysis/analysis.h"
#include "analysis/inference.h"
#include "analysis/report.h"
#include "analysis/scores.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace repro {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

const std::string kSameSeedCsv = std::string(REPRO_TEST_DATA) + "/resnet_same_seed.csv";

// ---- an independent reference ----
// Reads "loss,accuracy" rows with the C library, computes moments in long double from
// raw power sums, and finds the run counts by searching n (bisection over integers for
// the width, a linear scan of the exact two-sided power), not by the closed forms the
// code uses.

std::vector<std::vector<double>> ReadColumns(const std::string& path) {
  std::vector<std::vector<double>> columns(2);
  std::FILE* f = std::fopen(path.c_str(), "r");
  EXPECT_NE(f, nullptr) << path;
  if (f == nullptr) return columns;
  double loss = 0, accuracy = 0;
  while (std::fscanf(f, " %lf , %lf", &loss, &accuracy) == 2) {
    columns[0].push_back(loss);
    columns[1].push_back(accuracy);
  }
  std::fclose(f);
  return columns;
}

struct Moments {
  long double variance = 0;  // ddof 0
  long double kurtosis = 0;
};

Moments MomentsOf(const std::vector<double>& x) {
  long double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  for (double v : x) {
    const long double t = v;
    s1 += t;
    s2 += t * t;
    s3 += t * t * t;
    s4 += t * t * t * t;
  }
  const long double n = x.size();
  const long double m = s1 / n;
  // Central moments from raw ones: m2 = E x^2 - m^2, m4 = E x^4 - 4 m E x^3 + 6 m^2 E x^2 - 3 m^4.
  const long double m2 = s2 / n - m * m;
  const long double m4 = s4 / n - 4 * m * s3 / n + 6 * m * m * s2 / n - 3 * m * m * m * m;
  return {m2, m4 / (m2 * m2)};
}

double Phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

struct Reference {
  double ratio = 0;
  double kurtosis = 0, reference_kurtosis = 0;
  double se(double n) const {
    return std::sqrt((kurtosis - 1) / (4 * n) + (reference_kurtosis - 1) / (4 * n));
  }
  double Width(double n) const {
    const double z = 1.959963984540054;
    return ratio * std::exp(z * se(n)) - ratio * std::exp(-z * se(n));
  }
  double Power(double n) const {
    const double z = 1.959963984540054;
    const double d = std::fabs(std::log(ratio)) / se(n);
    return Phi(d - z) + Phi(-d - z);
  }
  // The smallest n >= 2 whose width is at most `width`.
  int64_t RunsForWidth(double width) const {
    int64_t lo = 1, hi = 2;
    while (Width(static_cast<double>(hi)) > width) hi *= 2;
    while (hi - lo > 1) {
      const int64_t mid = (lo + hi) / 2;
      (Width(static_cast<double>(mid)) > width ? lo : hi) = mid;
    }
    return std::max<int64_t>(hi, 2);
  }
  int64_t RunsForPower(double power) const {
    int64_t n = 2;
    while (Power(static_cast<double>(n)) < power) ++n;
    return n;
  }
};

Reference ReferenceFor(const std::vector<double>& arm, const std::vector<double>& ref) {
  const Moments a = MomentsOf(arm);
  const Moments r = MomentsOf(ref);
  return {static_cast<double>(std::sqrt(a.variance / r.variance)),
          static_cast<double>(a.kurtosis), static_cast<double>(r.kurtosis)};
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The study's same-seed file as two files: rows 0-24 and 25-49.
std::pair<std::string, std::string> SplitStudyFile() {
  std::ifstream in(kSameSeedCsv);
  std::string line, first, last;
  for (int row = 0; std::getline(in, line); ++row) (row < 25 ? first : last) += line + "\n";
  return {WriteTemp("plan_first.csv", first), WriteTemp("plan_last.csv", last)};
}

// ---- planning ----

TEST(PlanningTest, KurtosisOfKnownValues) {
  // {1, 2, 3, 4}: m2 = 1.25, m4 = 2.5625, kurtosis 1.64.
  EXPECT_NEAR(Kurtosis({1, 2, 3, 4}), 1.64, 1e-12);
  EXPECT_NEAR(Kurtosis({5, 7}), 1.0, 1e-12);  // two values: the least there is
  EXPECT_TRUE(std::isnan(Kurtosis({3, 3, 3})));
  EXPECT_TRUE(std::isnan(Kurtosis({1})));
}

TEST(PlanningTest, RunsNeededMatchTheSearchOnTheStudysFile) {
  const auto [first_path, last_path] = SplitStudyFile();
  const auto first = ReadColumns(first_path);
  const auto last = ReadColumns(last_path);
  ASSERT_EQ(first[1].size(), 25u);
  for (int c = 0; c < 2; ++c) {
    const Reference ref = ReferenceFor(first[c], last[c]);
    for (double width : {0.1, 0.05, 0.3}) {
      const ColumnPlan plan = PlanRuns(first[c], last[c], width);
      ASSERT_EQ(plan.width, PlanOutcome::kReached) << c << " " << width;
      EXPECT_EQ(*plan.runs_for_width, ref.RunsForWidth(width)) << c << " " << width;
      ASSERT_EQ(plan.power, PlanOutcome::kReached);
      // The exact power adds the far tail, which may save at most one run.
      EXPECT_NEAR(static_cast<double>(*plan.runs_for_power),
                  static_cast<double>(ref.RunsForPower(0.8)), 1.0);
      // Raw power sums lose some digits to cancellation: agreement to 1e-8 relative.
      EXPECT_NEAR(*plan.kurtosis, ref.kurtosis, 1e-8 * ref.kurtosis);
      EXPECT_NEAR(*plan.reference_kurtosis, ref.reference_kurtosis, 1e-8 * ref.kurtosis);
      EXPECT_NEAR(*plan.pilot_width, ref.Width(25), 1e-8);
    }
  }
}

// --power-ratio R: the runs that tell a chosen ratio from 1, with the pilot's kurtosis;
// the width's count does not change.
TEST(PlanningTest, PowerAgainstAChosenRatio) {
  const auto [first_path, last_path] = SplitStudyFile();
  const auto first = ReadColumns(first_path);
  const auto last = ReadColumns(last_path);
  for (int c = 0; c < 2; ++c) {
    const Reference pilot = ReferenceFor(first[c], last[c]);
    for (double chosen : {1.5, 0.7, 2.0}) {
      Reference target = pilot;
      target.ratio = chosen;
      const ColumnPlan plan = PlanRuns(first[c], last[c], 0.1, chosen);
      ASSERT_EQ(plan.power, PlanOutcome::kReached) << c << " " << chosen;
      EXPECT_NEAR(static_cast<double>(*plan.runs_for_power),
                  static_cast<double>(target.RunsForPower(0.8)), 1.0)
          << c << " " << chosen;
      EXPECT_EQ(*plan.runs_for_width, pilot.RunsForWidth(0.1));
    }
  }
  ScoresOptions options;
  options.power_ratio = 1.5;
  auto text = AnalyzeScores({first_path, last_path}, options);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("runs for power 0.8 vs ratio 1.5"));
  EXPECT_THAT(*text, HasSubstr("to tell a ratio of 1.5 from 1 with power 0.8"));
  options.json = true;
  const Json j = Json::parse(*AnalyzeScores({first_path, last_path}, options));
  EXPECT_EQ(j.at("planning").at("power_ratio").get<double>(), 1.5);
  options.power_ratio = 0;  // the default: each pilot's own
  const Json own = Json::parse(*AnalyzeScores({first_path, last_path}, options));
  EXPECT_TRUE(own.at("planning").at("power_ratio").is_null());
  for (double bad : {1.0, -2.0, std::nan("")}) {
    options.power_ratio = bad;
    auto refused = AnalyzeScores({first_path, last_path}, options);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("power ratio must be a number above 0 other than 1"));
  }
}

// analysis/planning_reference.py (Python's standard library: statistics.NormalDist,
// math.fsum, a search over n) on the same halves of the study's file.
TEST(PlanningTest, MatchesThePythonReference) {
  const auto [first_path, last_path] = SplitStudyFile();
  const auto first = ReadColumns(first_path);
  const auto last = ReadColumns(last_path);
  struct Pinned {
    int column;
    double width;
    int64_t runs;
    int64_t power;
    double kurtosis, reference_kurtosis, pilot_width;
  };
  const Pinned pinned[] = {
      {0, 0.05, 6933, 504, 2.8477627757835244, 2.7160627439677016, 0.8516494721738638},
      {0, 0.1, 1734, 504, 2.8477627757835244, 2.7160627439677016, 0.8516494721738638},
      {0, 0.3, 194, 504, 2.8477627757835244, 2.7160627439677016, 0.8516494721738638},
      {1, 0.05, 10810, 2202, 3.491880569697629, 4.579506982245947, 1.0805022492384226},
      {1, 0.1, 2704, 2202, 3.491880569697629, 4.579506982245947, 1.0805022492384226},
      {1, 0.3, 303, 2202, 3.491880569697629, 4.579506982245947, 1.0805022492384226},
  };
  for (const Pinned& p : pinned) {
    const ColumnPlan plan = PlanRuns(first[p.column], last[p.column], p.width);
    EXPECT_EQ(plan.runs_for_width, p.runs) << p.column << " " << p.width;
    EXPECT_EQ(plan.runs_for_power, p.power) << p.column;
    EXPECT_NEAR(*plan.kurtosis, p.kurtosis, 1e-12 * p.kurtosis);
    EXPECT_NEAR(*plan.reference_kurtosis, p.reference_kurtosis, 1e-12 * p.kurtosis);
    EXPECT_NEAR(*plan.pilot_width, p.pilot_width, 1e-12);
  }
}

TEST(PlanningTest, AnalyzeScoresOnTheStudysFileShowsIntervalsAndRunsNeeded) {
  const auto [first_path, last_path] = SplitStudyFile();
  ScoresOptions options;
  options.json = true;
  auto out = AnalyzeScores({first_path, last_path}, options);
  ASSERT_TRUE(out.ok()) << out.status();
  const Json j = Json::parse(*out);
  EXPECT_EQ(j.at("reference"), "plan_last.csv");
  EXPECT_EQ(j.at("planning").at("ci_width").get<double>(), 0.1);
  EXPECT_EQ(j.at("planning").at("max_runs"), kMaxPlannedRuns);
  ASSERT_EQ(j.at("files").size(), 2u);
  EXPECT_EQ(j.at("files")[0].at("n"), 25);
  ASSERT_EQ(j.at("comparisons").size(), 1u);
  const Json& c = j.at("comparisons")[0];
  EXPECT_EQ(c.at("arm"), "plan_first.csv");
  const auto first = ReadColumns(first_path);
  const auto last = ReadColumns(last_path);
  int column = 0;
  for (const char* name : {"loss", "accuracy"}) {
    const Reference ref = ReferenceFor(first[column], last[column]);
    EXPECT_NEAR(c.at("stdev_ratio").at(name).get<double>(), ref.ratio, 1e-12) << name;
    EXPECT_EQ(c.at("runs_needed").at(name).get<int64_t>(), ref.RunsForWidth(0.1)) << name;
    EXPECT_NEAR(c.at("runs_needed_power").at(name).get<double>(),
                static_cast<double>(ref.RunsForPower(0.8)), 1.0)
        << name;
    EXPECT_EQ(c.at("planning").at(name).at("width"), "reached");
    // The bootstrap interval (10,000 resamples) against the approximation's at 25 runs
    // a side: bounds within 12 % of each other (the percentile bootstrap of so few runs
    // reaches further up: loss [0.750 1.670] against [0.777 1.629], accuracy
    // [0.673 1.936] against [0.664 1.745]), widths within 20 %.
    const Json& ci = c.at("ci95").at(name);
    const double z = 1.959963984540054;
    EXPECT_NEAR(std::log(ci[0].get<double>()), std::log(ref.ratio) - z * ref.se(25), 0.12)
        << name;
    EXPECT_NEAR(std::log(ci[1].get<double>()), std::log(ref.ratio) + z * ref.se(25), 0.12)
        << name;
    EXPECT_NEAR(ci[1].get<double>() - ci[0].get<double>(),
                c.at("planning").at(name).at("pilot_width").get<double>(),
                0.2 * c.at("planning").at(name).at("pilot_width").get<double>())
        << name;
    ++column;
  }
  // The figures pinned: the study's halves need some 1,800 runs a side for a width of 0.1.
  EXPECT_EQ(c.at("runs_needed").at("loss").get<int64_t>(),
            ReferenceFor(first[0], last[0]).RunsForWidth(0.1));
  auto text = AnalyzeScores({first_path, last_path});
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr(absl::StrCat("  runs for width 0.1   loss ",
                                            c.at("runs_needed").at("loss").get<int64_t>(),
                                            ", accuracy ",
                                            c.at("runs_needed").at("accuracy").get<int64_t>(),
                                            "\n")));
  EXPECT_THAT(*text, HasSubstr("delta method for log(stdev) with each pilot's kurtosis"));
}

TEST(PlanningTest, AnalyzeScoresOnTheWholeStudyFileAgainstASecondFile) {
  // The whole study file (50 rows) against a second file: the study's first 25 rows with
  // each loss and accuracy moved half as far again from their column's mean, so its
  // stdev is 1.5 times that of those rows and its kurtosis theirs.
  const auto study = ReadColumns(kSameSeedCsv);
  std::vector<double> loss(study[0].begin(), study[0].begin() + 25);
  std::vector<double> accuracy(study[1].begin(), study[1].begin() + 25);
  std::string second;
  double ml = 0, ma = 0;
  for (int i = 0; i < 25; ++i) ml += loss[i] / 25, ma += accuracy[i] / 25;
  for (int i = 0; i < 25; ++i) {
    loss[i] = ml + 1.5 * (loss[i] - ml);
    accuracy[i] = ma + 1.5 * (accuracy[i] - ma);
    char row[80];
    std::snprintf(row, sizeof row, "%.17g,%.17g\n", loss[i], accuracy[i]);
    second += row;
  }
  const std::string second_path = WriteTemp("plan_second.csv", second);
  for (double width : {0.1, 0.2}) {
    ScoresOptions options;
    options.json = true;
    options.ci_width = width;
    options.bootstrap_resamples = 2000;
    auto out = AnalyzeScores({kSameSeedCsv, second_path}, options);
    ASSERT_TRUE(out.ok()) << out.status();
    const Json c = Json::parse(*out).at("comparisons")[0];
    const Reference l = ReferenceFor(study[0], loss);
    const Reference a = ReferenceFor(study[1], accuracy);
    EXPECT_EQ(c.at("runs_needed").at("loss").get<int64_t>(), l.RunsForWidth(width));
    EXPECT_EQ(c.at("runs_needed").at("accuracy").get<int64_t>(), a.RunsForWidth(width));
    EXPECT_NEAR(c.at("runs_needed_power").at("accuracy").get<double>(),
                static_cast<double>(a.RunsForPower(0.8)), 1.0);
  }
}

// The approximation against the bootstrap it stands for: pilots of the planned size,
// drawn from the study's rows, give bootstrap intervals about as wide as asked.
TEST(PlanningTest, PlannedRunsGiveABootstrapIntervalOfAboutTheWidth) {
  const auto [first_path, last_path] = SplitStudyFile();
  const auto first = ReadColumns(first_path);
  const auto last = ReadColumns(last_path);
  const ColumnPlan plan = PlanRuns(first[1], last[1], 0.1);
  ASSERT_EQ(plan.width, PlanOutcome::kReached);
  const int64_t n = *plan.runs_for_width;
  ASSERT_GT(n, 500);
  Rng rng(11);
  double widths = 0;
  constexpr int kPilots = 4;
  for (int pilot = 0; pilot < kPilots; ++pilot) {
    std::vector<double> arm, ref;
    for (int64_t i = 0; i < n; ++i) arm.push_back(first[1][rng.Below(first[1].size())]);
    for (int64_t i = 0; i < n; ++i) ref.push_back(last[1][rng.Below(last[1].size())]);
    const BootstrapInterval ci = BootstrapStdevRatio({arm}, {ref}, 1000, 100 + pilot)[0];
    widths += (ci.high - ci.low) / kPilots;
  }
  EXPECT_NEAR(widths, 0.1, 0.015);
}

TEST(PlanningTest, UnreachableUndefinedAndNoEffect) {
  // Heavy tails and a tiny width: over the cap.
  const std::vector<double> a = {0, 0, 0, 0, 0, 0, 0, 0, 0, 10};
  const std::vector<double> b = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const ColumnPlan over = PlanRuns(a, b, 0.001);
  EXPECT_EQ(over.width, PlanOutcome::kOverCap);
  EXPECT_FALSE(over.runs_for_width);
  // A ratio of exactly 1: no run count detects it.
  const ColumnPlan same = PlanRuns(b, b, 0.1);
  EXPECT_EQ(same.power, PlanOutcome::kNoEffect);
  EXPECT_FALSE(same.runs_for_power);
  EXPECT_EQ(same.width, PlanOutcome::kReached);
  // No spread: undefined.
  const ColumnPlan flat = PlanRuns({1, 1, 1}, b, 0.1);
  EXPECT_EQ(flat.width, PlanOutcome::kUndefined);
  EXPECT_EQ(flat.power, PlanOutcome::kUndefined);
  EXPECT_EQ(PlanWidthText(over), "over 100000");
  EXPECT_EQ(PlanPowerText(same), "never (ratio 1)");
  EXPECT_EQ(PlanWidthText(flat), "undefined");
  ScoresOptions bad;
  bad.ci_width = 0;
  EXPECT_EQ(AnalyzeScores({kSameSeedCsv}, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PlanningTest, StudentTQuantiles) {
  // Published two-sided 95% critical values.
  EXPECT_NEAR(StudentTQuantile(0.975, 1), 12.706204736174698, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 2), 4.302652729911275, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 4), 2.7764451051977987, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.975, 30), 2.0422724563012373, 1e-9);
  EXPECT_NEAR(StudentTQuantile(0.025, 4), -2.7764451051977987, 1e-9);
  EXPECT_NEAR(StudentTCdf(0, 7), 0.5, 1e-15);
}

// ---- the noise floor and the cost of determinism, on synthetic views ----

RunView TimedRun(const std::string& arm, int index, double accuracy,
                 const std::vector<double>& seconds, std::map<std::string, std::string> env,
                 size_t predictions) {
  RunView run;
  run.arm = arm;
  run.index = index;
  run.state = RunState::kDone;
  run.result.test_loss = 0.5;
  run.result.test_accuracy = accuracy;
  run.result.environment = std::move(env);
  run.result.predictions.assign(predictions, 3);
  for (size_t e = 0; e < seconds.size(); ++e) {
    EpochRecord epoch;
    epoch.epoch = static_cast<int>(e);
    epoch.seconds = seconds[e];
    run.result.epochs.push_back(epoch);
  }
  return run;
}

std::map<std::string, std::string> Env(const std::string& host, const std::string& det,
                                       const std::string& benchmark) {
  return {{"host", host}, {"device", "cuda"}, {"deterministic_algorithms", det},
          {"cudnn_benchmark", benchmark}, {"model_type", "Net"}};
}

TEST(NoiseFloorTest, BinomialStdevAgainstTheObservedOne) {
  ExperimentView view;
  view.name = "noise";
  view.arms = {"a", "unknown_size"};
  view.runs_per_arm = 3;
  const double acc[] = {0.80, 0.82, 0.84};
  for (int i = 0; i < 3; ++i) {
    view.runs.push_back(TimedRun("a", i, acc[i], {1}, Env("h", "true", "false"), 100));
    view.runs.push_back(TimedRun("unknown_size", i, acc[i], {1}, Env("h", "true", "false"), 0));
  }
  const Report report = Analyze(view);
  const NoiseFloor& floor = report.arms[0].noise_floor;
  EXPECT_EQ(floor.test_examples, 100);
  // p = 0.82: sqrt(0.82 * 0.18 / 100) = 0.038418745424597; the sample stdev of
  // {0.80, 0.82, 0.84} is 0.02.
  ASSERT_TRUE(floor.binomial_stdev && floor.observed_stdev && floor.ratio);
  EXPECT_NEAR(*floor.binomial_stdev, 0.038418745424597, 1e-12);
  EXPECT_NEAR(*floor.observed_stdev, 0.02, 1e-12);
  EXPECT_NEAR(*floor.ratio, 0.02 / 0.038418745424597, 1e-9);
  const NoiseFloor& unknown = report.arms[1].noise_floor;
  EXPECT_EQ(unknown.test_examples, 0);
  EXPECT_FALSE(unknown.binomial_stdev);
  EXPECT_FALSE(unknown.ratio);

  const Json j = Json::parse(*RenderReport(report, ReportFormat::kJson, ""));
  const Json& nf = j.at("arms")[0].at("noise_floor");
  EXPECT_EQ(nf.at("test_examples"), 100);
  EXPECT_NEAR(nf.at("binomial_stdev").get<double>(), 0.038418745424597, 1e-12);
  EXPECT_TRUE(j.at("arms")[1].at("noise_floor").at("test_examples").is_null());
  EXPECT_TRUE(j.at("arms")[1].at("noise_floor").at("ratio").is_null());
  const std::string text = *RenderReport(report, ReportFormat::kText, "");
  EXPECT_THAT(text, HasSubstr("Noise floor of test accuracy: binomial stdev 0.03841875 "
                              "(sqrt(p (1 - p) / n), p = mean accuracy 0.82, n = 100 test "
                              "examples); observed stdev (ddof 1) 0.02, ratio 0.5205"));
  EXPECT_THAT(text, HasSubstr("the test set's size is unknown"));
  const std::string html = *RenderReport(report, ReportFormat::kHtml, "");
  EXPECT_THAT(html, HasSubstr("<h2>Noise floor and time per epoch</h2>"));
  EXPECT_THAT(html, HasSubstr("binomial stdev 0.03841875"));
}

TEST(DeterminismCostTest, OverheadOfArmsThatDifferOnlyInSwitches) {
  ExperimentView view;
  view.name = "cost";
  // fast comes first in plan order; det is still the deterministic one. other_host
  // differs in its host too, so it is no pair of either; bench differs from fast in
  // cudnn_benchmark alone.
  view.arms = {"fast", "det", "other_host", "bench"};
  view.runs_per_arm = 3;
  const double det_seconds[] = {12, 13, 14};
  const double fast_seconds[] = {9.5, 10, 10.5};
  for (int i = 0; i < 3; ++i) {
    // Each run's mean over its epochs is what counts: {s - 1, s + 1} averages to s.
    view.runs.push_back(TimedRun("fast", i, 0.8, {fast_seconds[i] - 1, fast_seconds[i] + 1},
                                 Env("h", "false", "true"), 10));
    view.runs.push_back(TimedRun("det", i, 0.8, {det_seconds[i]}, Env("h", "true", "true"), 10));
    view.runs.push_back(
        TimedRun("other_host", i, 0.8, {20}, Env("h2", "true", "true"), 10));
    view.runs.push_back(TimedRun("bench", i, 0.8, {11}, Env("h", "false", "false"), 10));
  }
  AnalysisOptions options;
  options.bootstrap_resamples = 4000;
  const Report report = Analyze(view, options);
  // det: run means 12, 13, 14: mean 13, sample stdev 1, t(0.975, 2) = 4.302652729911275.
  const EpochTime& det = report.arms[1].seconds_per_epoch;
  EXPECT_EQ(det.runs, 3);
  EXPECT_NEAR(*det.mean, 13, 1e-12);
  EXPECT_NEAR(*det.ci_low, 13 - 4.302652729911275 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(*det.ci_high, 13 + 4.302652729911275 / std::sqrt(3.0), 1e-9);
  EXPECT_NEAR(*report.arms[0].seconds_per_epoch.mean, 10, 1e-12);

  ASSERT_EQ(report.determinism_costs.size(), 3u);
  // det vs fast (deterministic_algorithms), bench vs fast (cudnn_benchmark), and det vs
  // bench (both switches): ordered by the deterministic arm's place in the plan.
  const DeterminismCost& c = report.determinism_costs[0];
  EXPECT_EQ(c.deterministic_arm, "det");
  EXPECT_EQ(c.other_arm, "fast");
  EXPECT_EQ(c.switches, std::vector<std::string>{"deterministic_algorithms"});
  EXPECT_NEAR(*c.overhead, 1.3, 1e-12);
  // Every resample's ratio lies between the extremes 12 / 10.5 and 14 / 9.5.
  ASSERT_TRUE(c.ci_low && c.ci_high);
  EXPECT_LT(*c.ci_low, 1.3);
  EXPECT_GT(*c.ci_high, 1.3);
  EXPECT_GE(*c.ci_low, 12 / 10.5);
  EXPECT_LE(*c.ci_high, 14 / 9.5);
  const DeterminismCost& both = report.determinism_costs[1];
  EXPECT_EQ(both.deterministic_arm, "det");
  EXPECT_EQ(both.other_arm, "bench");
  EXPECT_EQ(both.switches,
            (std::vector<std::string>{"cudnn_benchmark", "deterministic_algorithms"}));
  const DeterminismCost& bench = report.determinism_costs[2];
  EXPECT_EQ(bench.deterministic_arm, "bench");
  EXPECT_EQ(bench.other_arm, "fast");
  EXPECT_EQ(bench.switches, std::vector<std::string>{"cudnn_benchmark"});
  EXPECT_NEAR(*bench.overhead, 1.1, 1e-12);
  ASSERT_TRUE(bench.ci_low && bench.ci_high);  // bench has no spread, fast has some
  EXPECT_GE(*bench.ci_low, 11 / 10.5);
  EXPECT_LE(*bench.ci_high, 11 / 9.5);

  const Json j = Json::parse(*RenderReport(report, ReportFormat::kJson, ""));
  const Json& cost = j.at("determinism_cost");
  ASSERT_EQ(cost.size(), 3u);
  EXPECT_EQ(cost[0].at("deterministic_arm"), "det");
  EXPECT_NEAR(cost[0].at("overhead").get<double>(), 1.3, 1e-12);
  EXPECT_EQ(cost[0].at("ci95").size(), 2u);
  EXPECT_NEAR(j.at("arms")[1].at("seconds_per_epoch").at("mean").get<double>(), 13, 1e-12);
  EXPECT_EQ(j.at("arms")[1].at("seconds_per_epoch").at("runs"), 3);
  const std::string text = *RenderReport(report, ReportFormat::kText, "");
  EXPECT_THAT(text, HasSubstr("\nCost of determinism (arms that differ only in"));
  EXPECT_THAT(text, HasSubstr("  det vs fast (deterministic_algorithms): overhead 1.3, 95% CI ["));
  EXPECT_THAT(text, HasSubstr("Seconds per epoch: mean 13, 95% CI [10.5158"));
  const std::string html = *RenderReport(report, ReportFormat::kHtml, "");
  EXPECT_THAT(html, HasSubstr("<h2>Cost of determinism</h2>"));
  EXPECT_THAT(html, HasSubstr("<td>det</td><td>fast</td><td>deterministic_algorithms</td><td>1.3</td>"));
}

TEST(DeterminismCostTest, NoPairWithoutEnvironmentsOrWhenArmsDifferInMore) {
  ExperimentView view;
  view.arms = {"a", "b"};
  view.runs_per_arm = 2;
  for (int i = 0; i < 2; ++i) {
    view.runs.push_back(TimedRun("a", i, 0.8, {1}, {}, 0));
    view.runs.push_back(TimedRun("b", i, 0.8, {2}, {}, 0));
  }
  EXPECT_TRUE(Analyze(view).determinism_costs.empty());
  // Runs of one arm in two environments: not one arm's environment, no pair.
  view.runs[0].result.environment = Env("h", "true", "false");
  view.runs[2].result.environment = Env("h2", "true", "false");
  view.runs[1].result.environment = view.runs[3].result.environment = Env("h", "false", "false");
  EXPECT_TRUE(Analyze(view).determinism_costs.empty());
  view.runs[2].result.environment = Env("h", "true", "false");
  ASSERT_EQ(Analyze(view).determinism_costs.size(), 1u);
}

}  // namespace
}  // namespace repro
