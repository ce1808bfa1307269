#include "analysis/timing.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "analysis/inference.h"
#include "analysis/stats.h"

namespace repro {
namespace {

using Environment = std::map<std::string, std::string>;

bool IsSwitch(const std::string& key) {
  for (const char* s : kDeterminismSwitches) {
    if (key == s) return true;
  }
  return false;
}

// An arm's environment split into the switches and the rest (model_* keys left out);
// nullopt when its intact runs disagree or none has an environment.
struct ArmEnvironment {
  Environment switches;
  Environment rest;
};

std::optional<ArmEnvironment> EnvironmentOf(const ExperimentView& view, const std::string& arm) {
  std::optional<Environment> common;
  for (const RunView& run : view.runs) {
    if (run.arm != arm || !Intact(run)) continue;
    Environment env;
    for (const auto& [key, value] : run.result.environment) {
      if (!absl::StartsWith(key, "model_")) env.emplace(key, value);
    }
    if (!common) {
      common = std::move(env);
    } else if (*common != env) {
      return std::nullopt;
    }
  }
  if (!common || common->empty()) return std::nullopt;
  ArmEnvironment out;
  for (auto& [key, value] : *common) (IsSwitch(key) ? out.switches : out.rest).emplace(key, value);
  return out;
}

std::string Value(const Environment& env, const char* key) {
  const auto it = env.find(key);
  return it == env.end() ? "" : it->second;
}

// Whether `a` is the deterministic side of the pair (a and b differ in some switch).
bool MoreDeterministic(const Environment& a, const Environment& b) {
  const std::string da = Value(a, "deterministic_algorithms");
  const std::string db = Value(b, "deterministic_algorithms");
  if (da != db) return da == "true" || (db != "true" && da < db);
  const std::string ba = Value(a, "cudnn_benchmark");
  const std::string bb = Value(b, "cudnn_benchmark");
  return ba == "false" || (bb != "false" && ba < bb);
}

}  // namespace

std::vector<double> RunSecondsPerEpoch(const ExperimentView& view, const std::string& arm) {
  std::vector<const RunView*> runs;
  for (const RunView& run : view.runs) {
    if (run.arm == arm && Intact(run) && !run.result.epochs.empty()) runs.push_back(&run);
  }
  std::stable_sort(runs.begin(), runs.end(),
                   [](const RunView* a, const RunView* b) { return a->index < b->index; });
  std::vector<double> out;
  for (const RunView* run : runs) {
    std::vector<double> seconds;
    for (const EpochRecord& e : run->result.epochs) seconds.push_back(e.seconds);
    out.push_back(Mean(seconds));
  }
  return out;
}

EpochTime SummarizeEpochTime(const std::vector<double>& per_run) {
  EpochTime out;
  out.runs = static_cast<int>(per_run.size());
  if (per_run.empty()) return out;
  const double mean = Mean(per_run);
  if (!std::isfinite(mean)) return out;
  out.mean = mean;
  if (per_run.size() < 2) return out;
  const double n = static_cast<double>(per_run.size());
  const double half = StudentTQuantile(0.975, n - 1) * Stdev(per_run, 1) / std::sqrt(n);
  if (!std::isfinite(half)) return out;
  out.ci_low = mean - half;
  out.ci_high = mean + half;
  return out;
}

std::vector<DeterminismCost> CompareDeterminismCost(const ExperimentView& view,
                                                    int resamples, uint64_t seed) {
  std::vector<std::optional<ArmEnvironment>> environments;
  for (const std::string& arm : view.arms) environments.push_back(EnvironmentOf(view, arm));
  std::vector<DeterminismCost> out;
  for (size_t i = 0; i < view.arms.size(); ++i) {
    for (size_t j = i + 1; j < view.arms.size(); ++j) {
      const auto& a = environments[i];
      const auto& b = environments[j];
      if (!a || !b || a->rest != b->rest || a->switches == b->switches) continue;
      const bool a_first = MoreDeterministic(a->switches, b->switches);
      DeterminismCost cost;
      cost.deterministic_arm = view.arms[a_first ? i : j];
      cost.other_arm = view.arms[a_first ? j : i];
      for (const char* s : kDeterminismSwitches) {
        if (Value(a->switches, s) != Value(b->switches, s)) cost.switches.push_back(s);
      }
      std::sort(cost.switches.begin(), cost.switches.end());
      const std::vector<double> det = RunSecondsPerEpoch(view, cost.deterministic_arm);
      const std::vector<double> other = RunSecondsPerEpoch(view, cost.other_arm);
      if (!det.empty() && !other.empty() && Mean(other) > 0) {
        const double overhead = Mean(det) / Mean(other);
        if (std::isfinite(overhead)) cost.overhead = overhead;
      }
      if (cost.overhead && det.size() >= 2 && other.size() >= 2 && resamples > 0) {
        Rng rng(DeriveSeed(seed, absl::StrCat("seconds ", cost.deterministic_arm, " vs ",
                                              cost.other_arm)));
        std::vector<double> ratios;
        ratios.reserve(static_cast<size_t>(resamples));
        std::vector<double> d(det.size()), o(other.size());
        for (int r = 0; r < resamples; ++r) {
          for (double& v : d) v = det[rng.Below(det.size())];
          for (double& v : o) v = other[rng.Below(other.size())];
          const double m = Mean(o);
          if (m > 0) ratios.push_back(Mean(d) / m);
        }
        if (!ratios.empty()) {
          std::sort(ratios.begin(), ratios.end());
          cost.ci_low = QuantileOfSorted(ratios, 0.025);
          cost.ci_high = QuantileOfSorted(ratios, 0.975);
        }
      }
      out.push_back(std::move(cost));
    }
  }
  // In plan order of the deterministic arm, then of the other.
  auto position = [&](const std::string& arm) {
    return std::find(view.arms.begin(), view.arms.end(), arm) - view.arms.begin();
  };
  std::stable_sort(out.begin(), out.end(), [&](const DeterminismCost& x, const DeterminismCost& y) {
    return std::pair(position(x.deterministic_arm), position(x.other_arm)) <
           std::pair(position(y.deterministic_arm), position(y.other_arm));
  });
  return out;
}

}  // namespace repro
