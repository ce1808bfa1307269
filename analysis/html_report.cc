#include "analysis/html_report.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analysis/localization.h"
#include "analysis/per_class_report.h"
#include "analysis/planning.h"
#include "analysis/stats.h"
#include "analysis/report_text.h"
#include "analysis/svg_plots.h"

namespace repro {
namespace {

std::string Table(const std::vector<std::string>& headers,
                  const std::vector<std::vector<std::string>>& rows) {
  std::string out = "<table>\n<tr>";
  for (const std::string& h : headers) absl::StrAppend(&out, "<th>", HtmlEscape(h), "</th>");
  absl::StrAppend(&out, "</tr>\n");
  for (const std::vector<std::string>& row : rows) {
    absl::StrAppend(&out, "<tr>");
    for (const std::string& cell : row) absl::StrAppend(&out, "<td>", HtmlEscape(cell), "</td>");
    absl::StrAppend(&out, "</tr>\n");
  }
  absl::StrAppend(&out, "</table>\n");
  return out;
}

const char* Same(std::optional<bool> value) {
  return !value ? "no runs finished" : *value ? "True" : "False";
}

std::string EqualityTables(const Report& report, const std::string& filter) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> differences;
  for (const auto& [arm, index] : ShownArms(report, filter)) {
    rows.push_back({arm->name,
                    absl::StrFormat("%d/%d", arm->runs_done - arm->runs_corrupt, arm->runs_total),
                    Same(EqualityShown(*arm, arm->models_all_same)),
                    Same(EqualityShown(*arm, arm->data_all_same)),
                    Same(EqualityShown(*arm, arm->batches_all_same)),
                    Same(EqualityShown(*arm, arm->final_models_all_same)),
                    DivergenceLine(*arm),
                    arm->diverged_by_epoch ? DivergedByEpochLine(*arm) : "",
                    InstabilityLine(arm->instability)});
    for (const Difference& d : arm->differences) {
      differences.push_back(absl::StrCat(arm->name, " ", DifferenceLine(d, arm->reference_run)));
    }
  }
  std::string out = Table({"arm", "runs checked", "models all the same",
                           "XY data all the same", "batches all the same",
                           "final models all the same", "first divergence",
                           "runs diverged by epoch",
                           "instability (mean pairwise disagreement)"},
                          rows);
  if (!differences.empty()) {
    absl::StrAppend(&out, "<ul class=\"differences\">\n");
    for (const std::string& line : differences) {
      absl::StrAppend(&out, "<li>", HtmlEscape(line), "</li>\n");
    }
    absl::StrAppend(&out, "</ul>\n");
  }
  return out;
}

std::string ScoresTable(const Report& report, const std::string& filter) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [arm, index] : ShownArms(report, filter)) {
    for (const auto& [name, stats] : {std::make_pair("test loss", &arm->loss),
                                      std::make_pair("test accuracy", &arm->accuracy)}) {
      rows.push_back({arm->name, name, absl::StrCat(arm->runs_scored),
                      FormatOptional(stats->mean), FormatOptional(stats->stdev),
                      FormatOptional(stats->stdev_ddof1), FormatOptional(stats->min),
                      FormatOptional(stats->max)});
    }
  }
  return Table({"arm", "score", "runs scored", "mean", "stdev (ddof 0)", "stdev (ddof 1)",
                "min", "max"},
               rows);
}

std::string IntervalText(const std::optional<double>& low,
                         const std::optional<double>& high) {
  if (!low || !high) return "nan";
  return absl::StrCat("[", FormatNumpy(*low), ", ", FormatNumpy(*high), "]");
}

std::string ComparisonTable(const Report& report) {
  if (report.reference_arm.empty()) {
    return "<p>No reference arm: the experiment has no different_seeds arm (choose one "
           "with --reference-arm NAME).</p>\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const ArmComparison& c : report.comparisons) {
    for (const auto& [name, column] :
         {std::make_pair("test loss", &c.scores.loss),
          std::make_pair("test accuracy", &c.scores.accuracy)}) {
      rows.push_back({c.arm, name, FormatOptional(column->stdev_ratio),
                      FormatOptional(column->variance_share),
                      IntervalText(column->ci_low, column->ci_high),
                      FormatOptional(column->brown_forsythe_f),
                      FormatOptional(column->brown_forsythe_p),
                      column->plan.pilot_width ? FormatNumpy(*column->plan.pilot_width) : "-",
                      PlanWidthText(column->plan), PlanPowerText(column->plan)});
    }
  }
  return absl::StrCat(
      absl::StrFormat("<p>Reference arm: %s. 95%% CI: percentile bootstrap, %d "
                      "resamples, seed %d. Brown-Forsythe: test of equal variances "
                      "(Levene's, median-centred).</p>\n",
                      HtmlEscape(report.reference_arm), report.bootstrap_resamples,
                      report.seed),
      Table({"arm", "score", "stdev ratio", "variance share", "ratio 95% CI",
             "Brown-Forsythe F", "Brown-Forsythe p", "CI width (approx.)",
             absl::StrCat("runs for width ", FormatNumpy(report.ci_width)),
             PowerRowLabel(report.power_ratio)},
            rows),
      "<p class=\"method\">",
      HtmlEscape(PlanningMethodText(report.ci_width, report.power_ratio)), "</p>\n");
}

