// RunStore's localizations: where two finished runs part (reproctl localize). The store
// finds the epoch to replay from the runs' recorded weights hashes, hands the request to
// a worker like a run (with a lease and a secret), and keeps its answer as JSON.
#include <algorithm>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
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
    replay_seconds, step_seconds, traced_step_seconds, seconds, worker, worker_b)

// A side's replay as localization_sides.replay keeps it: the dump by its blob's SHA-256.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TracedValue, hash, dtype, shape)
void to_json(nlohmann::json& j, const OpRecord& r) {
  j = {{"name", r.name}, {"module", r.module}, {"phase", PhaseName(r.phase)},
       {"inputs", r.inputs}, {"outputs", r.outputs}};
}
void from_json(const nlohmann::json& j, OpRecord& r) {
  j.at("name").get_to(r.name);
  j.at("module").get_to(r.module);
  r.phase = PhaseNamed(j.at("phase").get<std::string>()).value_or(OpPhase::kForward);
  j.at("inputs").get_to(r.inputs);
  j.at("outputs").get_to(r.outputs);
}
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(SideReplay, batch_hashes, trace,
                                                traced_batch_end_hash, trace_bytes, batch_seconds,
                                                traced_batch_seconds, seconds, wall_seconds)

namespace {

// What the stages of a localization replayed apart found so far (localizations.result),
// or a fresh answer for `epoch` before the first.
// DATA_LOSS for a damaged cell.
absl::StatusOr<LocalizationResult> SoFar(int64_t id, const std::string& json, int epoch) {
  LocalizationResult so_far;
  if (!json.empty()) {
    const auto parsed = nlohmann::json::parse(json, nullptr, false);
    try {
      if (!parsed.is_object()) throw nlohmann::json::other_error::create(0, "not an object", nullptr);
      so_far = parsed.get<LocalizationResult>();
    } catch (const nlohmann::json::exception&) {
      return absl::DataLossError(absl::StrCat(
          "localization ", id, ": what its stages found so far (localizations.result) cannot "
          "be read"));
    }
  }
  so_far.epoch = epoch;
  return so_far;
}

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
    "l.worker, l.error, COALESCE(l.result, ''), COALESCE(l.stage, '') FROM localizations l "
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
  s.stage = row.Text(8);
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

// The arm and recorded environment of a run's counted result.
absl::StatusOr<ReplayedRun> ReplayedRunOf(sql::Database& db, int64_t run_id) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(
      "SELECT r.arm, COALESCE(a.environment, '{}') FROM runs r "
      "LEFT JOIN attempts a ON a.id = r.result_attempt WHERE r.id = ?"));
  q->Bind(1, run_id);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return absl::InternalError(absl::StrCat("run id ", run_id, " vanished"));
  return ReplayedRun{q->Text(0), StringMap(q->Text(1))};
}

absl::StatusOr<LocalizationState> LocalizationStateById(sql::Database& db, int64_t id) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(absl::StrCat(kSelectState, "WHERE l.id = ?")));
  q->Bind(1, id);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no localization ", id));
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

absl::StatusOr<std::vector<LocalizationState>> RunStore::OpenLocalizationStates(
    const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(absl::StrCat(
      kSelectState, "WHERE l.experiment_id = ? AND l.state IN ('pending', 'running') "
      "ORDER BY l.id")));
  q->Bind(1, experiment_id);
  std::vector<LocalizationState> open;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) { open.push_back(ReadState(row)); }));
  return open;
}

