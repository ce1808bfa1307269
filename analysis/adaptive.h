// An adaptive experiment's look at its scores (the plan's `runs: {min, max, step,
// until}`, common/plan.h AdaptiveRuns; README, "Adaptive run counts"): once every run
// so far has finished, the coordinator asks TakeLook whether each arm's stdev ratio
// against the reference arm is known well enough, and adds a round of runs where not.
//
// The interval at a look, for an arm against the reference: the stdev ratio r (ddof 0)
// of the rule's metric over the scored runs (Scored, analysis/analysis.h), and
//   r * exp(+-z se),  se = sqrt((k_arm - 1) / (4 n_arm) + (k_ref - 1) / (4 n_ref)),
// the delta method for log(stdev) of analysis/planning.h with each side's own sample
// kurtosis k, z the standard normal quantile at 1 - (1 - level) / 2.
//
// Stopping when an interval is narrow enough is stopping on the data, which makes a
// naive 95% interval too narrow at the look that stops. The rule is Bonferroni's over
// the looks the plan allows (AdaptiveRuns::Looks): each look's interval is taken at
// level 1 - 0.05 / looks_planned, so the chance that any look's interval misses the
// ratio is at most 0.05 and the interval at the stopping look keeps at least 95%
// coverage whenever the rule stops. Conservative: the looks are correlated, and an
// experiment that stops early has spent less than its share. (Per arm; arms are not
// adjusted against each other, as the report's comparisons are not.)
//
// Two cases the formula leaves open: an arm whose scored runs all scored alike has ratio
// 0 and interval [0, 0] (settled: the report's bootstrap says the same; CPU runs with
// one seed do this); a reference without spread leaves the ratio undefined, never
// settled, so such an experiment runs to max.
//
// Thread safety: pure functions.
#ifndef REPRO_ANALYSIS_ADAPTIVE_H_
#define REPRO_ANALYSIS_ADAPTIVE_H_

#include <vector>

#include "common/experiment_view.h"

namespace repro {

// One arm's scores against the reference's at `level`; settled when the interval is at
// most `width` wide. Sets everything but `arm`.
AdaptiveArmLook LookAtArm(const std::vector<double>& values, const std::vector<double>& reference,
                          double level, double width);

// The look at `view` under `state`'s rule, for a view whose runs have all finished: every
// arm but the reference compared, then the decision: "reached" when each is settled, else
// "max" when the reference has `max` runs already, else "more" with a round of
// min(step, max - runs) runs for the reference and each arm not settled. The reference
// grows every round, so the rule takes at most looks_planned looks. Run counts are the
// arm's runs in the view whatever their state (a failed run takes its place too).
AdaptiveLook TakeLook(const ExperimentView& view, const AdaptiveState& state);

}  // namespace repro

#endif  // REPRO_ANALYSIS_ADAPTIVE_H_
