#include "analysis/report.h"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analysis/stats.h"
#include "analysis/report_text.h"
#include "analysis/sample_experiment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace repro {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

RunView DoneRun(const std::string& arm, int index, double loss, double accuracy) {
  RunView run;
  run.arm = arm;
  run.index = index;
  run.init_seed = arm == "same_seed" ? 0 : index;
  run.shuffle_seed = run.init_seed;
  run.state = RunState::kDone;
  run.attempts = 1;
  run.worker = "worker-a";
  RunResult& r = run.result;
  r.test_loss = loss;
  r.test_accuracy = accuracy;
  r.data_x_hash = "x0";
  r.data_y_hash = "y0";
  r.initial_hash = "init0";
  r.final_hash = "final0";
  r.initial_tensors = {{"conv1.weight", "a"}, {"fc.weight", "b"}};
  r.final_tensors = {{"conv1.weight", "c"}, {"fc.weight", "d"}};
  EpochRecord epoch;
  epoch.epoch = 0;
  epoch.loss = 0.9;
  epoch.accuracy = 0.6;
  epoch.val_loss = 0.8;
  epoch.val_accuracy = 0.65;
  epoch.seconds = 12.5;
  epoch.batch_digest = "b0";
  epoch.weights_hash = "w0";
  r.epochs.push_back(epoch);
  return run;
}

// same_seed: 4 identical runs. different_seeds: 4 runs, run 1 differing in its first
// tensor and in its batches from epoch 0.
ExperimentView Fashion() {
  ExperimentView view;
  view.name = "fashion-quick";
  view.arms = {"same_seed", "different_seeds"};
  view.runs_per_arm = 4;
  view.epochs = 1;
  for (int i = 0; i < 4; ++i) view.runs.push_back(DoneRun("same_seed", i, 0.5, 0.8));
  for (int i = 0; i < 4; ++i) {
    view.runs.push_back(DoneRun("different_seeds", i, 0.5 + 0.01 * i, 0.8 - 0.001 * i));
  }
  RunView& run1 = view.runs[5];
  run1.result.initial_hash = "init1";
  run1.result.initial_tensors[0].hash = "other";
  run1.result.epochs[0].batch_digest = "other";
  return view;
}

