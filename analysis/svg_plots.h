// The inline SVG plots of the HTML report (analysis/html_report.h), drawn without
// any library or script: strip plots of test scores, validation accuracy by epoch, and
// divergence counts by epoch. Each returns markup that is also well-formed XML.
//
// Thread safety: pure functions over const inputs.
#ifndef REPRO_ANALYSIS_SVG_PLOTS_H_
#define REPRO_ANALYSIS_SVG_PLOTS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "analysis/analysis.h"

namespace repro {

// Text or an attribute value made safe for HTML and XML: & < > " ' as entities.
std::string HtmlEscape(std::string_view text);

// Whether `arm` is shown under RenderReport's arm filter ("" shows every arm).
bool ArmShown(const std::string& arm_filter, const std::string& arm);

// The arms shown, each with its position in report.arms (which fixes its colour and
// the id of its plot).
std::vector<std::pair<const ArmReport*, size_t>> ShownArms(const Report& report,
                                                           const std::string& arm_filter);

// One <svg id="`id`">: per shown arm a strip of its scored runs' `field` (a <circle
// class="run" data-arm="ARM" data-run="I"> each, non-finite values left out) on a
// shared axis, with the arm's mean as a <line class="mean">.
std::string StripPlot(const Report& report, const std::string& arm_filter,
                      const std::string& id, const std::string& label,
                      double RunResult::*field);

// Per shown arm, an <h3> and an <svg id="val-accuracy-<position>"> with every run's
// validation accuracy by epoch: a <polyline class="run"> per run with two or more
// epochs, a <circle class="run"> for a run with one. The arms share the y axis.
std::string ValidationPlots(const Report& report, const std::string& arm_filter);

// <svg id="divergence">: per shown arm with diverged_by_epoch, a <polyline class="arm">
// and a <circle class="point"> per epoch; a paragraph instead when no arm has one.
std::string DivergencePlot(const Report& report, const std::string& arm_filter);

}  // namespace repro

#endif  // REPRO_ANALYSIS_SVG_PLOTS_H_