// The rule, one row per look and arm (the look and what followed it on its first row),
// and the outcome.
std::string AdaptiveSection(const Report& report) {
  const AdaptiveState& a = *report.adaptive;
  const auto shown = [](const std::optional<double>& value) {
    return value ? FormatNumpy(*value) : std::string("undefined");
  };
  std::vector<std::vector<std::string>> rows;
  for (size_t i = 0; i < a.looks.size(); ++i) {
    const AdaptiveLook& look = a.looks[i];
    const std::string followed = AdaptiveFollowedText(look, report.arms);
    if (look.arms.empty()) {
      rows.push_back({absl::StrCat(i + 1), "", "", "", "", "", "", "", "", followed});
    }
    for (size_t j = 0; j < look.arms.size(); ++j) {
      const AdaptiveArmLook& arm = look.arms[j];
      rows.push_back({j == 0 ? absl::StrCat(i + 1) : "", arm.arm, absl::StrCat(arm.runs),
                      absl::StrCat(arm.reference_runs), shown(arm.ratio),
                      arm.low && arm.high ? IntervalText(arm.low, arm.high) : "undefined",
                      shown(arm.width()),
                      arm.settled ? "settled" : "not settled",
                      RunsNeededText(arm), j == 0 ? followed : ""});
    }
  }
  std::string rule = AdaptiveRuleText(a);  // "runs: ...", a sentence here
  rule[0] = absl::ascii_toupper(rule[0]);
  return absl::StrCat(
      "<p>", HtmlEscape(rule), ".</p>\n<p class=\"method\">Each look's interval: ",
      HtmlEscape(AdaptiveLevelText(a)), ".</p>\n",
      rows.empty() ? "" : Table({"look", "arm", "runs", absl::StrCat("runs of ", a.reference),
                                 "stdev ratio", "interval", "width", "settled",
                                 "runs needed", "then"},
                                rows),
      "<p class=\"outcome\">Outcome: ", HtmlEscape(AdaptiveOutcomeText(a)), ".</p>\n");
}

// Per arm: the noise floor of test accuracy and the seconds per epoch.
std::string NoiseAndTimeTable(const Report& report, const std::string& filter) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [arm, index] : ShownArms(report, filter)) {
    rows.push_back({arm->name, NoiseFloorLine(*arm), EpochTimeLine(arm->seconds_per_epoch)});
  }
  return Table({"arm", "noise floor of test accuracy (Jordan, ICLR 2024)", "seconds per epoch"},
               rows);
}

std::string DeterminismCostSection(const Report& report) {
  std::vector<std::vector<std::string>> rows;
  for (const DeterminismCost& cost : report.determinism_costs) {
    rows.push_back({cost.deterministic_arm, cost.other_arm, absl::StrJoin(cost.switches, ", "),
                    FormatOptional(cost.overhead), IntervalText(cost.ci_low, cost.ci_high)});
  }
  return absl::StrCat("<p>", HtmlEscape(DeterminismKey(report.bootstrap_resamples)), "</p>\n",
                      Table({"deterministic arm", "other arm", "switches", "overhead",
                             "overhead 95% CI"},
                            rows));
}

std::string CrossArmTable(const Report& report) {
  std::vector<std::vector<std::string>> rows;
  for (const CrossArmIdentity& c : report.cross_arm) {
    std::string first;
    if (c.first_difference) {
      const Difference& d = *c.first_difference;
      first = absl::StrFormat("run #%d", d.run);
      if (d.index >= 0) absl::StrAppendFormat(&first, ", tensor %s (index %d)", d.tensor, d.index);
      if (d.epoch) absl::StrAppendFormat(&first, ", weights first differ after epoch %d", *d.epoch);
    }
    rows.push_back({c.arm, c.other, absl::StrCat(c.runs_with_same_seeds),
                    absl::StrCat(c.initial_identical), absl::StrCat(c.final_identical),
                    first});
  }
  if (rows.empty()) return "<p>Only one arm: nothing to compare across arms.</p>\n";
  return Table({"arm", "other arm", "runs with the same seeds", "initial models identical",
                "final models identical", "first difference"},
               rows);
}