absl::StatusOr<LocalizationState> RunStore::RequestLocalization(const std::string& experiment,
                                                                const std::string& run_a,
                                                                const std::string& run_b,
                                                                int64_t now_ms,
                                                                const ApartRule& apart) {
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
    bool sides_apart = false;
    if (apart) {
      ASSIGN_OR_RETURN(const ReplayedRun ra, ReplayedRunOf(*db_, a.id));
      ASSIGN_OR_RETURN(const ReplayedRun rb, ReplayedRunOf(*db_, b.id));
      sides_apart = apart(ra, rb);
    }
    ASSIGN_OR_RETURN(auto insert, db_->Prepare(
        "INSERT INTO localizations (experiment_id, run_a, run_b, epoch, created_ms, stage) "
        "VALUES (?, ?, ?, ?, ?, ?)"));
    insert->Bind(1, experiment_id).Bind(2, a.id).Bind(3, b.id)
        .Bind(4, static_cast<int64_t>(epoch)).Bind(5, now_ms);
    if (sides_apart) {
      insert->Bind(6, std::string(StageName(LocalizeStage::kEpoch)));
    } else {
      insert->BindNull(6);
    }
    RETURN_IF_ERROR(insert->Run());
    if (sides_apart) {
      ASSIGN_OR_RETURN(auto sides, db_->Prepare(
          "INSERT INTO localization_sides (localization_id, side) VALUES (?, 'a'), (?, 'b')"));
      const int64_t id = db_->LastInsertId();
      RETURN_IF_ERROR(sides->Bind(1, id).Bind(2, id).Run());
    }
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

namespace {

// What a lease needs of a localization and its two runs (ReadLease): columns 0 to 15,
// then those of the caller (the whole job's or the side's, what the stages found so far,
// whether it replays apart).
constexpr char kLeaseColumns[] =
    "SELECT l.id, l.epoch, ra.arm, ra.idx, ra.init_seed, ra.shuffle_seed, ra.augment_seed, "
    "rb.arm, rb.idx, rb.init_seed, rb.shuffle_seed, rb.augment_seed, "
    "(SELECT weights_hash FROM epochs WHERE attempt_id = ra.result_attempt AND epoch = l.epoch), "
    "(SELECT weights_hash FROM epochs WHERE attempt_id = rb.result_attempt AND epoch = l.epoch), "
    "COALESCE((SELECT environment FROM attempts WHERE id = ra.result_attempt), '{}'), "
    "COALESCE((SELECT environment FROM attempts WHERE id = rb.result_attempt), '{}'), ";
constexpr char kLeaseRuns[] =
    "JOIN runs ra ON ra.id = l.run_a JOIN runs rb ON rb.id = l.run_b ";

LocalizeLease ReadLease(const sql::Statement& row, ReplayedRun* a, ReplayedRun* b) {
  LocalizeLease lease;
  lease.id = row.Int(0);
  lease.epoch = static_cast<int>(row.Int(1));
  for (auto [side, at] : {std::pair{&lease.a, 2}, std::pair{&lease.b, 7}}) {
    side->arm = row.Text(at);
    side->index = static_cast<int>(row.Int(at + 1));
    side->seeds = RunSeeds{static_cast<uint64_t>(row.Int(at + 2)),
                           static_cast<uint64_t>(row.Int(at + 3)),
                           static_cast<uint64_t>(row.Int(at + 4))};
  }
  lease.a.recorded = row.Text(12);
  lease.b.recorded = row.Text(13);
  *a = ReplayedRun{lease.a.arm, StringMap(row.Text(14))};
  *b = ReplayedRun{lease.b.arm, StringMap(row.Text(15))};
  for (auto [side, run] : {std::pair{&lease.a, a}, std::pair{&lease.b, b}}) {
    const auto threads = run->environment.find("threads");
    if (threads == run->environment.end() || !absl::SimpleAtoi(threads->second, &side->threads)) {
      side->threads = 0;
    }
  }
  return lease;
}

// The first row of `pick` that `fits`, read; none when no row does.
template <typename Fits>
absl::StatusOr<std::optional<LocalizeLease>> FirstFitting(sql::Statement& pick, Fits&& fits) {
  for (;;) {  // the open requests are few
    ASSIGN_OR_RETURN(bool found, pick.Step());
    if (!found) return std::nullopt;
    ReplayedRun a, b;
    LocalizeLease lease = ReadLease(pick, &a, &b);
    if (fits(pick, lease, a, b)) return lease;
  }
}

// The first pending (or expired) localization that one worker replays whole, both of
// whose runs `may` allows, handed to `worker`.
absl::StatusOr<std::optional<LocalizeLease>> LeaseWhole(
    sql::Database& db, int64_t experiment_id, const std::string& worker, int64_t now_ms,
    int64_t ttl_ms, const std::string& secret_hash, const ReplayerRule& may) {
  ASSIGN_OR_RETURN(auto pick, db.Prepare(absl::StrCat(
      kLeaseColumns, "l.attempts FROM localizations l ", kLeaseRuns,
      "WHERE l.experiment_id = ? AND l.stage IS NULL AND (l.state = 'pending' OR "
      "(l.state = 'running' AND l.lease_expires_ms < ?)) ORDER BY l.id")));
  pick->Bind(1, experiment_id).Bind(2, now_ms);
  ASSIGN_OR_RETURN(std::optional<LocalizeLease> lease,
                   FirstFitting(*pick, [&](const sql::Statement& row, LocalizeLease& l,
                                          const ReplayedRun& a, const ReplayedRun& b) {
                     l.attempt = static_cast<int>(row.Int(16)) + 1;
                     return may(a) && may(b);
                   }));
  if (!lease) return std::nullopt;
  ASSIGN_OR_RETURN(auto take, db.Prepare(
      "UPDATE localizations SET state = 'running', worker = ?, attempts = attempts + 1, "
      "lease_expires_ms = ?, secret_hash = ? WHERE id = ?"));
  RETURN_IF_ERROR(take->Bind(1, worker).Bind(2, now_ms + ttl_ms).Bind(3, secret_hash)
                      .Bind(4, lease->id).Run());
  return lease;
}

// The first pending (or expired) side of a localization replayed apart whose run `may`
// allows, handed to `worker`. DATA_LOSS when what its stages found cannot be read.
absl::StatusOr<std::optional<LocalizeLease>> LeaseSide(
    sql::Database& db, int64_t experiment_id, const std::string& worker, int64_t now_ms,
    int64_t ttl_ms, const std::string& secret_hash, const ReplayerRule& may) {
  ASSIGN_OR_RETURN(auto pick, db.Prepare(absl::StrCat(
      kLeaseColumns, "s.attempts, s.side, l.stage, COALESCE(l.result, '') "
      "FROM localization_sides s JOIN localizations l ON l.id = s.localization_id ", kLeaseRuns,
      "WHERE l.experiment_id = ? AND l.state IN ('pending', 'running') AND (s.state = 'pending' "
      "OR (s.state = 'running' AND s.lease_expires_ms < ?)) ORDER BY l.id, s.side")));
  pick->Bind(1, experiment_id).Bind(2, now_ms);
  absl::Status damaged;
  ASSIGN_OR_RETURN(std::optional<LocalizeLease> lease,
                   FirstFitting(*pick, [&](const sql::Statement& row, LocalizeLease& l,
                                          const ReplayedRun& a, const ReplayedRun& b) {
    l.attempt = static_cast<int>(row.Int(16)) + 1;
    l.side = row.Text(17);
    l.stage = StageNamed(row.Text(18)).value_or(LocalizeStage::kEpoch);
    absl::StatusOr<LocalizationResult> so_far = SoFar(l.id, row.Text(19), l.epoch);
    if (!so_far.ok()) damaged = so_far.status();
    l.so_far = so_far.value_or(LocalizationResult{});
    return !damaged.ok() || may(l.side == "a" ? a : b);
  }));
  RETURN_IF_ERROR(damaged);
  if (!lease) return std::nullopt;
  ASSIGN_OR_RETURN(auto take, db.Prepare(
      "UPDATE localization_sides SET state = 'running', worker = ?, attempts = attempts + 1, "
      "lease_expires_ms = ?, secret_hash = ? WHERE localization_id = ? AND side = ?"));
  RETURN_IF_ERROR(take->Bind(1, worker).Bind(2, now_ms + ttl_ms).Bind(3, secret_hash)
                      .Bind(4, lease->id).Bind(5, lease->side).Run());
  ASSIGN_OR_RETURN(auto running, db.Prepare(
      "UPDATE localizations SET state = 'running', worker = ? WHERE id = ?"));
  RETURN_IF_ERROR(running->Bind(1, worker).Bind(2, lease->id).Run());
  return lease;
}

}  // namespace

absl::StatusOr<std::optional<LocalizeLease>> RunStore::LeaseLocalization(
    const std::string& experiment, const std::string& worker, int64_t now_ms, int64_t ttl_ms,
    const std::string& secret_hash, const ReplayerRule& may_replay) {
  const ReplayerRule may = [&may_replay](const ReplayedRun& run) {
    return !may_replay || may_replay(run);
  };
  return Write([&]() -> absl::StatusOr<std::optional<LocalizeLease>> {
    ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
    RETURN_IF_ERROR(FailExhaustedLocalizations(experiment_id, now_ms));
    ASSIGN_OR_RETURN(std::optional<LocalizeLease> whole,
                     LeaseWhole(*db_, experiment_id, worker, now_ms, ttl_ms, secret_hash, may));
    if (whole) return whole;
    return LeaseSide(*db_, experiment_id, worker, now_ms, ttl_ms, secret_hash, may);
  });
}

absl::Status RunStore::FailExhaustedLocalizations(int64_t experiment_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto whole, db_->Prepare(absl::StrCat(
      "UPDATE localizations SET state = 'failed', lease_expires_ms = NULL, error = "
      "'its workers stopped answering ", kLocalizeAttempts, " times; the last was ' || worker "
      "WHERE experiment_id = ? AND stage IS NULL AND state = 'running' AND lease_expires_ms < ? "
      "AND attempts >= ?")));
  RETURN_IF_ERROR(whole->Bind(1, experiment_id).Bind(2, now_ms)
                      .Bind(3, static_cast<int64_t>(kLocalizeAttempts)).Run());
  ASSIGN_OR_RETURN(auto sides, db_->Prepare(absl::StrCat(
      "UPDATE localizations SET state = 'failed', error = (SELECT 'the workers replaying side ' "
      "|| s.side || ' stopped answering ", kLocalizeAttempts, " times; the last was ' || s.worker "
      "FROM localization_sides s WHERE s.localization_id = localizations.id AND s.state = "
      "'running' AND s.lease_expires_ms < ?1 AND s.attempts >= ?2 ORDER BY s.side LIMIT 1) "
      "WHERE experiment_id = ?3 AND state IN ('pending', 'running') AND id IN (SELECT "
      "localization_id FROM localization_sides WHERE state = 'running' AND lease_expires_ms < ?1 "
      "AND attempts >= ?2)")));
  return sides->Bind(1, now_ms).Bind(2, static_cast<int64_t>(kLocalizeAttempts))
      .Bind(3, experiment_id).Run();
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

absl::StatusOr<ReplayedRun> RunStore::RunToReplay(const std::string& experiment,
                                                   const std::string& run) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(NamedRun named, FindRun(*db_, experiment_id, experiment, run));
  return ReplayedRunOf(*db_, named.id);
}