std::string Render(const ExperimentView& view, ReportFormat format,
                   const std::string& arm = "") {
  absl::StatusOr<std::string> out = RenderReport(Analyze(view), format, arm);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

TEST(ReportTest, ParsesFormats) {
  EXPECT_EQ(*ParseReportFormat("text"), ReportFormat::kText);
  EXPECT_EQ(*ParseReportFormat("json"), ReportFormat::kJson);
  EXPECT_EQ(*ParseReportFormat("csv"), ReportFormat::kCsv);
  EXPECT_EQ(*ParseReportFormat("html"), ReportFormat::kHtml);
  EXPECT_STREQ(ReportFormatName(ReportFormat::kHtml), "html");
  auto bad = ParseReportFormat("yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'yaml'"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("text, json, csv, html"));
}

TEST(ReportTest, TextFollowsTheStudysPrintout) {
  const std::string text = Render(Fashion(), ReportFormat::kText);
  EXPECT_EQ(text.substr(0, text.find('\n')),
            "Experiment fashion-quick: complete, 8 of 8 runs done");
  for (const char* line : {
           "\nComparison results for same_seed:\n\n"
           "Models all the same: True (number of models checked: 4/4)\n"
           "XY training data all the same: True (number of models checked: 4/4)\n"
           "Batches all the same: True (number of models checked: 4/4)\n"
           "Final models all the same: True (number of models checked: 4/4)\n"
           "First divergence: none (all runs identical through epoch 0)\n"
           "Scores [test loss, test accuracy] over 4 runs:\n"
           "  mean           [0.5 0.8]\n"
           "  stdev (ddof 0) [0 0]\n"
           "  stdev (ddof 1) [0 0]\n",
           "Models all the same: False (number of models checked: 4/4)\n"
           "- Different model (layers and weights compared with run #0) in this run: #1 "
           "(tensor = conv1.weight, index = 0)\n",
           "Batches all the same: False (number of models checked: 4/4)\n"
           "- Different batches (compared with run #0) in this run: #1 "
           "(first at epoch 0)\n",
           "First divergence: not applicable",
           "\n\nRatio of stdev same_seed / different_seeds [test loss, test accuracy]: "
           "[0 0]\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
}

TEST(ReportTest, TextShowsDivergenceIncompletenessAndFailures) {
  ExperimentView view = Fashion();
  view.runs[2].result.epochs[0].weights_hash = "diverged";
  view.runs[2].result.final_hash = "diverged";
  view.runs[3].state = RunState::kFailed;
  view.runs[3].attempts = 3;
  view.runs[3].error = "CUDA error: out of memory";
  for (int i = 4; i < 8; ++i) view.runs[i].state = RunState::kPending;
  const std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("Experiment fashion-quick: incomplete, 3 of 8 runs done "
                              "(1 failed, 4 remaining)\n"));
  EXPECT_THAT(text, HasSubstr("First divergence: epoch 0 "));
  EXPECT_THAT(text, HasSubstr("- Different final model (layers and weights compared "
                              "with run #0) in this run: #2 (weights first differ after "
                              "epoch 0)"));
  EXPECT_THAT(text, HasSubstr("Failed runs: 1\n- Run #3 (attempts: 3, worker: worker-a): "
                              "CUDA error: out of memory\n"));
  EXPECT_THAT(text, HasSubstr("Models all the same: True (number of models checked: "
                              "3/4)"));
  EXPECT_THAT(text, HasSubstr("Scores [test loss, test accuracy]: none (no runs done)"));
  EXPECT_THAT(text, HasSubstr("[nan nan]"));  // the ratio is undefined

  view.runs[3].state = RunState::kDone;
  const std::string three = Render(view, ReportFormat::kText);
  EXPECT_THAT(three, HasSubstr("incomplete, 4 of 8 runs done (4 remaining)\n"));
}

TEST(ReportTest, EqualityOverNoFinishedRunSaysSoInsteadOfTrue) {
  ExperimentView view = Fashion();
  for (int i = 4; i < 8; ++i) view.runs[i].state = i < 6 ? RunState::kPending : RunState::kFailed;
  const std::string text = Render(view, ReportFormat::kText);
  std::string different_seeds = text.substr(text.find("different_seeds:"));
  different_seeds = different_seeds.substr(0, different_seeds.find("First divergence"));
  for (const char* check : {"Models all the same", "XY training data all the same",
                            "Batches all the same", "Final models all the same"}) {
    EXPECT_THAT(different_seeds, HasSubstr(absl::StrCat(
                                     check, ": no runs finished (number of models checked: 0/4)\n")));
  }
  EXPECT_THAT(different_seeds, Not(HasSubstr("True")));
  EXPECT_THAT(text, HasSubstr("Models all the same: True (number of models checked: 4/4)"));

  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  for (const char* key : {"models_all_same", "data_all_same", "batches_all_same",
                          "final_models_all_same"}) {
    EXPECT_EQ(j.at("arms")[0].at(key), true) << key;
    EXPECT_TRUE(j.at("arms")[1].at(key).is_null()) << key << ": " << j.at("arms")[1].dump();
  }
  EXPECT_THAT(Render(view, ReportFormat::kHtml), HasSubstr("no runs finished"));
}

// A run whose loss became NaN has no scores, and one whose stored result fails its
// checksum is no evidence: both are listed, with the reason, and neither moves a mean;
// a diverged run's 0 never reads as a score.
TEST(ReportTest, DivergedAndCorruptRunsAreListedAndLeftOutOfTheScores) {
  ExperimentView view = Fashion();
  RunView& diverged = view.runs[6];  // different_seeds #2
  diverged.result.diverged = "diverged: loss nan at epoch 0, batch 4";
  diverged.result.test_loss = 0;
  diverged.result.test_accuracy = 0;
  RunView& corrupt = view.runs[7];  // different_seeds #3
  corrupt.corrupt = "the stored result (attempt 9) no longer matches the checksum written with it";
  corrupt.result.test_loss = 1e300;  // the flipped bit
  const double mean_loss = Mean({0.5, 0.51});
  const double mean_accuracy = Mean({0.8, 0.8 - 0.001});

  const std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("Done runs without scores: 1 diverged, 1 corrupt\n"
                              "- Run #2 (worker: worker-a): diverged: loss nan at epoch 0, batch 4\n"
                              "- Run #3 (worker: worker-a): corrupt: the stored result (attempt 9) "
                              "no longer matches the checksum written with it\n"));
  EXPECT_THAT(text, HasSubstr("Scores [test loss, test accuracy] over 2 runs (1 diverged and 1 "
                              "corrupt runs left out):"));
  // The corrupt run is not compared either: three of four runs were checked.
  EXPECT_THAT(text, HasSubstr("Models all the same: False (number of models checked: 3/4)"));

  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  const Json& arm = j.at("arms")[1];
  EXPECT_EQ(arm.at("runs_done"), 4);
  EXPECT_EQ(arm.at("runs_diverged"), 1);
  EXPECT_EQ(arm.at("runs_corrupt"), 1);
  EXPECT_EQ(arm.at("runs_scored"), 2);
  EXPECT_EQ(arm.at("mean").at("loss").get<double>(), mean_loss);
  EXPECT_EQ(arm.at("mean").at("accuracy").get<double>(), mean_accuracy);
  EXPECT_EQ(arm.at("min").at("loss").get<double>(), 0.5);
  const Json& run2 = j.at("runs")[6];
  EXPECT_EQ(run2.at("diverged"), "diverged: loss nan at epoch 0, batch 4");
  EXPECT_TRUE(run2.at("test_loss").is_null());
  EXPECT_TRUE(run2.at("corrupt").is_null());
  const Json& run3 = j.at("runs")[7];
  EXPECT_THAT(run3.at("corrupt").get<std::string>(), HasSubstr("no longer matches the checksum"));
  EXPECT_TRUE(run3.at("test_loss").is_null());
  EXPECT_TRUE(j.at("runs")[5].at("diverged").is_null());

  EXPECT_EQ(Render(view, ReportFormat::kCsv, "different_seeds"),
            "0.5,0.80000000000000004\n0.51000000000000001,0.79900000000000004\n");
  const std::string html = Render(view, ReportFormat::kHtml);
  EXPECT_THAT(html, HasSubstr("<h2>Done runs without scores</h2>"));
  EXPECT_THAT(html, HasSubstr("<td>diverged: loss nan at epoch 0, batch 4</td>"));
  EXPECT_THAT(html, Not(HasSubstr("data-arm=\"different_seeds\" data-run=\"2\"")));
}

TEST(ReportTest, JsonHasEveryDocumentedKey) {
  ExperimentView view = Fashion();
  view.runs[7].state = RunState::kFailed;
  view.runs[7].error = "boom";
  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  EXPECT_EQ(j.at("experiment"), "fashion-quick");
  EXPECT_EQ(j.at("complete"), true);
  EXPECT_EQ(j.at("runs_failed"), 1);
  EXPECT_EQ(j.at("runs_remaining"), 0);
  ASSERT_EQ(j.at("arms").size(), 2u);
  for (const Json& arm : j.at("arms")) {
    for (const char* key :
         {"name", "runs_total", "runs_done", "runs_failed", "runs_remaining", "runs_diverged",
          "runs_corrupt", "runs_scored", "models_all_same", "data_all_same", "batches_all_same",
          "final_models_all_same", "differences", "first_divergence_epoch", "mean",
          "stdev", "stdev_ddof1", "min", "max", "noise_floor", "seconds_per_epoch"}) {
      EXPECT_TRUE(arm.contains(key)) << key;
    }
    for (const char* stat : {"mean", "stdev", "stdev_ddof1", "min", "max"}) {
      EXPECT_TRUE(arm.at(stat).contains("loss")) << stat;
      EXPECT_TRUE(arm.at(stat).contains("accuracy")) << stat;
    }
  }
  const Json& same = j["arms"][0];
  EXPECT_EQ(same.at("name"), "same_seed");
  EXPECT_EQ(same.at("runs_total"), 4);
  EXPECT_EQ(same.at("models_all_same"), true);
  EXPECT_TRUE(same.at("first_divergence_epoch").is_null());
  EXPECT_EQ(same.at("stdev").at("loss").get<double>(), 0.0);
  EXPECT_EQ(same.at("mean").at("loss").get<double>(), 0.5);

  const Json& different = j["arms"][1];
  EXPECT_EQ(different.at("runs_done"), 3);
  EXPECT_EQ(different.at("models_all_same"), false);
  ASSERT_EQ(different.at("differences").size(), 2u);
  const Json& model = different["differences"][0];
  EXPECT_EQ(model.at("run"), 1);
  EXPECT_EQ(model.at("what"), "model");
  EXPECT_EQ(model.at("tensor"), "conv1.weight");
  EXPECT_EQ(model.at("index"), 0);
  EXPECT_TRUE(model.at("epoch").is_null());
  const Json& batches = different["differences"][1];
  EXPECT_EQ(batches.at("what"), "batches");
  EXPECT_EQ(batches.at("tensor"), "");
  EXPECT_EQ(batches.at("index"), -1);
  EXPECT_EQ(batches.at("epoch"), 0);

  EXPECT_EQ(j.at("stdev_ratio").at("loss").get<double>(), 0.0);
  EXPECT_EQ(j.at("stdev_ratio").at("accuracy").get<double>(), 0.0);
  EXPECT_EQ(j.at("planning").at("ci_width").get<double>(), 0.1);
  EXPECT_TRUE(j.at("determinism_cost").is_array());
  // same_seed has no spread: its runs needed are undefined, and null.
  const Json& comparison = j.at("comparisons")[0];
  EXPECT_TRUE(comparison.at("runs_needed").at("loss").is_null());
  EXPECT_EQ(comparison.at("planning").at("loss").at("width"), "undefined");
  EXPECT_EQ(same.at("seconds_per_epoch").at("mean").get<double>(), 12.5);

  ASSERT_EQ(j.at("runs").size(), 8u);
  for (const Json& run : j.at("runs")) {
    for (const char* key :
         {"arm", "index", "seeds", "state", "attempts", "worker", "error", "test_loss",
          "test_accuracy", "initial_hash", "final_hash", "data_x_hash", "data_y_hash",
          "epochs", "weights"}) {
      EXPECT_TRUE(run.contains(key)) << key;
    }
    EXPECT_TRUE(run.at("seeds").contains("init"));
    EXPECT_TRUE(run.at("seeds").contains("shuffle"));
    EXPECT_TRUE(run.at("weights").is_array());
    for (const Json& epoch : run.at("epochs")) {
      for (const char* key : {"epoch", "loss", "accuracy", "val_loss", "val_accuracy",
                              "seconds", "batch_digest", "weights_hash"}) {
        EXPECT_TRUE(epoch.contains(key)) << key;
      }
    }
  }
  const Json& failed = j["runs"][7];
  EXPECT_EQ(failed.at("state"), "failed");
  EXPECT_EQ(failed.at("error"), "boom");
  EXPECT_TRUE(failed.at("test_loss").is_null());
  const Json& run5 = j["runs"][5];
  EXPECT_EQ(run5.at("arm"), "different_seeds");
  EXPECT_EQ(run5.at("index"), 1);
  EXPECT_EQ(run5.at("seeds").at("init"), 1);
  EXPECT_EQ(run5.at("test_loss").get<double>(), 0.51);
  EXPECT_EQ(run5.at("epochs")[0].at("seconds").get<double>(), 12.5);
  EXPECT_EQ(run5.at("epochs")[0].at("batch_digest"), "other");
}

TEST(ReportTest, WeightsAreNamedByBlobAndTheirStorageIsShownInEveryFormat) {
  ExperimentView view = SampleExperiment();
  const std::string sha(64, 'e');
  view.runs[0].result.weights = {{"initial", std::string(64, 'a'), 1000}, {"final", sha, 3000}};
  view.runs[1].result.weights = {{"initial", std::string(64, 'a'), 1000}, {"final", sha, 3000}};
  view.weights = WeightsUsage{4, 8000, 4000};
  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  const Json& files = j.at("runs").at(0).at("weights");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files.at(1).at("name"), "final");
  EXPECT_EQ(files.at(1).at("sha256"), sha);
  EXPECT_EQ(files.at(1).at("size"), 3000);
  EXPECT_FALSE(j.at("runs").at(0).contains("artifacts"));  // no paths on other machines
  EXPECT_EQ(j.at("weights_storage").at("files"), 4);
  EXPECT_EQ(j.at("weights_storage").at("bytes"), 8000);
  EXPECT_EQ(j.at("weights_storage").at("stored_bytes"), 4000);
  const std::string line =
      "Weights: 4 files, 0.0 MB; stored 0.0 MB, each distinct file once (saves 0.0 MB, 50 %)";
  EXPECT_THAT(Render(view, ReportFormat::kText), HasSubstr(line));
  EXPECT_THAT(Render(view, ReportFormat::kHtml), HasSubstr(line));
}

