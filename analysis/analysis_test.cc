#include "analysis/analysis.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "analysis/inference.h"
#include "gmock/gmock.h"
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

TEST(AnalysisTest, AModelFilesOwnWeightsAreNotedAsMakingInitSeedsMoot) {
  ExperimentView view = TwoArms(2);
  view.arms = {"same_seed"};
  view.runs.push_back(DoneRun("same_seed", 0, 0.3, 0.9));
  view.runs.push_back(DoneRun("same_seed", 1, 0.3, 0.9));
  EXPECT_TRUE(Analyze(view).notes.empty());  // the built-in models: nothing to say
  view.runs[1].result.environment["model_init"] = "seeded";
  EXPECT_TRUE(Analyze(view).notes.empty());
  view.runs[0].result.environment["model_init"] = "file";
  const Report report = Analyze(view);
  ASSERT_EQ(report.notes.size(), 1u);
  EXPECT_THAT(report.notes[0], ::testing::HasSubstr("init seeds change nothing"));
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


// Gives every epoch of `run` `batches` per-batch digests that all runs share.
void AddBatchDigests(RunView* run, int batches) {
  for (EpochRecord& e : run->result.epochs) {
    e.batch_digests.clear();
    for (int b = 0; b < batches; ++b) {
      e.batch_digests.push_back(absl::StrCat("batch-", e.epoch, "-", b));
    }
  }
}

TEST(AnalysisTest, PerBatchDigestsPlaceTheBatch) {
  ExperimentView view = TwoArms(3);
  view.arms = {"same_seed"};
  for (int i = 0; i < 3; ++i) {
    view.runs.push_back(DoneRun("same_seed", i, 0.3, 0.9));
    AddBatchDigests(&view.runs.back(), 8);
  }
  // Run 1 is fed batch 3 of epoch 1 in another order, and its weights part there.
  EpochRecord& epoch1 = view.runs[1].result.epochs[1];
  epoch1.batch_digest = "reordered";
  epoch1.batch_digests[3] = "reordered";
  DivergeFrom(&view.runs[1], 1, 2);
  // Run 2's weights part in epoch 2 without any change of order (non-determinism).
  DivergeFrom(&view.runs[2], 2, 0);

  const ArmReport arm = Analyze(view).arms.at(0);
  ASSERT_EQ(arm.differences.size(), 3u);
  const Difference& batches = arm.differences[0];
  EXPECT_EQ(batches.what, DifferenceKind::kBatches);
  EXPECT_EQ(batches.epoch, 1);
  EXPECT_EQ(batches.batch, 3);
  const Difference& final1 = arm.differences[1];
  EXPECT_EQ(final1.what, DifferenceKind::kFinalModel);
  EXPECT_EQ(final1.tensor, "fc.weight");
  EXPECT_EQ(final1.epoch, 1);
  EXPECT_EQ(final1.batch, 3);  // parted by batch 3 at the latest
  const Difference& final2 = arm.differences[2];
  EXPECT_EQ(final2.run, 2);
  EXPECT_EQ(final2.epoch, 2);
  EXPECT_FALSE(final2.batch.has_value());  // hashed per epoch: cannot be placed
  EXPECT_EQ(arm.first_divergence_epoch, 1);
  EXPECT_EQ(arm.first_divergence_batch, 3);
  EXPECT_EQ(arm.diverged_by_epoch, (std::vector<int>{0, 1, 2}));

  // Without per-batch digests only the epochs are known.
  for (RunView& run : view.runs) {
    for (EpochRecord& e : run.result.epochs) e.batch_digests.clear();
  }
  const ArmReport coarse = Analyze(view).arms.at(0);
  EXPECT_EQ(coarse.differences[0].epoch, 1);
  EXPECT_FALSE(coarse.differences[0].batch.has_value());
  EXPECT_FALSE(coarse.differences[1].batch.has_value());
  EXPECT_EQ(coarse.first_divergence_epoch, 1);
  EXPECT_FALSE(coarse.first_divergence_batch.has_value());
}

TEST(AnalysisTest, BatchListsOfDifferentLengthDifferAtTheFirstMissingBatch) {
  ExperimentView view = TwoArms(2);
  view.arms = {"same_seed"};
  for (int i = 0; i < 2; ++i) {
    view.runs.push_back(DoneRun("same_seed", i, 0.3, 0.9));
    AddBatchDigests(&view.runs.back(), 4);
  }
  view.runs[1].result.epochs[0].batch_digests.pop_back();
  view.runs[1].result.epochs[0].batch_digest = "shorter";
  const ArmReport arm = Analyze(view).arms.at(0);
  ASSERT_EQ(arm.differences.size(), 1u);
  EXPECT_EQ(arm.differences[0].epoch, 0);
  EXPECT_EQ(arm.differences[0].batch, 3);
}

TEST(AnalysisTest, DivergedByEpochCountsRunsThatHaveParted) {
  ExperimentView view = TwoArms(4);
  view.epochs = 5;
  for (int i = 0; i < 4; ++i) view.runs.push_back(DoneRun("same_seed", i, 0.3, 0.9, 5));
  DivergeFrom(&view.runs[3], 3, 2);
  DivergeFrom(&view.runs[2], 2, 1);
  view.runs.push_back(DoneRun("different_seeds", 0, 0.3, 0.9, 5));
  RunView other = DoneRun("different_seeds", 1, 0.3, 0.9, 5);
  other.result.initial_hash = "init-other";
  view.runs.push_back(other);
  const Report report = Analyze(view);
  EXPECT_EQ(report.arms[0].diverged_by_epoch, (std::vector<int>{0, 0, 1, 2, 2}));
  // Runs that do not start identical have no divergence to count.
  EXPECT_FALSE(report.arms[1].diverged_by_epoch.has_value());

  // No run diverged: all zeros. One done run: undefined.
  ExperimentView same = TwoArms(2);
  same.arms = {"same_seed"};
  same.runs.push_back(DoneRun("same_seed", 0, 0.3, 0.9));
  EXPECT_FALSE(Analyze(same).arms[0].diverged_by_epoch.has_value());
  same.runs.push_back(DoneRun("same_seed", 1, 0.3, 0.9));
  EXPECT_EQ(Analyze(same).arms[0].diverged_by_epoch, (std::vector<int>{0, 0, 0}));
}

TEST(AnalysisTest, InstabilityIsTheMeanPairwiseDisagreement) {
  ExperimentView view = TwoArms(5);
  view.arms = {"same_seed"};
  for (int i = 0; i < 5; ++i) view.runs.push_back(DoneRun("same_seed", i, 0.3, 0.9));
  // By hand: pairs (0,1) differ on 1 of 4 examples, (0,2) on 2, (1,2) on 1: mean
  // (1/4 + 2/4 + 1/4) / 3 = 1/3.
  view.runs[0].result.predictions = {0, 1, 2, 3};
  view.runs[1].result.predictions = {0, 1, 2, 4};
  view.runs[2].result.predictions = {1, 1, 2, 4};
  view.runs[3].result.predictions = {};         // recorded none: left out
  view.runs[4].result.predictions = {1, 2, 3};  // another test set: left out
  const Instability instability = Analyze(view).arms.at(0).instability;
  EXPECT_EQ(instability.runs, 3);
  EXPECT_EQ(instability.pairs, 3);
  ASSERT_TRUE(instability.mean_disagreement.has_value());
  EXPECT_DOUBLE_EQ(*instability.mean_disagreement, 1.0 / 3.0);

  view.runs[1].result.predictions.clear();
  view.runs[2].result.predictions.clear();
  const Instability one = Analyze(view).arms.at(0).instability;
  EXPECT_EQ(one.runs, 1);
  EXPECT_EQ(one.pairs, 0);
  EXPECT_FALSE(one.mean_disagreement.has_value());
}

TEST(AnalysisTest, InstabilityMatchesVisitingEveryPair) {
  ExperimentView view = TwoArms(12);
  view.arms = {"same_seed"};
  Rng rng(5);
  for (int i = 0; i < 12; ++i) {
    view.runs.push_back(DoneRun("same_seed", i, 0.3, 0.9));
    for (int j = 0; j < 500; ++j) {
      // Mostly the true class j % 10, sometimes another of 256 possible values.
      const uint64_t r = rng.Below(100);
      view.runs.back().result.predictions.push_back(
          static_cast<uint8_t>(r < 85 ? j % 10 : rng.Below(256)));
    }
  }
  double sum = 0;
  int pairs = 0;
  for (int a = 0; a < 12; ++a) {
    for (int b = a + 1; b < 12; ++b) {
      int differ = 0;
      for (int j = 0; j < 500; ++j) {
        differ += view.runs[a].result.predictions[j] != view.runs[b].result.predictions[j];
      }
      sum += differ / 500.0;
      ++pairs;
    }
  }
  const Instability instability = Analyze(view).arms.at(0).instability;
  EXPECT_EQ(instability.pairs, pairs);
  EXPECT_NEAR(instability.mean_disagreement.value(), sum / pairs, 1e-12);
}

// same_seed: 5 runs, different_seeds: 6 runs, with these scores.
ExperimentView SpreadView() {
  const double arm_loss[] = {0.50, 0.52, 0.49, 0.55, 0.51};
  const double arm_accuracy[] = {0.80, 0.81, 0.805, 0.79, 0.80};
  const double ref_loss[] = {0.45, 0.60, 0.52, 0.40, 0.58, 0.49};
  const double ref_accuracy[] = {0.78, 0.83, 0.80, 0.76, 0.84, 0.81};
  ExperimentView view = TwoArms(6);
  for (int i = 0; i < 5; ++i) {
    view.runs.push_back(DoneRun("same_seed", i, arm_loss[i], arm_accuracy[i]));
  }
  for (int i = 0; i < 6; ++i) {
    view.runs.push_back(DoneRun("different_seeds", i, ref_loss[i], ref_accuracy[i]));
  }
  view.runs.push_back(OtherRun("same_seed", 5, RunState::kFailed));
  return view;
}

TEST(AnalysisTest, ComparesEachArmWithTheReferenceArm) {
  const Report report = Analyze(SpreadView());
  EXPECT_EQ(report.reference_arm, "different_seeds");
  EXPECT_EQ(report.bootstrap_resamples, 10000);
  ASSERT_EQ(report.comparisons.size(), 1u);
  const ArmComparison& c = report.comparisons[0];
  EXPECT_EQ(c.arm, "same_seed");
  EXPECT_EQ(c.reference, "different_seeds");
  // NumPy and SciPy 1.10.1 (Debian 12's python3-scipy):
  //   np.std(arm) / np.std(ref) and its square; stats.levene(arm, ref, center='median').
  EXPECT_NEAR(*c.scores.loss.stdev_ratio, 0.29550406843602467, 1e-12);
  EXPECT_NEAR(*c.scores.loss.variance_share, 0.08732265446224276, 1e-12);
  EXPECT_NEAR(*c.scores.accuracy.stdev_ratio, 0.2413198999619535, 1e-12);
  EXPECT_NEAR(*c.scores.accuracy.variance_share, 0.05823529411764724, 1e-12);
  EXPECT_NEAR(*c.scores.loss.brown_forsythe_f, 5.610389610389608, 1e-9);
  EXPECT_NEAR(*c.scores.loss.brown_forsythe_p, 0.0420034284662675, 1e-9);
  EXPECT_NEAR(*c.scores.accuracy.brown_forsythe_f, 5.963855421686735, 1e-9);
  EXPECT_NEAR(*c.scores.accuracy.brown_forsythe_p, 0.03723611145893555, 1e-9);
  // The interval holds the estimate and is not degenerate.
  for (const ColumnComparison* column : {&c.scores.loss, &c.scores.accuracy}) {
    ASSERT_TRUE(column->ci_low && column->ci_high);
    EXPECT_LT(*column->ci_low, *column->stdev_ratio);
    EXPECT_GT(*column->ci_high, *column->stdev_ratio);
  }
  // The legacy top-level ratio is the same number.
  EXPECT_EQ(report.stdev_ratio_loss, c.scores.loss.stdev_ratio);
}

TEST(AnalysisTest, BootstrapIsSeededPerArm) {
  const ExperimentView view = SpreadView();
  const Report a = Analyze(view);
  const Report b = Analyze(view);
  EXPECT_EQ(a.comparisons[0].scores.loss.ci_low, b.comparisons[0].scores.loss.ci_low);
  EXPECT_EQ(a.comparisons[0].scores.loss.ci_high, b.comparisons[0].scores.loss.ci_high);
  AnalysisOptions options;
  options.seed = 1;
  const Report other = Analyze(view, options);
  EXPECT_EQ(other.seed, 1u);
  EXPECT_NE(a.comparisons[0].scores.loss.ci_low, other.comparisons[0].scores.loss.ci_low);
  // Another arm in the experiment does not change this arm's draws.
  ExperimentView more = view;
  more.arms.push_back("threads_2");
  for (int i = 0; i < 3; ++i) more.runs.push_back(DoneRun("threads_2", i, 0.1 * i, 0.8));
  const Report with_more = Analyze(more);
  ASSERT_EQ(with_more.comparisons.size(), 2u);
  EXPECT_EQ(with_more.comparisons[0].scores.loss.ci_low,
            a.comparisons[0].scores.loss.ci_low);
  EXPECT_EQ(with_more.comparisons[1].arm, "threads_2");
  // No resamples: no intervals, the rest as before.
  options.bootstrap_resamples = 0;
  const Report none = Analyze(view, options);
  EXPECT_FALSE(none.comparisons[0].scores.loss.ci_low.has_value());
  EXPECT_EQ(none.comparisons[0].scores.loss.stdev_ratio,
            a.comparisons[0].scores.loss.stdev_ratio);
}

TEST(AnalysisTest, ReferenceArmCanBeChosen) {
  const ExperimentView view = SpreadView();
  AnalysisOptions options;
  options.reference_arm = "same_seed";
  EXPECT_TRUE(CheckAnalysisOptions(view, options).ok());
  const Report report = Analyze(view, options);
  EXPECT_EQ(report.reference_arm, "same_seed");
  ASSERT_EQ(report.comparisons.size(), 1u);
  EXPECT_EQ(report.comparisons[0].arm, "different_seeds");
  EXPECT_NEAR(*report.comparisons[0].scores.loss.stdev_ratio, 1 / 0.29550406843602467,
              1e-12);
  // Brown-Forsythe is symmetric.
  EXPECT_NEAR(*report.comparisons[0].scores.loss.brown_forsythe_p, 0.0420034284662675,
              1e-9);

  options.reference_arm = "warm_start";
  const absl::Status bad = CheckAnalysisOptions(view, options);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("'warm_start'"));
  EXPECT_THAT(std::string(bad.message()),
              ::testing::HasSubstr("same_seed, different_seeds"));
  EXPECT_TRUE(Analyze(view, options).comparisons.empty());
  options.reference_arm = "";
  options.bootstrap_resamples = -1;
  EXPECT_EQ(CheckAnalysisOptions(view, options).code(),
            absl::StatusCode::kInvalidArgument);

  // Without a different_seeds arm and no choice, there is nothing to compare with.
  ExperimentView threads = view;
  threads.arms = {"same_seed"};
  const Report alone = Analyze(threads);
  EXPECT_EQ(alone.reference_arm, "");
  EXPECT_TRUE(alone.comparisons.empty());
}

