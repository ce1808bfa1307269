#include "coordinator/adaptive_rounds.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "analysis/adaptive.h"
#include "common/status_macros.h"

namespace repro {

AdaptiveRounds::AdaptiveRounds(RunStore* store, const Plan& plan, Log log)
    : store_(store), plan_(plan), log_(std::move(log)) {}

absl::StatusOr<bool> AdaptiveRounds::Finished(bool* added) {
  if (!plan_.adaptive) {
    ASSIGN_OR_RETURN(const RunCounts counts, store_->Counts(plan_.experiment));
    return counts.finished();
  }
  // Counted under the lock: a caller that counted before another's look added a round
  // would otherwise take a look of its own over the new round's pending runs.
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(const RunCounts counts, store_->Counts(plan_.experiment));
  if (!counts.finished()) return false;
  if (stopped_) return true;
  return Look(added);
}

absl::StatusOr<bool> AdaptiveRounds::Look(bool* added) {
  ASSIGN_OR_RETURN(std::optional<AdaptiveState> state, store_->Adaptive(plan_.experiment));
  if (!state) {
    return absl::FailedPreconditionError(absl::StrCat(
        "experiment ", plan_.experiment, " has an adaptive plan but the store keeps no rule for it"));
  }
  if (!state->stopped().empty()) {
    stopped_ = true;
    return true;
  }
  ASSIGN_OR_RETURN(const ExperimentView view, store_->LoadView(plan_.experiment));
  for (const RunView& run : view.runs) {
    // Only rounds add runs, and only under the lock: a look sees a finished round.
    if (run.state == RunState::kPending || run.state == RunState::kRunning) {
      return absl::InternalError(absl::StrCat("a look at experiment ", plan_.experiment,
                                              " found run ", run.arm, "#", run.index,
                                              " unfinished; no look taken"));
    }
  }
  const AdaptiveLook look = TakeLook(view, *state);
  const int number = static_cast<int>(state->looks.size()) + 1;
  RETURN_IF_ERROR(store_->RecordLook(plan_, number, look));
  log_(DescribeLook(*state, number, look));
  stopped_ = look.decision != "more";
  if (added != nullptr) *added = !stopped_;
  return stopped_;
}

namespace {

std::string Number(const std::optional<double>& x) {
  return x ? absl::StrFormat("%.4g", *x) : std::string("undefined");
}

std::string DescribeArm(const AdaptiveArmLook& a, double target) {
  std::string out = absl::StrCat(a.arm, " ratio ", Number(a.ratio));
  if (a.low && a.high) {
    absl::StrAppend(&out, " in [", Number(a.low), ", ", Number(a.high), "], ",
                    Number(a.width()), " wide (target ", Number(target), ")");
  } else {
    absl::StrAppend(&out, " (", a.runs, " and ", a.reference_runs, " scored runs)");
  }
  return out;
}

}  // namespace

std::string DescribeLook(const AdaptiveState& state, int number, const AdaptiveLook& look) {
  std::vector<std::string> arms;
  for (const AdaptiveArmLook& a : look.arms) arms.push_back(DescribeArm(a, state.ratio_ci_width));
  std::string out = absl::StrFormat("look %d of at most %d (interval level %.4g %%): %s; ", number,
                                    state.looks_planned, 100 * state.level,
                                    absl::StrJoin(arms, ", "));
  if (look.decision == "reached") {
    absl::StrAppend(&out, "every arm settled, no more runs");
  } else if (look.decision == "max") {
    absl::StrAppend(&out, "not settled at ", state.max, " runs of ", state.reference,
                    ", the most the plan allows: no more runs");
  } else {
    std::vector<std::string> added;
    for (const auto& [arm, n] : look.added) added.push_back(absl::StrCat(n, " for ", arm));
    absl::StrAppend(&out, "more runs: ", absl::StrJoin(added, ", "));
  }
  return out;
}

}  // namespace repro