TEST(ReportTest, JsonNeverHoldsNaN) {
  ExperimentView view = Fashion();
  view.runs[0].result.test_loss = std::nan("");  // a run whose training blew up
  view.runs[0].result.epochs[0].loss = INFINITY;
  view.runs[4].error = "bad utf-8 \xff";
  const std::string text = Render(view, ReportFormat::kJson);
  EXPECT_THAT(text, Not(HasSubstr("NaN")));
  EXPECT_THAT(text, Not(HasSubstr("nan")));
  const Json j = Json::parse(text);
  EXPECT_TRUE(j["runs"][0]["test_loss"].is_null());
  EXPECT_TRUE(j["runs"][0]["epochs"][0]["loss"].is_null());
  EXPECT_TRUE(j["arms"][0]["mean"]["loss"].is_null());
  EXPECT_TRUE(j["stdev_ratio"]["loss"].is_null());
}

TEST(ReportTest, ArmRestrictsArmsAndRuns) {
  const Json j =
      Json::parse(Render(Fashion(), ReportFormat::kJson, "different_seeds"));
  ASSERT_EQ(j.at("arms").size(), 1u);
  EXPECT_EQ(j["arms"][0]["name"], "different_seeds");
  ASSERT_EQ(j.at("runs").size(), 4u);
  for (const Json& run : j["runs"]) EXPECT_EQ(run["arm"], "different_seeds");

  const std::string text = Render(Fashion(), ReportFormat::kText, "same_seed");
  EXPECT_THAT(text, HasSubstr("Comparison results for same_seed:"));
  EXPECT_THAT(text, Not(HasSubstr("different_seeds")));
}