// The legend of the environments, the upper triangle of the matrix (row and column
// headers E1, E2, ...), and one row per cell with its figures and differing fields.
std::string CrossEnvironmentSection(const CrossEnvironment& matrix) {
  std::string out = absl::StrCat(
      "<p>Runs with the same seeds that started identical (the same initial model and "
      "data), by where they trained. ",
      HtmlEscape(EnvironmentMatrixKey()), "</p>\n");
  std::vector<std::vector<std::string>> legend;
  for (const Environment& e : matrix.environments) {
    std::vector<std::string> fields;
    for (const auto& [key, value] : e.fields) fields.push_back(absl::StrCat(key, ": ", value));
    legend.push_back({EnvironmentName(e.id), e.label, absl::StrCat(e.runs),
                      absl::StrJoin(fields, ", ")});
  }
  absl::StrAppend(&out, Table({"environment", "label", "runs", "fields"}, legend));

  const int n = static_cast<int>(matrix.environments.size());
  absl::StrAppend(&out, "<table class=\"matrix\">\n<tr><th></th>");
  for (int j = 1; j <= n; ++j) absl::StrAppend(&out, "<th>", EnvironmentName(j), "</th>");
  absl::StrAppend(&out, "</tr>\n");
  for (int i = 1; i <= n; ++i) {
    absl::StrAppend(&out, "<tr><th>", EnvironmentName(i), "</th>");
    for (int j = 1; j <= n; ++j) {
      const std::string text = j < i ? "" : EnvironmentCellText(FindEnvironmentCell(matrix, i, j));
      absl::StrAppend(&out, "<td>", HtmlEscape(text), "</td>");
    }
    absl::StrAppend(&out, "</tr>\n");
  }
  absl::StrAppend(&out, "</table>\n");

  std::vector<std::vector<std::string>> rows;
  for (const EnvironmentCell& cell : matrix.cells) {
    rows.push_back(
        {cell.a == cell.b ? absl::StrCat(EnvironmentName(cell.a), " (within)")
                          : absl::StrCat(EnvironmentName(cell.a), " vs ", EnvironmentName(cell.b)),
         absl::StrCat(cell.pairs), cell.identical ? "True" : "False",
         cell.diverged_epoch ? absl::StrCat(*cell.diverged_epoch) : "-",
         cell.spread_ratio ? FormatNumpy(*cell.spread_ratio) : "-",
         absl::StrJoin(cell.differing_fields, ", ")});
  }
  absl::StrAppend(&out, Table({"environments", "pairs", "identical", "diverged at epoch",
                               "spread ratio", "differing fields"},
                              rows));
  return out;
}

std::string FailedRuns(const Report& report, const std::string& filter) {
  std::vector<std::vector<std::string>> rows;
  for (const RunView& run : report.runs) {
    if (!ArmShown(filter, run.arm) || run.state != RunState::kFailed) continue;
    rows.push_back({run.arm, absl::StrCat("#", run.index), absl::StrCat(run.attempts),
                    run.worker.empty() ? "none" : run.worker,
                    run.error.empty() ? "no error recorded" : run.error});
  }
  if (rows.empty()) return "";
  return absl::StrCat("<h2>Failed runs</h2>\n",
                      Table({"arm", "run", "attempts", "worker", "error"}, rows));
}

// Done runs that have no scores: diverged (compared, not scored) and corrupt (stored
// results that fail their checksums: neither compared nor scored).
std::string UnscoredRuns(const Report& report, const std::string& filter) {
  std::vector<std::vector<std::string>> rows;
  for (const RunView& run : report.runs) {
    if (!ArmShown(filter, run.arm) || run.state != RunState::kDone || Scored(run)) continue;
    rows.push_back({run.arm, absl::StrCat("#", run.index), run.worker.empty() ? "none" : run.worker,
                    run.corrupt.empty() ? "diverged" : "corrupt",
                    run.corrupt.empty() ? run.result.diverged : run.corrupt});
  }
  if (rows.empty()) return "";
  return absl::StrCat("<h2>Done runs without scores</h2>\n",
                      Table({"arm", "run", "worker", "why", "what"}, rows));
}

