// The analyses of an experiment: per arm, are the initial models, the training data,
// the per-epoch batch orders and the final models identical across runs, where did
// runs that started identical first diverge (epoch, batch where it can be placed, and
// how many runs had diverged by each epoch), how large is the spread of the test
// scores, and how often do two runs' final models disagree on a test example
// (instability). Across arms: each arm's spread against a reference arm (stdev ratio,
// variance share, bootstrap confidence interval, Brown-Forsythe test), and whether runs
// of two arms trained from the same seeds ended identical (which shows non-determinism
// of the tooling: thread count, device, deterministic algorithms); across environments,
// the same for runs that started identical but trained in different places, as a matrix
// of environments (analysis/cross_environment.h). Besides: how many runs per arm the
// stdev ratio's interval needs (ColumnPlan, analysis/planning.h), each arm's test
// accuracy spread against the binomial noise floor of its test set (NoiseFloor), its
// seconds per epoch and, for arms that differ only in determinism switches, what
// determinism costs (EpochTime, DeterminismCost, analysis/timing.h). Analyze() turns an ExperimentView
// (what the store holds) into a Report that the renderers (analysis/report.h) print as
// text, JSON, CSV or HTML.
//
// Only done runs (RunState::kDone) are compared and counted in the statistics; failed,
// running and pending runs are only counted. Within an arm every done run is compared
// with the arm's reference run: the done run with the lowest index (normally #0). Two
// kinds of done run are set apart: a corrupt one (its stored result fails its checksum,
// RunView::corrupt) is counted and listed but neither compared nor scored; a diverged
// one (RunResult::diverged) is compared, but has no test scores, so the statistics of
// the scores are over the others and say how many they left out.
//
// Thread safety: Analyze is a pure function; Report is a plain value.
#ifndef REPRO_ANALYSIS_ANALYSIS_H_
#define REPRO_ANALYSIS_ANALYSIS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "analysis/cross_environment.h"
#include "analysis/per_class.h"
#include "common/experiment_view.h"

namespace repro {

// A done run whose stored result checks (RunView::corrupt empty): compared with the others.
inline bool Intact(const RunView& run) {
  return run.state == RunState::kDone && run.corrupt.empty();
}
// An intact run that trained to its last epoch: its test scores are scores.
inline bool Scored(const RunView& run) { return Intact(run) && run.result.diverged.empty(); }

// The width of the stdev ratio's 95% interval that the run counts aim at by default
// (reproctl's --ci-width; analysis/planning.h).
inline constexpr double kDefaultCiWidth = 0.1;

// What of a run differs from the reference run.
enum class DifferenceKind {
  kModel,       // initial weights (initial_hash)
  kData,        // training inputs or labels (data_x_hash, data_y_hash)
  kBatches,     // per-epoch batch order (batch_digest)
  kFinalModel,  // final weights (final_hash)
};
// "model", "data", "batches", "final_model": the JSON report's "what".
const char* DifferenceKindName(DifferenceKind kind);

// One (run, what) that differs from the reference.
struct Difference {
  int run = 0;  // the differing run's index within its arm
  DifferenceKind what = DifferenceKind::kModel;
  // kModel / kFinalModel: the first tensor, by position in initial_tensors or
  // final_tensors, whose name or hash differs (the run's name; the reference's where
  // the run has fewer tensors). "" and -1 when the tensor lists do not tell.
  std::string tensor;
  int index = -1;
  // kBatches: the first epoch whose batch_digest differs. kFinalModel: the first epoch
  // whose weights_hash differs (nullopt when every recorded epoch agrees). An epoch
  // recorded by one run and not the other counts as differing. Epochs are 0-based.
  std::optional<int> epoch;
  // Only when both runs kept per-batch digests (EpochRecord::batch_digests) for
  // `epoch`; 0-based within the epoch. kBatches: the first batch whose digest differs.
  // kFinalModel: the first batch of `epoch` fed in a different order, when the order
  // differs there. Weights are hashed only after each epoch, so this is the most that
  // can be placed: the weights had parted by the end of this batch at the latest
  // (non-determinism may have parted them earlier). nullopt otherwise.
  std::optional<int> batch;
};

// Summary statistics of one score column over an arm's done runs. nullopt where
// undefined: every field with no done run, stdev_ddof1 with fewer than two.
struct ColumnStats {
  std::optional<double> mean;
  std::optional<double> stdev;        // ddof 0 (population), as the original study
  std::optional<double> stdev_ddof1;  // ddof 1 (sample)
  std::optional<double> min;
  std::optional<double> max;
};

// Instability as Summers and Dinneen (ICML 2021): over every pair of done runs that
// recorded test-set predictions, the fraction of test examples on which the two final
// models predict different classes, averaged over the pairs.
struct Instability {
  // Done runs with predictions. Runs whose prediction count differs from the first
  // such run's (a different test set) are left out.
  int runs = 0;
  int64_t pairs = 0;  // runs * (runs - 1) / 2
  std::optional<double> mean_disagreement;  // nullopt with fewer than 2 runs
};

// The spread of test accuracy that finite-sample noise alone gives (Jordan, "On the
// Variance of Neural Network Training with respect to Test Sets and Distributions",
// ICLR 2024): a model of accuracy p scored on n test examples that it gets right
// independently with probability p has a binomial accuracy stdev sqrt(p (1 - p) / n).
// Computed with p = the arm's mean test accuracy over its scored runs, and n = the
// test examples each run predicted (RunResult::predictions; the view knows the test
// set's size from nothing else). If each example instead has its own probability p_i of
// being right (Jordan's model), the stdev is sqrt(sum p_i (1 - p_i)) / n, which is at
// most this one: the floor is an upper bound of what test-set sampling alone explains.
struct NoiseFloor {
  int64_t test_examples = 0;  // n; 0 when no scored run kept predictions (then unknown)
  std::optional<double> binomial_stdev;  // sqrt(p (1 - p) / n); nullopt when n is 0
  // The sample stdev (ddof 1) of the arm's test accuracy; nullopt with fewer than 2.
  std::optional<double> observed_stdev;
  std::optional<double> ratio;  // observed_stdev / binomial_stdev; nullopt when 0 or undefined
};

// Seconds per epoch (EpochRecord::seconds: training and validation) of an arm: each
// intact done run's mean over its recorded epochs, then the mean over runs with a
// Student-t 95% interval (the runs are the independent draws; epochs of one run are not).
struct EpochTime {
  int runs = 0;  // intact done runs with at least one epoch (diverged ones included)
  std::optional<double> mean;     // nullopt with no such run
  std::optional<double> ci_low;   // nullopt with fewer than 2 runs
  std::optional<double> ci_high;
};

struct ArmReport {
  std::string name;
  int runs_total = 0;      // the plan's runs per arm
  int runs_done = 0;       // including the diverged and the corrupt ones
  int runs_failed = 0;
  int runs_running = 0;
  int runs_pending = 0;    // includes runs the view does not list yet
  int runs_remaining = 0;  // runs_total - runs_done - runs_failed
  int runs_diverged = 0;   // done runs whose loss stopped being a number (no scores)
  int runs_corrupt = 0;    // done runs whose stored result fails its checksum
  int runs_scored = 0;     // done runs in loss and accuracy: neither diverged nor corrupt
  int reference_run = -1;  // index of the run the others are compared with; -1: none done

