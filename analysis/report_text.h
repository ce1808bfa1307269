// The text report (RenderReport's "text", analysis/report.h) and the sentences it is
// made of, which the HTML report (analysis/html_report.h) puts in its tables.
//
// Thread safety: pure functions over const inputs.
#ifndef REPRO_ANALYSIS_REPORT_TEXT_H_
#define REPRO_ANALYSIS_REPORT_TEXT_H_

#include <optional>
#include <string>

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
// "threads_1 vs threads_2: 4 runs with the same seeds, ..."
std::string CrossArmLine(const CrossArmIdentity& identity);
// One cell of the matrix across environments: "=" (every pair identical), "epoch E"
// (the first epoch after which some pair's weights differ) or "final" (only final
// models differ), then the pairs and, where defined, the spread ratio: "epoch 0, 25
// pairs, ratio 1.25738"; "-" for no pair (nullptr).
std::string EnvironmentCellText(const EnvironmentCell* cell);
// What the cells of the matrix say: a parenthesis of a few lines.
std::string EnvironmentMatrixKey();
// A number as NumPy prints it; "nan" for nullopt.
std::string FormatOptional(const std::optional<double>& value);
// "[0.5 0.8]": a loss and an accuracy as a NumPy array ("nan" where undefined).
std::string Row(const std::optional<double>& loss, const std::optional<double>& accuracy);

}  // namespace repro

#endif  // REPRO_ANALYSIS_REPORT_TEXT_H_
