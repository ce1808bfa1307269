// How many runs are enough: from a pilot (an arm's and its reference arm's scored runs,
// or two score files), how many runs per arm would narrow the 95% interval of the
// stdev ratio to a chosen width, and how many would tell the pilot's ratio from 1.
//
// The method, an analytic approximation (the delta method for the log of a stdev):
// with n runs, Var(log s) ~ (kappa - 1) / (4 n), kappa = m4 / m2^2 the kurtosis (3 for
// a normal distribution), so log(stdev ratio) has standard error
//   se(n) = sqrt((kappa_arm - 1 + kappa_reference - 1) / (4 n))
// with n runs in each arm, each kappa the pilot's own (not assumed normal). The 95%
// interval ratio * exp(+-z se(n)), z = 1.959964, has width 2 ratio sinh(z se(n)), so
// the width W needs se(n) <= asinh(W / (2 ratio)) / z:
//   n_width = ceil((kappa_arm + kappa_reference - 2) / (4 se^2)).
// A two-sided test of log ratio = 0 at level 0.05 has power 0.8 when
// |log ratio| / se(n) >= z + z_0.8 (0.841621):
//   n_power = ceil((kappa_arm + kappa_reference - 2) / 4 * ((z + z_0.8) / log ratio)^2).
// Both assume the pilot's ratio and kurtosis hold at n, and are at least 2; beyond
// kMaxPlannedRuns they are not reached. At the pilot's own counts the approximation's
// width (ColumnPlan::pilot_width) is set beside the bootstrap interval's, and
// planning_test.cc checks it against a bootstrap at the planned n.
//
// Thread safety: pure functions.
#ifndef REPRO_ANALYSIS_PLANNING_H_
#define REPRO_ANALYSIS_PLANNING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "analysis/analysis.h"

namespace repro {

// kMaxPlannedRuns, the search's cap per arm, is in common/experiment_view.h.
inline constexpr double kPlanningPower = 0.8;
inline constexpr double kZ975 = 1.959963984540054;   // standard normal 0.975 quantile
inline constexpr double kZ80 = 0.8416212335729143;   // standard normal 0.8 quantile

// m4 / m2^2 with moments about the mean (ddof 0). NaN with fewer than 2 values, a
// non-finite value or no spread.
double Kurtosis(const std::vector<double>& values);

// The standard error of log(stdev ratio) with n_arm and n_reference runs.
double LogStdevRatioError(double kurtosis, double reference_kurtosis, double n_arm,
                          double n_reference);

// Runs per arm (both arms alike) for the interval ratio * exp(+-z se(n)) to be at most
// `width` wide, the pilot's ratio (> 0) and kurtoses holding: kReached with `runs` set
// (at least 2), or kOverCap beyond kMaxPlannedRuns.
PlanOutcome RunsForWidth(double ratio, double kurtosis, double reference_kurtosis, double width,
                         double z, std::optional<int64_t>* runs);

// The plan for one score column: `values` is the arm's pilot, `reference` the
// reference arm's; `ci_width` > 0. The power is to tell `power_ratio` from 1 (> 0, not 1;
// 0: the pilot's own ratio), with the pilot's kurtosis.
ColumnPlan PlanRuns(const std::vector<double>& values, const std::vector<double>& reference,
                    double ci_width, double power_ratio = 0);

// A plan's run count as the text reports print it: "1246", "over 100000" (not reached
// within kMaxPlannedRuns), "never (ratio 1)" (power, kNoEffect) or "undefined".
std::string PlanWidthText(const ColumnPlan& plan);
std::string PlanPowerText(const ColumnPlan& plan);

// The method in a few lines, for the text reports and analyze-scores.
std::string PlanningMethodText(double ci_width, double power_ratio = 0);
// OK for 0 (the pilot's own ratio) or a finite ratio above 0 other than 1; else
// InvalidArgument saying so.
absl::Status CheckPowerRatio(double power_ratio);
// The power row's label: "runs for power 0.8", or "... vs ratio 1.5" for a chosen ratio.
std::string PowerRowLabel(double power_ratio);

}  // namespace repro

#endif  // REPRO_ANALYSIS_PLANNING_H_