TEST(ReportTest, UnknownArmIsInvalidArgument) {
  auto out = RenderReport(Analyze(Fashion()), ReportFormat::kText, "warm_start");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(out.status().message());
  EXPECT_THAT(message, HasSubstr("'warm_start'"));
  EXPECT_THAT(message, HasSubstr("same_seed, different_seeds"));
}

TEST(ReportTest, CsvNeedsAnArm) {
  auto out = RenderReport(Analyze(Fashion()), ReportFormat::kCsv, "");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("csv needs --arm NAME"));
}

TEST(ReportTest, CsvRoundTripsBitExactly) {
  ExperimentView view = Fashion();
  const std::vector<std::pair<double, double>> scores = {
      {0.1 + 0.2, 1.0 / 3.0},
      {9.702797208309174026e-01, 8.487999999999999989e-01},
      {1e-300, 0.0},
      {123456.78901234567, 0.99999999999999989}};
  for (int i = 0; i < 4; ++i) {
    view.runs[4 + i].result.test_loss = scores[i].first;
    view.runs[4 + i].result.test_accuracy = scores[i].second;
  }
  std::swap(view.runs[4], view.runs[6]);  // rows still come out in index order
  view.runs.push_back(view.runs[4]);
  view.runs.back().index = 4;
  view.runs.back().state = RunState::kFailed;  // not a row

  const std::string csv = Render(view, ReportFormat::kCsv, "different_seeds");
  std::istringstream lines(csv);
  std::string line;
  size_t row = 0;
  while (std::getline(lines, line)) {
    ASSERT_LT(row, scores.size());
    const size_t comma = line.find(',');
    ASSERT_NE(comma, std::string::npos) << line;
    EXPECT_EQ(std::strtod(line.substr(0, comma).c_str(), nullptr), scores[row].first);
    EXPECT_EQ(std::strtod(line.substr(comma + 1).c_str(), nullptr), scores[row].second);
    ++row;
  }
  EXPECT_EQ(row, scores.size());
  // And the score-file reader reads it back the same.
  auto parsed = ParseScoreCsv(csv, "report.csv");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, scores);
}

