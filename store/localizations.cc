// RunStore's localizations: where two finished runs part (reproctl localize). The store
// finds the epoch to replay from the runs' recorded weights hashes, hands the request to
// a worker like a run (with a lease and a secret), and keeps its answer as JSON.
#include <algorithm>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace repro {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(
    LocalizationResult, epoch, batches, batch, a_reproduced, b_reproduced, op_kind, op_index,
    op_name, op_name_b, op_module, op_phase, inputs_equal, differing_outputs, values,
    differing_values, max_abs, max_ulps, trace_changed_nothing, trace_ops, trace_bytes,
    replay_seconds, step_seconds, traced_step_seconds, seconds, worker)

namespace {

// A run of the experiment by its label: its id and the attempt whose result counts (0:
// none yet).
struct NamedRun {
  int64_t id = 0;
  int64_t result_attempt = 0;
};

absl::StatusOr<NamedRun> FindRun(sql::Database& db, int64_t experiment_id,
                                 const std::string& experiment, const std::string& label) {
  std::string arm;
  int index = 0;
  if (!ParseRunLabel(label, &arm, &index)) {
    return absl::InvalidArgumentError(absl::StrCat("run \"", label.substr(0, 200),
                                                   "\": expected ARM#INDEX, as status names it"));
  }
  ASSIGN_OR_RETURN(auto q, db.Prepare(
      "SELECT id, COALESCE(result_attempt, 0) FROM runs "
      "WHERE experiment_id = ? AND arm = ? AND idx = ?"));
  q->Bind(1, experiment_id).Bind(2, arm).Bind(3, static_cast<int64_t>(index));
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) {
    return absl::InvalidArgumentError(absl::StrCat("experiment ", experiment, " has no run ", label));
  }
  return NamedRun{q->Int(0), q->Int(1)};
}

// The weights hash of each epoch of an attempt's result, in order.
absl::StatusOr<std::vector<std::string>> EpochHashes(sql::Database& db, int64_t attempt) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(
      "SELECT weights_hash FROM epochs WHERE attempt_id = ? ORDER BY epoch"));
  q->Bind(1, attempt);
  std::vector<std::string> hashes;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) { hashes.push_back(row.Text(0)); }));
  return hashes;
}

// The first epoch after which the two results' weights differ; FAILED_PRECONDITION when
// they did not start alike or never part.
absl::StatusOr<int> FirstPartingEpoch(sql::Database& db, const std::string& run_a,
                                      const std::string& run_b, const NamedRun& a,
                                      const NamedRun& b) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(
      "SELECT a.initial_hash = b.initial_hash, a.data_x_hash = b.data_x_hash AND "
      "a.data_y_hash = b.data_y_hash FROM attempts a, attempts b WHERE a.id = ? AND b.id = ?"));
  q->Bind(1, a.result_attempt).Bind(2, b.result_attempt);
  ASSIGN_OR_RETURN(bool row, q->Step());
  const std::string pair = absl::StrCat(run_a, " and ", run_b);
  if (row && q->Int(0) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        pair, " did not start alike (their initial weights differ): they differ before the "
        "first step, so no batch parts them; localize compares runs that start alike"));
  }
  if (row && q->Int(1) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        pair, " trained on different data: no batch parts them; localize compares runs "
        "that start alike"));
  }
  ASSIGN_OR_RETURN(const std::vector<std::string> ha, EpochHashes(db, a.result_attempt));
  ASSIGN_OR_RETURN(const std::vector<std::string> hb, EpochHashes(db, b.result_attempt));
  for (size_t e = 0; e < ha.size() && e < hb.size(); ++e) {
    if (ha[e] != hb[e]) return static_cast<int>(e);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      pair, " never part: their weights are the same after every epoch both recorded"));
}

constexpr char kSelectState[] =
    "SELECT l.id, l.state, ra.arm || '#' || ra.idx, rb.arm || '#' || rb.idx, l.epoch, "
    "l.worker, l.error, COALESCE(l.result, '') FROM localizations l "
    "JOIN runs ra ON ra.id = l.run_a JOIN runs rb ON rb.id = l.run_b ";

LocalizationState ReadState(const sql::Statement& row) {
  LocalizationState s;
  s.id = row.Int(0);
  s.state = row.Text(1);
  s.run_a = row.Text(2);
  s.run_b = row.Text(3);
  s.epoch = static_cast<int>(row.Int(4));
  s.worker = row.Text(5);
  s.error = row.Text(6);
  const auto json = nlohmann::json::parse(row.Text(7), nullptr, false);
  if (s.state == "done" && json.is_object()) {
    try {
      s.result = json.get<LocalizationResult>();
    } catch (const nlohmann::json::exception&) {
      s.error = "the stored answer cannot be read";  // a damaged cell
    }
  }
  return s;
}

