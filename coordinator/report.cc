#include "coordinator/report.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/stats.h"
#include "nlohmann/json.hpp"

namespace repro {
namespace {

using Json = nlohmann::ordered_json;

// ---- shared ----

const ArmReport* FindArm(const Report& report, const std::string& name) {
  for (const ArmReport& arm : report.arms) {
    if (arm.name == name) return &arm;
  }
  return nullptr;
}

std::string ArmNames(const Report& report) {
  std::vector<std::string> names;
  for (const ArmReport& arm : report.arms) names.push_back(arm.name);
  return names.empty() ? "(none)" : absl::StrJoin(names, ", ");
}

bool Shown(const std::string& arm_filter, const std::string& arm) {
  return arm_filter.empty() || arm_filter == arm;
}

// ---- JSON ----

Json Number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

Json Number(const std::optional<double>& value) {
  return value ? Number(*value) : Json(nullptr);
}

Json Pair(const std::optional<double>& loss, const std::optional<double>& accuracy) {
  Json pair = Json::object();
  pair["loss"] = Number(loss);
  pair["accuracy"] = Number(accuracy);
  return pair;
}

Json ArmJson(const ArmReport& arm) {
  Json j = Json::object();
  j["name"] = arm.name;
  j["runs_total"] = arm.runs_total;
  j["runs_done"] = arm.runs_done;
  j["runs_failed"] = arm.runs_failed;
  j["runs_remaining"] = arm.runs_remaining;
  j["reference_run"] = arm.reference_run >= 0 ? Json(arm.reference_run) : Json(nullptr);
  j["models_all_same"] = arm.models_all_same;
  j["data_all_same"] = arm.data_all_same;
  j["batches_all_same"] = arm.batches_all_same;
  j["final_models_all_same"] = arm.final_models_all_same;
  Json differences = Json::array();
  for (const Difference& d : arm.differences) {
    Json entry = Json::object();
    entry["run"] = d.run;
    entry["what"] = DifferenceKindName(d.what);
    entry["tensor"] = d.tensor;
    entry["index"] = d.index;
    entry["epoch"] = d.epoch ? Json(*d.epoch) : Json(nullptr);
    differences.push_back(std::move(entry));
  }
  j["differences"] = std::move(differences);
  j["first_divergence_epoch"] =
      arm.first_divergence_epoch ? Json(*arm.first_divergence_epoch) : Json(nullptr);
  j["mean"] = Pair(arm.loss.mean, arm.accuracy.mean);
  j["stdev"] = Pair(arm.loss.stdev, arm.accuracy.stdev);
  j["stdev_ddof1"] = Pair(arm.loss.stdev_ddof1, arm.accuracy.stdev_ddof1);
  j["min"] = Pair(arm.loss.min, arm.accuracy.min);
  j["max"] = Pair(arm.loss.max, arm.accuracy.max);
  return j;
}

Json RunJson(const RunView& run) {
  const bool done = run.state == RunState::kDone;
  const RunResult& r = run.result;
  Json j = Json::object();
  j["arm"] = run.arm;
  j["index"] = run.index;
  j["seeds"] = Json{{"init", run.init_seed}, {"shuffle", run.shuffle_seed},
                    {"augment", run.augment_seed}};
  j["state"] = RunStateName(run.state);
  j["attempts"] = run.attempts;
  j["worker"] = run.worker;
  j["error"] = run.error;
  j["current_epoch"] = run.state == RunState::kRunning && run.current_epoch >= 0
                           ? Json(run.current_epoch)
                           : Json(nullptr);
  j["test_loss"] = done ? Number(r.test_loss) : Json(nullptr);
  j["test_accuracy"] = done ? Number(r.test_accuracy) : Json(nullptr);
  j["initial_hash"] = r.initial_hash;
  j["final_hash"] = r.final_hash;
  j["data_x_hash"] = r.data_x_hash;
  j["data_y_hash"] = r.data_y_hash;
  Json epochs = Json::array();
  for (const EpochRecord& e : r.epochs) {
    Json entry = Json::object();
    entry["epoch"] = e.epoch;
    entry["loss"] = Number(e.loss);
    entry["accuracy"] = Number(e.accuracy);
    entry["val_loss"] = Number(e.val_loss);
    entry["val_accuracy"] = Number(e.val_accuracy);
    entry["seconds"] = Number(e.seconds);
    entry["lr"] = Number(e.lr);
    entry["batch_digest"] = e.batch_digest;
    entry["weights_hash"] = e.weights_hash;
    epochs.push_back(std::move(entry));
  }
  j["epochs"] = std::move(epochs);
  j["environment"] = r.environment;
  // Exported weight files stay on the worker that wrote them; empty when not exported.
  j["artifacts"] = Json{{"worker", run.worker}, {"initial_weights", r.initial_weights},
                        {"final_weights", r.final_weights}, {"epoch_weights", r.epoch_weights}};
  return j;
}

std::string RenderJson(const Report& report, const std::string& arm_filter) {
  Json j = Json::object();
  j["experiment"] = report.experiment;
  j["complete"] = report.complete;
  j["epochs"] = report.epochs;
  j["runs_total"] = report.runs_total;
  j["runs_done"] = report.runs_done;
  j["runs_failed"] = report.runs_failed;
  j["runs_remaining"] = report.runs_remaining;
  Json arms = Json::array();
  for (const ArmReport& arm : report.arms) {
    if (Shown(arm_filter, arm.name)) arms.push_back(ArmJson(arm));
  }
  j["arms"] = std::move(arms);
  j["stdev_ratio"] = Pair(report.stdev_ratio_loss, report.stdev_ratio_accuracy);
  Json runs = Json::array();
  for (const RunView& run : report.runs) {
    if (Shown(arm_filter, run.arm)) runs.push_back(RunJson(run));
  }
  j["runs"] = std::move(runs);
  // Worker-supplied strings (errors) may hold invalid UTF-8: replace, never throw.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// ---- text ----

std::string Row(const std::optional<double>& loss,
                const std::optional<double>& accuracy) {
  const double nan = std::nan("");
  return FormatNumpyArray({loss.value_or(nan), accuracy.value_or(nan)});
}

const char* PyBool(bool value) { return value ? "True" : "False"; }

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
    case DifferenceKind::kBatches:
      return absl::StrFormat(
          "- Different batches (compared with run #%d) in this run: #%d%s", reference,
          d.run, d.epoch ? absl::StrFormat(" (first at epoch %d)", *d.epoch) : "");
    case DifferenceKind::kFinalModel: {
      std::vector<std::string> details;
      if (!tensor.empty()) details.push_back(tensor);
      if (d.epoch) {
        details.push_back(
            absl::StrFormat("weights first differ after epoch %d", *d.epoch));
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

void AppendCheck(const ArmReport& arm, const char* title, bool all_same,
                 DifferenceKind kind, std::string* out) {
  absl::StrAppendFormat(out, "%s: %s (number of models checked: %d/%d)\n", title,
                        PyBool(all_same), arm.runs_done, arm.runs_total);
  for (const Difference& d : arm.differences) {
    if (d.what == kind) absl::StrAppend(out, DifferenceLine(d, arm.reference_run), "\n");
  }
}

std::string DivergenceLine(const ArmReport& arm) {
  if (arm.runs_done < 2) return "none (fewer than 2 runs done)";
  if (!arm.models_all_same || !arm.data_all_same) {
    return "not applicable (runs do not start from the same initial model and data)";
  }
  if (arm.first_divergence_epoch) {
    return absl::StrFormat(
        "epoch %d (the first epoch after which some run's weights differ from run "
        "#%d's)",
        *arm.first_divergence_epoch, arm.reference_run);
  }
  if (arm.epochs_compared == 0) return "none (no epochs recorded)";
  return absl::StrFormat("none (all runs identical through epoch %d)",
                         arm.epochs_compared - 1);
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
  if (arm.runs_failed > 0) {
    absl::StrAppendFormat(out, "Failed runs: %d\n", arm.runs_failed);
    for (const RunView& run : report.runs) {
      if (run.arm != arm.name || run.state != RunState::kFailed) continue;
      absl::StrAppendFormat(out, "- Run #%d (attempts: %d, worker: %s): %s\n", run.index,
                            run.attempts, run.worker.empty() ? "none" : run.worker,
                            run.error.empty() ? "no error recorded" : run.error);
    }
  }
  if (arm.runs_done == 0) {
    absl::StrAppend(out, "Scores [test loss, test accuracy]: none (no runs done)\n");
    return;
  }
  absl::StrAppendFormat(out, "Scores [test loss, test accuracy] over %d run%s:\n",
                        arm.runs_done, arm.runs_done == 1 ? "" : "s");
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
        &out, "Experiment %s: incomplete, %d of %d runs done (%s%d remaining)\n",
        report.experiment, report.runs_done, report.runs_total,
        report.runs_failed > 0 ? absl::StrFormat("%d failed, ", report.runs_failed) : "",
        report.runs_remaining);
  }
  for (const ArmReport& arm : report.arms) {
    if (Shown(arm_filter, arm.name)) AppendArmText(report, arm, &out);
  }
  if (arm_filter.empty() && FindArm(report, kSameSeedArm) != nullptr &&
      FindArm(report, kDifferentSeedsArm) != nullptr) {
    absl::StrAppendFormat(
        &out, "\nRatio of stdev %s / %s [test loss, test accuracy]: %s\n", kSameSeedArm,
        kDifferentSeedsArm, Row(report.stdev_ratio_loss, report.stdev_ratio_accuracy));
  }
  return out;
}

// ---- CSV ----

std::string RenderCsv(const Report& report, const std::string& arm) {
  std::vector<const RunView*> done;
  for (const RunView& run : report.runs) {
    if (run.arm == arm && run.state == RunState::kDone) done.push_back(&run);
  }
  std::stable_sort(done.begin(), done.end(), [](const RunView* a, const RunView* b) {
    return a->index < b->index;
  });
  std::string out;
  for (const RunView* run : done) {
    absl::StrAppendFormat(&out, "%.17g,%.17g\n", run->result.test_loss,
                          run->result.test_accuracy);
  }
  return out;
}

}  // namespace

absl::StatusOr<ReportFormat> ParseReportFormat(std::string_view name) {
  if (name == "text") return ReportFormat::kText;
  if (name == "json") return ReportFormat::kJson;
  if (name == "csv") return ReportFormat::kCsv;
  return absl::InvalidArgumentError(absl::StrCat("unknown report format '",
                                                 std::string(name),
                                                 "'; expected one of: text, json, csv"));
}

const char* ReportFormatName(ReportFormat format) {
  switch (format) {
    case ReportFormat::kText:
      return "text";
    case ReportFormat::kJson:
      return "json";
    case ReportFormat::kCsv:
      return "csv";
  }
  return "unknown";
}

absl::StatusOr<std::string> RenderReport(const Report& report, ReportFormat format,
                                         const std::string& arm) {
  if (format == ReportFormat::kCsv && arm.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "csv needs --arm NAME (the experiment's arms: ", ArmNames(report), ")"));
  }
  if (!arm.empty() && FindArm(report, arm) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown arm '", arm,
                                                   "'; the experiment's arms are: ",
                                                   ArmNames(report)));
  }
  switch (format) {
    case ReportFormat::kText:
      return RenderText(report, arm);
    case ReportFormat::kJson:
      return RenderJson(report, arm);
    case ReportFormat::kCsv:
      return RenderCsv(report, arm);
  }
  return absl::InvalidArgumentError("unknown report format");
}

}  // namespace repro