TEST(ReportTest, JsonHasTheAnalysesBeyondTheStudy) {
  const Json j = Json::parse(Render(SampleExperiment(), ReportFormat::kJson));
  EXPECT_EQ(j.at("reference_arm"), "different_seeds");
  EXPECT_EQ(j.at("bootstrap").at("resamples"), 10000);
  EXPECT_EQ(j.at("bootstrap").at("seed"), 0);

  const Json& same = j.at("arms")[0];
  EXPECT_EQ(same.at("first_divergence_epoch"), 2);
  EXPECT_TRUE(same.at("first_divergence_batch").is_null());  // run 4: weights only
  EXPECT_EQ(same.at("diverged_by_epoch"), Json::parse("[0, 0, 1, 2, 3, 3]"));
  const Json& batches = same.at("differences")[0];
  EXPECT_EQ(batches.at("what"), "batches");
  EXPECT_EQ(batches.at("run"), 2);
  EXPECT_EQ(batches.at("epoch"), 3);
  EXPECT_EQ(batches.at("batch"), 7);
  for (const Json& d : same.at("differences")) EXPECT_TRUE(d.contains("batch"));
  EXPECT_EQ(same.at("instability").at("runs"), 5);
  EXPECT_EQ(same.at("instability").at("pairs"), 10);
  EXPECT_GT(same.at("instability").at("mean_disagreement").get<double>(), 0.0);
  const Json& different = j.at("arms")[1];
  EXPECT_TRUE(different.at("diverged_by_epoch").is_null());
  EXPECT_TRUE(different.at("first_divergence_batch").is_null());

  ASSERT_EQ(j.at("comparisons").size(), 2u);
  const Json& c = j.at("comparisons")[0];
  EXPECT_EQ(c.at("arm"), "same_seed");
  EXPECT_EQ(c.at("reference"), "different_seeds");
  EXPECT_EQ(c.at("stdev_ratio").at("loss"), j.at("stdev_ratio").at("loss"));
  const double ratio = c.at("stdev_ratio").at("accuracy").get<double>();
  EXPECT_DOUBLE_EQ(c.at("variance_share").at("accuracy").get<double>(), ratio * ratio);
  for (const char* column : {"loss", "accuracy"}) {
    const Json& ci = c.at("ci95").at(column);
    ASSERT_TRUE(ci.is_array()) << column;
    ASSERT_EQ(ci.size(), 2u);
    EXPECT_LE(ci[0].get<double>(), ci[1].get<double>());
    const Json& test = c.at("brown_forsythe").at(column);
    EXPECT_GT(test.at("F").get<double>(), 0.0);
    EXPECT_GT(test.at("p").get<double>(), 0.0);
    EXPECT_LT(test.at("p").get<double>(), 1.0);
  }

  ASSERT_EQ(j.at("cross_arm").size(), 3u);
  const Json& threads = j.at("cross_arm")[1];
  EXPECT_EQ(threads.at("arm"), "same_seed");
  EXPECT_EQ(threads.at("other"), "threads_2");
  EXPECT_EQ(threads.at("runs_with_same_seeds"), 5);
  EXPECT_EQ(threads.at("initial_identical"), 5);
  EXPECT_EQ(threads.at("final_identical"), 0);
  EXPECT_EQ(threads.at("first_difference").at("run"), 0);
  EXPECT_EQ(threads.at("first_difference").at("tensor"), "conv1.weight");
  EXPECT_EQ(threads.at("first_difference").at("epoch"), 0);
  EXPECT_TRUE(j.at("cross_arm")[0].at("first_difference").is_null());

  // same_seed on host-a with 1 thread (E1), different_seeds on host-b (E2), threads_2 on
  // host-a with 2 threads (E3).
  const Json& matrix = j.at("cross_environment");
  ASSERT_EQ(matrix.at("environments").size(), 3u);
  EXPECT_EQ(matrix.at("environments")[2].at("label"), "E3: host-a, 2 threads");
  EXPECT_FALSE(matrix.at("environments")[0].at("fields").contains("model_type"));
  ASSERT_EQ(matrix.at("cells").size(), 5u);  // no pair within different_seeds
  const Json& threads_cell = matrix.at("cells")[2];
  EXPECT_EQ(threads_cell.at("a"), 1);
  EXPECT_EQ(threads_cell.at("b"), 3);
  EXPECT_EQ(threads_cell.at("pairs"), 25);
  EXPECT_EQ(threads_cell.at("diverged_epoch"), 0);
  EXPECT_GT(threads_cell.at("spread_ratio").get<double>(), 1.0);
  EXPECT_EQ(threads_cell.at("differing_fields"), Json::parse(R"(["threads"])"));
  const Json& within_threads = matrix.at("cells")[4];
  EXPECT_EQ(within_threads.at("a"), 3);
  EXPECT_EQ(within_threads.at("b"), 3);
  EXPECT_EQ(within_threads.at("identical"), true);
}

