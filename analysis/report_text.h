// The text report (RenderReport's "text", analysis/report.h) and the sentences it is
// made of, which the HTML report (analysis/html_report.h) puts in its tables.
//
// Thread safety: pure functions over const inputs.
#ifndef REPRO_ANALYSIS_REPORT_TEXT_H_
#define REPRO_ANALYSIS_REPORT_TEXT_H_

#include <optional>
#include <string>
#include <vector>

#include "analysis/analysis.h"

namespace repro {

// `arm_filter` empty: every arm, then the sections across arms (the same-seed ratio,
// the comparisons with the reference arm, the runs with the same seeds, the matrix
// across environments). Otherwise that arm only (it must exist), without the sections
// across arms.
std::string RenderText(const Report& report, const std::string& arm_filter);

// "- Different model (layers and weights compared with run #0) in this run: #1 (...)"
std::string DifferenceLine(const Difference& d, int reference);
// What follows "First divergence: ".
std::string DivergenceLine(const ArmReport& arm);
// What follows "Runs diverged from run #R by epoch: ", e.g. "epochs 0-1: 0; epoch 2:
// 1; epochs 3-9: 3 (of 3 compared)"; "" when diverged_by_epoch is undefined.
std::string DivergedByEpochLine(const ArmReport& arm);
// What follows "Instability (mean pairwise disagreement of test predictions): ".
std::string InstabilityLine(const Instability& instability);
// What follows "Noise floor of test accuracy: ", e.g. "binomial stdev 0.0229 (sqrt(p (1 -
// p) / n), p = mean accuracy 0.88, n = 200 test examples); observed stdev (ddof 1)
// 0.0056, ratio 0.245"; why not, where undefined.
std::string NoiseFloorLine(const ArmReport& arm);
// What follows "Seconds per epoch: ", e.g. "mean 10.5, 95% CI [10.2 10.8] over 5 runs".
std::string EpochTimeLine(const EpochTime& time);
// "threads_det vs threads_fast (deterministic_algorithms): overhead 1.35, 95% CI [1.2
// 1.5]"
std::string DeterminismCostLine(const DeterminismCost& cost);
// A comparison's runs per arm for the interval width (power false) or to tell the ratio
// from 1 (power true): "loss 1246, accuracy over 100000".
std::string RunsNeededLine(const ScoreComparison& scores, bool power);
// The approximation's interval width at the pilot's runs: "loss 0.85, accuracy undefined".
std::string PilotWidthLine(const ScoreComparison& scores);
// The legend of the determinism section.
std::string DeterminismKey(int resamples);
// "threads_1 vs threads_2: 4 runs with the same seeds, ..."
std::string CrossArmLine(const CrossArmIdentity& identity);
// One cell of the matrix across environments: "=" (every pair identical), "epoch E"
// (the first epoch after which some pair's weights differ) or "final" (only final
// models differ), then the pairs and, where defined, the spread ratio: "epoch 0, 25
// pairs, ratio 1.25738"; "-" for no pair (nullptr).
std::string EnvironmentCellText(const EnvironmentCell* cell);
// What the cells of the matrix say: a parenthesis of a few lines.
std::string EnvironmentMatrixKey();
// An adaptive run count (Report::adaptive) in words. The rule: "runs: 10 per arm, then
// 10 more per round to at most 200, until the stdev ratio of test accuracy against
// different_seeds has an interval at most 0.1 wide".
std::string AdaptiveRuleText(const AdaptiveState& adaptive);
// How each look's interval is taken: "delta method for log(stdev ratio) at level 99.75 %
// (0.05 Bonferroni-split over 20 possible looks), conservative under stopping on the data".
std::string AdaptiveLevelText(const AdaptiveState& adaptive);
// An arm at a look: "10 runs vs 10 of different_seeds, ratio 0.91, interval [0.7 1.18],
// width 0.48, not settled, runs needed 180" ("undefined" where the figures are).
std::string AdaptiveArmText(const AdaptiveArmLook& arm, const std::string& reference);
// What followed a look: "+10 runs to same_seed, different_seeds" (the arms in the order
// of `arms`, the plan's), "stopped: every arm settled" or "stopped: max runs reached".
std::string AdaptiveFollowedText(const AdaptiveLook& look, const std::vector<ArmReport>& arms);
// Why the rule stopped, or that it has not: "stopped at look 2: the target was reached,
// every arm's interval at most 0.1 wide (runs: same_seed 20, different_seeds 20)",
// "stopped at look 20: max runs (200) reached, with the interval still 0.23 wide for
// same_seed", "in progress: the first look once the 10 runs per arm are done".
std::string AdaptiveOutcomeText(const AdaptiveState& adaptive);
// A number as NumPy prints it; "nan" for nullopt.
std::string FormatOptional(const std::optional<double>& value);
// "[0.5 0.8]": a loss and an accuracy as a NumPy array ("nan" where undefined).
std::string Row(const std::optional<double>& loss, const std::optional<double>& accuracy);

}  // namespace repro

#endif  // REPRO_ANALYSIS_REPORT_TEXT_H_