  // Over done runs; true when fewer than two runs are done. With none done nothing was
  // compared: a reader is told so, not "true" (EqualityShown).
  bool models_all_same = true;
  bool data_all_same = true;
  bool batches_all_same = true;
  bool final_models_all_same = true;
  // Ordered by run index, then model, data, batches, final_model.
  std::vector<Difference> differences;

  // Defined only when at least two runs are done and all of them share the reference's
  // initial model and training data: the earliest epoch after which any run's weights
  // (weights_hash) differ from the reference's. nullopt when none differs, and when the
  // runs did not start identical (then the weights differ from the start and there is
  // no divergence to place).
  std::optional<int> first_divergence_epoch;
  // Within first_divergence_epoch, the earliest batch by which some run's weights had
  // parted at the latest: the smallest Difference::batch of the runs that diverged in
  // that epoch. nullopt when no such run's batch order differs there (the weights then
  // parted somewhere in the epoch, which weights hashed per epoch cannot place).
  std::optional<int> first_divergence_batch;
  // Defined like first_divergence_epoch (runs start identical, at least two done),
  // but also when none diverged: per epoch the reference recorded, how many runs'
  // weights had differed from the reference's by the end of it (a run that recorded
  // fewer epochs counts from the first one it lacks).
  std::optional<std::vector<int>> diverged_by_epoch;
  // How many epochs the reference run recorded: with no divergence, runs are identical
  // through epoch epochs_compared - 1.
  int epochs_compared = 0;

  ColumnStats loss;      // test loss, over the runs_scored runs
  ColumnStats accuracy;  // test accuracy, over the same runs

  Instability instability;

