#include "analysis/cross_environment.h"

#include <cmath>
#include <map>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analysis/analysis.h"
#include "analysis/report.h"
#include "analysis/report_text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace repro {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Json = nlohmann::json;

constexpr int kEpochs = 3;

std::map<std::string, std::string> Cpu(const std::string& host, int threads) {
  return {{"host", host},
          {"cpu_model", "Xeon"},
          {"torch", "2.1.0"},
          {"compiler", "gcc 12.2.0"},
          {"threads", absl::StrCat(threads)},
          {"deterministic_algorithms", "true"},
          {"cudnn_benchmark", "false"},
          {"device", "cpu"}};
}

// A done run of `arm` trained from `seed` in `environment`: the same seed gives the same
// start and the same weights after every epoch; with `parted_at` >= 0 the weights from
// that epoch on (and the final model) are the arm's own.
RunView DoneRun(const std::string& arm, int index, uint64_t seed,
            const std::map<std::string, std::string>& environment, int parted_at = -1,
            double accuracy = 0.9) {
  RunView run;
  run.arm = arm;
  run.index = index;
  run.init_seed = run.shuffle_seed = run.augment_seed = seed;
  run.state = RunState::kDone;
  RunResult& r = run.result;
  r.environment = environment;
  r.data_x_hash = "x";
  r.data_y_hash = "y";
  r.initial_hash = absl::StrCat("init-", seed);
  const std::string parted = parted_at >= 0 ? absl::StrCat("-", arm) : "";
  for (int e = 0; e < kEpochs; ++e) {
    EpochRecord epoch;
    epoch.epoch = e;
    epoch.weights_hash =
        absl::StrCat("w-", seed, "-", e, parted_at >= 0 && e >= parted_at ? parted : "");
    r.epochs.push_back(epoch);
  }
  r.final_hash = absl::StrCat("final-", seed, parted);
  r.test_loss = 0.5;
  r.test_accuracy = accuracy;
  return run;
}

// Arms threads_1 and threads_2: runs i of both have seed i; threads_2's runs part from
// threads_1's at epoch 0 (summed in another order), and agree among themselves.
ExperimentView Threads(int runs = 3) {
  ExperimentView view;
  view.name = "threads";
  view.arms = {"threads_1", "threads_2"};
  view.runs_per_arm = runs;
  view.epochs = kEpochs;
  for (int i = 0; i < runs; ++i) view.runs.push_back(DoneRun("threads_1", i, i, Cpu("vm", 1)));
  for (int i = 0; i < runs; ++i) view.runs.push_back(DoneRun("threads_2", i, i, Cpu("vm", 2), 0));
  return view;
}