absl::StatusOr<LeaseHolder> RunStore::LocalizationSideOwner(int64_t id, const std::string& side) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT worker, COALESCE(secret_hash, '') FROM localization_sides "
      "WHERE localization_id = ? AND side = ?"));
  q->Bind(1, id).Bind(2, side);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no side ", side.substr(0, 8), " of localization ", id));
  return LeaseHolder{q->Text(0), q->Text(1)};
}

absl::StatusOr<bool> RunStore::RenewLocalizationSide(int64_t id, const std::string& side,
                                                     int64_t now_ms, int64_t ttl_ms) {
  return Write([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE localization_sides SET lease_expires_ms = ? WHERE localization_id = ? AND "
        "side = ? AND state = 'running' AND localization_id IN (SELECT id FROM localizations "
        "WHERE state IN ('pending', 'running'))"));
    RETURN_IF_ERROR(q->Bind(1, now_ms + ttl_ms).Bind(2, id).Bind(3, side).Run());
    return db_->Changes() > 0;
  });
}

namespace {

// One side's row of a localization replayed apart.
struct SideRow {
  std::string state, worker, replay;
};

absl::StatusOr<SideRow> ReadSide(sql::Database& db, int64_t id, const std::string& side) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(
      "SELECT state, worker, COALESCE(replay, '') FROM localization_sides "
      "WHERE localization_id = ? AND side = ?"));
  q->Bind(1, id).Bind(2, side);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no side ", side.substr(0, 8), " of localization ", id));
  return SideRow{q->Text(0), q->Text(1), q->Text(2)};
}