  NoiseFloor noise_floor;       // test accuracy's spread against finite-test-set noise
  EpochTime seconds_per_epoch;  // what an epoch cost this arm
  PerClass per_class;  // accuracy and churn per class of the test set (per_class.h)
};

// An equality check of `arm` as the renderers show it: nullopt when no run of the arm
// is done ("no runs finished"; null in JSON), else `all_same`.
inline std::optional<bool> EqualityShown(const ArmReport& arm, bool all_same) {
  if (arm.runs_done - arm.runs_corrupt == 0) return std::nullopt;  // none compared
  return all_same;
}

// One score column of an arm compared with the same column of the reference arm.
// Each field is nullopt where undefined: everything unless both arms have at least two
// done runs; the ratio, its square and interval when the reference's stdev is 0.
// How many runs per arm a comparison's stdev ratio needs (analysis/planning.h): the
// 95% interval of the ratio narrowed to a chosen width, and the ratio told from 1.
enum class PlanOutcome {
  kUndefined,  // the pilot cannot tell: fewer than 2 runs a side, or a side without spread
  kReached,    // the runs are given
  kOverCap,    // more than kMaxPlannedRuns runs per arm would be needed
  kNoEffect,   // power only: the pilot's ratio is exactly 1, no run count detects it
};
// "undefined", "reached", "over_cap", "no_effect": the JSON report's words.
const char* PlanOutcomeName(PlanOutcome outcome);

struct ColumnPlan {
  // The pilot's kurtosis m4 / m2^2 (moments about the mean, ddof 0) of the arm and of
  // the reference; nullopt where undefined (fewer than 2 runs, no spread).
  std::optional<double> kurtosis;
  std::optional<double> reference_kurtosis;
  // The approximation's 95% interval width at the pilot's own run counts, to be set
  // beside the bootstrap interval's width.
  std::optional<double> pilot_width;
  PlanOutcome width = PlanOutcome::kUndefined;
  std::optional<int64_t> runs_for_width;  // per arm, both arms; only when kReached
  PlanOutcome power = PlanOutcome::kUndefined;
  std::optional<int64_t> runs_for_power;  // per arm, both arms; only when kReached
};

struct ColumnComparison {
  std::optional<double> stdev_ratio;     // population stdev (ddof 0) over the reference's
  std::optional<double> variance_share;  // stdev_ratio squared
  // Percentile bootstrap 95% interval of stdev_ratio (analysis/inference.h). ci_high may
  // be +infinity (unbounded: resamples of the reference without spread).
  std::optional<double> ci_low;
  std::optional<double> ci_high;
  // Brown-Forsythe test of equal variances of the two arms.
  std::optional<double> brown_forsythe_f;
  std::optional<double> brown_forsythe_p;
  // How many runs the ratio needs (analysis/planning.h).
  ColumnPlan plan;
};

struct ScoreComparison {
  ColumnComparison loss;
  ColumnComparison accuracy;
};

// Compares two arms' score columns (loss and accuracy of each run, in the same order).
// The bootstrap draws `resamples` resamples from Rng(seed); 0 resamples: no interval.
// The plan aims at a 95% interval of width `ci_width` and at telling `power_ratio` (0:
// the pilot's own ratio) from 1 (PlanRuns, analysis/planning.h).
ScoreComparison CompareScores(const std::vector<double>& loss,
                              const std::vector<double>& accuracy,
                              const std::vector<double>& reference_loss,
                              const std::vector<double>& reference_accuracy,
                              int resamples, uint64_t seed,
                              double ci_width = kDefaultCiWidth, double power_ratio = 0);

// An arm against the reference arm.
struct ArmComparison {
  std::string arm;
  std::string reference;
  ScoreComparison scores;
};

// Runs of two arms trained from the same seeds. Run i of `arm` is paired with run i of
// `other` when both are done and their init, shuffle and augment seeds are all equal;
// within an experiment such runs differ only by the arms' determinism settings, so an
// identical pair shows that those settings did not change the result, and a differing
// one shows the tooling's non-determinism (thread count, device, algorithms).
struct CrossArmIdentity {
  std::string arm;
  std::string other;
  int runs_with_same_seeds = 0;
  int initial_identical = 0;  // pairs whose initial models are identical
  int final_identical = 0;    // pairs whose final models are identical
  // The lowest-index pair whose final models differ, as Difference kFinalModel of
  // `other`'s run against `arm`'s (run: the shared index); nullopt when none.
  std::optional<Difference> first_difference;
};

// Two arms whose runs trained in the same environment but for the determinism
// switches (deterministic_algorithms, cudnn_benchmark): what determinism costs in time.
// Each arm's environment is its intact done runs' RunResult::environment without the
// model_* keys, and must be the same for all of them; the two arms' environments must
// then differ in one or both switches and in nothing else.
struct DeterminismCost {
  // The arm with deterministic_algorithms "true" against the one with "false"; where
  // both have the same, the arm with cudnn_benchmark "false" against "true".
  std::string deterministic_arm;
  std::string other_arm;
  std::vector<std::string> switches;  // the switches that differ, sorted
  // Mean seconds per epoch (EpochTime::mean) of deterministic_arm over other_arm's.
  std::optional<double> overhead;
  // Percentile bootstrap 95% interval of `overhead`: each resample draws each arm's
  // per-run means with replacement (Report::bootstrap_resamples, seeded with
  // DeriveSeed(seed, "seconds <deterministic_arm> vs <other_arm>")); nullopt with
  // fewer than 2 runs a side or no resamples.
  std::optional<double> ci_low;
  std::optional<double> ci_high;
};

// What an analysis may be asked for besides the view.
struct AnalysisOptions {
  std::string reference_arm;  // the arm the others are compared with; "": different_seeds
  int bootstrap_resamples = 10000;  // kDefaultBootstrapResamples; 0: no intervals
  uint64_t seed = 0;                // of the bootstrap
  double ci_width = kDefaultCiWidth;  // the width the run counts aim at
  double power_ratio = 0;  // the ratio the power counts tell from 1; 0: each pilot's own
};

struct Report {
  std::string experiment;
  int epochs = 0;        // the plan's epochs
  int runs_per_arm = 0;
  // Totals over all arms.
  int runs_total = 0;
  int runs_done = 0;
  int runs_failed = 0;
  int runs_remaining = 0;  // runs neither done nor failed
  // Every run of every arm is done or failed, and, for an adaptive run count, the rule
  // has stopped (adaptive->stopped() not empty): until then another round may come.
  bool complete = false;
  // Sentences a reader needs to read the figures right, e.g. that init seeds changed
  // nothing because the runs started from a model file's own weights.
  std::vector<std::string> notes;
  // The weights files the results name and what the blob store keeps of them.
  WeightsUsage weights;
  // Where runs part, as reproctl localize asked the workers (oldest first).
  std::vector<LocalizationState> localizations;
  // The plan's adaptive run count (its rule and the looks the coordinator took, as the
  // view has them); nullopt: a fixed run count.
  std::optional<AdaptiveState> adaptive;

