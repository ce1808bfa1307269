// Per-class accuracy and churn (analysis/per_class.h) on a synthetic experiment whose
// figures are worked out by hand below, and the per-class section of every renderer.
#include "analysis/per_class.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "analysis/report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace repro {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

RunView Done(const std::string& arm, int index, std::vector<uint8_t> predictions) {
  RunView run;
  run.arm = arm;
  run.index = index;
  run.state = RunState::kDone;
  run.attempts = 1;
  run.result.test_loss = 0.5;
  run.result.test_accuracy = 0.8;
  run.result.final_hash = "f";
  run.result.predictions = std::move(predictions);
  return run;
}

// Six test examples of classes 0, 0, 1, 1, 1, 2 and three runs:
//   run 0 predicts 0 0 1 1 1 2   accuracy per class: 1, 1, 1
//   run 1 predicts 0 1 1 1 0 2                       1/2, 2/3, 1
//   run 2 predicts 1 0 1 2 1 0                       1/2, 2/3, 0
// Pairs that differ per example: 2, 2 | 0, 2, 2 | 2; so churn per class over 3 pairs:
// class 0 4/6, class 1 4/9, class 2 2/3 (and the instability 10/18, their weighted mean).
// Left out: a diverged run (no predictions), a corrupt one, one of another test set.
ExperimentView Synthetic(const std::string& arm = "a") {
  ExperimentView view;
  view.name = "per-class";
  view.arms = {arm};
  view.runs_per_arm = 6;
  view.epochs = 1;
  view.test_labels = {0, 0, 1, 1, 1, 2};
  view.runs.push_back(Done(arm, 0, {0, 0, 1, 1, 1, 2}));
  view.runs.push_back(Done(arm, 1, {0, 1, 1, 1, 0, 2}));
  view.runs.push_back(Done(arm, 2, {1, 0, 1, 2, 1, 0}));
  view.runs.push_back(Done(arm, 3, {}));
  view.runs.back().result.diverged = "diverged: loss nan at epoch 0, batch 1";
  view.runs.push_back(Done(arm, 4, {2, 2, 2, 2, 2, 2}));
  view.runs.back().corrupt = "checksum mismatch";
  view.runs.push_back(Done(arm, 5, {0, 0, 1}));
  return view;
}

TEST(PerClassTest, AccuracyAndChurnPerClassAreExact) {
  const Report report = Analyze(Synthetic());
  const PerClass& p = report.arms.at(0).per_class;
  EXPECT_EQ(p.grouped_by, ClassGrouping::kLabel);
  EXPECT_EQ(p.runs, 3);
  EXPECT_EQ(p.pairs, 3);
  EXPECT_EQ(p.accuracy_absent, "");
  ASSERT_EQ(p.classes.size(), 3u);
  const double expected_mean[] = {2.0 / 3, 7.0 / 9, 2.0 / 3};
  // Population stdev (ddof 0) of {1, 1/2, 1/2}, {1, 2/3, 2/3}, {1, 1, 0}.
  const double expected_stdev[] = {std::sqrt(1.0 / 18), std::sqrt(2.0) / 9, std::sqrt(2.0 / 9)};
  const double expected_churn[] = {4.0 / 6, 4.0 / 9, 2.0 / 3};
  const int64_t expected_examples[] = {2, 3, 1};
  double weighted = 0;
  for (int c = 0; c < 3; ++c) {
    const ClassFigures& f = p.classes[c];
    EXPECT_EQ(f.label, c);
    EXPECT_EQ(f.examples, expected_examples[c]);
    EXPECT_NEAR(f.accuracy_mean.value(), expected_mean[c], 1e-15) << c;
    EXPECT_NEAR(f.accuracy_stdev.value(), expected_stdev[c], 1e-15) << c;
    EXPECT_NEAR(f.churn.value(), expected_churn[c], 1e-15) << c;
    weighted += f.churn.value() * static_cast<double>(f.examples) / 6;
  }
  EXPECT_NEAR(weighted, report.arms[0].instability.mean_disagreement.value(), 1e-15);
  EXPECT_NEAR(weighted, 10.0 / 18, 1e-15);
}

TEST(PerClassTest, WithoutLabelsChurnIsByTheReferenceRunsPrediction) {
  ExperimentView view = Synthetic();
  view.test_labels.clear();  // --skip-data-check
  // Run 0 predicts the true classes here, so the groups and the churn are as with labels.
  PerClass p = Analyze(view).arms.at(0).per_class;
  EXPECT_EQ(p.grouped_by, ClassGrouping::kReferencePrediction);
  EXPECT_THAT(p.accuracy_absent, HasSubstr("--skip-data-check"));
  ASSERT_EQ(p.classes.size(), 3u);
  EXPECT_EQ(p.classes[1].examples, 3);
  EXPECT_FALSE(p.classes[1].accuracy_mean.has_value());
  EXPECT_FALSE(p.classes[1].accuracy_stdev.has_value());
  EXPECT_NEAR(p.classes[1].churn.value(), 4.0 / 9, 1e-15);

  // Run 1 as the reference (run 0 not done): its classes 0 1 1 1 0 2 group the examples.
  view.runs[0].state = RunState::kFailed;
  p = Analyze(view).arms.at(0).per_class;
  ASSERT_EQ(p.classes.size(), 3u);
  EXPECT_EQ(p.classes[0].examples, 2);  // examples 0 and 4
  EXPECT_EQ(p.classes[1].examples, 3);
  EXPECT_EQ(p.pairs, 1);
  // Runs 1 and 2 differ on examples 0, 1, 3, 4, 5: class 0 (0, 4) both, class 1 (1, 2,
  // 3) two of three, class 2 (5) its one.
  EXPECT_NEAR(p.classes[0].churn.value(), 1.0, 1e-15);
  EXPECT_NEAR(p.classes[1].churn.value(), 2.0 / 3, 1e-15);
  EXPECT_NEAR(p.classes[2].churn.value(), 1.0, 1e-15);

  view = Synthetic();
  view.test_labels = {0, 1};  // not this test set
  p = Analyze(view).arms.at(0).per_class;
  EXPECT_EQ(p.grouped_by, ClassGrouping::kReferencePrediction);
  EXPECT_THAT(p.accuracy_absent, HasSubstr("2 stored test labels do not match the 6"));
}

