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
// the comparisons with the reference arm, the runs with the same seeds). Otherwise
// that arm only (it must exist), without the sections across arms.
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
// A number as NumPy prints it; "nan" for nullopt.
std::string FormatOptional(const std::optional<double>& value);
// "[0.5 0.8]": a loss and an accuracy as a NumPy array ("nan" where undefined).
std::string Row(const std::optional<double>& loss, const std::optional<double>& accuracy);

}  // namespace repro

#endif  // REPRO_ANALYSIS_REPORT_TEXT_H_
