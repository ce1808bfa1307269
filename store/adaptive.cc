// RunStore's adaptive run counts: the rule and the looks of an experiment whose plan says
// `runs: {min, max, step, until}` (common/plan.h AdaptiveRuns), kept as JSON in
// experiments.adaptive, and the runs each look adds.
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/plan.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace repro {
namespace {

using Json = nlohmann::json;

template <typename T>
Json OrNull(const std::optional<T>& value) {
  return value ? Json(*value) : Json(nullptr);
}

template <typename T>
std::optional<T> Optional(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  return j[key].get<T>();
}

Json LookJson(const AdaptiveLook& look) {
  Json arms = Json::array();
  for (const AdaptiveArmLook& a : look.arms) {
    arms.push_back({{"arm", a.arm}, {"runs", a.runs}, {"reference_runs", a.reference_runs},
                    {"ratio", OrNull(a.ratio)}, {"low", OrNull(a.low)}, {"high", OrNull(a.high)},
                    {"settled", a.settled}, {"runs_needed", OrNull(a.runs_needed)}});
  }
  return {{"decision", look.decision}, {"added", look.added}, {"arms", arms}};
}

AdaptiveLook LookFromJson(const Json& j) {
  AdaptiveLook look;
  look.decision = j.at("decision").get<std::string>();
  look.added = j.at("added").get<std::map<std::string, int>>();
  for (const Json& a : j.at("arms")) {
    AdaptiveArmLook arm;
    arm.arm = a.at("arm").get<std::string>();
    arm.runs = a.at("runs").get<int>();
    arm.reference_runs = a.at("reference_runs").get<int>();
    arm.ratio = Optional<double>(a, "ratio");
    arm.low = Optional<double>(a, "low");
    arm.high = Optional<double>(a, "high");
    arm.settled = a.at("settled").get<bool>();
    arm.runs_needed = Optional<int64_t>(a, "runs_needed");
    look.arms.push_back(std::move(arm));
  }
  return look;
}

}  // namespace

Json AdaptiveStateJson(const AdaptiveState& s) {
  Json looks = Json::array();
  for (const AdaptiveLook& look : s.looks) looks.push_back(LookJson(look));
  const std::string stopped = s.stopped();
  return {{"min", s.min}, {"max", s.max}, {"step", s.step}, {"ratio_ci_width", s.ratio_ci_width},
          {"metric", s.metric}, {"reference", s.reference}, {"looks_planned", s.looks_planned},
          {"level", s.level}, {"stopped", stopped.empty() ? Json(nullptr) : Json(stopped)},
          {"looks", looks}};
}

absl::StatusOr<AdaptiveState> ParseAdaptiveState(const std::string& text) {
  const Json j = Json::parse(text, nullptr, false);
  try {
    AdaptiveState s;
    s.min = j.at("min").get<int>();
    s.max = j.at("max").get<int>();
    s.step = j.at("step").get<int>();
    s.ratio_ci_width = j.at("ratio_ci_width").get<double>();
    s.metric = j.at("metric").get<std::string>();
    s.reference = j.at("reference").get<std::string>();
    s.looks_planned = j.at("looks_planned").get<int>();
    s.level = j.at("level").get<double>();
    for (const Json& look : j.at("looks")) s.looks.push_back(LookFromJson(look));
    return s;
  } catch (const Json::exception& e) {
    return absl::DataLossError(absl::StrCat("the adaptive run count's state is damaged: ", e.what()));
  }
}

AdaptiveState NewAdaptiveState(const Plan& plan) {
  const AdaptiveRuns& rule = *plan.adaptive;
  return AdaptiveRule(plan.runs, rule.max, rule.step, rule.ratio_ci_width, rule.metric,
                      rule.reference);
}

absl::StatusOr<std::optional<AdaptiveState>> RunStore::Adaptive(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT adaptive FROM experiments WHERE name = ?"));
  q->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return NoExperimentError(db_->path(), experiment);
  if (q->IsNull(0)) return std::optional<AdaptiveState>();
  ASSIGN_OR_RETURN(AdaptiveState state, ParseAdaptiveState(q->Text(0)));
  return std::optional<AdaptiveState>(std::move(state));
}

absl::Status RunStore::RecordLook(const Plan& plan, int number, const AdaptiveLook& look) {
  return Write([&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT id, adaptive FROM experiments WHERE name = ?"));
    q->Bind(1, plan.experiment);
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) return NoExperimentError(db_->path(), plan.experiment);
    const int64_t experiment_id = q->Int(0);
    if (q->IsNull(1)) {
      return absl::FailedPreconditionError(
          absl::StrCat("experiment ", plan.experiment, " has a fixed run count; it takes no looks"));
    }
    ASSIGN_OR_RETURN(AdaptiveState state, ParseAdaptiveState(q->Text(1)));
    if (number != static_cast<int>(state.looks.size()) + 1 || !state.stopped().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "look ", number, " of experiment ", plan.experiment, " is not the next one (",
          state.looks.size(), " taken", state.stopped().empty() ? "" : ", stopped", ")"));
    }
    ASSIGN_OR_RETURN(auto next, db_->Prepare(
        "SELECT COALESCE(MAX(idx) + 1, 0) FROM runs WHERE experiment_id = ? AND arm = ?"));
    for (const auto& [arm, count] : look.added) {
      size_t a = 0;
      while (a < plan.arms.size() && plan.arms[a].name != arm) ++a;
      if (a == plan.arms.size()) return absl::InvalidArgumentError(absl::StrCat("no arm ", arm));
      next->Reset();
      next->Bind(1, experiment_id).Bind(2, arm);
      ASSIGN_OR_RETURN(bool found, next->Step());
      const int from = found ? static_cast<int>(next->Int(0)) : 0;
      RETURN_IF_ERROR(InsertRuns(experiment_id, plan, a, from, count));
    }
    state.looks.push_back(look);
    ASSIGN_OR_RETURN(auto put, db_->Prepare("UPDATE experiments SET adaptive = ? WHERE id = ?"));
    return put->Bind(1, AdaptiveStateJson(state).dump()).Bind(2, experiment_id).Run();
  });
}

}  // namespace repro
