// Renders a Report (analysis/analysis.h) for `reproctl report` and the control
// service: as text modelled on the original study's printout, as JSON with the keys
// documented in the README ("The JSON report"; null wherever a value is undefined,
// never NaN), as CSV score rows that NumPy's genfromtxt(delimiter=',') reads back
// bit-exactly, or as one self-contained HTML page with inline SVG plots
// (analysis/html_report.h).
//
// Rendering never refuses an incomplete experiment: the caller decides, from
// Report::complete, whether to render one (reproctl's --partial) and how to exit.
//
// Thread safety: pure functions over a const Report; safe to call concurrently.
#ifndef REPRO_ANALYSIS_REPORT_H_
#define REPRO_ANALYSIS_REPORT_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "analysis/analysis.h"

namespace repro {

enum class ReportFormat { kText, kJson, kCsv, kHtml, kCsvPerClass };

// "text", "json", "csv", "html" or "csv-per-class". InvalidArgument naming the value
// and the accepted ones.
absl::StatusOr<ReportFormat> ParseReportFormat(std::string_view name);
const char* ReportFormatName(ReportFormat format);

// Renders `report`; the result ends with a newline (CSV of an arm with no done run
// is empty). `arm` non-empty restricts the arms and runs shown to that arm (the
// experiment-wide first line of the text and the JSON's top-level counts, stdev_ratio,
// comparisons, cross_arm and cross_environment stay as they are; the text and HTML
// leave out the sections across arms and environments). Errors (InvalidArgument): an
// arm the report does not have, naming it and the arms; CSV without an arm ("csv needs
// --arm NAME").
//
// Text: per arm, the equality checks over done runs ("number of models checked:
// done/total") with one line per differing run, the first divergence and how many runs
// had diverged by each epoch, failed runs with their errors, the scores [test loss,
// test accuracy] printed like NumPy arrays with 8 decimals, the instability, the
// per-class table (analysis/per_class_report.h), the noise floor of test accuracy and
// the seconds per epoch; then the same-seed over different-seeds ratio, each arm
// against the reference arm (with the runs needed), the runs with the same seeds across
// arms, the matrix across environments (analysis/cross_environment.h; absent when there
// is none) and the cost of determinism (absent when no two arms differ only in
// determinism switches). Epoch numbers are 0-based,
// as stored.
// JSON: pretty-printed, keys in the documented order; doubles in the shortest form that
// reads back as the same double (so a stdev of 0 is exactly 0).
// CSV: one "loss,accuracy" row per done run of the arm, in index order, no header,
// each value "%.17g"; it has no sections, so none across arms or environments.
// csv-per-class: the per-class figures (analysis/per_class_report.h PerClassCsv), a
// header and one row per arm and class; `arm` optional.
// HTML: see analysis/html_report.h.
absl::StatusOr<std::string> RenderReport(const Report& report, ReportFormat format,
                                         const std::string& arm);

// The same text, handed to `sink` as it is rendered: JSON in pieces of about 1 MB (a
// report of 10,000 runs x 200 epochs is some 800 MB of JSON, which need not be held
// whole), the other formats in one piece. The errors are RenderReport's, returned
// before anything reaches the sink.
using ReportSink = std::function<void(std::string_view)>;
absl::Status WriteReport(const Report& report, ReportFormat format, const std::string& arm,
                         const ReportSink& sink);

// Pieces of the JSON report that analyze-scores writes too: one entry of "comparisons",
// and the "planning" key with its object (how the runs needed are computed).
class JsonWriter;
void WriteComparisonJson(JsonWriter& w, const ArmComparison& comparison);
void WritePlanningJson(JsonWriter& w, double ci_width, double power_ratio);

}  // namespace repro

#endif  // REPRO_ANALYSIS_REPORT_H_
