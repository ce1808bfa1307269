#include "analysis/across_arms.h"

#include <cmath>
#include <map>
#include <string>

#include "analysis/inference.h"
#include "analysis/planning.h"
#include "analysis/stats.h"
#include "analysis/run_comparison.h"

namespace repro {
namespace {

std::optional<double> Finite(double value) {
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<double> NotNaN(double value) {
  if (std::isnan(value)) return std::nullopt;
  return value;
}

ColumnComparison CompareColumn(const std::vector<double>& values,
                               const std::vector<double>& reference,
                               const BootstrapInterval& interval, double ci_width,
                               double power_ratio) {
  ColumnComparison out;
  if (values.size() < 2 || reference.size() < 2) return out;
  out.plan = PlanRuns(values, reference, ci_width, power_ratio);
  const double stdev = Stdev(values, 0);
  const double reference_stdev = Stdev(reference, 0);
  if (reference_stdev > 0) {
    out.stdev_ratio = Finite(stdev / reference_stdev);
    if (out.stdev_ratio) out.variance_share = *out.stdev_ratio * *out.stdev_ratio;
    // Kept as +inf when unbounded; the renderers say so.
    if (out.stdev_ratio) {
      out.ci_low = NotNaN(interval.low);
      out.ci_high = NotNaN(interval.high);
    }
  }
  const EqualVarianceTest test = BrownForsythe({values, reference});
  out.brown_forsythe_f = Finite(test.f);
  out.brown_forsythe_p = Finite(test.p);
  return out;
}

// The done runs of one arm by index, but for those whose result is corrupt.
std::map<int, const RunView*> DoneByIndex(const ExperimentView& view,
                                          const std::string& arm) {
  std::map<int, const RunView*> out;
  for (const RunView& run : view.runs) {
    if (run.arm == arm && Intact(run)) out.emplace(run.index, &run);
  }
  return out;
}

bool SameSeeds(const RunView& a, const RunView& b) {
  return a.init_seed == b.init_seed && a.shuffle_seed == b.shuffle_seed &&
         a.augment_seed == b.augment_seed;
}

}  // namespace

ScoreComparison CompareScores(const std::vector<double>& loss,
                              const std::vector<double>& accuracy,
                              const std::vector<double>& reference_loss,
                              const std::vector<double>& reference_accuracy,
                              int resamples, uint64_t seed, double ci_width,
                              double power_ratio) {
  std::vector<BootstrapInterval> intervals(2, BootstrapInterval{std::nan(""), std::nan(""), 0});
  if (resamples > 0) {
    intervals = BootstrapStdevRatio({loss, accuracy}, {reference_loss, reference_accuracy},
                                    resamples, seed);
  }
  ScoreComparison out;
  out.loss = CompareColumn(loss, reference_loss, intervals[0], ci_width, power_ratio);
  out.accuracy = CompareColumn(accuracy, reference_accuracy, intervals[1], ci_width, power_ratio);
  return out;
}

std::vector<CrossArmIdentity> CompareAcrossArms(const ExperimentView& view) {
  std::vector<std::map<int, const RunView*>> done;
  for (const std::string& arm : view.arms) done.push_back(DoneByIndex(view, arm));
  std::vector<CrossArmIdentity> out;
  for (size_t i = 0; i < view.arms.size(); ++i) {
    for (size_t j = i + 1; j < view.arms.size(); ++j) {
      CrossArmIdentity identity;
      identity.arm = view.arms[i];
      identity.other = view.arms[j];
      for (const auto& [index, run] : done[i]) {
        auto other = done[j].find(index);
        if (other == done[j].end() || !SameSeeds(*run, *other->second)) continue;
        ++identity.runs_with_same_seeds;
        const RunResult& a = run->result;  // the earlier arm's run is the reference
        const RunResult& b = other->second->result;
        identity.initial_identical += a.initial_hash == b.initial_hash;
        if (a.final_hash == b.final_hash) {
          ++identity.final_identical;
        } else if (!identity.first_difference) {
          identity.first_difference = CompareRunResults(a, b, index).final_model;
        }
      }
      out.push_back(std::move(identity));
    }
  }
  return out;
}

}  // namespace repro
