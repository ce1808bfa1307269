#include "analysis/planning.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/stats.h"

namespace repro {
namespace {

// n runs per arm, or why not: the smallest integer >= `n`, at least 2.
void Settle(double n, PlanOutcome* outcome, std::optional<int64_t>* runs) {
  if (!std::isfinite(n) || n > static_cast<double>(kMaxPlannedRuns)) {
    *outcome = PlanOutcome::kOverCap;
    return;
  }
  *outcome = PlanOutcome::kReached;
  *runs = std::max<int64_t>(2, static_cast<int64_t>(std::ceil(n)));
}

std::string Outcome(PlanOutcome outcome, const std::optional<int64_t>& runs) {
  switch (outcome) {
    case PlanOutcome::kReached:
      return absl::StrCat(*runs);
    case PlanOutcome::kOverCap:
      return absl::StrCat("over ", kMaxPlannedRuns);
    case PlanOutcome::kNoEffect:
      return "never (ratio 1)";
    case PlanOutcome::kUndefined:
      break;
  }
  return "undefined";
}

}  // namespace

const char* PlanOutcomeName(PlanOutcome outcome) {
  switch (outcome) {
    case PlanOutcome::kUndefined:
      return "undefined";
    case PlanOutcome::kReached:
      return "reached";
    case PlanOutcome::kOverCap:
      return "over_cap";
    case PlanOutcome::kNoEffect:
      return "no_effect";
  }
  return "unknown";
}

double Kurtosis(const std::vector<double>& values) {
  const double nan = std::nan("");
  if (values.size() < 2) return nan;
  const double mean = Mean(values);
  if (!std::isfinite(mean)) return nan;
  double m2 = 0;
  double m4 = 0;
  for (double v : values) {
    const double d = (v - mean) * (v - mean);
    m2 += d;
    m4 += d * d;
  }
  const double n = static_cast<double>(values.size());
  m2 /= n;
  m4 /= n;
  if (!(m2 > 0) || !std::isfinite(m4)) return nan;
  return m4 / (m2 * m2);
}

double LogStdevRatioError(double kurtosis, double reference_kurtosis, double n_arm,
                          double n_reference) {
  return std::sqrt((kurtosis - 1) / (4 * n_arm) + (reference_kurtosis - 1) / (4 * n_reference));
}

PlanOutcome RunsForWidth(double ratio, double kurtosis, double reference_kurtosis, double width,
                         double z, std::optional<int64_t>* runs) {
  const double spread = (kurtosis - 1 + reference_kurtosis - 1) / 4;  // n se(n)^2
  // Kurtosis is at least 1; both at 1 (two-valued columns) leave no error at any n.
  const double se_width = std::asinh(width / (2 * ratio)) / z;
  PlanOutcome outcome = PlanOutcome::kUndefined;
  Settle(spread / (se_width * se_width), &outcome, runs);
  return outcome;
}

ColumnPlan PlanRuns(const std::vector<double>& values, const std::vector<double>& reference,
                    double ci_width, double power_ratio) {
  ColumnPlan plan;
  const double k_arm = Kurtosis(values);
  const double k_ref = Kurtosis(reference);
  if (!std::isnan(k_arm)) plan.kurtosis = k_arm;
  if (!std::isnan(k_ref)) plan.reference_kurtosis = k_ref;
  if (!plan.kurtosis || !plan.reference_kurtosis || !(ci_width > 0)) return plan;
  const double ratio = Stdev(values, 0) / Stdev(reference, 0);
  if (!(ratio > 0) || !std::isfinite(ratio)) return plan;
  const double se_pilot = LogStdevRatioError(k_arm, k_ref, static_cast<double>(values.size()),
                                             static_cast<double>(reference.size()));
  plan.pilot_width = 2 * ratio * std::sinh(kZ975 * se_pilot);
  const double spread = (k_arm - 1 + k_ref - 1) / 4;  // n se(n)^2
  plan.width = RunsForWidth(ratio, k_arm, k_ref, ci_width, kZ975, &plan.runs_for_width);
  const double effect = std::fabs(std::log(power_ratio > 0 ? power_ratio : ratio));
  if (effect == 0) {
    plan.power = PlanOutcome::kNoEffect;
  } else {
    const double z = (kZ975 + kZ80) / effect;
    Settle(spread * z * z, &plan.power, &plan.runs_for_power);
  }
  return plan;
}

std::string PlanWidthText(const ColumnPlan& plan) {
  return Outcome(plan.width, plan.runs_for_width);
}

std::string PlanPowerText(const ColumnPlan& plan) {
  return Outcome(plan.power, plan.runs_for_power);
}

absl::Status CheckPowerRatio(double power_ratio) {
  if (power_ratio == 0 || (power_ratio > 0 && std::isfinite(power_ratio) && power_ratio != 1)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "power ratio must be a number above 0 other than 1 (1 cannot be told from 1), got ",
      FormatNumpy(power_ratio)));
}

std::string PowerRowLabel(double power_ratio) {
  std::string label = absl::StrCat("runs for power ", FormatNumpy(kPlanningPower));
  if (power_ratio > 0) absl::StrAppend(&label, " vs ratio ", FormatNumpy(power_ratio));
  return label;
}

std::string PlanningMethodText(double ci_width, double power_ratio) {
  return absl::StrFormat(
      "runs needed: per arm, both arms alike, for a 95%% interval of the stdev ratio %s\n"
      "wide, and to tell %s from 1 with power %s (two-sided, level 0.05); by the\n"
      "delta method for log(stdev) with each pilot's kurtosis k, se = sqrt((k_arm +\n"
      "k_reference - 2) / (4 n)), assuming the pilot's ratio and kurtosis hold; \"over %d\":\n"
      "not reached within %d runs; \"undefined\": an arm without spread; CI width\n"
      "(approx.): that approximation's width at the pilot's own runs\n",
      FormatNumpy(ci_width),
      power_ratio > 0 ? absl::StrCat("a ratio of ", FormatNumpy(power_ratio)) : "the ratio",
      FormatNumpy(kPlanningPower), kMaxPlannedRuns, kMaxPlannedRuns);
}

}  // namespace repro