// A side's stored replay, its dump read back through `load_dump`.
absl::StatusOr<SideReplay> StoredReplay(const SideRow& row, const std::string& side,
                                        LocalizeStage stage, const DumpLoader& load_dump) {
  SideReplay replay;
  std::string dump;
  const auto json = nlohmann::json::parse(row.replay, nullptr, false);
  try {
    replay = json.get<SideReplay>();
    dump = json.value("dump_sha256", "");
  } catch (const nlohmann::json::exception&) {
    return absl::DataLossError(absl::StrCat("side ", side, "'s stored replay cannot be read"));
  }
  if (stage == LocalizeStage::kDump && !dump.empty()) {
    absl::StatusOr<OpOutputs> outputs = load_dump(dump);
    if (!outputs.ok()) {
      return absl::Status(outputs.status().code(),
                          absl::StrCat("side ", side, "'s dump (sha256 ", dump.substr(0, 12),
                                       "): ", outputs.status().message()));
    }
    replay.dump = *std::move(outputs);
  }
  return replay;
}

// Both sides' replays of `stage` folded into what the stages before found: the next stage
// and the answer so far.
absl::StatusOr<std::pair<LocalizeStage, LocalizationResult>> FoldBoth(
    sql::Database& db, int64_t id, LocalizeStage stage, const SideRow& a, const SideRow& b,
    const DumpLoader& load_dump) {
  ASSIGN_OR_RETURN(auto q, db.Prepare(absl::StrCat(
      kLeaseColumns, "COALESCE(l.result, '') FROM localizations l ", kLeaseRuns, "WHERE l.id = ?")));
  q->Bind(1, id);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("no localization ", id));
  ReplayedRun run_a, run_b;
  const LocalizeLease l = ReadLease(*q, &run_a, &run_b);
  ASSIGN_OR_RETURN(LocalizationResult so_far, SoFar(id, q->Text(16), l.epoch));
  ASSIGN_OR_RETURN(const SideReplay ra, StoredReplay(a, "a", stage, load_dump));
  ASSIGN_OR_RETURN(const SideReplay rb, StoredReplay(b, "b", stage, load_dump));
  ASSIGN_OR_RETURN(const LocalizeStage next,
                   FoldStage(stage, ra, rb, l.a.recorded, l.b.recorded, &so_far));
  return std::make_pair(next, std::move(so_far));
}

