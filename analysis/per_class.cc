#include "analysis/per_class.h"

#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "analysis/analysis.h"
#include "analysis/stats.h"

namespace repro {

const char* ClassGroupingName(ClassGrouping grouping) {
  switch (grouping) {
    case ClassGrouping::kNone:
      return "none";
    case ClassGrouping::kLabel:
      return "label";
    case ClassGrouping::kReferencePrediction:
      return "reference_prediction";
  }
  return "unknown";
}

namespace {

std::optional<double> Defined(double value) {
  if (std::isnan(value)) return std::nullopt;
  return value;
}

}  // namespace

PerClass MeasurePerClass(const std::vector<const RunView*>& done,
                         const std::vector<uint8_t>& labels) {
  PerClass out;
  std::vector<const std::vector<uint8_t>*> predictions;
  for (const RunView* run : done) {
    const std::vector<uint8_t>& p = run->result.predictions;
    if (!Scored(*run) || p.empty()) continue;
    if (!predictions.empty() && p.size() != predictions.front()->size()) continue;
    predictions.push_back(&p);
  }
  const int64_t runs = static_cast<int64_t>(predictions.size());
  out.runs = static_cast<int>(runs);
  out.pairs = runs * (runs - 1) / 2;
  if (runs == 0) {
    out.accuracy_absent = "no run recorded test-set predictions";
    return out;
  }
  const size_t examples = predictions.front()->size();
  const bool labelled = labels.size() == examples;
  if (labels.empty()) {
    out.accuracy_absent =
        "the test set's labels are not stored (the coordinator ran with --skip-data-check, "
        "the model reads no data, or no coordinator has checked the data since schema 6)";
  } else if (!labelled) {
    out.accuracy_absent = absl::StrCat("the ", labels.size(), " stored test labels do not match the ",
                                       examples, " predictions of each run");
  }
  out.grouped_by = labelled ? ClassGrouping::kLabel : ClassGrouping::kReferencePrediction;
  const std::vector<uint8_t>& group = labelled ? labels : *predictions.front();

  std::array<int64_t, 256> size{};
  std::array<double, 256> disagreeing{};  // over the class's examples, pairs that differ
  // correct[r * 256 + c]: run r's right predictions among class c's examples.
  std::vector<int64_t> correct(labelled ? predictions.size() * 256 : 0, 0);
  std::array<uint32_t, 256> counts{};
  const uint64_t pairs = static_cast<uint64_t>(out.pairs);
  for (size_t j = 0; j < examples; ++j) {
    const uint8_t c = group[j];
    ++size[c];
    for (size_t r = 0; r < predictions.size(); ++r) {
      const uint8_t p = (*predictions[r])[j];
      ++counts[p];
      if (labelled && p == c) ++correct[r * 256 + c];
    }
    uint64_t same = 0;  // pairs that predict the same class for example j
    for (const std::vector<uint8_t>* p : predictions) {
      const uint64_t n = counts[(*p)[j]];
      same += n * (n - 1) / 2;
      counts[(*p)[j]] = 0;
    }
    disagreeing[c] += static_cast<double>(pairs - same);
  }
  for (int c = 0; c < 256; ++c) {
    if (size[c] == 0) continue;
    ClassFigures figures;
    figures.label = c;
    figures.examples = size[c];
    if (labelled) {
      std::vector<double> accuracy;
      for (size_t r = 0; r < predictions.size(); ++r) {
        accuracy.push_back(static_cast<double>(correct[r * 256 + c]) / static_cast<double>(size[c]));
      }
      figures.accuracy_mean = Defined(Mean(accuracy));
      figures.accuracy_stdev = Defined(Stdev(accuracy, 0));
    }
    if (runs >= 2) {
      figures.churn = disagreeing[c] / (static_cast<double>(pairs) * static_cast<double>(size[c]));
    }
    out.classes.push_back(figures);
  }
  return out;
}

}  // namespace repro