std::string Render(const ExperimentView& view, ReportFormat format) {
  absl::StatusOr<std::string> out = RenderReport(Analyze(view), format, "");
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

TEST(CrossEnvironmentTest, ThreadsPartAtEpochZero) {
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(Threads());
  ASSERT_TRUE(matrix.has_value());
  ASSERT_EQ(matrix->environments.size(), 2u);
  EXPECT_EQ(matrix->environments[0].id, 1);
  EXPECT_EQ(matrix->environments[0].label, "E1: 1 thread");
  EXPECT_EQ(matrix->environments[1].label, "E2: 2 threads");
  EXPECT_EQ(matrix->environments[1].runs, 3);
  EXPECT_EQ(matrix->environments[1].fields.at("threads"), "2");

  // Each seed once per environment: no pair within one, three across.
  ASSERT_EQ(matrix->cells.size(), 1u);
  const EnvironmentCell& cell = matrix->cells[0];
  EXPECT_EQ(cell.a, 1);
  EXPECT_EQ(cell.b, 2);
  EXPECT_EQ(cell.pairs, 3);
  EXPECT_FALSE(cell.identical);
  EXPECT_EQ(cell.diverged_epoch, 0);
  EXPECT_THAT(cell.differing_fields, ElementsAre("threads"));
  // Every run has the same accuracy: no spread of their own, no ratio.
  EXPECT_EQ(cell.spread_ratio, std::nullopt);
}

TEST(CrossEnvironmentTest, TheDiagonalPairsRunsWithinOneEnvironment) {
  ExperimentView view = Threads();
  // Two more runs of seed 0 on 1 thread; one parts from the others at epoch 1.
  view.runs.push_back(DoneRun("threads_1", 3, 0, Cpu("vm", 1)));
  view.runs.push_back(DoneRun("threads_1", 4, 0, Cpu("vm", 1), 1));
  view.runs_per_arm = 5;
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  const EnvironmentCell* within = FindEnvironmentCell(*matrix, 1, 1);
  ASSERT_NE(within, nullptr);
  EXPECT_EQ(within->pairs, 3);  // seed 0: runs 0, 3 and 4
  EXPECT_FALSE(within->identical);
  EXPECT_EQ(within->diverged_epoch, 1);
  EXPECT_THAT(within->differing_fields, IsEmpty());
  EXPECT_EQ(within->spread_ratio, std::nullopt);
  const EnvironmentCell* across = FindEnvironmentCell(*matrix, 1, 2);
  ASSERT_NE(across, nullptr);
  EXPECT_EQ(across->pairs, 5);  // seed 0: 3 x 1, seeds 1 and 2: 1 x 1 each
  EXPECT_EQ(across->diverged_epoch, 0);
  EXPECT_EQ(FindEnvironmentCell(*matrix, 2, 2), nullptr);  // one run per seed on 2 threads
}

TEST(CrossEnvironmentTest, IdenticalAcrossEnvironments) {
  ExperimentView view;
  view.name = "hosts";
  view.arms = {"spread"};
  view.runs_per_arm = 4;
  // One arm spread over two hosts, each seed on both.
  view.runs.push_back(DoneRun("spread", 0, 7, Cpu("host-a", 1)));
  view.runs.push_back(DoneRun("spread", 1, 7, Cpu("host-b", 1)));
  view.runs.push_back(DoneRun("spread", 2, 8, Cpu("host-a", 1)));
  view.runs.push_back(DoneRun("spread", 3, 8, Cpu("host-b", 1)));
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  EXPECT_EQ(matrix->environments[0].label, "E1: host-a");
  EXPECT_EQ(matrix->environments[1].label, "E2: host-b");
  ASSERT_EQ(matrix->cells.size(), 1u);
  EXPECT_EQ(matrix->cells[0].pairs, 2);
  EXPECT_TRUE(matrix->cells[0].identical);
  EXPECT_EQ(matrix->cells[0].diverged_epoch, std::nullopt);
  EXPECT_THAT(matrix->cells[0].differing_fields, ElementsAre("host"));
}

TEST(CrossEnvironmentTest, OnlyTheFinalModelsDiffer) {
  ExperimentView view = Threads(1);
  view.runs[1] = DoneRun("threads_2", 0, 0, Cpu("vm", 2));
  view.runs[1].result.final_hash = "other";
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  EXPECT_FALSE(matrix->cells[0].identical);
  EXPECT_EQ(matrix->cells[0].diverged_epoch, std::nullopt);
  EXPECT_EQ(EnvironmentCellText(&matrix->cells[0]), "final, 1 pair");
}

TEST(CrossEnvironmentTest, AnEpochOnlyOneRunRecordedCountsAsDiffering) {
  ExperimentView view = Threads(1);
  view.runs[1] = DoneRun("threads_2", 0, 0, Cpu("vm", 2));
  view.runs[1].result.epochs.pop_back();
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  EXPECT_EQ(matrix->cells[0].diverged_epoch, kEpochs - 1);
}

TEST(CrossEnvironmentTest, SpreadRatioPoolsBothEnvironments) {
  ExperimentView view;
  view.name = "spread";
  view.arms = {"a", "b"};
  view.runs_per_arm = 2;
  // Accuracies 0.1 and 0.3 on host-a, 0.2 and 0.4 on host-b: own stdevs 0.1 each; the
  // four pooled have stdev sqrt(0.0125).
  view.runs.push_back(DoneRun("a", 0, 0, Cpu("host-a", 1), 0, 0.1));
  view.runs.push_back(DoneRun("a", 1, 1, Cpu("host-a", 1), 0, 0.3));
  view.runs.push_back(DoneRun("b", 0, 0, Cpu("host-b", 1), 0, 0.2));
  view.runs.push_back(DoneRun("b", 1, 1, Cpu("host-b", 1), 0, 0.4));
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  ASSERT_EQ(matrix->cells.size(), 1u);
  ASSERT_TRUE(matrix->cells[0].spread_ratio.has_value());
  EXPECT_NEAR(*matrix->cells[0].spread_ratio, std::sqrt(0.0125) / 0.1, 1e-12);

  // A diverged run is paired but not scored: one scored run a side is too few.
  view.runs[1].result.diverged = "diverged: loss nan at epoch 2, batch 0";
  const std::optional<CrossEnvironment> fewer = CompareAcrossEnvironments(view);
  ASSERT_TRUE(fewer.has_value());
  EXPECT_EQ(fewer->cells[0].pairs, 2);
  EXPECT_EQ(fewer->cells[0].spread_ratio, std::nullopt);
}

TEST(CrossEnvironmentTest, RunsWithDifferentSeedsOrStartsAreNeverPaired) {
  ExperimentView view = Threads(2);
  for (RunView& run : view.runs) {
    if (run.arm == "threads_2") run.shuffle_seed += 100;  // init and augment still equal
  }
  EXPECT_EQ(CompareAcrossEnvironments(view), std::nullopt);

  view = Threads(2);
  view.runs[2].result.initial_hash = "another start";  // threads_2#0
  view.runs[3].result.data_y_hash = "other labels";    // threads_2#1
  EXPECT_EQ(CompareAcrossEnvironments(view), std::nullopt);

  view = Threads(2);
  view.runs[2].augment_seed = 99;  // threads_2#0 only: one pair is left
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  EXPECT_EQ(matrix->cells[0].pairs, 1);
}

TEST(CrossEnvironmentTest, CorruptFailedAndUnfinishedRunsAreNotPaired) {
  for (int what = 0; what < 3; ++what) {
    ExperimentView view = Threads(1);
    RunView& other = view.runs[1];  // threads_2#0, the only run on 2 threads
    if (what == 0) other.corrupt = "attempt 1: checksum mismatch";
    if (what == 1) other.state = RunState::kFailed;
    if (what == 2) other.state = RunState::kRunning;
    EXPECT_EQ(CompareAcrossEnvironments(view), std::nullopt) << what;
    // Nor placed in an environment: with a comparable run beside it, only that counts.
    view.runs.push_back(DoneRun("threads_2", 1, 0, Cpu("vm", 2), 0));
    const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
    ASSERT_TRUE(matrix.has_value()) << what;
    EXPECT_EQ(matrix->environments[1].runs, 1) << what;
    EXPECT_EQ(matrix->cells[0].pairs, 1) << what;
  }
}

TEST(CrossEnvironmentTest, OneEnvironmentHasNoMatrix) {
  ExperimentView view = Threads();
  for (RunView& run : view.runs) run.result.environment = Cpu("vm", 1);
  // The model's own keys are no part of where a run trained.
  view.runs[0].result.environment["model_file_hash"] = "abc";
  view.runs[3].result.environment["model_file_hash"] = "def";
  EXPECT_EQ(CompareAcrossEnvironments(view), std::nullopt);
  // Nor do runs that recorded no environment at all make one.
  for (RunView& run : view.runs) run.result.environment.clear();
  EXPECT_EQ(CompareAcrossEnvironments(view), std::nullopt);

  EXPECT_THAT(Render(view, ReportFormat::kText), Not(HasSubstr("Across environments")));
  EXPECT_THAT(Render(view, ReportFormat::kHtml), Not(HasSubstr("Across environments")));
  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  ASSERT_TRUE(j.contains("cross_environment"));
  EXPECT_TRUE(j.at("cross_environment").is_null());
}

TEST(CrossEnvironmentTest, EnvironmentsAreNumberedByArmThenIndex) {
  ExperimentView view = Threads(2);
  std::swap(view.runs[0], view.runs[3]);  // the view's order does not matter
  view.runs[1].result.environment = Cpu("vm", 4);  // threads_1#1
  const std::optional<CrossEnvironment> matrix = CompareAcrossEnvironments(view);
  ASSERT_TRUE(matrix.has_value());
  ASSERT_EQ(matrix->environments.size(), 3u);
  EXPECT_EQ(matrix->environments[0].label, "E1: 1 thread");   // threads_1#0
  EXPECT_EQ(matrix->environments[1].label, "E2: 4 threads");  // threads_1#1
  EXPECT_EQ(matrix->environments[2].label, "E3: 2 threads");  // threads_2
  // A field only one environment has differs too, and labels name it where present.
  view.runs[1].result.environment["gpu_name"] = "NVIDIA H200";
  view.runs[1].result.environment["device"] = "cuda";
  const std::optional<CrossEnvironment> cuda = CompareAcrossEnvironments(view);
  ASSERT_TRUE(cuda.has_value());
  EXPECT_EQ(cuda->environments[1].label, "E2: cuda, NVIDIA H200, 4 threads");
  const EnvironmentCell* cell = FindEnvironmentCell(*cuda, 2, 3);
  ASSERT_NE(cell, nullptr);
  EXPECT_THAT(cell->differing_fields, ElementsAre("device", "gpu_name", "threads"));
}

TEST(CrossEnvironmentTest, EveryRendererShowsTheMatrix) {
  ExperimentView view = Threads();
  // Spread of their own on each side, so the ratio is defined.
  for (int i = 0; i < 3; ++i) {
    view.runs[i].result.test_accuracy = 0.8 + 0.01 * i;
    view.runs[3 + i].result.test_accuracy = 0.805 + 0.01 * i;
  }
  // Seed 2 once more on 2 threads, on another host (escaped in HTML).
  view.runs.push_back(DoneRun("threads_2", 3, 2, Cpu("vm<2>&", 2), 0));
  view.runs_per_arm = 4;

  const std::string text = Render(view, ReportFormat::kText);
  EXPECT_THAT(text, HasSubstr("\nAcross environments (runs with the same seeds that started "
                              "identical, by where they trained):\n"
                              "  E1: vm, 1 thread (3 runs)\n"
                              "  E2: vm, 2 threads (3 runs)\n"
                              "  E3: vm<2>&, 2 threads (1 run)\n"));
  EXPECT_THAT(text, HasSubstr("\n  E1  -   epoch 0, 3 pairs, ratio 1.0458"));
  EXPECT_THAT(text, HasSubstr("  epoch 0, 1 pair\n  E2      -"));
  EXPECT_THAT(text, HasSubstr("  =, 1 pair\n  E3"));
  EXPECT_THAT(text, HasSubstr("Fields that differ:\n  E1 vs E2: threads\n"
                              "  E1 vs E3: host, threads\n  E2 vs E3: host\n"));

  const Json j = Json::parse(Render(view, ReportFormat::kJson));
  const Json& matrix = j.at("cross_environment");
  ASSERT_EQ(matrix.at("environments").size(), 3u);
  const Json& e2 = matrix.at("environments")[1];
  EXPECT_EQ(e2.at("id"), 2);
  EXPECT_EQ(e2.at("label"), "E2: vm, 2 threads");
  EXPECT_EQ(e2.at("runs"), 3);
  EXPECT_EQ(e2.at("fields").at("threads"), "2");
  EXPECT_EQ(e2.at("fields").at("device"), "cpu");
  ASSERT_EQ(matrix.at("cells").size(), 3u);  // (1,2), (1,3), (2,3); no pair within one
  const Json& cell = matrix.at("cells")[0];
  EXPECT_EQ(cell.at("a"), 1);
  EXPECT_EQ(cell.at("b"), 2);
  EXPECT_EQ(cell.at("pairs"), 3);
  EXPECT_EQ(cell.at("identical"), false);
  EXPECT_EQ(cell.at("diverged_epoch"), 0);
  // Own stdevs 0.01 * sqrt(2/3) each; the six pooled, 0.005 apart: 0.005 * sqrt(35/12).
  EXPECT_NEAR(cell.at("spread_ratio").get<double>(),
              0.005 * std::sqrt(35.0 / 12) / (0.01 * std::sqrt(2.0 / 3)), 1e-9);
  EXPECT_EQ(cell.at("differing_fields"), Json::parse(R"(["threads"])"));
  const Json& two_three = matrix.at("cells")[2];
  EXPECT_EQ(two_three.at("a"), 2);
  EXPECT_EQ(two_three.at("b"), 3);
  EXPECT_EQ(two_three.at("identical"), true);  // 2 threads agree, whatever the host
  EXPECT_TRUE(two_three.at("diverged_epoch").is_null());
  EXPECT_TRUE(two_three.at("spread_ratio").is_null());  // one run on vm<2>&
  EXPECT_EQ(two_three.at("differing_fields"), Json::parse(R"(["host"])"));

  const std::string html = Render(view, ReportFormat::kHtml);
  EXPECT_THAT(html, HasSubstr("<h2>Across environments</h2>"));
  EXPECT_THAT(html, HasSubstr("<td>E3</td><td>E3: vm&lt;2&gt;&amp;, 2 threads</td><td>1</td>"));
  EXPECT_THAT(html, HasSubstr("<table class=\"matrix\">\n<tr><th></th><th>E1</th><th>E2</th>"
                              "<th>E3</th></tr>\n<tr><th>E1</th><td>-</td><td>epoch 0, 3 pairs, "
                              "ratio 1.0458"));
  EXPECT_THAT(html, HasSubstr("<tr><th>E2</th><td></td><td>-</td><td>=, 1 pair</td></tr>"));
  EXPECT_THAT(html, HasSubstr("<tr><th>E3</th><td></td><td></td><td>-</td></tr>"));
  EXPECT_THAT(html, HasSubstr("<tr><td>E2 vs E3</td><td>1</td><td>True</td><td>-</td><td>-</td>"
                              "<td>host</td></tr>"));
  EXPECT_THAT(html, Not(HasSubstr("vm<2>")));

  // CSV has score rows only; with an arm, text and HTML leave the section out.
  for (const ReportFormat format : {ReportFormat::kText, ReportFormat::kHtml}) {
    absl::StatusOr<std::string> one = RenderReport(Analyze(view), format, "threads_1");
    ASSERT_TRUE(one.ok()) << one.status();
    EXPECT_THAT(*one, Not(HasSubstr("Across environments")));
  }
}

}  // namespace
}  // namespace repro
