#include "analysis/report_text.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "analysis/localization.h"
#include "analysis/per_class_report.h"
#include "analysis/planning.h"
#include "analysis/stats.h"

namespace repro {
namespace {

const char* PyBool(bool value) { return value ? "True" : "False"; }

bool Shown(const std::string& arm_filter, const std::string& arm) {
  return arm_filter.empty() || arm_filter == arm;
}

void AppendCheck(const ArmReport& arm, const char* title, bool all_same,
                 DifferenceKind kind, std::string* out) {
  const std::optional<bool> shown = EqualityShown(arm, all_same);
  absl::StrAppendFormat(out, "%s: %s (number of models checked: %d/%d)\n", title,
                        shown ? PyBool(*shown) : "no runs finished",
                        arm.runs_done - arm.runs_corrupt, arm.runs_total);
  for (const Difference& d : arm.differences) {
    if (d.what == kind) absl::StrAppend(out, DifferenceLine(d, arm.reference_run), "\n");
  }
}

// "; 1 diverged and 2 corrupt runs left out", or "" when none was.
std::string LeftOut(const ArmReport& arm) {
  std::vector<std::string> kinds;
  if (arm.runs_diverged > 0) kinds.push_back(absl::StrCat(arm.runs_diverged, " diverged"));
  if (arm.runs_corrupt > 0) kinds.push_back(absl::StrCat(arm.runs_corrupt, " corrupt"));
  if (kinds.empty()) return "";
  return absl::StrCat("; ", absl::StrJoin(kinds, " and "),
                      arm.runs_diverged + arm.runs_corrupt == 1 ? " run" : " runs", " left out");
}

// The done runs that are not scored, each with why: diverged (compared, no scores) and
// corrupt (its stored result fails its checksum: neither compared nor scored).
void AppendUnscored(const Report& report, const ArmReport& arm, std::string* out) {
  for (const RunView& run : report.runs) {
    if (run.arm != arm.name || run.state != RunState::kDone || Scored(run)) continue;
    absl::StrAppendFormat(out, "- Run #%d (worker: %s): %s\n", run.index,
                          run.worker.empty() ? "none" : run.worker,
                          run.corrupt.empty() ? run.result.diverged
                                              : absl::StrCat("corrupt: ", run.corrupt));
  }
}

void AppendScores(const ArmReport& arm, std::string* out) {
  if (arm.runs_scored == 0) {
    absl::StrAppend(out, "Scores [test loss, test accuracy]: none (",
                    arm.runs_done == 0 ? "no runs done" : "no done run has scores",
                    LeftOut(arm), ")\n");
    return;
  }
  absl::StrAppendFormat(out, "Scores [test loss, test accuracy] over %d run%s%s:\n",
                        arm.runs_scored, arm.runs_scored == 1 ? "" : "s",
                        arm.runs_diverged + arm.runs_corrupt > 0
                            ? absl::StrCat(" (", LeftOut(arm).substr(2), ")")
                            : "");
  const struct {
    const char* label;
    std::optional<double> ColumnStats::*field;
  } rows[] = {{"mean", &ColumnStats::mean},
              {"stdev (ddof 0)", &ColumnStats::stdev},
              {"stdev (ddof 1)", &ColumnStats::stdev_ddof1},
              {"min", &ColumnStats::min},
              {"max", &ColumnStats::max}};
  for (const auto& row : rows) {
    absl::StrAppendFormat(out, "  %-14s %s\n", row.label,
                          Row(arm.loss.*row.field, arm.accuracy.*row.field));
  }
}

void AppendArmText(const Report& report, const ArmReport& arm, std::string* out) {
  absl::StrAppend(out, "\nComparison results for ", arm.name, ":\n\n");
  if (arm.runs_done < arm.runs_total) {
    absl::StrAppendFormat(out,
                          "Runs: %d done, %d failed, %d running, %d pending (of %d)\n",
                          arm.runs_done, arm.runs_failed, arm.runs_running,
                          arm.runs_pending, arm.runs_total);
  }
  AppendCheck(arm, "Models all the same", arm.models_all_same, DifferenceKind::kModel,
              out);
  AppendCheck(arm, "XY training data all the same", arm.data_all_same,
              DifferenceKind::kData, out);
  AppendCheck(arm, "Batches all the same", arm.batches_all_same,
              DifferenceKind::kBatches, out);
  AppendCheck(arm, "Final models all the same", arm.final_models_all_same,
              DifferenceKind::kFinalModel, out);
  absl::StrAppend(out, "First divergence: ", DivergenceLine(arm), "\n");
  if (const std::string diverged = DivergedByEpochLine(arm);
      arm.first_divergence_epoch && !diverged.empty()) {
    absl::StrAppendFormat(out, "Runs diverged from run #%d by epoch: %s\n",
                          arm.reference_run, diverged);
  }
  if (arm.runs_failed > 0) {
    absl::StrAppendFormat(out, "Failed runs: %d\n", arm.runs_failed);
    for (const RunView& run : report.runs) {
      if (run.arm != arm.name || run.state != RunState::kFailed) continue;
      absl::StrAppendFormat(out, "- Run #%d (attempts: %d, worker: %s): %s\n", run.index,
                            run.attempts, run.worker.empty() ? "none" : run.worker,
                            run.error.empty() ? "no error recorded" : run.error);
    }
  }
  if (arm.runs_diverged + arm.runs_corrupt > 0) {
    absl::StrAppendFormat(out, "Done runs without scores: %d diverged, %d corrupt\n",
                          arm.runs_diverged, arm.runs_corrupt);
    AppendUnscored(report, arm, out);
  }
  // A second result for a run (its first worker's lease had expired while it trained
  // on) is not counted, but whether it agrees is evidence of reproducibility.
  for (const RunView& run : report.runs) {
    if (run.arm != arm.name) continue;
    for (const ExtraResult& extra : run.extra_results) {
      absl::StrAppendFormat(out,
                            "- Run #%d: an extra result from worker %s (not counted) has %s final "
                            "model\n",
                            run.index, extra.worker,
                            extra.final_hash == run.result.final_hash ? "the same" : "a different");
    }
  }
  AppendScores(arm, out);
  absl::StrAppend(out, "Instability (mean pairwise disagreement of test predictions): ",
                  InstabilityLine(arm.instability), "\n");
  absl::StrAppend(out, PerClassText(arm.per_class));
  absl::StrAppend(out, "Noise floor of test accuracy: ", NoiseFloorLine(arm), "\n");
  absl::StrAppend(out, "Seconds per epoch: ", EpochTimeLine(arm.seconds_per_epoch), "\n");
}

std::string Interval(const std::optional<double>& low,
                     const std::optional<double>& high) {
  return FormatNumpyArray({low.value_or(std::nan("")), high.value_or(std::nan(""))});
}

void AppendComparisons(const Report& report, std::string* out) {
  if (report.reference_arm.empty()) {
    if (report.arms.size() > 1) {
      absl::StrAppend(out, "\nNo reference arm: the experiment has no ",
                      kDifferentSeedsArm, " arm (choose one with --reference-arm NAME)\n");
    }
    return;
  }
  bool header = false;
  for (const ArmComparison& c : report.comparisons) {
    if (!header) {
      absl::StrAppendFormat(
          out,
          "\nSpread compared with the reference arm %s [test loss, test accuracy]\n"
          "(stdev ratio: stdev (ddof 0) over the reference's; variance share: its "
          "square;\n95%% CI: percentile bootstrap, %d resamples, seed %d; "
          "Brown-Forsythe: test of equal variances):\n",
          report.reference_arm, report.bootstrap_resamples, report.seed);
      header = true;
    }
    const ScoreComparison& s = c.scores;
    absl::StrAppend(out, c.arm, ":\n");
    absl::StrAppendFormat(out, "  %-22s %s\n", "stdev ratio",
                          Row(s.loss.stdev_ratio, s.accuracy.stdev_ratio));
    absl::StrAppendFormat(out, "  %-22s %s\n", "variance share",
                          Row(s.loss.variance_share, s.accuracy.variance_share));
    if (report.bootstrap_resamples > 0) {
      absl::StrAppendFormat(out, "  %-22s %s\n", "ratio 95% CI, loss",
                            Interval(s.loss.ci_low, s.loss.ci_high));
      absl::StrAppendFormat(out, "  %-22s %s\n", "ratio 95% CI, accuracy",
                            Interval(s.accuracy.ci_low, s.accuracy.ci_high));
    }
    absl::StrAppendFormat(out, "  %-22s %s\n", "Brown-Forsythe F",
                          Row(s.loss.brown_forsythe_f, s.accuracy.brown_forsythe_f));
    absl::StrAppendFormat(out, "  %-22s %s\n", "Brown-Forsythe p",
                          Row(s.loss.brown_forsythe_p, s.accuracy.brown_forsythe_p));
    absl::StrAppendFormat(out, "  %-22s %s\n", "CI width (approx.)", PilotWidthLine(s));
    absl::StrAppendFormat(out, "  %-22s %s\n",
                          absl::StrCat("runs for width ", FormatNumpy(report.ci_width)),
                          RunsNeededLine(s, false));
    absl::StrAppendFormat(out, "  %-22s %s\n", PowerRowLabel(report.power_ratio),
                          RunsNeededLine(s, true));
  }
  if (header) absl::StrAppend(out, PlanningMethodText(report.ci_width, report.power_ratio));
}

// The rule, each look arm by arm with what followed it, and the outcome.
void AppendAdaptive(const Report& report, std::string* out) {
  if (!report.adaptive) return;
  const AdaptiveState& adaptive = *report.adaptive;
  absl::StrAppend(out, "\nAdaptive run count:\n  ", AdaptiveRuleText(adaptive),
                  "\n  each look's interval: ", AdaptiveLevelText(adaptive), "\n");
  for (size_t i = 0; i < adaptive.looks.size(); ++i) {
    const AdaptiveLook& look = adaptive.looks[i];
    for (const AdaptiveArmLook& arm : look.arms) {
      absl::StrAppend(out, "  look ", i + 1, ", ", arm.arm, ": ",
                      AdaptiveArmText(arm, adaptive.reference), "\n");
    }
    absl::StrAppend(out, "  look ", i + 1, " then: ", AdaptiveFollowedText(look, report.arms),
                    "\n");
  }
  absl::StrAppend(out, "  Outcome: ", AdaptiveOutcomeText(adaptive), "\n");
}

void AppendDeterminismCost(const Report& report, std::string* out) {
  if (report.determinism_costs.empty()) return;
  absl::StrAppend(out, "\nCost of determinism ", DeterminismKey(report.bootstrap_resamples),
                  ":\n");
  for (const DeterminismCost& cost : report.determinism_costs) {
    absl::StrAppend(out, "  ", DeterminismCostLine(cost), "\n");
  }
}

void AppendCrossArm(const Report& report, std::string* out) {
  bool header = false;
  for (const CrossArmIdentity& identity : report.cross_arm) {
    if (!header) {
      absl::StrAppend(out,
                      "\nAcross arms (run #i of each, where both are done with the same "
                      "init, shuffle and augment seeds):\n");
      header = true;
    }
    absl::StrAppend(out, CrossArmLine(identity), "\n");
  }
}

// Without trailing spaces.
void AppendTrimmed(std::string line, std::string* out) {
  while (!line.empty() && line.back() == ' ') line.pop_back();
  absl::StrAppend(out, line, "\n");
}

// The legend, the upper triangle of the matrix in aligned columns, and the fields that
// differ per off-diagonal cell.
void AppendCrossEnvironment(const Report& report, std::string* out) {
  if (!report.cross_environment) return;
  const CrossEnvironment& matrix = *report.cross_environment;
  absl::StrAppend(out,
                  "\nAcross environments (runs with the same seeds that started identical, "
                  "by where they trained):\n");
  for (const Environment& e : matrix.environments) {
    absl::StrAppendFormat(out, "  %s (%d run%s)\n", e.label, e.runs, e.runs == 1 ? "" : "s");
  }
  absl::StrAppend(out, EnvironmentMatrixKey(), "\n");
  const size_t n = matrix.environments.size();
  // rows[i][j]: the text of cell (i, j), column 0 the row's name.
  std::vector<std::vector<std::string>> rows(n + 1, std::vector<std::string>(n + 1));
  for (size_t j = 1; j <= n; ++j) rows[0][j] = EnvironmentName(static_cast<int>(j));
  for (size_t i = 1; i <= n; ++i) {
    rows[i][0] = EnvironmentName(static_cast<int>(i));
    for (size_t j = i; j <= n; ++j) {
      rows[i][j] = EnvironmentCellText(
          FindEnvironmentCell(matrix, static_cast<int>(i), static_cast<int>(j)));
    }
  }
  std::vector<size_t> widths(n + 1, 0);
  for (const std::vector<std::string>& row : rows) {
    for (size_t j = 0; j <= n; ++j) widths[j] = std::max(widths[j], row[j].size());
  }
  for (const std::vector<std::string>& row : rows) {
    std::string line = " ";
    for (size_t j = 0; j <= n; ++j) {
      absl::StrAppend(&line, " ", row[j], std::string(widths[j] - row[j].size(), ' '), " ");
    }
    AppendTrimmed(std::move(line), out);
  }
  bool header = false;
  for (const EnvironmentCell& cell : matrix.cells) {
    if (cell.a == cell.b) continue;
    if (!header) {
      absl::StrAppend(out, "Fields that differ:\n");
      header = true;
    }
    absl::StrAppend(out, "  ", EnvironmentName(cell.a), " vs ", EnvironmentName(cell.b), ": ",
                    absl::StrJoin(cell.differing_fields, ", "), "\n");
  }
}

}  // namespace

std::string EnvironmentCellText(const EnvironmentCell* cell) {
  if (cell == nullptr) return "-";
  std::string text = cell->identical        ? "="
                     : cell->diverged_epoch ? absl::StrCat("epoch ", *cell->diverged_epoch)
                                            : "final";
  absl::StrAppend(&text, ", ", cell->pairs, cell->pairs == 1 ? " pair" : " pairs");
  if (cell->spread_ratio) absl::StrAppend(&text, ", ratio ", FormatNumpy(*cell->spread_ratio));
  return text;
}

std::string EnvironmentMatrixKey() {
  return "(each cell pairs a run of the row's environment with one of the column's, two runs\n"
         "of one on the diagonal: \"=\" every pair identical, epoch by epoch and at the end;\n"
         "\"epoch E\" the first epoch after which some pair's weights differ; \"final\" only the\n"
         "final models differ; then the pairs and, off the diagonal, the spread ratio: the\n"
         "test-accuracy stdev (ddof 0) of both environments' runs pooled over the mean of\n"
         "their own stdevs, 1 when the environments add no spread, left out with fewer than 2\n"
         "scored runs a side or no spread of their own; \"-\" no pair)";
}

std::string FormatOptional(const std::optional<double>& value) {
  return FormatNumpy(value.value_or(std::nan("")));
}

std::string Row(const std::optional<double>& loss, const std::optional<double>& accuracy) {
  const double nan = std::nan("");
  return FormatNumpyArray({loss.value_or(nan), accuracy.value_or(nan)});
}

std::string DifferenceLine(const Difference& d, int reference) {
  const std::string tensor =
      d.index >= 0 ? absl::StrFormat("tensor = %s, index = %d", d.tensor, d.index) : "";
  switch (d.what) {
    case DifferenceKind::kModel:
      return absl::StrFormat(
          "- Different model (layers and weights compared with run #%d) in this run: "
          "#%d%s",
          reference, d.run, tensor.empty() ? "" : absl::StrCat(" (", tensor, ")"));
    case DifferenceKind::kData:
      return absl::StrFormat(
          "- Different XY training data (compared with run #%d) in this run: #%d",
          reference, d.run);
    case DifferenceKind::kBatches: {
      std::string where;
      if (d.epoch) {
        where = absl::StrFormat(" (first at epoch %d%s)", *d.epoch,
                                d.batch ? absl::StrFormat(", batch %d", *d.batch) : "");
      }
      return absl::StrFormat(
          "- Different batches (compared with run #%d) in this run: #%d%s", reference,
          d.run, where);
    }
    case DifferenceKind::kFinalModel: {
      std::vector<std::string> details;
      if (!tensor.empty()) details.push_back(tensor);
      if (d.epoch) {
        details.push_back(
            absl::StrFormat("weights first differ after epoch %d", *d.epoch));
        if (d.batch) {
          details.push_back(absl::StrFormat(
              "by batch %d of it at the latest, where its batch order first differs",
              *d.batch));
        }
      }
      return absl::StrFormat(
          "- Different final model (layers and weights compared with run #%d) in this "
          "run: #%d%s",
          reference, d.run,
          details.empty() ? "" : absl::StrCat(" (", absl::StrJoin(details, ", "), ")"));
    }
  }
  return "";
}

std::string DivergenceLine(const ArmReport& arm) {
  if (arm.runs_done - arm.runs_corrupt < 2) {
    return arm.runs_corrupt > 0 ? "none (fewer than 2 runs done with intact results)"
                                : "none (fewer than 2 runs done)";
  }
  if (!arm.models_all_same || !arm.data_all_same) {
    return "not applicable (runs do not start from the same initial model and data)";
  }
  if (arm.first_divergence_epoch) {
    std::string line = absl::StrFormat(
        "epoch %d (the first epoch after which some run's weights differ from run "
        "#%d's)",
        *arm.first_divergence_epoch, arm.reference_run);
    if (arm.first_divergence_batch) {
      absl::StrAppendFormat(&line,
                            ", by batch %d of it at the latest (where a diverging "
                            "run's batch order first differs)",
                            *arm.first_divergence_batch);
    } else {
      absl::StrAppend(&line,
                      "; weights are hashed once per epoch, so the batch cannot be "
                      "placed");
    }
    return line;
  }
  if (arm.epochs_compared == 0) return "none (no epochs recorded)";
  return absl::StrFormat("none (all runs identical through epoch %d)",
                         arm.epochs_compared - 1);
}

std::string DivergedByEpochLine(const ArmReport& arm) {
  if (!arm.diverged_by_epoch || arm.diverged_by_epoch->empty()) return "";
  const std::vector<int>& counts = *arm.diverged_by_epoch;
  std::vector<std::string> ranges;
  size_t start = 0;
  for (size_t e = 1; e <= counts.size(); ++e) {
    if (e < counts.size() && counts[e] == counts[start]) continue;
    if (e - 1 == start) {
      ranges.push_back(absl::StrFormat("epoch %d: %d", start, counts[start]));
    } else {
      ranges.push_back(absl::StrFormat("epochs %d-%d: %d", start, e - 1, counts[start]));
    }
    start = e;
  }
  return absl::StrFormat("%s (of %d compared)", absl::StrJoin(ranges, "; "),
                         arm.runs_done - 1);
}

std::string InstabilityLine(const Instability& instability) {
  if (!instability.mean_disagreement) {
    return absl::StrFormat("not measured (%d run%s with predictions; 2 needed)",
                           instability.runs, instability.runs == 1 ? "" : "s");
  }
  return absl::StrFormat("%s over %d pair%s of %d runs",
                         FormatNumpy(*instability.mean_disagreement), instability.pairs,
                         instability.pairs == 1 ? "" : "s", instability.runs);
}

std::string NoiseFloorLine(const ArmReport& arm) {
  const NoiseFloor& floor = arm.noise_floor;
  if (!floor.binomial_stdev) {
    return arm.runs_scored == 0
               ? "not measured (no scored run)"
               : "not measured (the test set's size is unknown: no scored run kept its "
                 "predictions)";
  }
  std::string line = absl::StrFormat(
      "binomial stdev %s (sqrt(p (1 - p) / n), p = mean accuracy %s, n = %d test examples)",
      FormatNumpy(*floor.binomial_stdev), FormatOptional(arm.accuracy.mean),
      floor.test_examples);
  if (!floor.observed_stdev) {
    return absl::StrCat(line, "; observed stdev not measured (fewer than 2 scored runs)");
  }
  absl::StrAppend(&line, "; observed stdev (ddof 1) ", FormatNumpy(*floor.observed_stdev));
  if (floor.ratio) absl::StrAppend(&line, ", ratio ", FormatNumpy(*floor.ratio));
  return line;
}

std::string EpochTimeLine(const EpochTime& time) {
  if (!time.mean) return "not measured (no done run recorded an epoch)";
  std::string line = absl::StrCat("mean ", FormatNumpy(*time.mean));
  if (time.ci_low && time.ci_high) {
    absl::StrAppend(&line, ", 95% CI ", Interval(time.ci_low, time.ci_high));
  }
  absl::StrAppendFormat(&line, " over %d run%s", time.runs, time.runs == 1 ? "" : "s");
  return line;
}

std::string DeterminismCostLine(const DeterminismCost& cost) {
  std::string line = absl::StrFormat("%s vs %s (%s): overhead %s", cost.deterministic_arm,
                                     cost.other_arm, absl::StrJoin(cost.switches, ", "),
                                     FormatOptional(cost.overhead));
  if (cost.ci_low && cost.ci_high) {
    absl::StrAppend(&line, ", 95% CI ", Interval(cost.ci_low, cost.ci_high));
  }
  return line;
}

std::string DeterminismKey(int resamples) {
  return absl::StrCat(
      "(arms that differ only in deterministic_algorithms and/or cudnn_benchmark;\n"
      "overhead: the deterministic arm's mean seconds per epoch over the other's",
      resamples > 0 ? absl::StrFormat(";\n95%% CI: percentile bootstrap of the runs' means, "
                                      "%d resamples",
                                      resamples)
                    : "",
      ")");
}

std::string PilotWidthLine(const ScoreComparison& scores) {
  auto text = [](const ColumnPlan& plan) {
    return plan.pilot_width ? FormatNumpy(*plan.pilot_width) : std::string("undefined");
  };
  return absl::StrCat("loss ", text(scores.loss.plan), ", accuracy ",
                      text(scores.accuracy.plan));
}

std::string RunsNeededLine(const ScoreComparison& scores, bool power) {
  auto text = [power](const ColumnPlan& plan) {
    return power ? PlanPowerText(plan) : PlanWidthText(plan);
  };
  return absl::StrCat("loss ", text(scores.loss.plan), ", accuracy ",
                      text(scores.accuracy.plan));
}

std::string AdaptiveRuleText(const AdaptiveState& a) {
  return absl::StrFormat(
      "runs: %d per arm, then %d more per round to at most %d, until the stdev ratio of "
      "test %s against %s has an interval at most %s wide",
      a.min, a.step, a.max, a.metric, a.reference, FormatNumpy(a.ratio_ci_width));
}

std::string AdaptiveLevelText(const AdaptiveState& a) {
  return absl::StrFormat(
      "delta method for log(stdev ratio) at level %s %% (0.05 Bonferroni-split over %d "
      "possible look%s), conservative under stopping on the data",
      FormatNumpy(100 * a.level), a.looks_planned, a.looks_planned == 1 ? "" : "s");
}

std::string AdaptiveArmText(const AdaptiveArmLook& arm, const std::string& reference) {
  std::string text = absl::StrFormat("%d run%s vs %d of %s, ", arm.runs,
                                     arm.runs == 1 ? "" : "s", arm.reference_runs, reference);
  if (arm.ratio && arm.low && arm.high) {
    absl::StrAppend(&text, "ratio ", FormatNumpy(*arm.ratio), ", interval ",
                    Interval(arm.low, arm.high), ", width ", FormatOptional(arm.width()));
  } else {
    absl::StrAppend(&text, "ratio undefined (fewer than 2 scores a side, or a reference "
                           "without spread)");
  }
  absl::StrAppend(&text, arm.settled ? ", settled" : ", not settled", ", runs needed ",
                  RunsNeededText(arm));
  return text;
}

std::string AdaptiveFollowedText(const AdaptiveLook& look, const std::vector<ArmReport>& arms) {
  if (look.decision == "reached") return "stopped: every arm settled";
  if (look.decision == "max") return "stopped: max runs reached";
  if (look.decision != "more") return look.decision;
  // The arms given runs, in plan order (the store adds runs only to the plan's arms).
  std::vector<std::pair<std::string, int>> added;
  for (const ArmReport& arm : arms) {
    if (const auto it = look.added.find(arm.name); it != look.added.end()) added.push_back(*it);
  }
  if (added.empty()) return "no runs added";
  const bool alike = std::all_of(added.begin(), added.end(), [&added](const auto& entry) {
    return entry.second == added.front().second;
  });
  std::vector<std::string> parts;
  for (const auto& [name, runs] : added) {
    parts.push_back(alike ? name : absl::StrCat("+", runs, " to ", name));
  }
  if (!alike) return absl::StrJoin(parts, ", ");
  return absl::StrCat("+", added.front().second, added.front().second == 1 ? " run" : " runs",
                      " to ", absl::StrJoin(parts, ", "));
}

std::string AdaptiveOutcomeText(const AdaptiveState& a) {
  const std::string stopped = a.stopped();
  if (stopped.empty()) {
    if (a.looks.empty()) {
      return absl::StrFormat("in progress: the first look once the %d runs per arm are done",
                             a.min);
    }
    return absl::StrFormat("in progress: %d look%s so far, the next once this round's runs "
                           "are done",
                           a.looks.size(), a.looks.size() == 1 ? "" : "s");
  }
  const AdaptiveLook& last = a.looks.back();
  std::vector<std::string> parts;
  for (const AdaptiveArmLook& arm : last.arms) {
    if (stopped == "reached") {
      parts.push_back(absl::StrCat(arm.arm, " ", arm.runs));
    } else if (!arm.settled) {
      const std::optional<double> width = arm.width();
      parts.push_back(absl::StrCat(arm.arm, " (width ",
                                   width ? FormatNumpy(*width) : "undefined", ")"));
    }
  }
  if (stopped == "reached") {
    if (!last.arms.empty()) {
      parts.push_back(absl::StrCat(a.reference, " ", last.arms.front().reference_runs));
    }
    return absl::StrFormat("stopped at look %d: the target was reached, every arm's interval "
                           "at most %s wide (runs: %s)",
                           a.looks.size(), FormatNumpy(a.ratio_ci_width),
                           absl::StrJoin(parts, ", "));
  }
  if (stopped == "max") {
    return absl::StrFormat("stopped at look %d: max runs (%d) reached, with the interval "
                           "still wider than %s for %s",
                           a.looks.size(), a.max, FormatNumpy(a.ratio_ci_width),
                           parts.empty() ? "no arm" : absl::StrJoin(parts, ", "));
  }
  return absl::StrCat("stopped at look ", a.looks.size(), ": ", stopped);
}

std::string CrossArmLine(const CrossArmIdentity& identity) {
  const int n = identity.runs_with_same_seeds;
  std::string line = absl::StrFormat("%s vs %s: ", identity.arm, identity.other);
  if (n == 0) return absl::StrCat(line, "no runs with the same seeds");
  absl::StrAppendFormat(&line,
                        "%d run%s with the same seeds, initial models identical in %d "
                        "of %d, final models identical in %d of %d",
                        n, n == 1 ? "" : "s", identity.initial_identical, n,
                        identity.final_identical, n);
  if (identity.first_difference) {
    const Difference& d = *identity.first_difference;
    std::vector<std::string> details = {absl::StrFormat("run #%d", d.run)};
    if (d.index >= 0) {
      details.push_back(absl::StrFormat("first differing tensor %s, index %d", d.tensor,
                                        d.index));
    }
    if (d.epoch) {
      details.push_back(absl::StrFormat("weights first differ after epoch %d", *d.epoch));
    }
    absl::StrAppend(&line, " (", absl::StrJoin(details, ", "), ")");
  }
  return line;
}

std::string RenderText(const Report& report, const std::string& arm_filter) {
  std::string out;
  if (report.complete) {
    absl::StrAppendFormat(&out, "Experiment %s: complete, %d of %d runs done%s\n",
                          report.experiment, report.runs_done, report.runs_total,
                          report.runs_failed > 0
                              ? absl::StrFormat(" (%d failed)", report.runs_failed)
                              : "");
  } else {
    absl::StrAppendFormat(
        &out, "Experiment %s: incomplete, %d of %d runs done (%s%d remaining%s)\n",
        report.experiment, report.runs_done, report.runs_total,
        report.runs_failed > 0 ? absl::StrFormat("%d failed, ", report.runs_failed) : "",
        report.runs_remaining,
        report.adaptive && report.adaptive->stopped().empty()
            ? "; the adaptive run count may add more"
            : "");
  }
  for (const std::string& note : report.notes) absl::StrAppend(&out, "Note: ", note, "\n");
  if (report.weights.files > 0) absl::StrAppend(&out, DescribeWeights(report.weights), "\n");
  bool has_same_seed = false;
  bool has_different_seeds = false;
  for (const ArmReport& arm : report.arms) {
    has_same_seed |= arm.name == kSameSeedArm;
    has_different_seeds |= arm.name == kDifferentSeedsArm;
    if (Shown(arm_filter, arm.name)) AppendArmText(report, arm, &out);
  }
  if (arm_filter.empty() && has_same_seed && has_different_seeds) {
    absl::StrAppendFormat(
        &out, "\nRatio of stdev %s / %s [test loss, test accuracy]: %s\n", kSameSeedArm,
        kDifferentSeedsArm, Row(report.stdev_ratio_loss, report.stdev_ratio_accuracy));
  }
  if (arm_filter.empty()) {
    AppendComparisons(report, &out);
    AppendAdaptive(report, &out);
    AppendCrossArm(report, &out);
    AppendCrossEnvironment(report, &out);
    AppendDeterminismCost(report, &out);
    if (!report.localizations.empty()) absl::StrAppend(&out, "\nWhere runs part (reproctl localize):\n");
    for (const LocalizationState& l : report.localizations) {
      absl::StrAppend(&out, "  ", absl::StrReplaceAll(LocalizationText(l), {{"\n", "\n  "}}));
      out.resize(out.size() - 2);  // the indent after the last line
    }
  }
  return out;
}

}  // namespace repro