absl::StatusOr<std::optional<LocalizationState>> StateOf(sql::Database& db, int64_t experiment_id,
                                                         int64_t run_a, int64_t run_b) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(absl::StrCat(
      kSelectState, "WHERE l.experiment_id = ? AND l.run_a = ? AND l.run_b = ?")));
  q->Bind(1, experiment_id).Bind(2, run_a).Bind(3, run_b);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return std::nullopt;
  return ReadState(*q);
}

}  // namespace

absl::StatusOr<std::vector<LocalizationState>> RunStore::LocalizationsOf(int64_t experiment_id) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare(absl::StrCat(kSelectState,
                                                     "WHERE l.experiment_id = ? ORDER BY l.id")));
  q->Bind(1, experiment_id);
  std::vector<LocalizationState> all;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) { all.push_back(ReadState(row)); }));
  return all;
}

absl::StatusOr<LocalizationState> RunStore::RequestLocalization(const std::string& experiment,
                                                                const std::string& run_a,
                                                                const std::string& run_b,
                                                                int64_t now_ms) {
  if (run_a == run_b) {
    return absl::InvalidArgumentError(absl::StrCat("localize needs two runs, not ", run_a, " twice"));
  }
  return Write([&]() -> absl::StatusOr<LocalizationState> {
    ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
    ASSIGN_OR_RETURN(NamedRun a, FindRun(*db_, experiment_id, experiment, run_a));
    ASSIGN_OR_RETURN(NamedRun b, FindRun(*db_, experiment_id, experiment, run_b));
    ASSIGN_OR_RETURN(auto known, StateOf(*db_, experiment_id, a.id, b.id));
    if (known) return *known;
    for (const auto& [label, run] : {std::pair{&run_a, &a}, std::pair{&run_b, &b}}) {
      if (run->result_attempt == 0) {
        return absl::FailedPreconditionError(absl::StrCat("run ", *label, " has no result yet"));
      }
    }
    ASSIGN_OR_RETURN(const int epoch, FirstPartingEpoch(*db_, run_a, run_b, a, b));
    ASSIGN_OR_RETURN(auto insert, db_->Prepare(
        "INSERT INTO localizations (experiment_id, run_a, run_b, epoch, created_ms) "
        "VALUES (?, ?, ?, ?, ?)"));
    RETURN_IF_ERROR(insert->Bind(1, experiment_id).Bind(2, a.id).Bind(3, b.id)
                        .Bind(4, static_cast<int64_t>(epoch)).Bind(5, now_ms).Run());
    ASSIGN_OR_RETURN(auto created, StateOf(*db_, experiment_id, a.id, b.id));
    if (!created) return absl::InternalError("a localization just stored cannot be read back");
    return *created;
  });
}

absl::StatusOr<std::optional<LocalizationState>> RunStore::FindLocalization(
    const std::string& experiment, const std::string& run_a, const std::string& run_b) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(NamedRun a, FindRun(*db_, experiment_id, experiment, run_a));
  ASSIGN_OR_RETURN(NamedRun b, FindRun(*db_, experiment_id, experiment, run_b));
  return StateOf(*db_, experiment_id, a.id, b.id);
}

