#include "analysis/adaptive.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>

#include "analysis/analysis.h"
#include "analysis/inference.h"
#include "analysis/planning.h"
#include "analysis/stats.h"

namespace repro {
namespace {

double Metric(const RunView& run, const std::string& metric) {
  return metric == "loss" ? run.result.test_loss : run.result.test_accuracy;
}

}  // namespace

AdaptiveArmLook LookAtArm(const std::vector<double>& values, const std::vector<double>& reference,
                          double level, double width) {
  AdaptiveArmLook out;
  out.runs = static_cast<int>(values.size());
  out.reference_runs = static_cast<int>(reference.size());
  if (values.size() < 2 || reference.size() < 2) return out;
  const double stdev = Stdev(values, 0);
  const double reference_stdev = Stdev(reference, 0);
  if (!(reference_stdev > 0) || !std::isfinite(stdev) || !std::isfinite(reference_stdev)) return out;
  out.ratio = stdev / reference_stdev;
  if (stdev == 0) {  // every run scored alike: nothing to narrow
    out.low = out.high = 0.0;
    out.settled = true;
    out.runs_needed = out.runs;
    return out;
  }
  const double k = Kurtosis(values);
  const double k_reference = Kurtosis(reference);
  const double z = NormalQuantile(1 - (1 - level) / 2);
  const double se = LogStdevRatioError(k, k_reference, out.runs, out.reference_runs);
  out.low = *out.ratio * std::exp(-z * se);
  out.high = *out.ratio * std::exp(z * se);
  out.settled = *out.width() <= width;
  std::optional<int64_t> needed;
  if (RunsForWidth(*out.ratio, k, k_reference, width, z, &needed) == PlanOutcome::kReached) {
    out.runs_needed = needed;
  }
  return out;
}

AdaptiveLook TakeLook(const ExperimentView& view, const AdaptiveState& state) {
  std::map<std::string, std::vector<double>> scores;
  std::map<std::string, int> runs;
  for (const RunView& run : view.runs) {
    ++runs[run.arm];
    if (Scored(run)) scores[run.arm].push_back(Metric(run, state.metric));
  }
  AdaptiveLook look;
  std::vector<std::string> grow = {state.reference};
  for (const std::string& arm : view.arms) {
    if (arm == state.reference) continue;
    AdaptiveArmLook a = LookAtArm(scores[arm], scores[state.reference], state.level,
                                  state.ratio_ci_width);
    a.arm = arm;
    if (!a.settled) grow.push_back(arm);
    look.arms.push_back(std::move(a));
  }
  if (grow.size() == 1) {
    look.decision = "reached";
  } else if (runs[state.reference] >= state.max) {
    look.decision = "max";
  } else {
    look.decision = "more";
    for (const std::string& arm : grow) {
      const int add = std::min(state.step, state.max - runs[arm]);
      if (add > 0) look.added[arm] = add;
    }
  }
  return look;
}

}  // namespace repro