TEST(AnalysisTest, ComparisonUndefinedWithoutSpreadOrRuns) {
  ExperimentView view = TwoArms(3);
  view.arms = {"same_seed", "different_seeds", "lonely"};
  for (int i = 0; i < 3; ++i) {
    view.runs.push_back(DoneRun("same_seed", i, 0.3 + 0.01 * i, 0.9));
    view.runs.push_back(DoneRun("different_seeds", i, 0.5, 0.8));  // no spread
  }
  view.runs.push_back(DoneRun("lonely", 0, 0.3, 0.9));
  const Report report = Analyze(view);
  ASSERT_EQ(report.comparisons.size(), 2u);
  const ColumnComparison& loss = report.comparisons[0].scores.loss;
  EXPECT_FALSE(loss.stdev_ratio.has_value());
  EXPECT_FALSE(loss.variance_share.has_value());
  EXPECT_FALSE(loss.ci_low.has_value());
  EXPECT_FALSE(loss.ci_high.has_value());
  // One run is no spread to compare.
  const ColumnComparison& lonely = report.comparisons[1].scores.loss;
  EXPECT_FALSE(lonely.stdev_ratio.has_value());
  EXPECT_FALSE(lonely.brown_forsythe_p.has_value());
}

TEST(AnalysisTest, CrossArmPairsRunsWithTheSameSeeds) {
  ExperimentView view;
  view.name = "threads";
  view.arms = {"threads_1", "threads_2", "different_seeds"};
  view.runs_per_arm = 4;
  view.epochs = 3;
  for (const char* arm : {"threads_1", "threads_2"}) {
    for (int i = 0; i < 4; ++i) {
      RunView run = DoneRun(arm, i, 0.3, 0.9);
      run.init_seed = run.shuffle_seed = run.augment_seed = 7;
      view.runs.push_back(run);
    }
  }
  // At 2 threads runs 1 and 3 end elsewhere; run 2 has not finished.
  DivergeFrom(&view.runs[5], 1, 2);
  DivergeFrom(&view.runs[7], 0, 0);
  view.runs[6].state = RunState::kRunning;
  for (int i = 0; i < 4; ++i) {
    RunView run = DoneRun("different_seeds", i, 0.3, 0.9);
    run.init_seed = run.shuffle_seed = run.augment_seed = 7 + i;
    view.runs.push_back(run);
  }
  const Report report = Analyze(view);
  ASSERT_EQ(report.cross_arm.size(), 3u);
  const CrossArmIdentity& threads = report.cross_arm[0];
  EXPECT_EQ(threads.arm, "threads_1");
  EXPECT_EQ(threads.other, "threads_2");
  EXPECT_EQ(threads.runs_with_same_seeds, 3);
  EXPECT_EQ(threads.initial_identical, 3);
  EXPECT_EQ(threads.final_identical, 1);
  ASSERT_TRUE(threads.first_difference.has_value());
  EXPECT_EQ(threads.first_difference->run, 1);
  EXPECT_EQ(threads.first_difference->tensor, "fc.weight");
  EXPECT_EQ(threads.first_difference->index, 2);
  EXPECT_EQ(threads.first_difference->epoch, 1);
  // Only run 0 of different_seeds shares threads_1's seeds.
  const CrossArmIdentity& seeds = report.cross_arm[1];
  EXPECT_EQ(seeds.arm, "threads_1");
  EXPECT_EQ(seeds.other, "different_seeds");
  EXPECT_EQ(seeds.runs_with_same_seeds, 1);
  EXPECT_EQ(seeds.final_identical, 1);
  EXPECT_FALSE(seeds.first_difference.has_value());
  EXPECT_EQ(report.cross_arm[2].arm, "threads_2");
}

}  // namespace
}  // namespace repro
