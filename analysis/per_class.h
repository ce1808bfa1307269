// Per class (issue 17, part 4): for each class of the test set, an arm's accuracy on that
// class's examples (mean and stdev over its runs) and its churn there: the share of the
// class's examples whose predicted class differs between two runs, averaged over every
// pair of the arm's runs, as the arm's instability (analysis.h Instability) is over all
// examples; so the arm's instability is the mean of the classes' churn weighted by their
// examples.
//
// The runs: the arm's scored runs (Scored, analysis.h) that recorded predictions, those of
// another count than the first such run's left out, as the instability counts them. A
// class's examples are those whose true class it is (ExperimentView::test_labels), or,
// when the labels are not known or do not match the predictions, those the arm's first
// such run (its reference run, normally #0) predicts as it: then there is no accuracy,
// only churn, and `accuracy_absent` says why.
//
// Thread safety: a pure function; plain values.
#ifndef REPRO_ANALYSIS_PER_CLASS_H_
#define REPRO_ANALYSIS_PER_CLASS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/experiment_view.h"

namespace repro {

// What a class's examples are: its true class, or the reference run's prediction.
enum class ClassGrouping { kNone, kLabel, kReferencePrediction };
// "none", "label", "reference_prediction": the JSON report's "grouped_by".
const char* ClassGroupingName(ClassGrouping grouping);

struct ClassFigures {
  int label = 0;         // the class
  int64_t examples = 0;  // test examples in it (always > 0: empty classes are not listed)
  // Over the runs, each run's share of the class's examples it predicts right; nullopt
  // without labels. The stdev is ddof 0 (population), as the arm's score stdev.
  std::optional<double> accuracy_mean;
  std::optional<double> accuracy_stdev;
  // Mean over pairs of runs of the share of the class's examples the two predict
  // differently; nullopt with fewer than two runs.
  std::optional<double> churn;
};

struct PerClass {
  ClassGrouping grouped_by = ClassGrouping::kNone;  // kNone: no run with predictions
  int runs = 0;
  int64_t pairs = 0;            // runs * (runs - 1) / 2
  std::string accuracy_absent;  // why there is no accuracy per class; "" when there is
  std::vector<ClassFigures> classes;  // by class, ascending
};

// `done`: the arm's intact done runs, by index; `labels`: ExperimentView::test_labels.
PerClass MeasurePerClass(const std::vector<const RunView*>& done,
                         const std::vector<uint8_t>& labels);

}  // namespace repro

#endif  // REPRO_ANALYSIS_PER_CLASS_H_
