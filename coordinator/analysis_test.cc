#include "coordinator/analysis.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace repro {
namespace {

// A done run whose fingerprints are all the same as every other run made by this
// function: tests then change what should differ.
RunView DoneRun(const std::string& arm, int index, double loss, double accuracy,
                int epochs = 3) {
  RunView run;
  run.arm = arm;
  run.index = index;
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
  for (const char* name : {"conv1.weight", "conv1.bias", "fc.weight"}) {
    r.initial_tensors.push_back({name, absl::StrCat("i-", name)});
    r.final_tensors.push_back({name, absl::StrCat("f-", name)});
  }
  for (int e = 0; e < epochs; ++e) {
    EpochRecord epoch;
    epoch.epoch = e;
    epoch.loss = 1.0 / (e + 1);
    epoch.batch_digest = absl::StrCat("batches-", e);
    epoch.weights_hash = absl::StrCat("weights-", e);
    r.epochs.push_back(epoch);
  }
  return run;
}

RunView OtherRun(const std::string& arm, int index, RunState state) {
  RunView run;
  run.arm = arm;
  run.index = index;
  run.state = state;
  return run;
}

// Makes `run`'s weights differ from `epoch` on, and its final model in tensor `tensor`.
void DivergeFrom(RunView* run, int epoch, int tensor) {
  for (EpochRecord& e : run->result.epochs) {
    if (e.epoch >= epoch) e.weights_hash += "-diverged";
  }
  run->result.final_hash = "final-diverged";
  run->result.final_tensors[tensor].hash += "-diverged";
}

ExperimentView TwoArms(int runs) {
  ExperimentView view;
  view.name = "fashion-quick";
  view.arms = {"same_seed", "different_seeds"};
  view.runs_per_arm = runs;
  view.epochs = 3;
  return view;
}

TEST(AnalysisTest, RunStateNames) {
  EXPECT_STREQ(RunStateName(RunState::kPending), "pending");
  EXPECT_STREQ(RunStateName(RunState::kRunning), "running");
  EXPECT_STREQ(RunStateName(RunState::kDone), "done");
  EXPECT_STREQ(RunStateName(RunState::kFailed), "failed");
  EXPECT_STREQ(DifferenceKindName(DifferenceKind::kFinalModel), "final_model");
}

TEST(AnalysisTest, IdenticalRunsAreAllSameWithZeroSpread) {
  ExperimentView view = TwoArms(4);
  for (int i = 0; i < 4; ++i) view.runs.push_back(DoneRun("same_seed", i, 0.1, 0.7));
  for (int i = 0; i < 4; ++i) {
    RunView run = DoneRun("different_seeds", i, 0.1 + 0.01 * i, 0.7 + 0.001 * i);
    run.result.initial_hash = absl::StrCat("init", i);
    run.result.initial_tensors[0].hash += absl::StrCat(i);
    view.runs.push_back(run);
  }
  const Report report = Analyze(view);
  EXPECT_TRUE(report.complete);
  EXPECT_EQ(report.runs_remaining, 0);
  EXPECT_EQ(report.runs_done, 8);
  ASSERT_EQ(report.arms.size(), 2u);
  const ArmReport& same = report.arms[0];
  EXPECT_EQ(same.name, "same_seed");
  EXPECT_EQ(same.runs_total, 4);
  EXPECT_EQ(same.runs_done, 4);
  EXPECT_TRUE(same.models_all_same);
  EXPECT_TRUE(same.data_all_same);
  EXPECT_TRUE(same.batches_all_same);
  EXPECT_TRUE(same.final_models_all_same);
  EXPECT_TRUE(same.differences.empty());
  EXPECT_FALSE(same.first_divergence_epoch.has_value());
  EXPECT_EQ(same.epochs_compared, 3);
  EXPECT_EQ(same.loss.mean, 0.1);
  EXPECT_EQ(same.loss.stdev, 0.0);
  EXPECT_EQ(same.loss.stdev_ddof1, 0.0);
  EXPECT_EQ(same.accuracy.stdev, 0.0);
  EXPECT_EQ(same.loss.min, 0.1);
  EXPECT_EQ(same.loss.max, 0.1);

  const ArmReport& different = report.arms[1];
  EXPECT_FALSE(different.models_all_same);
  EXPECT_GT(different.loss.stdev.value(), 0.0);
  ASSERT_TRUE(report.stdev_ratio_loss.has_value());
  ASSERT_TRUE(report.stdev_ratio_accuracy.has_value());
  EXPECT_EQ(*report.stdev_ratio_loss, 0.0);
  EXPECT_EQ(*report.stdev_ratio_accuracy, 0.0);
}

TEST(AnalysisTest, DifferentSeedsArmListsDifferences) {
  ExperimentView view = TwoArms(3);
  view.arms = {"different_seeds"};
  view.runs.push_back(DoneRun("different_seeds", 0, 0.5, 0.8));
  RunView run1 = DoneRun("different_seeds", 1, 0.6, 0.79);
  run1.result.initial_hash = "init1";
  run1.result.initial_tensors[0].hash = "other";
  run1.result.epochs[0].batch_digest = "other";
  run1.result.epochs[2].batch_digest = "other";
  DivergeFrom(&run1, 0, 0);
  view.runs.push_back(run1);
  RunView run2 = DoneRun("different_seeds", 2, 0.55, 0.81);
  run2.result.data_y_hash = "y-other";
  view.runs.push_back(run2);

  const Report report = Analyze(view);
  const ArmReport& arm = report.arms.at(0);
  EXPECT_FALSE(arm.models_all_same);
  EXPECT_FALSE(arm.data_all_same);
  EXPECT_FALSE(arm.batches_all_same);
  EXPECT_FALSE(arm.final_models_all_same);
  EXPECT_EQ(arm.reference_run, 0);
  ASSERT_EQ(arm.differences.size(), 4u);

  const Difference& model = arm.differences[0];
  EXPECT_EQ(model.run, 1);
  EXPECT_EQ(model.what, DifferenceKind::kModel);
  EXPECT_EQ(model.tensor, "conv1.weight");
  EXPECT_EQ(model.index, 0);
  EXPECT_FALSE(model.epoch.has_value());

  const Difference& batches = arm.differences[1];
  EXPECT_EQ(batches.run, 1);
  EXPECT_EQ(batches.what, DifferenceKind::kBatches);
  EXPECT_EQ(batches.tensor, "");
  EXPECT_EQ(batches.index, -1);
  EXPECT_EQ(batches.epoch, 0);

  const Difference& final_model = arm.differences[2];
  EXPECT_EQ(final_model.run, 1);
  EXPECT_EQ(final_model.what, DifferenceKind::kFinalModel);
  EXPECT_EQ(final_model.tensor, "conv1.weight");
  EXPECT_EQ(final_model.index, 0);
  EXPECT_EQ(final_model.epoch, 0);

  const Difference& data = arm.differences[3];
  EXPECT_EQ(data.run, 2);
  EXPECT_EQ(data.what, DifferenceKind::kData);
  EXPECT_EQ(data.tensor, "");
  EXPECT_EQ(data.index, -1);
  EXPECT_FALSE(data.epoch.has_value());

  // The runs do not start identical, so there is no divergence to place.
  EXPECT_FALSE(arm.first_divergence_epoch.has_value());
  // Only one of the two arms: no ratio.
  EXPECT_FALSE(report.stdev_ratio_loss.has_value());
}

TEST(AnalysisTest, SameSeedDivergenceIsPlacedAtTheFirstEpoch) {
  ExperimentView view = TwoArms(4);
  view.arms = {"same_seed"};
  view.epochs = 5;
  for (int i = 0; i < 4; ++i) view.runs.push_back(DoneRun("same_seed", i, 0.3, 0.9, 5));
  DivergeFrom(&view.runs[3], 3, 2);
  DivergeFrom(&view.runs[2], 2, 1);

  const ArmReport arm = Analyze(view).arms.at(0);
  EXPECT_TRUE(arm.models_all_same);
  EXPECT_TRUE(arm.data_all_same);
  EXPECT_TRUE(arm.batches_all_same);
  EXPECT_FALSE(arm.final_models_all_same);
  EXPECT_EQ(arm.first_divergence_epoch, 2);
  ASSERT_EQ(arm.differences.size(), 2u);
  EXPECT_EQ(arm.differences[0].run, 2);
  EXPECT_EQ(arm.differences[0].what, DifferenceKind::kFinalModel);
  EXPECT_EQ(arm.differences[0].tensor, "conv1.bias");
  EXPECT_EQ(arm.differences[0].index, 1);
  EXPECT_EQ(arm.differences[0].epoch, 2);
  EXPECT_EQ(arm.differences[1].run, 3);
  EXPECT_EQ(arm.differences[1].tensor, "fc.weight");
  EXPECT_EQ(arm.differences[1].epoch, 3);
}

TEST(AnalysisTest, MissingEpochCountsAsDifferent) {
  ExperimentView view = TwoArms(2);
  view.arms = {"same_seed"};
  view.runs.push_back(DoneRun("same_seed", 0, 0.3, 0.9, 3));
  view.runs.push_back(DoneRun("same_seed", 1, 0.3, 0.9, 2));
  const ArmReport arm = Analyze(view).arms.at(0);
  EXPECT_FALSE(arm.batches_all_same);
  EXPECT_EQ(arm.first_divergence_epoch, 2);
}

TEST(AnalysisTest, IncompleteExperimentCountsRemainingRuns) {
  ExperimentView view = TwoArms(4);
  view.runs.push_back(DoneRun("same_seed", 0, 0.2, 0.9));
  view.runs.push_back(DoneRun("same_seed", 1, 0.4, 0.8));
  view.runs.push_back(OtherRun("same_seed", 2, RunState::kRunning));
  RunView failed = OtherRun("same_seed", 3, RunState::kFailed);
  failed.error = "worker lost";
  view.runs.push_back(failed);
  view.runs.push_back(DoneRun("different_seeds", 0, 0.3, 0.85));
  view.runs.push_back(OtherRun("different_seeds", 1, RunState::kPending));
  // different_seeds runs 2 and 3 are not in the store yet.

  const Report report = Analyze(view);
  EXPECT_FALSE(report.complete);
  EXPECT_EQ(report.runs_total, 8);
  EXPECT_EQ(report.runs_done, 3);
  EXPECT_EQ(report.runs_failed, 1);
  EXPECT_EQ(report.runs_remaining, 4);
  const ArmReport& same = report.arms[0];
  EXPECT_EQ(same.runs_done, 2);
  EXPECT_EQ(same.runs_failed, 1);
  EXPECT_EQ(same.runs_running, 1);
  EXPECT_EQ(same.runs_remaining, 1);
  EXPECT_DOUBLE_EQ(same.loss.mean.value(), 0.3);
  EXPECT_DOUBLE_EQ(same.loss.stdev.value(), 0.1);
  const ArmReport& different = report.arms[1];
  EXPECT_EQ(different.runs_done, 1);
  EXPECT_EQ(different.runs_pending, 3);
  EXPECT_EQ(different.runs_remaining, 3);
  // One done run: a population stdev of 0, no sample stdev, and so no ratio.
  EXPECT_EQ(different.loss.stdev, 0.0);
  EXPECT_FALSE(different.loss.stdev_ddof1.has_value());
  EXPECT_FALSE(report.stdev_ratio_loss.has_value());
  EXPECT_FALSE(report.stdev_ratio_accuracy.has_value());
}

TEST(AnalysisTest, FailedRunsMakeAnExperimentCompleteButAreNotCompared) {
  ExperimentView view = TwoArms(3);
  view.arms = {"same_seed"};
  view.runs.push_back(OtherRun("same_seed", 0, RunState::kFailed));
  view.runs.push_back(DoneRun("same_seed", 1, 0.3, 0.9));
  RunView run2 = DoneRun("same_seed", 2, 0.3, 0.9);
  run2.result.initial_hash = "other";
  view.runs.push_back(run2);

  const Report report = Analyze(view);
  EXPECT_TRUE(report.complete);
  EXPECT_EQ(report.runs_remaining, 0);
  const ArmReport& arm = report.arms[0];
  EXPECT_EQ(arm.reference_run, 1);  // the lowest-index done run
  ASSERT_EQ(arm.differences.size(), 1u);
  EXPECT_EQ(arm.differences[0].run, 2);
  // Same tensors, different model hash: the tensor is not known.
  EXPECT_EQ(arm.differences[0].tensor, "");
  EXPECT_EQ(arm.differences[0].index, -1);
}

TEST(AnalysisTest, NoDoneRunsLeavesStatisticsUndefined) {
  ExperimentView view = TwoArms(2);
  const Report report = Analyze(view);
  EXPECT_FALSE(report.complete);
  EXPECT_EQ(report.runs_remaining, 4);
  for (const ArmReport& arm : report.arms) {
    EXPECT_EQ(arm.reference_run, -1);
    EXPECT_TRUE(arm.models_all_same);
    EXPECT_FALSE(arm.loss.mean.has_value());
    EXPECT_FALSE(arm.loss.stdev.has_value());
    EXPECT_FALSE(arm.accuracy.min.has_value());
  }
}

TEST(AnalysisTest, NoRatioWhenDifferentSeedsHasNoSpread) {
  ExperimentView view = TwoArms(2);
  for (const char* arm : {"same_seed", "different_seeds"}) {
    view.runs.push_back(DoneRun(arm, 0, 0.3, 0.9));
    view.runs.push_back(DoneRun(arm, 1, 0.3, 0.9));
  }
  view.runs[1].result.test_loss = 0.4;
  const Report report = Analyze(view);
  EXPECT_FALSE(report.stdev_ratio_loss.has_value());
  EXPECT_FALSE(report.stdev_ratio_accuracy.has_value());
}

}  // namespace
}  // namespace repro
