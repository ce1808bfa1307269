// Writes a report of SampleExperiment() (analysis/sample_experiment.h), with where two of
// its runs part (one localization answered, one failed), to standard output, for
// tests/html_report_test.sh: `html_report_sample [text|json|csv|html]` (default html).
// A fourth arm, nondeterministic, repeats same_seed's runs with deterministic algorithms
// off and epochs a fifth shorter, so that the page shows the cost of determinism.
#include <cstdio>
#include <string>
#include <utility>

#include "analysis/analysis.h"
#include "analysis/report.h"
#include "analysis/sample_experiment.h"

int main(int argc, char** argv) {
  auto format = repro::ParseReportFormat(argc > 1 ? argv[1] : "html");
  if (!format.ok()) {
    std::fprintf(stderr, "html_report_sample: %s\n", std::string(format.status().message()).c_str());
    return 2;
  }
  repro::ExperimentView view = repro::SampleExperiment();
  const size_t runs = view.runs.size();
  for (size_t i = 0; i < runs; ++i) {
    if (view.runs[i].arm != "same_seed") continue;
    repro::RunView run = view.runs[i];
    run.arm = "nondeterministic";
    run.result.environment["deterministic_algorithms"] = "false";
    for (repro::EpochRecord& epoch : run.result.epochs) epoch.seconds *= 0.8;
    view.runs.push_back(std::move(run));
  }
  view.arms.push_back("nondeterministic");
  repro::LocalizationResult found;
  found.batches = 4;
  found.batch = 1;
  found.a_reproduced = found.b_reproduced = 1;
  found.op_kind = "outputs";
  found.op_index = 45;
  found.op_name = "aten::convolution_backward";
  found.op_module = "conv1";
  found.op_phase = "backward";
  found.inputs_equal = true;
  found.values = 208;
  found.differing_values = 193;
  found.max_abs = 1.44e-8;
  found.max_ulps = 294;
  found.trace_ops = 128;
  found.worker = "w<1>";  // escaped in HTML
  view.localizations.push_back({1, "done", "same_seed#0", "threads_2#0", 0, "w<1>", "", found, ""});
  view.localizations.push_back({2, "failed", "same_seed#0", "threads_2#1", 0, "",
                                "its workers stopped answering 3 times; the last was w<2>", {}, ""});
  auto body = repro::RenderReport(repro::Analyze(std::move(view)), *format,
                                  *format == repro::ReportFormat::kCsv ? "same_seed" : "");
  if (!body.ok()) {
    std::fprintf(stderr, "html_report_sample: %s\n", std::string(body.status().message()).c_str());
    return 1;
  }
  std::fwrite(body->data(), 1, body->size(), stdout);
  return 0;
}
