#include "analysis/html_report.h"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "analysis/report.h"
#include "analysis/sample_experiment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace repro {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A small XML well-formedness check, enough for the report's markup: every element is
// closed in order (or self-closed), attribute values are quoted, '<' never appears in
// text, and every '&' starts one of the entities the renderer writes. Returns "" when
// well-formed, else what is wrong and where.
std::string CheckWellFormed(const std::string& html) {
  std::vector<std::string> open;
  size_t i = 0;
  auto where = [&](size_t at) { return " at offset " + std::to_string(at); };
  while (i < html.size()) {
    const char c = html[i];
    if (c == '&') {
      bool known = false;
      for (const char* entity : {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;"}) {
        known |= html.compare(i, std::string(entity).size(), entity) == 0;
      }
      if (!known) return "bare '&'" + where(i);
      ++i;
      continue;
    }
    if (c == '>') return "bare '>'" + where(i);
    if (c != '<') {
      ++i;
      continue;
    }
    if (html.compare(i, 9, "<!DOCTYPE") == 0) {
      i = html.find('>', i) + 1;
      continue;
    }
    const size_t end = html.find('>', i);
    if (end == std::string::npos) return "unterminated tag" + where(i);
    std::string tag = html.substr(i + 1, end - i - 1);
    if (!tag.empty() && tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) {
        return "</" + name + "> closes <" + (open.empty() ? "nothing" : open.back()) + ">" +
               where(i);
      }
      open.pop_back();
      i = end + 1;
      continue;
    }
    const bool self_closed = !tag.empty() && tag.back() == '/';
    if (self_closed) tag.pop_back();
    const size_t space = tag.find(' ');
    const std::string name = tag.substr(0, space);
    if (name.empty() || name.find_first_of("<\"'=") != std::string::npos) {
      return "bad tag name '" + name + "'" + where(i);
    }
    // Attributes: name="value" pairs, values without '<' or '"'.
    size_t a = space;
    while (a != std::string::npos && a < tag.size()) {
      while (a < tag.size() && tag[a] == ' ') ++a;
      if (a >= tag.size()) break;
      const size_t eq = tag.find('=', a);
      if (eq == std::string::npos || eq + 1 >= tag.size() || tag[eq + 1] != '"') {
        return "unquoted attribute in <" + name + ">" + where(i);
      }
      const size_t close = tag.find('"', eq + 2);
      if (close == std::string::npos) return "unterminated attribute" + where(i);
      a = close + 1;
    }
    i = end + 1;
    if (self_closed) continue;
    if (name == "style") {  // raw text up to </style>
      const size_t close = html.find("</style>", i);
      if (close == std::string::npos) return "unclosed <style>";
      i = close;
    }
    open.push_back(name);
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

// How often `needle` occurs in `text`.
int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// The markup of the <svg> with this id, up to its </svg>; "" when there is none.
std::string Svg(const std::string& html, const std::string& id) {
  const size_t start = html.find("<svg id=\"" + id + "\"");
  if (start == std::string::npos) return "";
  return html.substr(start, html.find("</svg>", start) - start);
}

std::string Html(const ExperimentView& view, const std::string& arm = "") {
  absl::StatusOr<std::string> out = RenderReport(Analyze(view), ReportFormat::kHtml, arm);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

TEST(HtmlReportTest, TheCheckerCatchesMalformedMarkup) {
  EXPECT_EQ(CheckWellFormed("<p><b>x</b></p>"), "");
  EXPECT_EQ(CheckWellFormed("<p a=\"1\"><br/></p>"), "");
  EXPECT_THAT(CheckWellFormed("<p><b>x</p></b>"), HasSubstr("closes <b>"));
  EXPECT_THAT(CheckWellFormed("<p>"), HasSubstr("unclosed <p>"));
  EXPECT_THAT(CheckWellFormed("<p a=1></p>"), HasSubstr("unquoted"));
  EXPECT_THAT(CheckWellFormed("<p>a & b</p>"), HasSubstr("bare '&'"));
}

TEST(HtmlReportTest, WellFormedSelfContainedWithOnePlotMarkPerRun) {
  const std::string html = Html(SampleExperiment());
  EXPECT_EQ(CheckWellFormed(html), "");
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  // Nothing from the network, nothing to run.
  EXPECT_THAT(html, Not(HasSubstr("http://")));
  EXPECT_THAT(html, Not(HasSubstr("https://")));
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, Not(HasSubstr("url(")));

  // 2 strip plots + one validation plot per arm (3) + the divergence plot.
  EXPECT_EQ(Count(html, "<svg "), 6);
  for (const char* id : {"strip-accuracy", "strip-loss"}) {
    const std::string svg = Svg(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(Count(svg, "<circle class=\"run\""), 15) << id;
    for (const char* arm : {"same_seed", "different_seeds", "threads_2"}) {
      EXPECT_EQ(Count(svg, std::string("<circle class=\"run\" data-arm=\"") + arm + "\""),
                5)
          << id << " " << arm;
    }
    EXPECT_EQ(Count(svg, "<line class=\"mean\""), 3) << id;
  }
  for (const char* id : {"val-accuracy-0", "val-accuracy-1", "val-accuracy-2"}) {
    const std::string svg = Svg(html, id);
    ASSERT_FALSE(svg.empty()) << id;
    EXPECT_EQ(Count(svg, "<polyline class=\"run\""), 5) << id;
  }
  // same_seed and threads_2 start identical; different_seeds does not.
  const std::string divergence = Svg(html, "divergence");
  EXPECT_EQ(Count(divergence, "<polyline class=\"arm\""), 2);
  EXPECT_EQ(Count(divergence, "<circle class=\"point\""), 12);  // 2 arms x 6 epochs
  EXPECT_THAT(divergence, HasSubstr("same_seed, epoch 3: 2 of 4 runs diverged"));

  // The tables of the text report.
  for (const char* text :
       {"Equality, divergence and instability", "Spread compared with the reference arm",
        "Reference arm: different_seeds", "Runs with the same seeds across arms",
        "<td>same_seed</td><td>threads_2</td><td>5</td><td>5</td><td>0</td>",
        "Ratio of stdev same_seed / different_seeds", "by batch 7 of it at the latest",
        "Comparison results for threads_2:",
        // Across environments: same_seed (E1), different_seeds (E2), threads_2 (E3).
        "<h2>Across environments</h2>", "<td>E3</td><td>E3: host-a, 2 threads</td><td>5</td>",
        "<tr><th>E1</th><td>epoch 2, 10 pairs</td><td>epoch 2, 5 pairs</td><td>epoch 0, 25 "
        "pairs, ratio ",
        "<tr><th>E3</th><td></td><td></td><td>=, 10 pairs</td></tr>",
        "<tr><td>E2 vs E3</td><td>5</td><td>False</td><td>0</td><td>-</td><td>host, "
        "threads</td></tr>"}) {
    EXPECT_THAT(html, HasSubstr(text));
  }
}

TEST(HtmlReportTest, ArmFilterShowsOneArm) {
  const std::string html = Html(SampleExperiment(), "threads_2");
  EXPECT_EQ(CheckWellFormed(html), "");
  EXPECT_EQ(Count(html, "<svg "), 4);
  EXPECT_EQ(Count(Svg(html, "strip-accuracy"), "<circle class=\"run\""), 5);
  EXPECT_FALSE(Svg(html, "val-accuracy-2").empty());  // ids keep the arm's position
  EXPECT_TRUE(Svg(html, "val-accuracy-0").empty());
  EXPECT_THAT(html, Not(HasSubstr("same_seed")));
  EXPECT_THAT(html, Not(HasSubstr("Across environments")));
}

TEST(HtmlReportTest, EscapesTextAndSkipsUndefinedScores) {
  ExperimentView view = SampleExperiment();
  view.name = "a<b>&\"c\"";
  view.runs[1].result.test_accuracy = std::nan("");
  view.runs[2].state = RunState::kFailed;
  view.runs[2].error = "<script>alert('x')</script> & more";
  const std::string html = Html(view);
  EXPECT_EQ(CheckWellFormed(html), "");
  EXPECT_THAT(html, Not(HasSubstr("<script")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more"));
  EXPECT_THAT(html, HasSubstr("<title>repro report: a&lt;b&gt;&amp;&quot;c&quot;</title>"));
  // One failed run and one NaN score: 13 accuracy points, 14 loss points.
  EXPECT_EQ(Count(Svg(html, "strip-accuracy"), "<circle class=\"run\""), 13);
  EXPECT_EQ(Count(Svg(html, "strip-loss"), "<circle class=\"run\""), 14);
  EXPECT_THAT(html, Not(HasSubstr("\"nan\"")));
  EXPECT_THAT(html, HasSubstr("<h2>Failed runs</h2>"));
}

TEST(HtmlReportTest, EmptyAndSingleEpochExperimentsStillRender) {
  ExperimentView empty;
  empty.name = "empty";
  empty.arms = {"same_seed"};
  empty.runs_per_arm = 2;
  empty.epochs = 1;
  std::string html = Html(empty);
  EXPECT_EQ(CheckWellFormed(html), "");
  EXPECT_EQ(Count(html, "<circle"), 0);
  EXPECT_THAT(html, HasSubstr("no divergence to plot"));

  ExperimentView one = SampleExperiment();
  for (RunView& run : one.runs) run.result.epochs.resize(1);
  html = Html(one);
  EXPECT_EQ(CheckWellFormed(html), "");
  // A run with one epoch is a point, not a line.
  EXPECT_EQ(Count(Svg(html, "val-accuracy-0"), "<circle class=\"run\""), 5);
  EXPECT_EQ(Count(Svg(html, "val-accuracy-0"), "<polyline"), 0);
  EXPECT_THAT(html, Not(HasSubstr("nan")));
}


TEST(HtmlReportTest, ShowsTheAdaptiveRunCountLookByLook) {
  ExperimentView view = SampleExperiment();
  std::string html = Html(view);
  EXPECT_EQ(CheckWellFormed(html), "");
  for (const char* text : {
           "<h2>Adaptive run count</h2>\n<p>Runs: 3 per arm, then 2 more per round to at "
           "most 9, until the stdev ratio of test accuracy against different_seeds has an "
           "interval at most 0.1 wide.</p>\n",
           "at level 98.75 % (0.05 Bonferroni-split over 4 possible looks)",
           "<th>look</th><th>arm</th><th>runs</th><th>runs of different_seeds</th>",
           "<tr><td>1</td><td>same_seed</td><td>3</td><td>3</td><td>0.11</td><td>[0.05, "
           "0.24]</td><td>0.19</td><td>not settled</td><td>6</td><td>+2 runs to same_seed, "
           "different_seeds</td></tr>\n<tr><td></td><td>threads_2</td><td>3</td><td>3</td>"
           "<td>0</td><td>[0, 0]</td><td>0</td><td>settled</td><td>3</td><td></td>"
           "</tr>\n",
           "<td>stopped: every arm settled</td>",
           "<p class=\"outcome\">Outcome: stopped at look 2: the target was reached"}) {
    EXPECT_THAT(html, HasSubstr(text));
  }
  view.adaptive->looks.pop_back();  // still to look again
  view.adaptive->looks.back().arms[0].ratio = std::nullopt;
  view.adaptive->looks.back().arms[0].low = std::nullopt;
  html = Html(view);
  EXPECT_EQ(CheckWellFormed(html), "");
  EXPECT_THAT(html, HasSubstr("<td>same_seed</td><td>3</td><td>3</td><td>undefined</td>"
                              "<td>undefined</td><td>undefined</td>"));
  EXPECT_THAT(html, HasSubstr("Outcome: in progress: 1 look so far"));
  view.adaptive.reset();
  EXPECT_THAT(Html(view), Not(HasSubstr("Adaptive run count")));
}

}  // namespace
}  // namespace repro