  std::vector<ArmReport> arms;  // in plan order
  // stdev (ddof 0) of the "same_seed" arm over that of the "different_seeds" arm, per
  // column; nullopt unless both arms exist, both stdevs are defined and the
  // denominator is > 0.
  std::optional<double> stdev_ratio_loss;
  std::optional<double> stdev_ratio_accuracy;

  // The reference arm of `comparisons`: the one asked for, else "different_seeds" when
  // the experiment has it, else "" (and no comparisons).
  std::string reference_arm;
  int bootstrap_resamples = 0;
  uint64_t seed = 0;
  double ci_width = kDefaultCiWidth;  // the width the comparisons' run counts (ColumnPlan) aim at
  double power_ratio = 0;  // the ratio their power counts tell from 1; 0: each pilot's own
  // Every other arm against the reference arm, in plan order. Each arm's bootstrap is
  // seeded with DeriveSeed(seed, "<arm> vs <reference>"), so it does not depend on
  // which other arms the experiment has.
  std::vector<ArmComparison> comparisons;
  // Every pair of arms (in plan order, the earlier arm first).
  std::vector<CrossArmIdentity> cross_arm;
  // Runs that started identical from the same seeds, environment against environment
  // (CompareAcrossEnvironments); nullopt unless two environments have such a pair.
  std::optional<CrossEnvironment> cross_environment;
  // Every pair of arms that differ only in their determinism switches, in plan order
  // of the deterministic arm, then the other.
  std::vector<DeterminismCost> determinism_costs;

  // Every run of the view, in the view's order (arm, then index), for the per-run
  // listings of the renderers.
  std::vector<RunView> runs;
};

// The arm names the stdev ratio is taken over.
inline constexpr char kSameSeedArm[] = "same_seed";
inline constexpr char kDifferentSeedsArm[] = "different_seeds";
inline constexpr int kDefaultBootstrapResamples = 10000;
inline constexpr int kMaxBootstrapResamples = 10000000;

// InvalidArgument when options name a reference arm the view does not have (naming it
// and the arms), a bootstrap count outside [0, 10000000] or a ci_width that is not a
// finite number above 0.
absl::Status CheckAnalysisOptions(const ExperimentView& view,
                                  const AnalysisOptions& options);

// Why `report` is not complete, as the refusal of a report without --partial says it:
// "6 run(s) remain", "its adaptive run count may add more runs (2 looks so far)" or both.
std::string IncompleteReason(const Report& report);

// Options are used as given; a reference arm the view lacks gives no comparisons.
Report Analyze(const ExperimentView& view, const AnalysisOptions& options = {});
// The same, moving the view's runs into Report::runs instead of copying them.
Report Analyze(ExperimentView&& view, const AnalysisOptions& options = {});

}  // namespace repro

#endif  // REPRO_ANALYSIS_ANALYSIS_H_