// Moves a localization replayed apart to stage `next` (done: `so_far` is the answer),
// its sides pending again with their replays dropped.
absl::Status Advance(sql::Database& db, int64_t id, LocalizeStage next,
                     const LocalizationResult& so_far) {
  ASSIGN_OR_RETURN(auto advance, db.Prepare(absl::StrCat(
      "UPDATE localizations SET stage = ?, result = ?",
      next == LocalizeStage::kDone ? ", state = 'done'" : "", " WHERE id = ?")));
  RETURN_IF_ERROR(advance->Bind(1, std::string(StageName(next)))
                      .Bind(2, nlohmann::json(so_far).dump()).Bind(3, id).Run());
  ASSIGN_OR_RETURN(auto reset, db.Prepare(
      "UPDATE localization_sides SET state = 'pending', attempts = 0, worker = '', "
      "lease_expires_ms = NULL, secret_hash = NULL, replay = NULL WHERE localization_id = ?"));
  return reset->Bind(1, id).Run();
}

}  // namespace

absl::StatusOr<LocalizationState> RunStore::CompleteLocalizationSide(
    int64_t id, const std::string& side, LocalizeStage stage, const std::string& error,
    const SideReplay& replay, const std::string& dump_sha256, const DumpLoader& load_dump) {
  return Write([&]() -> absl::StatusOr<LocalizationState> {
    ASSIGN_OR_RETURN(const LocalizationState now, LocalizationStateById(*db_, id));
    ASSIGN_OR_RETURN(const SideRow mine, ReadSide(*db_, id, side));
    if ((now.state != "pending" && now.state != "running") || now.stage != StageName(stage) ||
        mine.state != "running") {
      return absl::FailedPreconditionError(absl::StrCat(
          "side ", side, " of localization ", id, " is not replaying stage ", StageName(stage),
          " (the localization is ", now.state, now.stage.empty() ? "" : ", at stage ", now.stage,
          "; the side is ", mine.state, ")"));
    }
    auto fail = [&](const std::string& why) -> absl::StatusOr<LocalizationState> {
      ASSIGN_OR_RETURN(auto q, db_->Prepare(
          "UPDATE localizations SET state = 'failed', error = ? WHERE id = ?"));
      RETURN_IF_ERROR(q->Bind(1, why.substr(0, 4000)).Bind(2, id).Run());
      return LocalizationStateById(*db_, id);
    };
    const std::string& run = side == "a" ? now.run_a : now.run_b;
    if (!error.empty()) {
      return fail(absl::StrCat(run, " (side ", side, ", stage ", StageName(stage), ") on worker ",
                               mine.worker, ": ", error));
    }
    nlohmann::json json = replay;
    json["dump_sha256"] = dump_sha256;
    ASSIGN_OR_RETURN(auto done, db_->Prepare(
        "UPDATE localization_sides SET state = 'done', replay = ?, lease_expires_ms = NULL "
        "WHERE localization_id = ? AND side = ?"));
    RETURN_IF_ERROR(done->Bind(1, json.dump()).Bind(2, id).Bind(3, side).Run());
    ASSIGN_OR_RETURN(const SideRow a, ReadSide(*db_, id, "a"));
    ASSIGN_OR_RETURN(const SideRow b, ReadSide(*db_, id, "b"));
    if (a.state != "done" || b.state != "done") return LocalizationStateById(*db_, id);
    absl::StatusOr<std::pair<LocalizeStage, LocalizationResult>> folded =
        FoldBoth(*db_, id, stage, a, b, load_dump);
    if (!folded.ok()) {
      return fail(absl::StrCat("stage ", StageName(stage), ": ", folded.status().message()));
    }
    auto& [next, so_far] = *folded;
    if (next == LocalizeStage::kDone) {
      so_far.worker = a.worker;
      so_far.worker_b = b.worker;
    }
    RETURN_IF_ERROR(Advance(*db_, id, next, so_far));
    return LocalizationStateById(*db_, id);
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

absl::StatusOr<bool> RunStore::OpenLocalizationFor(const std::string& experiment,
                                                   const ReplayerRule& may_replay) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(absl::StrCat(
      kLeaseColumns, "l.stage IS NOT NULL FROM localizations l ", kLeaseRuns,
      "WHERE l.experiment_id = ? AND l.state IN ('pending', 'running')")));
  q->Bind(1, experiment_id);
  bool needed = false;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    ReplayedRun run_a, run_b;
    ReadLease(row, &run_a, &run_b);
    const bool a = may_replay(run_a), b = may_replay(run_b);
    needed |= row.Int(16) != 0 ? (a || b) : (a && b);
  }));
  return needed;
}

}  // namespace repro
