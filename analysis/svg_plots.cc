#include "analysis/svg_plots.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analysis/stats.h"

namespace repro {
namespace {

// Tableau 10: distinguishable, and readable by most colour-blind viewers.
constexpr const char* kPalette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                    "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                    "#9c755f", "#bab0ac"};

const char* ArmColour(size_t arm_index) {
  return kPalette[arm_index % (sizeof(kPalette) / sizeof(kPalette[0]))];
}

std::string Px(double v) { return absl::StrFormat("%.1f", v); }

struct Scale {
  double d0, d1, r0, r1;
  double operator()(double v) const {
    if (d1 == d0) return (r0 + r1) / 2;
    return r0 + (v - d0) * (r1 - r0) / (d1 - d0);
  }
};

// The plotted range of some values: padded so that points do not sit on the frame,
// and widened around a single value so that it is drawn in the middle.
std::pair<double, double> Domain(double lo, double hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (hi == lo) {
    const double pad = std::max(std::fabs(lo) * 0.05, 1e-3);
    return {lo - pad, hi + pad};
  }
  const double pad = (hi - lo) * 0.08;
  return {lo - pad, hi + pad};
}

struct Ticks {
  std::vector<double> values;
  int decimals = 0;
};

// About `target` round-numbered ticks (steps of 1, 2 or 5 times a power of ten).
Ticks NiceTicks(double lo, double hi, int target) {
  Ticks ticks;
  const double span = hi - lo;
  if (!(span > 0) || !std::isfinite(span)) return ticks;
  const double raw = span / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / magnitude;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
  ticks.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  const double first = std::ceil(lo / step - 1e-9);
  for (int i = 0; i < 100; ++i) {
    const double v = (first + i) * step;
    if (v > hi + step * 1e-9) break;
    ticks.values.push_back(v);
  }
  return ticks;
}

// The frame every plot shares.
constexpr double kWidth = 760;
constexpr double kHeight = 300;
constexpr double kLeft = 70;
constexpr double kRight = 150;  // room for a legend
constexpr double kTop = 16;
constexpr double kBottom = 48;

std::string SvgOpen(const std::string& id, const std::string& title) {
  return absl::StrFormat(
      "<svg id=\"%s\" class=\"plot\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
      "role=\"img\"><title>%s</title>\n"
      "<rect class=\"frame\" x=\"%s\" y=\"%s\" width=\"%s\" height=\"%s\"></rect>\n",
      HtmlEscape(id), static_cast<int>(kWidth), static_cast<int>(kHeight),
      static_cast<int>(kWidth), static_cast<int>(kHeight), HtmlEscape(title), Px(kLeft),
      Px(kTop), Px(kWidth - kLeft - kRight), Px(kHeight - kTop - kBottom));
}

// Horizontal grid lines with labels on the left, and the axis title.
std::string YAxis(const Scale& y, const Ticks& ticks, const std::string& label) {
  std::string out;
  for (double v : ticks.values) {
    const double py = y(v);
    absl::StrAppendFormat(
        &out,
        "<line class=\"grid\" x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\"></line>"
        "<text class=\"tick\" x=\"%s\" y=\"%s\" text-anchor=\"end\">%.*f</text>\n",
        Px(kLeft), Px(py), Px(kWidth - kRight), Px(py), Px(kLeft - 6), Px(py + 4),
        ticks.decimals, v);
  }
  absl::StrAppendFormat(&out,
                        "<text class=\"axis\" transform=\"translate(16 %s) rotate(-90)\" "
                        "text-anchor=\"middle\">%s</text>\n",
                        Px((kTop + kHeight - kBottom) / 2), HtmlEscape(label));
  return out;
}

// Epoch ticks along the bottom, and the axis title.
std::string EpochAxis(const Scale& x, int epochs) {
  std::string out;
  Ticks ticks = NiceTicks(0, std::max(epochs - 1, 1), 8);
  if (epochs <= 1) ticks.values = {0};
  for (double v : ticks.values) {
    if (v != std::floor(v) || v > epochs - 1) continue;
    absl::StrAppendFormat(&out,
                          "<text class=\"tick\" x=\"%s\" y=\"%s\" "
                          "text-anchor=\"middle\">%d</text>\n",
                          Px(x(v)), Px(kHeight - kBottom + 16), static_cast<int>(v));
  }
  absl::StrAppendFormat(&out,
                        "<text class=\"axis\" x=\"%s\" y=\"%s\" "
                        "text-anchor=\"middle\">epoch</text>\n",
                        Px((kLeft + kWidth - kRight) / 2), Px(kHeight - 10));
  return out;
}

std::string Legend(const std::vector<std::pair<std::string, size_t>>& entries) {
  std::string out;
  double y = kTop + 8;
  for (const auto& [name, arm_index] : entries) {
    absl::StrAppendFormat(&out,
                          "<rect x=\"%s\" y=\"%s\" width=\"12\" height=\"12\" "
                          "fill=\"%s\"></rect><text class=\"legend\" x=\"%s\" "
                          "y=\"%s\">%s</text>\n",
                          Px(kWidth - kRight + 12), Px(y), ArmColour(arm_index),
                          Px(kWidth - kRight + 30), Px(y + 10), HtmlEscape(name));
    y += 18;
  }
  return out;
}

// The runs whose test scores are scores (Scored: done, intact, not diverged).
std::vector<const RunView*> ScoredRuns(const Report& report, const std::string& arm) {
  std::vector<const RunView*> done;
  for (const RunView& run : report.runs) {
    if (run.arm == arm && Scored(run)) done.push_back(&run);
  }
  std::stable_sort(done.begin(), done.end(), [](const RunView* a, const RunView* b) {
    return a->index < b->index;
  });
  return done;
}

int MaxEpochs(const Report& report, const std::string& filter) {
  size_t epochs = static_cast<size_t>(std::max(report.epochs, 0));
  for (const RunView& run : report.runs) {
    if (ArmShown(filter, run.arm)) epochs = std::max(epochs, run.result.epochs.size());
  }
  return static_cast<int>(epochs);
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

bool ArmShown(const std::string& arm_filter, const std::string& arm) {
  return arm_filter.empty() || arm_filter == arm;
}

std::vector<std::pair<const ArmReport*, size_t>> ShownArms(const Report& report,
                                                           const std::string& filter) {
  std::vector<std::pair<const ArmReport*, size_t>> arms;
  for (size_t i = 0; i < report.arms.size(); ++i) {
    if (ArmShown(filter, report.arms[i].name)) arms.push_back({&report.arms[i], i});
  }
  return arms;
}

std::string StripPlot(const Report& report, const std::string& filter,
                      const std::string& id, const std::string& label,
                      double RunResult::*field) {
  const auto arms = ShownArms(report, filter);
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (const auto& [arm, index] : arms) {
    for (const RunView* run : ScoredRuns(report, arm->name)) {
      const double v = run->result.*field;
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  const auto [d0, d1] = Domain(lo, hi);
  const Scale y{d0, d1, kHeight - kBottom, kTop};
  std::string out = SvgOpen(id, absl::StrCat(label, " of every done run, by arm"));
  absl::StrAppend(&out, YAxis(y, NiceTicks(d0, d1, 5), label));
  const double band = (kWidth - kLeft - kRight) / std::max<size_t>(arms.size(), 1);
  for (size_t a = 0; a < arms.size(); ++a) {
    const ArmReport& arm = *arms[a].first;
    const char* colour = ArmColour(arms[a].second);
    const double centre = kLeft + band * (a + 0.5);
    const double spread = std::min(band * 0.3, 60.0);
    absl::StrAppendFormat(&out,
                          "<text class=\"tick\" x=\"%s\" y=\"%s\" "
                          "text-anchor=\"middle\">%s</text>\n",
                          Px(centre), Px(kHeight - kBottom + 16), HtmlEscape(arm.name));
    std::vector<double> values;
    int k = 0;
    for (const RunView* run : ScoredRuns(report, arm.name)) {
      const double v = run->result.*field;
      if (!std::isfinite(v)) continue;
      values.push_back(v);
      // A deterministic jitter (golden-ratio sequence) so that equal scores stay visible.
      const double jitter = std::fmod(k++ * 0.6180339887498949, 1.0) - 0.5;
      absl::StrAppendFormat(&out,
                            "<circle class=\"run\" data-arm=\"%s\" data-run=\"%d\" "
                            "cx=\"%s\" cy=\"%s\" r=\"4\" fill=\"%s\"><title>%s run #%d: "
                            "%s</title></circle>\n",
                            HtmlEscape(arm.name), run->index, Px(centre + jitter * 2 * spread),
                            Px(y(v)), colour, HtmlEscape(arm.name), run->index,
                            FormatNumpy(v));
    }
    if (!values.empty()) {
      const double mean = y(Mean(values));
      absl::StrAppendFormat(&out,
                            "<line class=\"mean\" x1=\"%s\" y1=\"%s\" x2=\"%s\" "
                            "y2=\"%s\"><title>%s mean: %s</title></line>\n",
                            Px(centre - spread - 8), Px(mean), Px(centre + spread + 8),
                            Px(mean), HtmlEscape(arm.name), FormatNumpy(Mean(values)));
    }
  }
  absl::StrAppend(&out, "</svg>\n");
  return out;
}

// One plot per arm, sharing the y axis: the validation accuracy of every run that
// recorded epochs (done, running or failed), by epoch.
std::string ValidationPlots(const Report& report, const std::string& filter) {
  const int epochs = MaxEpochs(report, filter);
  double lo = std::numeric_limits<double>::infinity();
  double hi = -lo;
  for (const RunView& run : report.runs) {
    if (!ArmShown(filter, run.arm)) continue;
    for (const EpochRecord& e : run.result.epochs) {
      if (!std::isfinite(e.val_accuracy)) continue;
      lo = std::min(lo, e.val_accuracy);
      hi = std::max(hi, e.val_accuracy);
    }
  }
  const auto [d0, d1] = Domain(lo, hi);
  const Scale y{d0, d1, kHeight - kBottom, kTop};
  const Scale x{0, static_cast<double>(std::max(epochs - 1, 0)), kLeft + 12,
                kWidth - kRight - 12};
  std::string out;
  for (const auto& [arm, arm_index] : ShownArms(report, filter)) {
    absl::StrAppend(&out, "<h3>", HtmlEscape(arm->name), "</h3>\n");
    absl::StrAppend(&out, SvgOpen(absl::StrCat("val-accuracy-", arm_index),
                                  absl::StrCat("Validation accuracy by epoch, every run of ",
                                               arm->name)));
    absl::StrAppend(&out, YAxis(y, NiceTicks(d0, d1, 5), "validation accuracy"),
                    EpochAxis(x, epochs));
    for (const RunView& run : report.runs) {
      // A corrupt result's epochs are not what was trained.
      if (run.arm != arm->name || run.result.epochs.empty() || !run.corrupt.empty()) continue;
      std::vector<std::string> points;
      for (const EpochRecord& e : run.result.epochs) {
        if (!std::isfinite(e.val_accuracy)) continue;
        points.push_back(absl::StrCat(Px(x(e.epoch)), ",", Px(y(e.val_accuracy))));
      }
      const std::string title =
          absl::StrFormat("%s run #%d (%s)", arm->name, run.index, RunStateName(run.state));
      if (points.size() == 1) {
        const EpochRecord& e = run.result.epochs.front();
        absl::StrAppendFormat(&out,
                              "<circle class=\"run\" cx=\"%s\" cy=\"%s\" r=\"3\" "
                              "fill=\"%s\"><title>%s</title></circle>\n",
                              Px(x(e.epoch)), Px(y(e.val_accuracy)), ArmColour(arm_index),
                              HtmlEscape(title));
      } else if (points.size() > 1) {
        absl::StrAppendFormat(&out,
                              "<polyline class=\"run\" points=\"%s\" stroke=\"%s\">"
                              "<title>%s</title></polyline>\n",
                              absl::StrJoin(points, " "), ArmColour(arm_index), HtmlEscape(title));
      }
    }
    absl::StrAppend(&out, "</svg>\n");
  }
  return out;
}

// How many runs had diverged by each epoch, one line per arm whose runs start
// identical; nothing when no arm qualifies.
std::string DivergencePlot(const Report& report, const std::string& filter) {
  std::vector<std::pair<const ArmReport*, size_t>> arms;
  int epochs = 0;
  int most = 1;
  for (const auto& [arm, index] : ShownArms(report, filter)) {
    if (!arm->diverged_by_epoch || arm->diverged_by_epoch->empty()) continue;
    arms.push_back({arm, index});
    epochs = std::max(epochs, static_cast<int>(arm->diverged_by_epoch->size()));
    most = std::max(most, arm->runs_done - 1);
  }
  if (arms.empty()) {
    return "<p>No arm has at least two done runs that start from the same initial model "
           "and data, so there is no divergence to plot.</p>\n";
  }
  const Scale y{0, static_cast<double>(most), kHeight - kBottom - 6, kTop + 6};
  const Scale x{0, static_cast<double>(std::max(epochs - 1, 0)), kLeft + 12,
                kWidth - kRight - 12};
  Ticks ticks = NiceTicks(0, most, std::min(most, 5));
  ticks.decimals = 0;
  ticks.values.erase(std::remove_if(ticks.values.begin(), ticks.values.end(),
                                    [](double v) { return v != std::floor(v); }),
                     ticks.values.end());
  std::string out = SvgOpen(
      "divergence", "Runs whose weights differ from the reference run's, by epoch");
  absl::StrAppend(&out, YAxis(y, ticks, "runs diverged"), EpochAxis(x, epochs));
  std::vector<std::pair<std::string, size_t>> legend;
  for (const auto& [arm, arm_index] : arms) {
    legend.push_back({arm->name, arm_index});
    const std::vector<int>& counts = *arm->diverged_by_epoch;
    std::vector<std::string> points;
    for (size_t e = 0; e < counts.size(); ++e) {
      points.push_back(absl::StrCat(Px(x(e)), ",", Px(y(counts[e]))));
    }
    // Earlier arms are drawn wider, so that a line hidden under a later one (the same
    // counts) still shows at its edges.
    const double width = 1.5 + 2.5 * static_cast<double>(arms.size() - legend.size());
    absl::StrAppendFormat(&out,
                          "<polyline class=\"arm\" data-arm=\"%s\" points=\"%s\" "
                          "stroke=\"%s\" stroke-width=\"%s\"><title>%s</title></polyline>\n",
                          HtmlEscape(arm->name), absl::StrJoin(points, " "),
                          ArmColour(arm_index), Px(width), HtmlEscape(arm->name));
    for (size_t e = 0; e < counts.size(); ++e) {
      absl::StrAppendFormat(&out,
                            "<circle class=\"point\" data-arm=\"%s\" cx=\"%s\" cy=\"%s\" "
                            "r=\"3\" fill=\"%s\"><title>%s, epoch %d: %d of %d runs "
                            "diverged</title></circle>\n",
                            HtmlEscape(arm->name), Px(x(e)), Px(y(counts[e])),
                            ArmColour(arm_index), HtmlEscape(arm->name), e, counts[e],
                            arm->runs_done - 1);
    }
  }
  absl::StrAppend(&out, Legend(legend), "</svg>\n");
  return out;
}

}  // namespace repro