TEST(PerClassTest, OneRunHasAccuracyButNoChurnAndNoRunHasNothing) {
  ExperimentView view = Synthetic();
  view.runs.resize(1);
  PerClass p = Analyze(view).arms.at(0).per_class;
  EXPECT_EQ(p.runs, 1);
  ASSERT_EQ(p.classes.size(), 3u);
  EXPECT_EQ(p.classes[0].accuracy_mean, 1.0);
  EXPECT_EQ(p.classes[0].accuracy_stdev, 0.0);
  EXPECT_FALSE(p.classes[0].churn.has_value());

  view.runs[0].result.predictions.clear();
  p = Analyze(view).arms.at(0).per_class;
  EXPECT_EQ(p.grouped_by, ClassGrouping::kNone);
  EXPECT_TRUE(p.classes.empty());
  EXPECT_THAT(p.accuracy_absent, HasSubstr("no run recorded"));
}

std::string Render(const ExperimentView& view, ReportFormat format, const std::string& arm = "") {
  absl::StatusOr<std::string> out = RenderReport(Analyze(view), format, arm);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

TEST(PerClassTest, EveryFormatHasThePerClassTable) {
  const ExperimentView view = Synthetic("a<b");
  const std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("Per class, by true class; accuracy over 3 runs: mean and stdev "
                              "(ddof 0); churn: share of the class's examples two runs predict "
                              "differently, mean over 3 pairs:\n"
                              " class  examples  accuracy mean     stdev     churn\n"
                              "     0         2       0.666667  0.235702  0.666667\n"
                              "     1         3       0.777778  0.157135  0.444444\n"
                              "     2         1       0.666667  0.471405  0.666667\n"));

  const nlohmann::json j = nlohmann::json::parse(Render(view, ReportFormat::kJson));
  const nlohmann::json& p = j.at("arms").at(0).at("per_class");
  EXPECT_EQ(p.at("grouped_by"), "label");
  EXPECT_EQ(p.at("runs"), 3);
  EXPECT_EQ(p.at("pairs"), 3);
  EXPECT_TRUE(p.at("accuracy_absent").is_null());
  ASSERT_EQ(p.at("classes").size(), 3u);
  EXPECT_EQ(p.at("classes")[1].at("class"), 1);
  EXPECT_EQ(p.at("classes")[1].at("examples"), 3);
  EXPECT_EQ(p.at("classes")[1].at("accuracy_mean").get<double>(),
            Analyze(view).arms[0].per_class.classes[1].accuracy_mean.value());  // shortest form
  EXPECT_NEAR(p.at("classes")[1].at("churn").get<double>(), 4.0 / 9, 1e-15);

  const std::string csv = Render(view, ReportFormat::kCsvPerClass);
  EXPECT_THAT(csv, HasSubstr("arm,class,examples,accuracy_mean,accuracy_stdev,churn,runs,grouped_by\n"
                             "a<b,0,2,0.66666666666666663,0.23570226039551584,"
                             "0.66666666666666663,3,label\n"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  EXPECT_EQ(Render(view, ReportFormat::kCsvPerClass, "a<b"), csv);

  const std::string html = Render(view, ReportFormat::kHtml);
  EXPECT_THAT(html, HasSubstr("<h2>Per class</h2>\n<h3>a&lt;b</h3>"));
  EXPECT_THAT(html, HasSubstr("<table class=\"per-class\">"));
  EXPECT_THAT(html, HasSubstr("<tr><td>1</td><td>3</td><td>0.777778</td><td>0.157135</td>"
                              "<td>0.444444</td></tr>"));
  EXPECT_THAT(html, Not(HasSubstr("<h3>a<b")));

  ExperimentView unlabelled = view;
  unlabelled.test_labels.clear();
  const nlohmann::json u = nlohmann::json::parse(Render(unlabelled, ReportFormat::kJson));
  const nlohmann::json& q = u.at("arms").at(0).at("per_class");
  EXPECT_EQ(q.at("grouped_by"), "reference_prediction");
  EXPECT_THAT(q.at("accuracy_absent").get<std::string>(), HasSubstr("not stored"));
  EXPECT_TRUE(q.at("classes")[0].at("accuracy_mean").is_null());
  EXPECT_THAT(Render(unlabelled, ReportFormat::kText),
              HasSubstr("Per class, by the class the arm's first run with predictions predicts; "
                        "no accuracy: the test set's labels are not stored"));
  EXPECT_THAT(Render(unlabelled, ReportFormat::kCsvPerClass),
              HasSubstr("a<b,1,3,,,0.44444444444444442,3,reference_prediction\n"));
}

TEST(PerClassTest, CsvPerClassIsAFormat) {
  EXPECT_EQ(ParseReportFormat("csv-per-class").value(), ReportFormat::kCsvPerClass);
  EXPECT_STREQ(ReportFormatName(ReportFormat::kCsvPerClass), "csv-per-class");
  EXPECT_THAT(std::string(ParseReportFormat("tsv").status().message()),
              HasSubstr("csv-per-class"));
}

}  // namespace
}  // namespace repro
