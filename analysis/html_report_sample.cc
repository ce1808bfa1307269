// Writes a report of SampleExperiment() (analysis/sample_experiment.h) to standard
// output, for tests/html_report_test.sh: `html_report_sample [text|json|csv|html]`
// (default html).
#include <cstdio>
#include <string>

#include "analysis/analysis.h"
#include "analysis/report.h"
#include "analysis/sample_experiment.h"

int main(int argc, char** argv) {
  auto format = repro::ParseReportFormat(argc > 1 ? argv[1] : "html");
  if (!format.ok()) {
    std::fprintf(stderr, "html_report_sample: %s\n", std::string(format.status().message()).c_str());
    return 2;
  }
  auto body = repro::RenderReport(repro::Analyze(repro::SampleExperiment()), *format,
                                  *format == repro::ReportFormat::kCsv ? "same_seed" : "");
  if (!body.ok()) {
    std::fprintf(stderr, "html_report_sample: %s\n", std::string(body.status().message()).c_str());
    return 1;
  }
  std::fwrite(body->data(), 1, body->size(), stdout);
  return 0;
}
