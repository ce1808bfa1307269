#include "coordinator/analysis.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "common/stats.h"

namespace repro {

const char* RunStateName(RunState state) {
  switch (state) {
    case RunState::kPending:
      return "pending";
    case RunState::kRunning:
      return "running";
    case RunState::kDone:
      return "done";
    case RunState::kFailed:
      return "failed";
  }
  return "unknown";
}

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

Difference NewDifference(int run, DifferenceKind what) {
  Difference d;
  d.run = run;
  d.what = what;
  return d;
}

// Sets d->tensor and d->index to the first position where the tensor lists differ
// in name or hash; leaves them "" / -1 when the lists agree.
void FindFirstDifferentTensor(const std::vector<TensorHash>& reference,
                              const std::vector<TensorHash>& run, Difference* d) {
  const size_t common = std::min(reference.size(), run.size());
  for (size_t i = 0; i < common; ++i) {
    if (reference[i].name != run[i].name || reference[i].hash != run[i].hash) {
      d->tensor = run[i].name;
      d->index = static_cast<int>(i);
      return;
    }
  }
  if (reference.size() != run.size()) {
    d->tensor = run.size() > common ? run[common].name : reference[common].name;
    d->index = static_cast<int>(common);
  }
}

// The first epoch (by position) whose `field` differs, or that only one run recorded.
std::optional<int> FirstDifferentEpoch(const std::vector<EpochRecord>& reference,
                                       const std::vector<EpochRecord>& run,
                                       std::string EpochRecord::*field) {
  const size_t common = std::min(reference.size(), run.size());
  for (size_t i = 0; i < common; ++i) {
    if (reference[i].*field != run[i].*field) return run[i].epoch;
  }
  if (reference.size() > common) return reference[common].epoch;
  if (run.size() > common) return run[common].epoch;
  return std::nullopt;
}

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

// Compares every done run with the reference and fills the equality fields.
void CompareRuns(const std::vector<const RunView*>& done, ArmReport* arm) {
  if (done.empty()) return;
  const RunResult& ref = done.front()->result;
  arm->reference_run = done.front()->index;
  arm->epochs_compared = static_cast<int>(ref.epochs.size());
  std::optional<int> first_divergence;
  for (size_t i = 1; i < done.size(); ++i) {
    const RunResult& run = done[i]->result;
    const int index = done[i]->index;
    if (run.initial_hash != ref.initial_hash) {
      Difference d = NewDifference(index, DifferenceKind::kModel);
      FindFirstDifferentTensor(ref.initial_tensors, run.initial_tensors, &d);
      arm->differences.push_back(d);
      arm->models_all_same = false;
    }
    if (run.data_x_hash != ref.data_x_hash || run.data_y_hash != ref.data_y_hash) {
      arm->differences.push_back(NewDifference(index, DifferenceKind::kData));
      arm->data_all_same = false;
    }
    if (auto epoch = FirstDifferentEpoch(ref.epochs, run.epochs,
                                         &EpochRecord::batch_digest)) {
      Difference d = NewDifference(index, DifferenceKind::kBatches);
      d.epoch = epoch;
      arm->differences.push_back(d);
      arm->batches_all_same = false;
    }
    const std::optional<int> weights_epoch =
        FirstDifferentEpoch(ref.epochs, run.epochs, &EpochRecord::weights_hash);
    if (run.final_hash != ref.final_hash) {
      Difference d = NewDifference(index, DifferenceKind::kFinalModel);
      FindFirstDifferentTensor(ref.final_tensors, run.final_tensors, &d);
      d.epoch = weights_epoch;
      arm->differences.push_back(d);
      arm->final_models_all_same = false;
    }
    if (weights_epoch && (!first_divergence || *weights_epoch < *first_divergence)) {
      first_divergence = weights_epoch;
    }
  }
  // A divergence is only meaningful for runs that started from the same state.
  if (arm->models_all_same && arm->data_all_same) {
    arm->first_divergence_epoch = first_divergence;
  }
}

ArmReport AnalyzeArm(const ExperimentView& view, const std::string& name) {
  ArmReport arm;
  arm.name = name;
  std::vector<const RunView*> done;
  std::vector<double> losses;
  std::vector<double> accuracies;
  int listed = 0;
  for (const RunView& run : view.runs) {
    if (run.arm != name) continue;
    ++listed;
    switch (run.state) {
      case RunState::kDone:
        done.push_back(&run);
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
  arm.runs_done = static_cast<int>(done.size());
  arm.runs_remaining = arm.runs_total - arm.runs_done - arm.runs_failed;
  CompareRuns(done, &arm);
  for (const RunView* run : done) {
    losses.push_back(run->result.test_loss);
    accuracies.push_back(run->result.test_accuracy);
  }
  arm.loss = Summarize(losses);
  arm.accuracy = Summarize(accuracies);
  return arm;
}

std::optional<double> Ratio(const std::optional<double>& numerator,
                            const std::optional<double>& denominator) {
  if (!numerator || !denominator || !(*denominator > 0)) return std::nullopt;
  return Defined(*numerator / *denominator);
}

}  // namespace

Report Analyze(const ExperimentView& view) {
  Report report;
  report.experiment = view.name;
  report.epochs = view.epochs;
  report.runs_per_arm = view.runs_per_arm;
  report.runs = view.runs;
  const ArmReport* same_seed = nullptr;
  const ArmReport* different_seeds = nullptr;
  report.arms.reserve(view.arms.size());
  for (const std::string& name : view.arms) {
    report.arms.push_back(AnalyzeArm(view, name));
    const ArmReport& arm = report.arms.back();
    report.runs_total += arm.runs_total;
    report.runs_done += arm.runs_done;
    report.runs_failed += arm.runs_failed;
    report.runs_remaining += arm.runs_remaining;
  }
  for (const ArmReport& arm : report.arms) {
    if (arm.name == kSameSeedArm) same_seed = &arm;
    if (arm.name == kDifferentSeedsArm) different_seeds = &arm;
  }
  report.complete = report.runs_remaining == 0;
  if (same_seed != nullptr && different_seeds != nullptr) {
    report.stdev_ratio_loss = Ratio(same_seed->loss.stdev, different_seeds->loss.stdev);
    report.stdev_ratio_accuracy =
        Ratio(same_seed->accuracy.stdev, different_seeds->accuracy.stdev);
  }
  return report;
}

}  // namespace repro
