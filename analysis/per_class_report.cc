#include "analysis/per_class_report.h"

#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/svg_plots.h"

namespace repro {
namespace {

std::string Fixed(const std::optional<double>& value) {
  return value ? absl::StrFormat("%.6f", *value) : "-";
}

std::string Exact(const std::optional<double>& value) {
  return value ? absl::StrFormat("%.17g", *value) : "";
}

// What the figures are over, in words: "by true class; accuracy over 5 runs: mean and
// stdev (ddof 0); churn: ..., mean over 10 pairs".
std::string Caption(const PerClass& p) {
  if (p.grouped_by == ClassGrouping::kNone) return absl::StrCat("not measured: ", p.accuracy_absent);
  std::string out =
      p.grouped_by == ClassGrouping::kLabel
          ? absl::StrFormat("by true class; accuracy over %d run%s: mean and stdev (ddof 0)", p.runs,
                            p.runs == 1 ? "" : "s")
          : absl::StrCat("by the class the arm's first run with predictions predicts; no accuracy: ",
                         p.accuracy_absent);
  absl::StrAppend(&out, p.runs >= 2 ? absl::StrFormat("; churn: share of the class's examples "
                                                      "two runs predict differently, mean over "
                                                      "%d pair%s",
                                                      p.pairs, p.pairs == 1 ? "" : "s")
                                    : "; churn not measured (2 runs needed)");
  return out;
}

}  // namespace

std::string PerClassText(const PerClass& p) {
  std::string out = absl::StrCat("Per class, ", Caption(p));
  if (p.classes.empty()) return absl::StrCat(out, "\n");
  absl::StrAppend(&out, ":\n", absl::StrFormat("%6s %9s %14s %9s %9s\n", "class", "examples",
                                               "accuracy mean", "stdev", "churn"));
  for (const ClassFigures& c : p.classes) {
    absl::StrAppendFormat(&out, "%6d %9d %14s %9s %9s\n", c.label, c.examples,
                          Fixed(c.accuracy_mean), Fixed(c.accuracy_stdev), Fixed(c.churn));
  }
  return out;
}

void WritePerClassJson(JsonWriter& w, const PerClass& p) {
  w.Key("per_class");
  w.BeginObject();
  w.Field("grouped_by", ClassGroupingName(p.grouped_by));
  w.Field("runs", p.runs);
  w.Field("pairs", p.pairs);
  w.TextOrNull("accuracy_absent", p.accuracy_absent);
  w.Key("classes");
  w.BeginArray();
  for (const ClassFigures& c : p.classes) {
    w.BeginObject();
    w.Field("class", c.label);
    w.Field("examples", c.examples);
    w.Field("accuracy_mean", c.accuracy_mean);
    w.Field("accuracy_stdev", c.accuracy_stdev);
    w.Field("churn", c.churn);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

std::string PerClassCsv(const Report& report, const std::string& arm_filter) {
  std::string out = "arm,class,examples,accuracy_mean,accuracy_stdev,churn,runs,grouped_by\n";
  for (const ArmReport& arm : report.arms) {
    if (!arm_filter.empty() && arm.name != arm_filter) continue;
    const PerClass& p = arm.per_class;
    for (const ClassFigures& c : p.classes) {
      absl::StrAppend(&out, arm.name, ",", c.label, ",", c.examples, ",", Exact(c.accuracy_mean),
                      ",", Exact(c.accuracy_stdev), ",", Exact(c.churn), ",", p.runs, ",",
                      ClassGroupingName(p.grouped_by), "\n");
    }
  }
  return out;
}

std::string PerClassHtml(const Report& report, const std::string& arm_filter) {
  std::string out = "<h2>Per class</h2>\n";
  for (const auto& [arm, index] : ShownArms(report, arm_filter)) {
    const PerClass& p = arm->per_class;
    absl::StrAppend(&out, "<h3>", HtmlEscape(arm->name), "</h3>\n<p>",
                    HtmlEscape(Caption(p)), "</p>\n");
    if (p.classes.empty()) continue;
    absl::StrAppend(&out, "<table class=\"per-class\">\n<tr><th>class</th><th>examples</th>"
                          "<th>accuracy mean</th><th>accuracy stdev</th><th>churn</th></tr>\n");
    for (const ClassFigures& c : p.classes) {
      absl::StrAppend(&out, "<tr><td>", c.label, "</td><td>", c.examples, "</td><td>",
                      Fixed(c.accuracy_mean), "</td><td>", Fixed(c.accuracy_stdev), "</td><td>",
                      Fixed(c.churn), "</td></tr>\n");
    }
    absl::StrAppend(&out, "</table>\n");
  }
  return out;
}

}  // namespace repro
