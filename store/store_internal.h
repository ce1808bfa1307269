// Private to store/: what the files that implement RunStore share (store.cc, leases.cc,
// results.cc, workers.cc). Only store/*.cc include this header; code outside store/
// uses store.h.
//
// - RunStore::Write / WriteLocked: the one way a RunStore method changes the store.
// - ForEachRow: steps a query to its end.
// - NoExperimentError: the NOT_FOUND for an experiment name the store does not hold.
// - StringMap: a JSON object of strings as the store keeps it (a run's environment, a
//   worker's capabilities and labels) back into a map.
// - AdaptiveStateJson / ParseAdaptiveState: an adaptive experiment's rule and looks.
//
// Thread safety: Write takes the store's mutex; WriteLocked and ForEachRow run under
// it (they use the store's connection, which belongs to one thread at a time).
#ifndef REPRO_STORE_STORE_INTERNAL_H_
#define REPRO_STORE_STORE_INTERNAL_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "store/group_commit.h"
#include "store/sqlite.h"
#include "store/store.h"

namespace repro {

// One change is one transaction: a savepoint in the group commit's shared transaction
// (group_commit.h). `change` (returning absl::Status or absl::StatusOr<T>) states the
// SQL; an error it returns rolls everything it did back, and an OK result is returned
// once the commit that holds the change is on disk. A change that finds nothing to do
// returns OK having changed no row: releasing its empty savepoint writes nothing and
// waits for no commit, as rolling it back would.
template <typename Change>
std::invoke_result_t<Change&> RunStore::WriteLocked(Change&& change) {
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  std::invoke_result_t<Change&> result = change();
  if (!result.ok()) return result;  // ~Transaction rolls the change back
  RETURN_IF_ERROR(tx.Commit());
  return result;
}

template <typename Change>
std::invoke_result_t<Change&> RunStore::Write(Change&& change) {
  QueuedLock lock(&mu_, &queued_);  // counted in queued_, so that writers share commits
  return WriteLocked(std::forward<Change>(change));
}

// Steps `q` to its end, handing each row to `read(q)`.
template <typename Read>
absl::Status ForEachRow(sql::Statement& q, Read&& read) {
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return absl::OkStatus();
    read(static_cast<const sql::Statement&>(q));
  }
}

// `path` holds no experiment of that name.
inline absl::Status NoExperimentError(const std::string& path, const std::string& experiment) {
  return absl::NotFoundError(absl::StrCat(path, " has no experiment \"", experiment, "\""));
}

// Kept from well-formed values; a damaged cell reads as empty, a non-string entry is left out.
inline std::map<std::string, std::string> StringMap(const std::string& json) {
  std::map<std::string, std::string> out;
  const auto parsed = nlohmann::json::parse(json, nullptr, false);
  if (!parsed.is_object()) return out;
  for (const auto& [key, value] : parsed.items()) {
    if (value.is_string()) out[key] = value.get<std::string>();
  }
  return out;
}

// An adaptive experiment's state as the store keeps it (experiments.adaptive) and status
// JSON shows it (adaptive.cc): {min, max, step, ratio_ci_width, metric, reference,
// looks_planned, level, stopped, looks: [{decision, added, arms: [{arm, runs,
// reference_runs, ratio, low, high, settled, runs_needed}]}]}, null where nullopt.
nlohmann::json AdaptiveStateJson(const AdaptiveState& state);
// Back from that JSON; DATA_LOSS when the cell is not such an object.
absl::StatusOr<AdaptiveState> ParseAdaptiveState(const std::string& json);
// The rule of `plan`'s adaptive run count, before any look.
AdaptiveState NewAdaptiveState(const Plan& plan);

}  // namespace repro

#endif  // REPRO_STORE_STORE_INTERNAL_H_
