// The HTML report (`reproctl report --format html`): one self-contained page that
// needs nothing but a browser: no network, no scripts, no external fonts or styles.
// Plots are inline SVG drawn here:
//   - strip plots of every done run's test accuracy and test loss, one strip per arm
//     on a shared axis (svg ids "strip-accuracy" and "strip-loss"; one <circle
//     class="run" data-arm="ARM"> per done run with a finite score);
//   - per arm, the validation accuracy of every run by epoch (svg id
//     "val-accuracy-<arm index>"; one <polyline class="run"> per run with two or more
//     epochs, a <circle class="run"> for a run with one);
//   - how many runs had diverged from the reference run by each epoch, one line per
//     arm whose runs start identical (svg id "divergence"; one <polyline class="arm">
//     per such arm and a <circle class="point"> per epoch of it);
// then the tables of the text report (equality, divergence, scores, instability, a
// <table class="per-class"> per arm (analysis/per_class_report.h),
// comparisons with the reference arm, runs with the same seeds across arms, the matrix
// across environments when there is one: a legend, a <table class="matrix"> and a row
// per cell; failed runs) and the text report itself.
//
// The markup is also well-formed XML (every element closed, attributes quoted, text
// escaped), so tests can check it with a simple parser.
//
// Thread safety: a pure function over a const Report.
#ifndef REPRO_ANALYSIS_HTML_REPORT_H_
#define REPRO_ANALYSIS_HTML_REPORT_H_

#include <string>

#include "analysis/analysis.h"

namespace repro {

// `arm_filter` as RenderReport's `arm` (it must name an arm of the report, or be ""):
// only that arm's plots and rows, and no sections across arms.
std::string RenderHtml(const Report& report, const std::string& arm_filter);

}  // namespace repro

#endif  // REPRO_ANALYSIS_HTML_REPORT_H_
