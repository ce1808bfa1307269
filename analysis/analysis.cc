#include "analysis/analysis.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "analysis/inference.h"
#include "analysis/planning.h"
#include "analysis/stats.h"
#include "analysis/across_arms.h"
#include "analysis/run_comparison.h"
#include "analysis/timing.h"

namespace repro {

const char* DifferenceKindName(DifferenceKind kind) {
  switch (kind) {
    case DifferenceKind::kModel:
      return "model";
    case DifferenceKind::kData:
      return "data";
    case DifferenceKind::kBatches:
      return "batches";
    case DifferenceKind::kFinalModel:
      return "final_model";
  }
  return "unknown";
}

namespace {

std::optional<double> Defined(double value) {
  if (std::isnan(value)) return std::nullopt;
  return value;
}

ColumnStats Summarize(const std::vector<double>& values) {
  ColumnStats stats;
  stats.mean = Defined(Mean(values));
  stats.stdev = Defined(Stdev(values, 0));
  stats.stdev_ddof1 = Defined(Stdev(values, 1));
  stats.min = Defined(Min(values));
  stats.max = Defined(Max(values));
  return stats;
}

// Compares every done run with the reference and fills the equality and divergence
// fields.
void CompareRuns(const std::vector<const RunView*>& done, ArmReport* arm) {
  if (done.empty()) return;
  const RunResult& ref = done.front()->result;
  arm->reference_run = done.front()->index;
  arm->epochs_compared = static_cast<int>(ref.epochs.size());
  std::vector<RunComparison> comparisons;
  for (size_t i = 1; i < done.size(); ++i) {
    RunComparison c = CompareRunResults(ref, done[i]->result, done[i]->index);
    for (const std::optional<Difference>* d :
         {&c.model, &c.data, &c.batches, &c.final_model}) {
      if (*d) arm->differences.push_back(**d);
    }
    arm->models_all_same &= !c.model.has_value();
    arm->data_all_same &= !c.data.has_value();
    arm->batches_all_same &= !c.batches.has_value();
    arm->final_models_all_same &= !c.final_model.has_value();
    comparisons.push_back(std::move(c));
  }
  // A divergence is only meaningful for runs that started from the same state.
  if (done.size() < 2 || !arm->models_all_same || !arm->data_all_same) return;
  std::vector<int> diverged(ref.epochs.size(), 0);
  for (const RunComparison& c : comparisons) {
    if (!c.weights_epoch) continue;
    if (!arm->first_divergence_epoch || *c.weights_epoch < *arm->first_divergence_epoch) {
      arm->first_divergence_epoch = c.weights_epoch;
    }
    for (size_t e = *c.weights_position; e < diverged.size(); ++e) ++diverged[e];
  }
  for (const RunComparison& c : comparisons) {
    if (c.weights_epoch != arm->first_divergence_epoch || !c.weights_batch) continue;
    if (!arm->first_divergence_batch || *c.weights_batch < *arm->first_divergence_batch) {
      arm->first_divergence_batch = c.weights_batch;
    }
  }
  arm->diverged_by_epoch = std::move(diverged);
}

// Mean pairwise disagreement without visiting pairs: for each test example, the pairs
// that disagree are all pairs less those within each predicted class, so the cost is
// runs x examples, not runs^2 x examples.
Instability MeasureInstability(const std::vector<const RunView*>& done) {
  Instability out;
  std::vector<const std::vector<uint8_t>*> predictions;
  for (const RunView* run : done) {
    const std::vector<uint8_t>& p = run->result.predictions;
    if (p.empty()) continue;
    if (!predictions.empty() && p.size() != predictions.front()->size()) continue;
    predictions.push_back(&p);
  }
  const int64_t runs = static_cast<int64_t>(predictions.size());
  out.runs = static_cast<int>(runs);
  out.pairs = runs * (runs - 1) / 2;
  if (runs < 2) return out;
  const size_t examples = predictions.front()->size();
  // Examples in blocks, so that each run's predictions are read in runs of kBlock bytes
  // rather than one byte per run per example (10,000 runs x 10,000 examples is 100 MB).
  constexpr size_t kBlock = 64;
  std::vector<std::array<uint32_t, 256>> counts(kBlock);
  uint64_t agreeing = 0;  // over all examples, pairs predicting the same class
  for (size_t start = 0; start < examples; start += kBlock) {
    const size_t size = std::min(kBlock, examples - start);
    for (const std::vector<uint8_t>* p : predictions) {
      const uint8_t* classes = p->data() + start;
      for (size_t k = 0; k < size; ++k) ++counts[k][classes[k]];
    }
    for (size_t k = 0; k < size; ++k) {
      for (uint32_t& n : counts[k]) {
        const uint64_t same = n;
        agreeing += same * (same - 1) / 2;  // 0 when n is 0 (unsigned wrap times 0)
        n = 0;
      }
    }
  }
  const double total = static_cast<double>(out.pairs) * static_cast<double>(examples);
  out.mean_disagreement =
      (total - static_cast<double>(agreeing)) / total;
  return out;
}

// The binomial spread of test accuracy on the arm's test set, and the observed one.
NoiseFloor MeasureNoiseFloor(const std::vector<const RunView*>& done,
                             const std::vector<double>& accuracies) {
  NoiseFloor out;
  for (const RunView* run : done) {
    if (Scored(*run) && !run->result.predictions.empty()) {
      out.test_examples = static_cast<int64_t>(run->result.predictions.size());
      break;
    }
  }
  out.observed_stdev = Defined(Stdev(accuracies, 1));
  const double p = Mean(accuracies);
  if (out.test_examples > 0 && p >= 0 && p <= 1) {
    out.binomial_stdev = std::sqrt(p * (1 - p) / static_cast<double>(out.test_examples));
  }
  if (out.observed_stdev && out.binomial_stdev && *out.binomial_stdev > 0) {
    out.ratio = *out.observed_stdev / *out.binomial_stdev;
  }
  return out;
}

// An arm's report with the done runs and their scores, which the comparisons use.
struct AnalyzedArm {
  ArmReport report;
  std::vector<double> losses;
  std::vector<double> accuracies;
};

AnalyzedArm AnalyzeArm(const ExperimentView& view, const std::string& name) {
  AnalyzedArm analyzed;
  ArmReport& arm = analyzed.report;
  arm.name = name;
  std::vector<const RunView*> done;
  int listed = 0;
  for (const RunView& run : view.runs) {
    if (run.arm != name) continue;
    ++listed;
    switch (run.state) {
      case RunState::kDone:
        // A result that fails its checksum is no evidence of anything: counted only.
        if (Intact(run)) {
          done.push_back(&run);
        } else {
          ++arm.runs_corrupt;
        }
        break;
      case RunState::kFailed:
        ++arm.runs_failed;
        break;
      case RunState::kRunning:
        ++arm.runs_running;
        break;
      case RunState::kPending:
        ++arm.runs_pending;
        break;
    }
  }
  std::stable_sort(done.begin(), done.end(), [](const RunView* a, const RunView* b) {
    return a->index < b->index;
  });
  arm.runs_total = std::max(view.runs_per_arm, listed);
  arm.runs_pending += arm.runs_total - listed;  // not yet in the store
  arm.runs_done = static_cast<int>(done.size()) + arm.runs_corrupt;
  arm.runs_remaining = arm.runs_total - arm.runs_done - arm.runs_failed;
  CompareRuns(done, &arm);
  for (const RunView* run : done) {
    if (!Scored(*run)) {  // a diverged run has no score, not a score of 0
      ++arm.runs_diverged;
      continue;
    }
    analyzed.losses.push_back(run->result.test_loss);
    analyzed.accuracies.push_back(run->result.test_accuracy);
  }
  arm.runs_scored = static_cast<int>(analyzed.losses.size());
  arm.loss = Summarize(analyzed.losses);
  arm.accuracy = Summarize(analyzed.accuracies);
  arm.instability = MeasureInstability(done);
  arm.noise_floor = MeasureNoiseFloor(done, analyzed.accuracies);
  arm.seconds_per_epoch = SummarizeEpochTime(RunSecondsPerEpoch(view, name));
  arm.per_class = MeasurePerClass(done, view.test_labels);
  return analyzed;
}

std::optional<double> Ratio(const std::optional<double>& numerator,
                            const std::optional<double>& denominator) {
  if (!numerator || !denominator || !(*denominator > 0)) return std::nullopt;
  return Defined(*numerator / *denominator);
}

bool HasArm(const ExperimentView& view, const std::string& name) {
  return std::find(view.arms.begin(), view.arms.end(), name) != view.arms.end();
}

}  // namespace

absl::Status CheckAnalysisOptions(const ExperimentView& view,
                                  const AnalysisOptions& options) {
  if (!options.reference_arm.empty() && !HasArm(view, options.reference_arm)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown reference arm '", options.reference_arm,
        "'; the experiment's arms are: ",
        view.arms.empty() ? "(none)" : absl::StrJoin(view.arms, ", ")));
  }
  if (options.bootstrap_resamples < 0 ||
      options.bootstrap_resamples > kMaxBootstrapResamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap resamples must be between 0 and ",
                     kMaxBootstrapResamples, ", got ", options.bootstrap_resamples));
  }
  if (!(options.ci_width > 0) || !std::isfinite(options.ci_width)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ci width must be a number above 0, got ", options.ci_width));
  }
  return CheckPowerRatio(options.power_ratio);
}

