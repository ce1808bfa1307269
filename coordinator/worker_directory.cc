#include "coordinator/worker_directory.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/placement.h"
#include "common/status_macros.h"

namespace repro {

WorkerDirectory::WorkerDirectory(const Plan* plan, RunStore* store) : plan_(plan), store_(store) {}

WorkerDirectory::Entry WorkerDirectory::Make(const WorkerRecord& worker) const {
  Entry entry{worker, {}, true};
  for (const ArmSpec& arm : plan_->arms) {
    if (PlacementMismatch(arm, worker).empty()) {
      entry.arms.push_back(arm.name);
      if (arm.placement.spread != Spread::kNone) entry.all = false;
    } else {
      entry.all = false;
    }
  }
  return entry;
}

std::string WorkerDirectory::Register(const WorkerRecord& worker) {
  Entry entry = Make(worker);
  std::vector<std::string> refused;
  for (const ArmSpec& arm : plan_->arms) {
    if (std::string why = PlacementMismatch(arm, worker); !why.empty()) {
      refused.push_back(absl::StrCat(arm.name, " (", why, ")"));
    }
  }
  std::string note;
  if (!refused.empty()) {
    note = absl::StrCat("runs ", entry.arms.empty() ? "no arm" : "arms " + absl::StrJoin(entry.arms, ", "),
                        "; not ", absl::StrJoin(refused, ", "));
  }
  absl::MutexLock lock(&mu_);
  entries_[worker.name] = std::move(entry);
  return note;
}

absl::StatusOr<WorkerDirectory::Entry> WorkerDirectory::Find(const std::string& worker) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(worker); it != entries_.end()) return it->second;
  }
  // Registered with an earlier coordinator on this database.
  ASSIGN_OR_RETURN(std::optional<WorkerRecord> record, store_->Worker(worker));
  if (!record) return absl::NotFoundError(absl::StrCat("worker \"", worker, "\" is not registered"));
  Entry entry = Make(*record);
  absl::MutexLock lock(&mu_);
  return entries_.try_emplace(worker, std::move(entry)).first->second;
}

absl::StatusOr<std::optional<std::vector<std::string>>> WorkerDirectory::ArmsFor(
    const std::string& worker) {
  {
    // The common case, on every lease: a worker that may run every arm, none spread.
    absl::MutexLock lock(&mu_);
    if (auto it = entries_.find(worker); it != entries_.end() && it->second.all) return std::nullopt;
  }
  ASSIGN_OR_RETURN(Entry entry, Find(worker));
  if (entry.all) return std::nullopt;
  std::vector<std::string> arms;
  for (const std::string& name : entry.arms) {
    const auto arm = std::find_if(plan_->arms.begin(), plan_->arms.end(),
                                  [&](const ArmSpec& a) { return a.name == name; });
    if (arm->placement.spread != Spread::kNone) {
      ASSIGN_OR_RETURN(bool allowed, SpreadAllows(*arm, entry.record));
      if (!allowed) continue;
    }
    arms.push_back(name);
  }
  return arms;
}

absl::StatusOr<bool> WorkerDirectory::SpreadAllows(const ArmSpec& arm, const WorkerRecord& worker) {
  using Counts = std::map<std::string, int>;
  ASSIGN_OR_RETURN(const Counts by_worker, store_->ArmRunsByWorker(plan_->experiment, arm.name));
  ASSIGN_OR_RETURN(const std::vector<WorkerRecord> workers, store_->Workers());
  // Runs per host (or GPU), whoever ran them, even a worker gone since.
  std::map<std::string, int> by_key;
  for (const WorkerRecord& w : workers) {
    if (auto it = by_worker.find(w.name); it != by_worker.end()) by_key[SpreadKey(arm, w)] += it->second;
  }
  int least = INT_MAX;
  for (const WorkerRecord& w : workers) {
    if (w.gone() || !PlacementMismatch(arm, w).empty()) continue;
    const auto it = by_key.find(SpreadKey(arm, w));
    least = std::min(least, it == by_key.end() ? 0 : it->second);
  }
  const auto mine = by_key.find(SpreadKey(arm, worker));
  return (mine == by_key.end() ? 0 : mine->second) <= least;
}

absl::StatusOr<ReplayerRule> WorkerDirectory::ReplayerFor(const std::string& worker) {
  ASSIGN_OR_RETURN(const Entry entry, Find(worker));
  return [entry](const ReplayedRun& run) {
    return std::find(entry.arms.begin(), entry.arms.end(), run.arm) != entry.arms.end() &&
           ReplayMismatch(run.environment, entry.record).empty();
  };
}

}  // namespace repro