TEST(ReportTest, JsonNullsWhereComparisonsAreUndefined) {
  ExperimentView view = Fashion();
  for (int i = 4; i < 8; ++i) view.runs[i].result.test_loss = 0.5;  // no spread
  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  const Json& c = j.at("comparisons")[0];
  EXPECT_TRUE(c.at("stdev_ratio").at("loss").is_null());
  EXPECT_TRUE(c.at("variance_share").at("loss").is_null());
  EXPECT_TRUE(c.at("ci95").at("loss").is_null());
  EXPECT_TRUE(c.at("brown_forsythe").at("loss").at("F").is_null());
  EXPECT_TRUE(c.at("brown_forsythe").at("loss").at("p").is_null());
  EXPECT_TRUE(c.at("ci95").at("accuracy").is_array());
  // No predictions recorded.
  EXPECT_TRUE(j.at("arms")[0].at("instability").at("mean_disagreement").is_null());
  EXPECT_EQ(j.at("arms")[0].at("instability").at("pairs"), 0);
}

TEST(ReportTest, TextShowsTheAnalysesBeyondTheStudy) {
  const std::string text = Render(SampleExperiment(), ReportFormat::kText);
  for (const char* line : {
           "- Different batches (compared with run #0) in this run: #2 (first at epoch 3, "
           "batch 7)\n",
           "in this run: #2 (tensor = conv1.weight, index = 0, weights first differ after "
           "epoch 3, by batch 7 of it at the latest, where its batch order first "
           "differs)\n",
           "First divergence: epoch 2 (the first epoch after which some run's weights "
           "differ from run #0's); weights are hashed once per epoch, so the batch cannot "
           "be placed\n",
           "Runs diverged from run #0 by epoch: epochs 0-1: 0; epoch 2: 1; epoch 3: 2; "
           "epochs 4-5: 3 (of 4 compared)\n",
           "Instability (mean pairwise disagreement of test predictions): 0 over 10 pairs "
           "of 5 runs\n",
           "\nSpread compared with the reference arm different_seeds [test loss, test "
           "accuracy]\n",
           "95% CI: percentile bootstrap, 10000 resamples, seed 0;",
           "threads_2:\n  stdev ratio            [0 0]\n  variance share         [0 0]\n"
           "  ratio 95% CI, loss     [0 0]\n  ratio 95% CI, accuracy [0 0]\n",
           "  Brown-Forsythe p       [",
           "\nAcross arms (run #i of each, where both are done with the same init, shuffle "
           "and augment seeds):\n",
           "same_seed vs threads_2: 5 runs with the same seeds, initial models identical in "
           "5 of 5, final models identical in 0 of 5 (run #0, first differing tensor "
           "conv1.weight, index 0, weights first differ after epoch 0)\n",
           "same_seed vs different_seeds: 1 run with the same seeds, initial models "
           "identical in 1 of 1, final models identical in 1 of 1\n",
       }) {
    EXPECT_THAT(text, HasSubstr(line));
  }
  EXPECT_THAT(text, HasSubstr("\n  E1: host-a, 1 thread (5 runs)\n  E2: host-b, 1 thread (5 "
                              "runs)\n  E3: host-a, 2 threads (5 runs)\n"));
  EXPECT_THAT(text, HasSubstr("\n  E3                                       =, 10 pairs\n"
                              "Fields that differ:\n  E1 vs E2: host\n  E1 vs E3: threads\n"
                              "  E2 vs E3: host, threads\n"));
  // With an arm, nothing across arms.
  const std::string one = Render(SampleExperiment(), ReportFormat::kText, "threads_2");
  EXPECT_THAT(one, Not(HasSubstr("Across arms")));
  EXPECT_THAT(one, Not(HasSubstr("Across environments")));
  EXPECT_THAT(one, Not(HasSubstr("Spread compared")));
}