absl::StatusOr<std::optional<LocalizeLease>> RunStore::LeaseLocalization(
    const std::string& experiment, const std::string& worker, int64_t now_ms, int64_t ttl_ms,
    const std::string& secret_hash, const std::vector<std::string>* arms) {
  return Write([&]() -> absl::StatusOr<std::optional<LocalizeLease>> {
    ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
    ASSIGN_OR_RETURN(auto exhausted, db_->Prepare(absl::StrCat(
        "UPDATE localizations SET state = 'failed', lease_expires_ms = NULL, error = "
        "'its workers stopped answering ", kLocalizeAttempts, " times; the last was ' || worker "
        "WHERE experiment_id = ? AND state = 'running' AND lease_expires_ms < ? AND attempts >= ?")));
    RETURN_IF_ERROR(exhausted->Bind(1, experiment_id).Bind(2, now_ms)
                        .Bind(3, static_cast<int64_t>(kLocalizeAttempts)).Run());
    ASSIGN_OR_RETURN(auto pick, db_->Prepare(
        "SELECT l.id, l.attempts, l.epoch, ra.arm, ra.idx, ra.init_seed, ra.shuffle_seed, "
        "ra.augment_seed, rb.arm, rb.idx, rb.init_seed, rb.shuffle_seed, rb.augment_seed, "
        "(SELECT weights_hash FROM epochs WHERE attempt_id = ra.result_attempt AND epoch = l.epoch), "
        "(SELECT weights_hash FROM epochs WHERE attempt_id = rb.result_attempt AND epoch = l.epoch) "
        "FROM localizations l JOIN runs ra ON ra.id = l.run_a JOIN runs rb ON rb.id = l.run_b "
        "WHERE l.experiment_id = ? AND (l.state = 'pending' OR "
        "(l.state = 'running' AND l.lease_expires_ms < ?)) ORDER BY l.id"));
    pick->Bind(1, experiment_id).Bind(2, now_ms);
    auto may_run = [arms](const std::string& arm) {
      return arms == nullptr || std::find(arms->begin(), arms->end(), arm) != arms->end();
    };
    bool found = false;
    do {  // the open requests are few: the first whose runs this worker may replay
      ASSIGN_OR_RETURN(found, pick->Step());
    } while (found && !(may_run(pick->Text(3)) && may_run(pick->Text(8))));
    if (!found) return std::nullopt;
    LocalizeLease lease;
    lease.id = pick->Int(0);
    lease.attempt = static_cast<int>(pick->Int(1)) + 1;
    lease.epoch = static_cast<int>(pick->Int(2));
    for (auto [side, at] : {std::pair{&lease.a, 3}, std::pair{&lease.b, 8}}) {
      side->arm = pick->Text(at);
      side->index = static_cast<int>(pick->Int(at + 1));
      side->seeds = RunSeeds{static_cast<uint64_t>(pick->Int(at + 2)),
                             static_cast<uint64_t>(pick->Int(at + 3)),
                             static_cast<uint64_t>(pick->Int(at + 4))};
    }
    lease.a.recorded = pick->Text(13);
    lease.b.recorded = pick->Text(14);
    ASSIGN_OR_RETURN(auto take, db_->Prepare(
        "UPDATE localizations SET state = 'running', worker = ?, attempts = attempts + 1, "
        "lease_expires_ms = ?, secret_hash = ? WHERE id = ?"));
    RETURN_IF_ERROR(take->Bind(1, worker).Bind(2, now_ms + ttl_ms).Bind(3, secret_hash)
                        .Bind(4, lease.id).Run());
    return lease;
  });
}

absl::StatusOr<LeaseHolder> RunStore::LocalizationOwner(int64_t id) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT worker, COALESCE(secret_hash, '') FROM localizations WHERE id = ?"));
  q->Bind(1, id);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no localization ", id));
  return LeaseHolder{q->Text(0), q->Text(1)};
}

absl::StatusOr<bool> RunStore::RenewLocalization(int64_t id, int64_t now_ms, int64_t ttl_ms) {
  return Write([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE localizations SET lease_expires_ms = ? WHERE id = ? AND state = 'running'"));
    RETURN_IF_ERROR(q->Bind(1, now_ms + ttl_ms).Bind(2, id).Run());
    return db_->Changes() > 0;
  });
}

absl::Status RunStore::CompleteLocalization(int64_t id, const std::string& error,
                                            const LocalizationResult& result) {
  return Write([&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE localizations SET state = ?, error = ?, result = ?, lease_expires_ms = NULL "
        "WHERE id = ? AND state = 'running'"));
    return q->Bind(1, std::string(error.empty() ? "done" : "failed")).Bind(2, error)
        .Bind(3, error.empty() ? nlohmann::json(result).dump() : std::string())
        .Bind(4, id).Run();
  });
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> RunStore::PartedPair(
    const std::string& experiment, const std::string& arm) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT r.idx, r.state, COALESCE(a.initial_hash, ''), COALESCE(a.final_hash, '') "
      "FROM runs r LEFT JOIN attempts a ON a.id = r.result_attempt "
      "WHERE r.experiment_id = ? AND r.arm = ? ORDER BY r.idx"));
  q->Bind(1, experiment_id).Bind(2, arm);
  bool unfinished = false;
  std::optional<std::pair<int64_t, std::string>> first;  // index, initial hash
  std::string first_final;
  std::optional<int64_t> parted;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    const std::string state = row.Text(1);
    unfinished |= state == "pending" || state == "running";
    if (state != "done") return;
    if (!first) {
      first.emplace(row.Int(0), row.Text(2));
      first_final = row.Text(3);
    } else if (!parted && row.Text(2) == first->second && row.Text(3) != first_final) {
      parted = row.Int(0);
    }
  }));
  if (unfinished || !parted) return std::nullopt;
  return std::make_pair(absl::StrCat(arm, "#", first->first), absl::StrCat(arm, "#", *parted));
}

absl::StatusOr<int64_t> RunStore::OpenLocalizations(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT COUNT(*) FROM localizations WHERE experiment_id = ? "
      "AND state IN ('pending', 'running')"));
  q->Bind(1, experiment_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? q->Int(0) : 0;
}

}  // namespace repro