namespace {

// Everything but Report::runs, which the callers copy or move in.
// What the figures mean beyond themselves: a TorchScript model's own weights
// (model.init: file, recorded in each run's environment) make init seeds moot.
std::vector<std::string> Notes(const ExperimentView& view) {
  for (const RunView& run : view.runs) {
    const auto init = run.result.environment.find("model_init");
    if (run.state == RunState::kDone && init != run.result.environment.end() &&
        init->second == "file") {
      return {"the runs start from the model file's own weights (model.init: file): init "
              "seeds change nothing, so arms differ only in their shuffle and augment seeds "
              "and determinism settings"};
    }
  }
  return {};
}

Report AnalyzeWithoutRuns(const ExperimentView& view, const AnalysisOptions& options) {
  Report report;
  report.experiment = view.name;
  report.epochs = view.epochs;
  report.runs_per_arm = view.runs_per_arm;
  report.bootstrap_resamples = std::max(0, options.bootstrap_resamples);
  report.seed = options.seed;
  report.ci_width = options.ci_width;
  report.power_ratio = options.power_ratio;
  std::vector<AnalyzedArm> arms;
  arms.reserve(view.arms.size());
  for (const std::string& name : view.arms) {
    arms.push_back(AnalyzeArm(view, name));
    const ArmReport& arm = arms.back().report;
    report.runs_total += arm.runs_total;
    report.runs_done += arm.runs_done;
    report.runs_failed += arm.runs_failed;
    report.runs_remaining += arm.runs_remaining;
  }
  report.adaptive = view.adaptive;
  report.complete =
      report.runs_remaining == 0 && (!view.adaptive || !view.adaptive->stopped().empty());
  report.notes = Notes(view);
  report.weights = view.weights;
  report.localizations = view.localizations;
  const AnalyzedArm* same_seed = nullptr;
  const AnalyzedArm* different_seeds = nullptr;
  const AnalyzedArm* reference = nullptr;
  const std::string reference_name =
      options.reference_arm.empty() ? kDifferentSeedsArm : options.reference_arm;
  for (const AnalyzedArm& arm : arms) {
    if (arm.report.name == kSameSeedArm) same_seed = &arm;
    if (arm.report.name == kDifferentSeedsArm) different_seeds = &arm;
    if (arm.report.name == reference_name) reference = &arm;
  }
  if (same_seed != nullptr && different_seeds != nullptr) {
    report.stdev_ratio_loss =
        Ratio(same_seed->report.loss.stdev, different_seeds->report.loss.stdev);
    report.stdev_ratio_accuracy = Ratio(same_seed->report.accuracy.stdev,
                                        different_seeds->report.accuracy.stdev);
  }
  if (reference != nullptr) {
    report.reference_arm = reference->report.name;
    for (const AnalyzedArm& arm : arms) {
      if (&arm == reference) continue;
      ArmComparison comparison;
      comparison.arm = arm.report.name;
      comparison.reference = reference->report.name;
      comparison.scores = CompareScores(
          arm.losses, arm.accuracies, reference->losses, reference->accuracies,
          report.bootstrap_resamples,
          DeriveSeed(options.seed,
                     absl::StrCat(comparison.arm, " vs ", comparison.reference)),
          options.ci_width, options.power_ratio);
      report.comparisons.push_back(std::move(comparison));
    }
  }
  report.cross_arm = CompareAcrossArms(view);
  report.cross_environment = CompareAcrossEnvironments(view);
  report.determinism_costs =
      CompareDeterminismCost(view, report.bootstrap_resamples, options.seed);
  for (AnalyzedArm& arm : arms) report.arms.push_back(std::move(arm.report));
  return report;
}

}  // namespace

std::string IncompleteReason(const Report& report) {
  std::vector<std::string> reasons;
  if (report.runs_remaining > 0) {
    reasons.push_back(absl::StrCat(report.runs_remaining, " run(s) remain"));
  }
  if (report.adaptive && report.adaptive->stopped().empty()) {
    const size_t looks = report.adaptive->looks.size();
    reasons.push_back(absl::StrCat("its adaptive run count may add more runs (", looks,
                                   looks == 1 ? " look" : " looks", " so far)"));
  }
  return absl::StrJoin(reasons, ", and ");
}

Report Analyze(const ExperimentView& view, const AnalysisOptions& options) {
  Report report = AnalyzeWithoutRuns(view, options);
  report.runs = view.runs;
  return report;
}

Report Analyze(ExperimentView&& view, const AnalysisOptions& options) {
  Report report = AnalyzeWithoutRuns(view, options);
  report.runs = std::move(view.runs);  // a large experiment's records are not copied
  return report;
}

}  // namespace repro