TEST(ReportTest, TextWithoutAReferenceArmSaysHowToChooseOne) {
  ExperimentView view = SampleExperiment();
  view.arms = {"same_seed", "threads_2"};
  const std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("No reference arm: the experiment has no different_seeds "
                              "arm (choose one with --reference-arm NAME)"));
  AnalysisOptions options;
  options.reference_arm = "same_seed";
  auto chosen = RenderReport(Analyze(view, options), ReportFormat::kText, "");
  ASSERT_TRUE(chosen.ok());
  EXPECT_THAT(*chosen, HasSubstr("Spread compared with the reference arm same_seed"));
}


// ---- adaptive run count ----

// One look that asks for more: same_seed against different_seeds at 4 runs each.
AdaptiveState OneLookMore() {
  AdaptiveState a = AdaptiveRule(4, 200, 10, 0.1, "accuracy", "different_seeds");
  AdaptiveLook look;
  look.arms = {{"same_seed", 4, 4, 0.91, 0.7, 1.18, false, 180}};
  look.decision = "more";
  look.added = {{"same_seed", 10}, {"different_seeds", 10}};
  a.looks = {look};
  return a;
}

TEST(ReportTest, AnAdaptiveExperimentIsIncompleteUntilItsRuleStops) {
  ExperimentView view = Fashion();  // every run done
  view.adaptive = OneLookMore();
  Report report = Analyze(view);
  EXPECT_EQ(report.runs_remaining, 0);
  EXPECT_FALSE(report.complete);
  EXPECT_EQ(IncompleteReason(report), "its adaptive run count may add more runs (1 look so far)");
  std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("Experiment fashion-quick: incomplete, 8 of 8 runs done (0 "
                              "remaining; the adaptive run count may add more)\n"));
  EXPECT_THAT(text, HasSubstr("  look 1 then: +10 runs to same_seed, different_seeds\n"
                              "  Outcome: in progress: 1 look so far, the next once this "
                              "round's runs are done\n"));
  view.adaptive->looks[0].added["same_seed"] = 6;  // capped at max: rounds may differ
  EXPECT_THAT(Render(view, ReportFormat::kText),
              HasSubstr("  look 1 then: +6 to same_seed, +10 to different_seeds\n"));
  Json j = Json::parse(Render(view, ReportFormat::kJson));
  EXPECT_EQ(j.at("adaptive").at("looks")[0].at("added").at("same_seed"), 6);
  EXPECT_EQ(j.at("complete"), false);
  EXPECT_TRUE(j.at("adaptive").at("stopped").is_null());

  view.adaptive->looks.clear();  // before the first look
  view.runs[7].state = RunState::kPending;
  report = Analyze(view);
  EXPECT_EQ(IncompleteReason(report),
            "1 run(s) remain, and its adaptive run count may add more runs (0 looks so far)");
  EXPECT_THAT(RenderText(report, ""),
              HasSubstr("  Outcome: in progress: the first look once the 4 runs per arm are "
                        "done\n"));
  EXPECT_TRUE(Json::parse(Render(view, ReportFormat::kJson)).at("adaptive").at("looks").empty());

  view.runs[7].state = RunState::kDone;
  view.adaptive = OneLookMore();
  view.adaptive->looks.push_back(view.adaptive->looks.front());
  view.adaptive->looks.back().decision = "reached";
  view.adaptive->looks.back().added.clear();
  EXPECT_TRUE(Analyze(view).complete);
  j = Json::parse(Render(view, ReportFormat::kJson));
  EXPECT_EQ(j.at("complete"), true);
  EXPECT_EQ(j.at("adaptive").at("stopped"), "reached");

  view.adaptive.reset();  // a fixed run count
  EXPECT_TRUE(Analyze(view).complete);
  EXPECT_TRUE(Json::parse(Render(view, ReportFormat::kJson)).at("adaptive").is_null());
  EXPECT_THAT(Render(view, ReportFormat::kText), Not(HasSubstr("Adaptive")));
}