constexpr char kStyle[] = R"(
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
table.matrix td { white-space: nowrap; }
svg.plot { display: block; margin: 0.5em 0; }
svg .frame { fill: none; stroke: #888; }
svg .grid { stroke: #e3e3e3; }
svg .tick, svg .legend { font-size: 11px; fill: #444; }
svg .axis { font-size: 12px; fill: #222; }
svg circle.run { fill-opacity: 0.75; stroke: #333; stroke-width: 0.5; }
svg polyline { fill: none; }
svg polyline.run { stroke-width: 1.5; stroke-opacity: 0.6; }
svg polyline.arm { stroke-opacity: 0.8; }
svg .mean { stroke: #222; stroke-width: 2; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
)";

}  // namespace

std::string RenderHtml(const Report& report, const std::string& arm_filter) {
  std::string out;
  absl::StrAppend(&out,
                  "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
                  "<meta name=\"viewport\" content=\"width=device-width\"/>\n"
                  // An empty icon, so that no browser asks the network for favicon.ico.
                  "<link rel=\"icon\" href=\"data:,\"/>\n<title>repro report: ",
                  HtmlEscape(report.experiment), "</title>\n<style>", kStyle,
                  "</style>\n</head>\n<body>\n");
  const std::string text = RenderText(report, arm_filter);
  absl::StrAppend(&out, "<h1>repro report: ", HtmlEscape(report.experiment), "</h1>\n<p>",
                  HtmlEscape(text.substr(0, text.find('\n'))), "</p>\n");
  for (const std::string& note : report.notes) {
    absl::StrAppend(&out, "<p>Note: ", HtmlEscape(note), "</p>\n");
  }
  if (report.weights.files > 0) {
    absl::StrAppend(&out, "<p>", HtmlEscape(DescribeWeights(report.weights)), "</p>\n");
  }

  absl::StrAppend(&out, "<h2>Test scores of every run</h2>\n",
                  StripPlot(report, arm_filter, "strip-accuracy", "test accuracy",
                            &RunResult::test_accuracy),
                  StripPlot(report, arm_filter, "strip-loss", "test loss",
                            &RunResult::test_loss));
  absl::StrAppend(&out, "<h2>Validation accuracy by epoch</h2>\n",
                  ValidationPlots(report, arm_filter));
  absl::StrAppend(&out, "<h2>Divergence from the reference run, by epoch</h2>\n",
                  DivergencePlot(report, arm_filter));

  if (arm_filter.empty() && !report.localizations.empty()) {
    absl::StrAppend(&out, "<h2>Where runs part</h2>\n");
    for (const LocalizationState& l : report.localizations) {
      absl::StrAppend(&out, "<pre>", HtmlEscape(LocalizationText(l)), "</pre>\n");
    }
  }
  absl::StrAppend(&out, "<h2>Equality, divergence and instability</h2>\n",
                  EqualityTables(report, arm_filter));
  absl::StrAppend(&out, PerClassHtml(report, arm_filter));
  absl::StrAppend(&out, "<h2>Scores</h2>\n", ScoresTable(report, arm_filter));
  absl::StrAppend(&out, "<h2>Noise floor and time per epoch</h2>\n",
                  NoiseAndTimeTable(report, arm_filter));
  const auto has_arm = [&report](const char* name) {
    return std::any_of(report.arms.begin(), report.arms.end(),
                       [name](const ArmReport& arm) { return arm.name == name; });
  };
  if (arm_filter.empty() && has_arm(kSameSeedArm) && has_arm(kDifferentSeedsArm)) {
    absl::StrAppend(&out, "<p>Ratio of stdev ", kSameSeedArm, " / ", kDifferentSeedsArm,
                    " [test loss, test accuracy]: ",
                    Row(report.stdev_ratio_loss, report.stdev_ratio_accuracy), "</p>\n");
  }
  if (arm_filter.empty()) {
    absl::StrAppend(&out, "<h2>Spread compared with the reference arm</h2>\n",
                    ComparisonTable(report));
    if (report.adaptive) {
      absl::StrAppend(&out, "<h2>Adaptive run count</h2>\n", AdaptiveSection(report));
    }
    absl::StrAppend(&out, "<h2>Runs with the same seeds across arms</h2>\n",
                    CrossArmTable(report));
    if (report.cross_environment) {
      absl::StrAppend(&out, "<h2>Across environments</h2>\n",
                      CrossEnvironmentSection(*report.cross_environment));
    }
    if (!report.determinism_costs.empty()) {
      absl::StrAppend(&out, "<h2>Cost of determinism</h2>\n", DeterminismCostSection(report));
    }
  }
  absl::StrAppend(&out, FailedRuns(report, arm_filter), UnscoredRuns(report, arm_filter));
  absl::StrAppend(&out, "<h2>Text report</h2>\n<pre>", HtmlEscape(text), "</pre>\n");
  absl::StrAppend(&out, "</body>\n</html>\n");
  return out;
}

}  // namespace repro
