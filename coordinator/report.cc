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
#include "coordinator/html_report.h"
#include "coordinator/report_text.h"
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

Json Optional(const std::optional<int>& value) {
  return value ? Json(*value) : Json(nullptr);
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
    entry["epoch"] = Optional(d.epoch);
    entry["batch"] = Optional(d.batch);
    differences.push_back(std::move(entry));
  }
  j["differences"] = std::move(differences);
  j["first_divergence_epoch"] = Optional(arm.first_divergence_epoch);
  j["first_divergence_batch"] = Optional(arm.first_divergence_batch);
  j["diverged_by_epoch"] =
      arm.diverged_by_epoch ? Json(*arm.diverged_by_epoch) : Json(nullptr);
  j["mean"] = Pair(arm.loss.mean, arm.accuracy.mean);
  j["stdev"] = Pair(arm.loss.stdev, arm.accuracy.stdev);
  j["stdev_ddof1"] = Pair(arm.loss.stdev_ddof1, arm.accuracy.stdev_ddof1);
  j["min"] = Pair(arm.loss.min, arm.accuracy.min);
  j["max"] = Pair(arm.loss.max, arm.accuracy.max);
  j["instability"] = Json{{"runs", arm.instability.runs},
                          {"pairs", arm.instability.pairs},
                          {"mean_disagreement", Number(arm.instability.mean_disagreement)}};
  return j;
}

Json Interval(const std::optional<double>& low, const std::optional<double>& high) {
  if (!low || !high) return Json(nullptr);
  return Json::array({Number(low), Number(high)});
}

Json ComparisonJson(const ArmComparison& c) {
  const ScoreComparison& s = c.scores;
  auto test = [](const ColumnComparison& column) {
    return Json{{"F", Number(column.brown_forsythe_f)},
                {"p", Number(column.brown_forsythe_p)}};
  };
  Json j = Json::object();
  j["arm"] = c.arm;
  j["reference"] = c.reference;
  j["stdev_ratio"] = Pair(s.loss.stdev_ratio, s.accuracy.stdev_ratio);
  j["variance_share"] = Pair(s.loss.variance_share, s.accuracy.variance_share);
  j["ci95"] = Json{{"loss", Interval(s.loss.ci_low, s.loss.ci_high)},
                   {"accuracy", Interval(s.accuracy.ci_low, s.accuracy.ci_high)}};
  j["brown_forsythe"] = Json{{"loss", test(s.loss)}, {"accuracy", test(s.accuracy)}};
  return j;
}

Json CrossArmJson(const CrossArmIdentity& identity) {
  Json j = Json::object();
  j["arm"] = identity.arm;
  j["other"] = identity.other;
  j["runs_with_same_seeds"] = identity.runs_with_same_seeds;
  j["initial_identical"] = identity.initial_identical;
  j["final_identical"] = identity.final_identical;
  if (identity.first_difference) {
    const Difference& d = *identity.first_difference;
    j["first_difference"] = Json{{"run", d.run},         {"tensor", d.tensor},
                                 {"index", d.index},     {"epoch", Optional(d.epoch)},
                                 {"batch", Optional(d.batch)}};
  } else {
    j["first_difference"] = nullptr;
  }
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
  j["reference_arm"] =
      report.reference_arm.empty() ? Json(nullptr) : Json(report.reference_arm);
  j["bootstrap"] = Json{{"resamples", report.bootstrap_resamples}, {"seed", report.seed}};
  Json comparisons = Json::array();
  for (const ArmComparison& c : report.comparisons) comparisons.push_back(ComparisonJson(c));
  j["comparisons"] = std::move(comparisons);
  Json cross_arm = Json::array();
  for (const CrossArmIdentity& identity : report.cross_arm) {
    cross_arm.push_back(CrossArmJson(identity));
  }
  j["cross_arm"] = std::move(cross_arm);
  Json runs = Json::array();
  for (const RunView& run : report.runs) {
    if (Shown(arm_filter, run.arm)) runs.push_back(RunJson(run));
  }
  j["runs"] = std::move(runs);
  // Worker-supplied strings (errors) may hold invalid UTF-8: replace, never throw.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
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
  if (name == "html") return ReportFormat::kHtml;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown report format '", std::string(name),
                   "'; expected one of: text, json, csv, html"));
}

const char* ReportFormatName(ReportFormat format) {
  switch (format) {
    case ReportFormat::kText:
      return "text";
    case ReportFormat::kJson:
      return "json";
    case ReportFormat::kCsv:
      return "csv";
    case ReportFormat::kHtml:
      return "html";
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
    case ReportFormat::kHtml:
      return RenderHtml(report, arm);
  }
  return absl::InvalidArgumentError("unknown report format");
}

}  // namespace repro
