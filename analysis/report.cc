#include "analysis/report.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analysis/stats.h"
#include "analysis/html_report.h"
#include "analysis/json_writer.h"
#include "analysis/localization.h"
#include "analysis/per_class_report.h"
#include "analysis/planning.h"
#include "analysis/report_text.h"

namespace repro {
namespace {

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
// Streamed with JsonWriter, never built as a tree: a 10,000-run x 200-epoch report is
// some 600 MB of JSON. The keys, their order and the number formatting are nlohmann's
// dump(2) of the documented structure (report_test checks the two agree byte for byte).

void Pair(JsonWriter& w, std::string_view key, const std::optional<double>& loss,
          const std::optional<double>& accuracy) {
  w.Key(key);
  w.BeginObject();
  w.Field("loss", loss);
  w.Field("accuracy", accuracy);
  w.EndObject();
}

void Interval(JsonWriter& w, std::string_view key, const std::optional<double>& low,
              const std::optional<double>& high) {
  w.Key(key);
  if (!low || !high) {
    w.Null();
    return;
  }
  w.BeginArray();
  w.Double(*low);
  w.Double(*high);
  w.EndArray();
}

void WriteArm(JsonWriter& w, const ArmReport& arm) {
  w.BeginObject();
  w.Field("name", arm.name);
  w.Field("runs_total", arm.runs_total);
  w.Field("runs_done", arm.runs_done);
  w.Field("runs_failed", arm.runs_failed);
  w.Field("runs_remaining", arm.runs_remaining);
  w.Field("runs_diverged", arm.runs_diverged);
  w.Field("runs_corrupt", arm.runs_corrupt);
  w.Field("runs_scored", arm.runs_scored);
  w.Field("reference_run",
          arm.reference_run >= 0 ? std::optional<int>(arm.reference_run) : std::nullopt);
  for (const auto& [key, all_same] : {std::pair{"models_all_same", arm.models_all_same},
                                      std::pair{"data_all_same", arm.data_all_same},
                                      std::pair{"batches_all_same", arm.batches_all_same},
                                      std::pair{"final_models_all_same", arm.final_models_all_same}}) {
    const std::optional<bool> shown = EqualityShown(arm, all_same);
    if (shown) {
      w.Field(key, *shown);
    } else {
      w.NullField(key);
    }
  }
  w.Key("differences");
  w.BeginArray();
  for (const Difference& d : arm.differences) {
    w.BeginObject();
    w.Field("run", d.run);
    w.Field("what", DifferenceKindName(d.what));
    w.Field("tensor", d.tensor);
    w.Field("index", d.index);
    w.Field("epoch", d.epoch);
    w.Field("batch", d.batch);
    w.EndObject();
  }
  w.EndArray();
  w.Field("first_divergence_epoch", arm.first_divergence_epoch);
  w.Field("first_divergence_batch", arm.first_divergence_batch);
  w.Key("diverged_by_epoch");
  if (arm.diverged_by_epoch) {
    w.BeginArray();
    for (const int n : *arm.diverged_by_epoch) w.Number(n);
    w.EndArray();
  } else {
    w.Null();
  }
  Pair(w, "mean", arm.loss.mean, arm.accuracy.mean);
  Pair(w, "stdev", arm.loss.stdev, arm.accuracy.stdev);
  Pair(w, "stdev_ddof1", arm.loss.stdev_ddof1, arm.accuracy.stdev_ddof1);
  Pair(w, "min", arm.loss.min, arm.accuracy.min);
  Pair(w, "max", arm.loss.max, arm.accuracy.max);
  w.Key("instability");
  w.BeginObject();
  w.Field("runs", arm.instability.runs);
  w.Field("pairs", arm.instability.pairs);
  w.Field("mean_disagreement", arm.instability.mean_disagreement);
  w.EndObject();
  WritePerClassJson(w, arm.per_class);
  const NoiseFloor& floor = arm.noise_floor;
  w.Key("noise_floor");
  w.BeginObject();
  w.Key("test_examples");
  if (floor.test_examples > 0) {
    w.Number(floor.test_examples);
  } else {
    w.Null();
  }
  w.Field("binomial_stdev", floor.binomial_stdev);
  w.Field("observed_stdev", floor.observed_stdev);
  w.Field("ratio", floor.ratio);
  w.EndObject();
  w.Key("seconds_per_epoch");
  w.BeginObject();
  w.Field("runs", arm.seconds_per_epoch.runs);
  w.Field("mean", arm.seconds_per_epoch.mean);
  Interval(w, "ci95", arm.seconds_per_epoch.ci_low, arm.seconds_per_epoch.ci_high);
  w.EndObject();
  w.EndObject();
}

void WriteCrossArm(JsonWriter& w, const CrossArmIdentity& identity) {
  w.BeginObject();
  w.Field("arm", identity.arm);
  w.Field("other", identity.other);
  w.Field("runs_with_same_seeds", identity.runs_with_same_seeds);
  w.Field("initial_identical", identity.initial_identical);
  w.Field("final_identical", identity.final_identical);
  w.Key("first_difference");
  if (identity.first_difference) {
    const Difference& d = *identity.first_difference;
    w.BeginObject();
    w.Field("run", d.run);
    w.Field("tensor", d.tensor);
    w.Field("index", d.index);
    w.Field("epoch", d.epoch);
    w.Field("batch", d.batch);
    w.EndObject();
  } else {
    w.Null();
  }
  w.EndObject();
}

void WriteCrossEnvironment(JsonWriter& w, const CrossEnvironment& matrix) {
  w.BeginObject();
  w.Key("environments");
  w.BeginArray();
  for (const Environment& e : matrix.environments) {
    w.BeginObject();
    w.Field("id", e.id);
    w.Field("label", e.label);
    w.Field("runs", e.runs);
    w.Key("fields");
    w.BeginObject();
    for (const auto& [key, value] : e.fields) w.Field(key, value);
    w.EndObject();
    w.EndObject();
  }
  w.EndArray();
  w.Key("cells");
  w.BeginArray();
  for (const EnvironmentCell& cell : matrix.cells) {
    w.BeginObject();
    w.Field("a", cell.a);
    w.Field("b", cell.b);
    w.Field("pairs", cell.pairs);
    w.Field("identical", cell.identical);
    w.Field("diverged_epoch", cell.diverged_epoch);
    w.Field("spread_ratio", cell.spread_ratio);
    w.Key("differing_fields");
    w.BeginArray();
    for (const std::string& field : cell.differing_fields) w.String(field);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void WriteDeterminismCost(JsonWriter& w, const DeterminismCost& cost) {
  w.BeginObject();
  w.Field("deterministic_arm", cost.deterministic_arm);
  w.Field("other_arm", cost.other_arm);
  w.Key("switches");
  w.BeginArray();
  for (const std::string& s : cost.switches) w.String(s);
  w.EndArray();
  w.Field("overhead", cost.overhead);
  Interval(w, "ci95", cost.ci_low, cost.ci_high);
  w.EndObject();
}

// The rule, why it stopped (null while it has not) and every look; null when the run
// count is fixed.
void WriteAdaptive(JsonWriter& w, const std::optional<AdaptiveState>& adaptive) {
  w.Key("adaptive");
  if (!adaptive) {
    w.Null();
    return;
  }
  const AdaptiveState& a = *adaptive;
  w.BeginObject();
  w.Field("min", a.min);
  w.Field("max", a.max);
  w.Field("step", a.step);
  w.Field("ratio_ci_width", a.ratio_ci_width);
  w.Field("metric", a.metric);
  w.Field("reference", a.reference);
  w.Field("looks_planned", a.looks_planned);
  w.Field("level", a.level);
  w.TextOrNull("stopped", a.stopped());
  w.Key("looks");
  w.BeginArray();
  for (const AdaptiveLook& look : a.looks) {
    w.BeginObject();
    w.Field("decision", look.decision);
    w.Key("added");
    w.BeginObject();
    for (const auto& [arm, runs] : look.added) w.Field(arm, runs);
    w.EndObject();
    w.Key("arms");
    w.BeginArray();
    for (const AdaptiveArmLook& arm : look.arms) {
      w.BeginObject();
      w.Field("arm", arm.arm);
      w.Field("runs", arm.runs);
      w.Field("reference_runs", arm.reference_runs);
      w.Field("ratio", arm.ratio);
      w.Field("low", arm.low);
      w.Field("high", arm.high);
      w.Field("width", arm.width());
      w.Field("settled", arm.settled);
      w.Field("runs_needed", arm.runs_needed);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

void WriteRun(JsonWriter& w, const RunView& run) {
  const bool scored = Scored(run);  // a diverged or corrupt run's scores are none
  const RunResult& r = run.result;
  w.BeginObject();
  w.Field("arm", run.arm);
  w.Field("index", run.index);
  w.Key("seeds");
  w.BeginObject();
  w.Field("init", run.init_seed);
  w.Field("shuffle", run.shuffle_seed);
  w.Field("augment", run.augment_seed);
  w.EndObject();
  w.Field("state", RunStateName(run.state));
  w.Field("attempts", run.attempts);
  w.Field("worker", run.worker);
  w.Field("error", run.error);
  w.Field("current_epoch", run.state == RunState::kRunning && run.current_epoch >= 0
                               ? std::optional<int>(run.current_epoch)
                               : std::nullopt);
  w.TextOrNull("diverged", r.diverged);
  w.TextOrNull("corrupt", run.corrupt);
  w.Field("test_loss", scored ? std::optional<double>(r.test_loss) : std::nullopt);
  w.Field("test_accuracy", scored ? std::optional<double>(r.test_accuracy) : std::nullopt);
  w.Field("initial_hash", r.initial_hash);
  w.Field("final_hash", r.final_hash);
  w.Field("data_x_hash", r.data_x_hash);
  w.Field("data_y_hash", r.data_y_hash);
  w.Key("epochs");
  w.BeginArray();
  for (const EpochRecord& e : r.epochs) {
    w.BeginObject();
    w.Field("epoch", e.epoch);
    w.Field("loss", e.loss);
    w.Field("accuracy", e.accuracy);
    w.Field("val_loss", e.val_loss);
    w.Field("val_accuracy", e.val_accuracy);
    w.Field("seconds", e.seconds);
    w.Field("lr", e.lr);
    w.Field("batch_digest", e.batch_digest);
    w.Field("weights_hash", e.weights_hash);
    w.EndObject();
  }
  w.EndArray();
  w.Key("environment");
  w.BeginObject();
  for (const auto& [key, value] : r.environment) w.Field(key, value);
  w.EndObject();
  // Exported weights files, as the coordinator's blob store holds them (reproctl fetch).
  w.Key("weights");
  w.BeginArray();
  for (const WeightsFile& file : r.weights) {
    w.BeginObject();
    w.Field("name", file.name);
    w.Field("sha256", file.sha256);
    w.Field("size", file.size);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

// With a sink, the text goes to it in pieces of about kPiece bytes (and the returned
// string holds nothing); without, it is returned whole.
constexpr size_t kPiece = 1 << 20;

std::string RenderJson(const Report& report, const std::string& arm_filter,
                       const ReportSink* sink = nullptr) {
  std::string out;
  if (sink != nullptr) {
    out.reserve(2 * kPiece);
  } else {
    // About 400 bytes per epoch record dominate a large report: one allocation up front.
    size_t epochs = 0;
    for (const RunView& run : report.runs) {
      if (Shown(arm_filter, run.arm)) epochs += run.result.epochs.size();
    }
    out.reserve(4096 + 1024 * report.runs.size() + 420 * epochs);
  }
  JsonWriter w(&out);
  w.BeginObject();
  w.Field("experiment", report.experiment);
  w.Field("complete", report.complete);
  w.Field("epochs", report.epochs);
  w.Field("runs_total", report.runs_total);
  w.Field("runs_done", report.runs_done);
  w.Field("runs_failed", report.runs_failed);
  w.Field("runs_remaining", report.runs_remaining);
  w.Key("notes");
  w.BeginArray();
  for (const std::string& note : report.notes) w.String(note);
  w.EndArray();
  w.Key("weights_storage");
  w.BeginObject();
  w.Field("files", report.weights.files);
  w.Field("bytes", report.weights.bytes);
  w.Field("stored_bytes", report.weights.stored_bytes);
  w.EndObject();
  w.Key("arms");
  w.BeginArray();
  for (const ArmReport& arm : report.arms) {
    if (Shown(arm_filter, arm.name)) WriteArm(w, arm);
  }
  w.EndArray();
  Pair(w, "stdev_ratio", report.stdev_ratio_loss, report.stdev_ratio_accuracy);
  w.Key("reference_arm");
  if (report.reference_arm.empty()) {
    w.Null();
  } else {
    w.String(report.reference_arm);
  }
  w.Key("bootstrap");
  w.BeginObject();
  w.Field("resamples", report.bootstrap_resamples);
  w.Field("seed", report.seed);
  w.EndObject();
  WritePlanningJson(w, report.ci_width, report.power_ratio);
  w.Key("comparisons");
  w.BeginArray();
  for (const ArmComparison& c : report.comparisons) WriteComparisonJson(w, c);
  w.EndArray();
  w.Key("cross_arm");
  w.BeginArray();
  for (const CrossArmIdentity& identity : report.cross_arm) WriteCrossArm(w, identity);
  w.EndArray();
  w.Key("cross_environment");
  if (report.cross_environment) {
    WriteCrossEnvironment(w, *report.cross_environment);
  } else {
    w.Null();
  }
  w.Key("determinism_cost");
  w.BeginArray();
  for (const DeterminismCost& cost : report.determinism_costs) WriteDeterminismCost(w, cost);
  w.EndArray();
  w.Key("where_runs_part");
  w.BeginArray();
  for (const LocalizationState& l : report.localizations) WriteLocalization(w, l);
  w.EndArray();
  WriteAdaptive(w, report.adaptive);
  w.Key("runs");
  w.BeginArray();
  for (const RunView& run : report.runs) {
    if (!Shown(arm_filter, run.arm)) continue;
    WriteRun(w, run);
    if (sink != nullptr && out.size() >= kPiece) {
      (*sink)(out);
      out.clear();
    }
  }
  w.EndArray();
  w.EndObject();
  out.push_back('\n');
  if (sink != nullptr) {
    (*sink)(out);
    out.clear();
  }
  return out;
}

// ---- CSV ----

std::string RenderCsv(const Report& report, const std::string& arm) {
  std::vector<const RunView*> done;
  for (const RunView& run : report.runs) {
    if (run.arm == arm && Scored(run)) done.push_back(&run);
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

void WriteComparisonJson(JsonWriter& w, const ArmComparison& c) {
  const ScoreComparison& s = c.scores;
  auto test = [&](std::string_view key, const ColumnComparison& column) {
    w.Key(key);
    w.BeginObject();
    w.Field("F", column.brown_forsythe_f);
    w.Field("p", column.brown_forsythe_p);
    w.EndObject();
  };
  auto runs = [&](std::string_view key, bool power) {
    w.Key(key);
    w.BeginObject();
    for (const auto& [name, column] :
         {std::pair{"loss", &s.loss}, std::pair{"accuracy", &s.accuracy}}) {
      const std::optional<int64_t>& n =
          power ? column->plan.runs_for_power : column->plan.runs_for_width;
      w.Key(name);
      if (n) {
        w.Number(*n);
      } else {
        w.Null();
      }
    }
    w.EndObject();
  };
  auto plan = [&](std::string_view key, const ColumnPlan& p) {
    w.Key(key);
    w.BeginObject();
    w.Field("width", PlanOutcomeName(p.width));
    w.Field("power", PlanOutcomeName(p.power));
    w.Field("pilot_width", p.pilot_width);
    w.Field("kurtosis", p.kurtosis);
    w.Field("reference_kurtosis", p.reference_kurtosis);
    w.EndObject();
  };
  w.BeginObject();
  w.Field("arm", c.arm);
  w.Field("reference", c.reference);
  Pair(w, "stdev_ratio", s.loss.stdev_ratio, s.accuracy.stdev_ratio);
  Pair(w, "variance_share", s.loss.variance_share, s.accuracy.variance_share);
  w.Key("ci95");
  w.BeginObject();
  Interval(w, "loss", s.loss.ci_low, s.loss.ci_high);
  Interval(w, "accuracy", s.accuracy.ci_low, s.accuracy.ci_high);
  w.EndObject();
  w.Key("brown_forsythe");
  w.BeginObject();
  test("loss", s.loss);
  test("accuracy", s.accuracy);
  w.EndObject();
  runs("runs_needed", false);
  runs("runs_needed_power", true);
  w.Key("planning");
  w.BeginObject();
  plan("loss", s.loss.plan);
  plan("accuracy", s.accuracy.plan);
  w.EndObject();
  w.EndObject();
}

void WritePlanningJson(JsonWriter& w, double ci_width, double power_ratio) {
  w.Key("planning");
  w.BeginObject();
  w.Field("ci_width", ci_width);
  w.Field("level", 0.95);
  w.Field("power", kPlanningPower);
  w.Field("power_ratio", power_ratio > 0 ? std::optional<double>(power_ratio) : std::nullopt);
  w.Field("max_runs", kMaxPlannedRuns);
  w.Field("method", "delta method for log(stdev) with the pilots' kurtosis");
  w.EndObject();
}

absl::StatusOr<ReportFormat> ParseReportFormat(std::string_view name) {
  if (name == "text") return ReportFormat::kText;
  if (name == "json") return ReportFormat::kJson;
  if (name == "csv") return ReportFormat::kCsv;
  if (name == "html") return ReportFormat::kHtml;
  if (name == "csv-per-class") return ReportFormat::kCsvPerClass;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown report format '", std::string(name),
                   "'; expected one of: text, json, csv, html, csv-per-class"));
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
    case ReportFormat::kCsvPerClass:
      return "csv-per-class";
  }
  return "unknown";
}

namespace {

absl::Status CheckRenderable(const Report& report, ReportFormat format, const std::string& arm) {
  if (format == ReportFormat::kCsv && arm.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "csv needs --arm NAME (the experiment's arms: ", ArmNames(report), ")"));
  }
  if (!arm.empty() && FindArm(report, arm) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown arm '", arm,
                                                   "'; the experiment's arms are: ",
                                                   ArmNames(report)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> RenderReport(const Report& report, ReportFormat format,
                                         const std::string& arm) {
  if (absl::Status s = CheckRenderable(report, format, arm); !s.ok()) return s;
  switch (format) {
    case ReportFormat::kText:
      return RenderText(report, arm);
    case ReportFormat::kJson:
      return RenderJson(report, arm);
    case ReportFormat::kCsv:
      return RenderCsv(report, arm);
    case ReportFormat::kHtml:
      return RenderHtml(report, arm);
    case ReportFormat::kCsvPerClass:
      return PerClassCsv(report, arm);
  }
  return absl::InvalidArgumentError("unknown report format");
}

absl::Status WriteReport(const Report& report, ReportFormat format, const std::string& arm,
                         const ReportSink& sink) {
  if (absl::Status s = CheckRenderable(report, format, arm); !s.ok()) return s;
  if (format == ReportFormat::kJson) {
    RenderJson(report, arm, &sink);
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> whole = RenderReport(report, format, arm);
  if (!whole.ok()) return whole.status();
  sink(*whole);
  return absl::OkStatus();
}

}  // namespace repro