TEST(ReportTest, TextShowsTheAdaptiveRunCountLookByLook) {
  const std::string text = Render(SampleExperiment(), ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("Experiment sample: complete, 15 of 15 runs done\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "\nAdaptive run count:\n"
          "  runs: 3 per arm, then 2 more per round to at most 9, until the stdev ratio of "
          "test accuracy against different_seeds has an interval at most 0.1 wide\n"
          "  each look's interval: delta method for log(stdev ratio) at level 98.75 % (0.05 "
          "Bonferroni-split over 4 possible looks), conservative under stopping on the "
          "data\n"
          "  look 1, same_seed: 3 runs vs 3 of different_seeds, ratio 0.11, interval [0.05 "
          "0.24], width 0.19, not settled, runs needed 6\n"
          "  look 1, threads_2: 3 runs vs 3 of different_seeds, ratio 0, interval [0 0], "
          "width 0, settled, runs needed 3\n"
          "  look 1 then: +2 runs to same_seed, different_seeds\n"
          "  look 2, same_seed: 5 runs vs 5 of different_seeds, ratio 0.0886, interval "
          "[0.05 0.14], width 0.09, settled, runs needed 5\n"
          "  look 2, threads_2: 3 runs vs 5 of different_seeds, ratio 0, interval [0 0], "
          "width 0, settled, runs needed 3\n"
          "  look 2 then: stopped: every arm settled\n"
          "  Outcome: stopped at look 2: the target was reached, every arm's interval at "
          "most 0.1 wide (runs: same_seed 5, threads_2 3, different_seeds 5)\n"));
  // Across arms: not with an arm.
  EXPECT_THAT(Render(SampleExperiment(), ReportFormat::kText, "threads_2"),
              Not(HasSubstr("Adaptive run count")));
}

TEST(ReportTest, TextSaysWhenTheAdaptiveRuleStoppedAtMaxAndWhatIsUndefined) {
  ExperimentView view = SampleExperiment();
  AdaptiveLook& last = view.adaptive->looks.back();
  last.decision = "max";
  last.arms[0].settled = false;
  last.arms[0].high = 0.3;
  last.arms[1].ratio = last.arms[1].low = last.arms[1].high = std::nullopt;
  last.arms[1].settled = false;
  last.arms[1].runs_needed = std::nullopt;
  const std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("  look 2, threads_2: 3 runs vs 5 of different_seeds, ratio "
                              "undefined (fewer than 2 scores a side, or a reference without "
                              "spread), not settled, runs needed undefined\n"
                              "  look 2 then: stopped: max runs reached\n"
                              "  Outcome: stopped at look 2: max runs (9) reached, with the "
                              "interval still wider than 0.1 for same_seed (width 0.25), "
                              "threads_2 (width undefined)\n"));
  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  EXPECT_EQ(j.at("adaptive").at("stopped"), "max");
  const Json& undefined = j.at("adaptive").at("looks")[1].at("arms")[1];
  for (const char* key : {"ratio", "low", "high", "width", "runs_needed"}) {
    EXPECT_TRUE(undefined.at(key).is_null()) << key;
  }
  EXPECT_EQ(undefined.at("settled"), false);
  EXPECT_EQ(undefined.at("runs"), 3);
  EXPECT_EQ(undefined.at("reference_runs"), 5);
}

TEST(ReportTest, JsonHasTheAdaptiveRuleAndEveryLook) {
  const Json a = Json::parse(Render(SampleExperiment(), ReportFormat::kJson)).at("adaptive");
  EXPECT_EQ(a.at("min"), 3);
  EXPECT_EQ(a.at("max"), 9);
  EXPECT_EQ(a.at("step"), 2);
  EXPECT_EQ(a.at("ratio_ci_width").get<double>(), 0.1);
  EXPECT_EQ(a.at("metric"), "accuracy");
  EXPECT_EQ(a.at("reference"), "different_seeds");
  EXPECT_EQ(a.at("looks_planned"), 4);
  EXPECT_EQ(a.at("level").get<double>(), 0.9875);
  EXPECT_EQ(a.at("stopped"), "reached");
  ASSERT_EQ(a.at("looks").size(), 2u);
  const Json& first = a.at("looks")[0];
  EXPECT_EQ(first.at("decision"), "more");
  EXPECT_EQ(first.at("added"), Json::parse(R"({"same_seed": 2, "different_seeds": 2})"));
  const Json& arm = first.at("arms")[0];
  EXPECT_EQ(arm.at("arm"), "same_seed");
  EXPECT_EQ(arm.at("runs"), 3);
  EXPECT_EQ(arm.at("reference_runs"), 3);
  EXPECT_EQ(arm.at("ratio").get<double>(), 0.11);
  EXPECT_EQ(arm.at("low").get<double>(), 0.05);
  EXPECT_EQ(arm.at("high").get<double>(), 0.24);
  EXPECT_DOUBLE_EQ(arm.at("width").get<double>(), 0.19);
  EXPECT_EQ(arm.at("settled"), false);
  EXPECT_EQ(arm.at("runs_needed"), 6);
  const Json& no_spread = first.at("arms")[1];
  EXPECT_EQ(no_spread.at("ratio").get<double>(), 0.0);
  EXPECT_EQ(no_spread.at("width").get<double>(), 0.0);
  EXPECT_EQ(no_spread.at("runs_needed"), 3);  // as many as it has: nothing to narrow
  const Json& second = a.at("looks")[1];
  EXPECT_EQ(second.at("decision"), "reached");
  EXPECT_TRUE(second.at("added").empty());
  EXPECT_EQ(second.at("arms")[1].at("reference_runs"), 5);
}

}  // namespace
}  // namespace repro
