// The per-class figures (analysis/per_class.h) as each renderer shows them, so that the
// renderers (report_text.cc, report.cc, html_report.cc) each call one function: text (a
// table per arm), JSON (`per_class` of an arm), CSV (RenderReport's "csv-per-class": one
// row per arm and class, with a header) and HTML (a table per arm).
//
// Thread safety: pure functions over const inputs.
#ifndef REPRO_ANALYSIS_PER_CLASS_REPORT_H_
#define REPRO_ANALYSIS_PER_CLASS_REPORT_H_

#include <string>

#include "analysis/analysis.h"
#include "analysis/json_writer.h"

namespace repro {

// Lines for the text report's arm, after its instability: "Per class (...):" then a row
// per class: class, examples, accuracy mean, stdev (ddof 0), churn; "-" where undefined.
std::string PerClassText(const PerClass& per_class);

// The arm's "per_class" key and object (README, "The JSON report").
void WritePerClassJson(JsonWriter& w, const PerClass& per_class);

// "arm,class,examples,accuracy_mean,accuracy_stdev,churn,runs,grouped_by" and a row per
// class of every shown arm (`arm_filter` "" for all), values "%.17g", undefined ones empty.
std::string PerClassCsv(const Report& report, const std::string& arm_filter);

// <h2>Per class</h2>, then per shown arm an <h3> and a <table class="per-class">.
std::string PerClassHtml(const Report& report, const std::string& arm_filter);

}  // namespace repro

#endif  // REPRO_ANALYSIS_PER_CLASS_REPORT_H_
