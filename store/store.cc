#include "store/store.h"

#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace repro {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  plan_text TEXT NOT NULL,
  canonical_plan TEXT NOT NULL,
  runs_per_arm INTEGER NOT NULL,
  epochs INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY,
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  arm TEXT NOT NULL,
  arm_order INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  init_seed INTEGER NOT NULL,
  shuffle_seed INTEGER NOT NULL,
  augment_seed INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_attempt INTEGER,          -- attempts.id of the current lease
  lease_expires_ms INTEGER,
  result_attempt INTEGER,         -- attempts.id whose result counts
  error TEXT NOT NULL DEFAULT '',
  progress_epoch INTEGER NOT NULL DEFAULT -1,
  progress_batch INTEGER NOT NULL DEFAULT 0,
  progress_batches INTEGER NOT NULL DEFAULT 0,
  UNIQUE (experiment_id, arm, idx));
CREATE INDEX IF NOT EXISTS runs_by_state ON runs (experiment_id, state, idx, arm_order);
-- ExpireLeases runs on every Lease: without this it would scan every run of the store.
CREATE INDEX IF NOT EXISTS runs_by_lease_expiry ON runs (lease_expires_ms) WHERE state = 'running';
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs(id),
  worker TEXT NOT NULL,
  started_ms INTEGER NOT NULL,
  ended_ms INTEGER,
  outcome TEXT NOT NULL DEFAULT 'running'
    CHECK (outcome IN ('running', 'done', 'extra', 'failed', 'expired', 'released')),
  error TEXT NOT NULL DEFAULT '',
  test_loss REAL, test_accuracy REAL,
  data_x_hash TEXT, data_y_hash TEXT, initial_hash TEXT, final_hash TEXT,
  environment TEXT NOT NULL DEFAULT '{}',     -- JSON object of strings
  predictions BLOB,                           -- one class byte per test example
  initial_weights TEXT NOT NULL DEFAULT '',   -- exported files, paths on the worker
  final_weights TEXT NOT NULL DEFAULT '',
  epoch_weights TEXT NOT NULL DEFAULT '[]');  -- JSON array of paths
CREATE INDEX IF NOT EXISTS attempts_by_run ON attempts (run_id);
CREATE TABLE IF NOT EXISTS tensors (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  which TEXT NOT NULL CHECK (which IN ('initial', 'final')),
  ordinal INTEGER NOT NULL,
  name TEXT NOT NULL,
  hash TEXT NOT NULL,
  PRIMARY KEY (attempt_id, which, ordinal));
CREATE TABLE IF NOT EXISTS epochs (
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  epoch INTEGER NOT NULL,
  loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL, seconds REAL, lr REAL,
  batch_digest TEXT NOT NULL,
  weights_hash TEXT NOT NULL,
  batch_digests TEXT NOT NULL DEFAULT '',   -- per-batch digests, space-separated
  PRIMARY KEY (attempt_id, epoch));
CREATE TABLE IF NOT EXISTS checkpoints (   -- the latest state of an unfinished run
  run_id INTEGER PRIMARY KEY REFERENCES runs(id),
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  epoch INTEGER NOT NULL,
  state BLOB NOT NULL,
  saved_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS workers (
  name TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  torch_version TEXT NOT NULL,
  device TEXT NOT NULL,
  threads INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  current_run TEXT NOT NULL DEFAULT '');
)sql";

RunState ParseState(const std::string& s) {
  if (s == "running") return RunState::kRunning;
  if (s == "done") return RunState::kDone;
  if (s == "failed") return RunState::kFailed;
  return RunState::kPending;
}

std::string JoinDigests(const std::vector<std::string>& digests) {
  std::string out;
  for (const auto& d : digests) absl::StrAppend(&out, out.empty() ? "" : " ", d);
  return out;
}

std::vector<std::string> SplitDigests(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace

RunStore::RunStore(std::unique_ptr<sql::Database> db) : db_(std::move(db)) {
  group_ = std::make_unique<GroupCommit>(db_.get(), &mu_, &queued_);
  db_->set_commit_group(group_.get());
}

RunStore::~RunStore() {
  QueuedLock lock(&mu_, &queued_);
  group_->Flush().IgnoreError();
}

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, sql::Database::Open(path));
  std::unique_ptr<RunStore> store(new RunStore(std::move(db)));
  RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status RunStore::Migrate() {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  if (!tx.status().ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        db_->path(), ": not a usable SQLite database: ", tx.status().message()));
  }
  if (absl::Status s = db_->Exec(kSchema); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(db_->path(), ": not a repro database: ", s.message()));
  }
  ASSIGN_OR_RETURN(auto get, db_->Prepare("SELECT value FROM meta WHERE key = 'schema_version'"));
  ASSIGN_OR_RETURN(bool has, get->Step());
  if (has) {
    const int version = std::atoi(get->Text(0).c_str());
    if (version > kSchemaVersion) {
      return absl::InvalidArgumentError(absl::StrCat(
          db_->path(), ": database schema version ", version,
          " is newer than this build understands (", kSchemaVersion, "); upgrade repro"));
    }
  } else {
    ASSIGN_OR_RETURN(auto put, db_->Prepare(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"));
    RETURN_IF_ERROR(put->Bind(1, std::to_string(kSchemaVersion)).Run());
  }
  return tx.Commit();
}

absl::StatusOr<bool> RunStore::EnsureExperiment(const Plan& plan, const std::string& plan_text) {
  QueuedLock lock(&mu_, &queued_);
  const std::string canonical = CanonicalPlan(plan);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto find, db_->Prepare(
      "SELECT canonical_plan FROM experiments WHERE name = ?"));
  find->Bind(1, plan.experiment);
  ASSIGN_OR_RETURN(bool exists, find->Step());
  if (exists) {
    if (find->Text(0) != canonical) {
      return absl::InvalidArgumentError(absl::StrCat(
          db_->path(), " already holds experiment \"", plan.experiment,
          "\" made from a different plan; give the plan a new experiment name or use another "
          "--db"));
    }
    return false;
  }
  ASSIGN_OR_RETURN(auto insert, db_->Prepare(
      "INSERT INTO experiments (name, plan_text, canonical_plan, runs_per_arm, epochs, "
      "max_attempts, created_ms) VALUES (?, ?, ?, ?, ?, ?, CAST(strftime('%s','now') AS "
      "INTEGER) * 1000)"));
  RETURN_IF_ERROR(insert->Bind(1, plan.experiment).Bind(2, plan_text).Bind(3, canonical)
                      .Bind(4, plan.runs).Bind(5, plan.epochs).Bind(6, plan.max_attempts).Run());
  const int64_t experiment_id = db_->LastInsertId();
  ASSIGN_OR_RETURN(auto run, db_->Prepare(
      "INSERT INTO runs (experiment_id, arm, arm_order, idx, init_seed, shuffle_seed, "
      "augment_seed) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  for (size_t a = 0; a < plan.arms.size(); ++a) {
    for (int i = 0; i < plan.runs; ++i) {
      const RunSeeds seeds = SeedsFor(plan, plan.arms[a], i);
      run->Reset();
      RETURN_IF_ERROR(run->Bind(1, experiment_id).Bind(2, plan.arms[a].name)
                          .Bind(3, static_cast<int64_t>(a)).Bind(4, i)
                          .Bind(5, static_cast<int64_t>(seeds.init))
                          .Bind(6, static_cast<int64_t>(seeds.shuffle))
                          .Bind(7, static_cast<int64_t>(seeds.augment)).Run());
    }
  }
  RETURN_IF_ERROR(tx.Commit());
  return true;
}

absl::StatusOr<std::vector<std::string>> RunStore::ExperimentNames() {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT name FROM experiments ORDER BY id"));
  std::vector<std::string> names;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    names.push_back(q->Text(0));
  }
  return names;
}

absl::StatusOr<std::string> RunStore::PlanText(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT plan_text FROM experiments WHERE name = ?"));
  q->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(db_->path(), " has no experiment \"", experiment, "\""));
  }
  return q->Text(0);
}

absl::StatusOr<int64_t> RunStore::ExperimentId(const std::string& experiment) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT id FROM experiments WHERE name = ?"));
  q->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat(db_->path(), " has no experiment \"", experiment, "\""));
  }
  return q->Int(0);
}

absl::Status RunStore::SetWorkerRun(const std::string& worker, const std::string& run) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare("UPDATE workers SET current_run = ? WHERE name = ?"));
  return q->Bind(1, run).Bind(2, worker).Run();
}

absl::StatusOr<std::optional<LeasedRun>> RunStore::LeaseNext(const std::string& experiment,
                                                             const std::string& worker,
                                                             int64_t now_ms, int64_t ttl_ms) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto pick, db_->Prepare(
      "SELECT id, arm, idx, init_seed, shuffle_seed, attempts, augment_seed FROM runs "
      "WHERE experiment_id = ? AND state = 'pending' ORDER BY idx, arm_order LIMIT 1"));
  pick->Bind(1, experiment_id);
  ASSIGN_OR_RETURN(bool found, pick->Step());
  if (!found) return std::optional<LeasedRun>();
  LeasedRun leased;
  leased.run_id = pick->Int(0);
  leased.arm = pick->Text(1);
  leased.index = static_cast<int>(pick->Int(2));
  leased.seeds = RunSeeds{static_cast<uint64_t>(pick->Int(3)), static_cast<uint64_t>(pick->Int(4)),
                          static_cast<uint64_t>(pick->Int(6))};
  leased.attempt = static_cast<int>(pick->Int(5)) + 1;
  ASSIGN_OR_RETURN(auto checkpoint, db_->Prepare(
      "SELECT epoch, state FROM checkpoints WHERE run_id = ?"));
  checkpoint->Bind(1, leased.run_id);
  ASSIGN_OR_RETURN(bool has_checkpoint, checkpoint->Step());
  if (has_checkpoint) {
    leased.checkpoint_epoch = static_cast<int>(checkpoint->Int(0));
    leased.checkpoint = checkpoint->Blob(1);
  }

  ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
      "INSERT INTO attempts (run_id, worker, started_ms) VALUES (?, ?, ?)"));
  RETURN_IF_ERROR(attempt->Bind(1, leased.run_id).Bind(2, worker).Bind(3, now_ms).Run());
  leased.lease_id = db_->LastInsertId();
  ASSIGN_OR_RETURN(auto update, db_->Prepare(
      "UPDATE runs SET state = 'running', attempts = attempts + 1, lease_attempt = ?, "
      "lease_expires_ms = ?, progress_epoch = 0, progress_batch = 0, progress_batches = 0 "
      "WHERE id = ?"));
  RETURN_IF_ERROR(update->Bind(1, leased.lease_id).Bind(2, now_ms + ttl_ms)
                      .Bind(3, leased.run_id).Run());
  RETURN_IF_ERROR(SetWorkerRun(worker, absl::StrCat(leased.arm, "#", leased.index)));
  RETURN_IF_ERROR(tx.Commit());
  return std::optional<LeasedRun>(leased);
}

absl::StatusOr<bool> RunStore::Renew(int64_t run_id, int64_t lease_id, int64_t now_ms,
                                     int64_t ttl_ms, int epoch, int64_t batch, int64_t batches) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "UPDATE runs SET lease_expires_ms = ?, progress_epoch = ?, progress_batch = ?, "
      "progress_batches = ? WHERE id = ? AND lease_attempt = ? AND state = 'running'"));
  RETURN_IF_ERROR(q->Bind(1, now_ms + ttl_ms).Bind(2, epoch).Bind(3, batch).Bind(4, batches)
                      .Bind(5, run_id).Bind(6, lease_id).Run());
  const bool renewed = db_->Changes() == 1;
  RETURN_IF_ERROR(tx.Commit());
  return renewed;
}

absl::Status RunStore::StoreEpochs(int64_t attempt_id, const std::vector<EpochRecord>& epochs) {
  // Epochs are kept per attempt, so a stale attempt's records never mix with the
  // current one's; INSERT OR REPLACE makes a resent epoch idempotent.
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "INSERT OR REPLACE INTO epochs (attempt_id, epoch, loss, accuracy, val_loss, val_accuracy, "
      "seconds, batch_digest, weights_hash, batch_digests, lr) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  for (const EpochRecord& e : epochs) {
    q->Reset();
    RETURN_IF_ERROR(q->Bind(1, attempt_id).Bind(2, e.epoch).Bind(3, e.loss).Bind(4, e.accuracy)
                        .Bind(5, e.val_loss).Bind(6, e.val_accuracy).Bind(7, e.seconds)
                        .Bind(8, e.batch_digest).Bind(9, e.weights_hash)
                        .Bind(10, JoinDigests(e.batch_digests)).Bind(11, e.lr).Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RunStore::IsCurrentLease(int64_t run_id, int64_t lease_id) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT 1 FROM runs WHERE id = ? AND lease_attempt = ? AND state = 'running'"));
  q->Bind(1, run_id).Bind(2, lease_id);
  return q->Step();
}

absl::StatusOr<bool> RunStore::RecordEpoch(int64_t run_id, int64_t lease_id,
                                           const EpochRecord& e) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto check, db_->Prepare(
      "SELECT 1 FROM attempts WHERE id = ? AND run_id = ?"));
  check->Bind(1, lease_id).Bind(2, run_id);
  ASSIGN_OR_RETURN(bool known, check->Step());
  if (!known) return false;
  RETURN_IF_ERROR(StoreEpochs(lease_id, {e}));
  ASSIGN_OR_RETURN(bool valid, IsCurrentLease(run_id, lease_id));
  RETURN_IF_ERROR(tx.Commit());
  return valid;
}

absl::StatusOr<bool> RunStore::Complete(int64_t run_id, int64_t lease_id, const RunResult& r,
                                        int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT r.state, r.lease_attempt, a.outcome, w.name FROM runs r "
      "JOIN attempts a ON a.id = ? AND a.run_id = r.id "
      "LEFT JOIN workers w ON w.name = a.worker WHERE r.id = ?"));
  q->Bind(1, lease_id).Bind(2, run_id);
  ASSIGN_OR_RETURN(bool known, q->Step());
  if (!known) {
    return absl::NotFoundError(absl::StrCat("run ", run_id, " has no attempt ", lease_id));
  }
  const std::string state = q->Text(0);
  const std::string worker = q->Text(3);
  // A resent completion of an attempt already stored changes nothing.
  if (q->Text(2) == "done") return true;
  if (q->Text(2) == "extra") return false;
  const bool counted = state != "done";
  ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = ?, test_loss = ?, test_accuracy = ?, "
      "data_x_hash = ?, data_y_hash = ?, initial_hash = ?, final_hash = ?, environment = ?, "
      "predictions = ?, initial_weights = ?, final_weights = ?, epoch_weights = ? WHERE id = ?"));
  RETURN_IF_ERROR(attempt->Bind(1, now_ms).Bind(2, std::string(counted ? "done" : "extra"))
                      .Bind(3, r.test_loss).Bind(4, r.test_accuracy).Bind(5, r.data_x_hash)
                      .Bind(6, r.data_y_hash).Bind(7, r.initial_hash).Bind(8, r.final_hash)
                      .Bind(9, nlohmann::json(r.environment).dump())
                      .BindBlob(10, r.predictions.data(), r.predictions.size())
                      .Bind(11, r.initial_weights).Bind(12, r.final_weights)
                      .Bind(13, nlohmann::json(r.epoch_weights).dump())
                      .Bind(14, lease_id).Run());
  ASSIGN_OR_RETURN(auto tensor, db_->Prepare(
      "INSERT OR REPLACE INTO tensors (attempt_id, which, ordinal, name, hash) "
      "VALUES (?, ?, ?, ?, ?)"));
  for (const auto& [which, list] : {std::pair{std::string("initial"), &r.initial_tensors},
                                    std::pair{std::string("final"), &r.final_tensors}}) {
    for (size_t i = 0; i < list->size(); ++i) {
      tensor->Reset();
      RETURN_IF_ERROR(tensor->Bind(1, lease_id).Bind(2, which).Bind(3, static_cast<int64_t>(i))
                          .Bind(4, (*list)[i].name).Bind(5, (*list)[i].hash).Run());
    }
  }
  RETURN_IF_ERROR(StoreEpochs(lease_id, r.epochs));
  if (counted) {
    // A finished run needs its checkpoint no more.
    ASSIGN_OR_RETURN(auto drop, db_->Prepare("DELETE FROM checkpoints WHERE run_id = ?"));
    RETURN_IF_ERROR(drop->Bind(1, run_id).Run());
    ASSIGN_OR_RETURN(auto run, db_->Prepare(
        "UPDATE runs SET state = 'done', result_attempt = ?, error = '', lease_expires_ms = NULL "
        "WHERE id = ?"));
    RETURN_IF_ERROR(run->Bind(1, lease_id).Bind(2, run_id).Run());
  }
  if (!worker.empty()) RETURN_IF_ERROR(SetWorkerRun(worker, ""));
  RETURN_IF_ERROR(tx.Commit());
  return counted;
}

absl::StatusOr<int> RunStore::MaxAttempts(int64_t run_id) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT e.max_attempts FROM runs r JOIN experiments e ON e.id = r.experiment_id "
      "WHERE r.id = ?"));
  q->Bind(1, run_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  return static_cast<int>(q->Int(0));
}

absl::StatusOr<bool> RunStore::Fail(int64_t run_id, int64_t lease_id, const std::string& error,
                                    int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = 'failed', error = ? "
      "WHERE id = ? AND run_id = ? AND outcome = 'running'"));
  RETURN_IF_ERROR(attempt->Bind(1, now_ms).Bind(2, error).Bind(3, lease_id).Bind(4, run_id).Run());
  if (db_->Changes() == 0) return false;
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT r.attempts, a.worker FROM runs r JOIN attempts a ON a.id = ? "
      "WHERE r.id = ? AND r.lease_attempt = ? AND r.state = 'running'"));
  q->Bind(1, lease_id).Bind(2, run_id).Bind(3, lease_id);
  ASSIGN_OR_RETURN(bool current, q->Step());
  bool will_retry = false;
  if (current) {
    const int attempts = static_cast<int>(q->Int(0));
    RETURN_IF_ERROR(SetWorkerRun(q->Text(1), ""));
    ASSIGN_OR_RETURN(int max_attempts, MaxAttempts(run_id));
    will_retry = attempts < max_attempts;
    ASSIGN_OR_RETURN(auto run, db_->Prepare(
        "UPDATE runs SET state = ?, error = ?, lease_attempt = NULL, lease_expires_ms = NULL, "
        "progress_epoch = -1 WHERE id = ?"));
    RETURN_IF_ERROR(run->Bind(1, std::string(will_retry ? "pending" : "failed"))
                        .Bind(2, error).Bind(3, run_id).Run());
  }
  RETURN_IF_ERROR(tx.Commit());
  return will_retry;
}

absl::StatusOr<bool> RunStore::SaveCheckpoint(int64_t run_id, int64_t lease_id, int epoch,
                                              const std::string& state, int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(bool valid, IsCurrentLease(run_id, lease_id));
  if (!valid) return false;
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "INSERT OR REPLACE INTO checkpoints (run_id, attempt_id, epoch, state, saved_ms) "
      "VALUES (?, ?, ?, ?, ?)"));
  RETURN_IF_ERROR(q->Bind(1, run_id).Bind(2, lease_id).Bind(3, epoch)
                      .BindBlob(4, state.data(), state.size()).Bind(5, now_ms).Run());
  RETURN_IF_ERROR(tx.Commit());
  return true;
}

absl::StatusOr<bool> RunStore::Release(int64_t run_id, int64_t lease_id, const std::string& reason,
                                       int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT a.worker FROM runs r JOIN attempts a ON a.id = r.lease_attempt "
      "WHERE r.id = ? AND r.lease_attempt = ? AND r.state = 'running'"));
  q->Bind(1, run_id).Bind(2, lease_id);
  ASSIGN_OR_RETURN(bool current, q->Step());
  if (!current) return false;
  const std::string worker = q->Text(0);
  ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = 'released', error = ? WHERE id = ?"));
  RETURN_IF_ERROR(attempt->Bind(1, now_ms).Bind(2, reason).Bind(3, lease_id).Run());
  // A handed-back run did not fail: its attempt is not counted against max_attempts.
  ASSIGN_OR_RETURN(auto run, db_->Prepare(
      "UPDATE runs SET state = 'pending', attempts = attempts - 1, lease_attempt = NULL, "
      "lease_expires_ms = NULL, progress_epoch = -1 WHERE id = ?"));
  RETURN_IF_ERROR(run->Bind(1, run_id).Run());
  RETURN_IF_ERROR(SetWorkerRun(worker, ""));
  RETURN_IF_ERROR(tx.Commit());
  return true;
}

absl::StatusOr<int> RunStore::ExpireLeases(int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT r.id, r.lease_attempt, r.attempts, e.max_attempts, a.worker FROM runs r "
      "JOIN experiments e ON e.id = r.experiment_id JOIN attempts a ON a.id = r.lease_attempt "
      "WHERE r.state = 'running' AND r.lease_expires_ms < ?"));
  q->Bind(1, now_ms);
  struct Expired { int64_t run_id, attempt_id; bool retry; std::string worker; };
  std::vector<Expired> expired;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    expired.push_back({q->Int(0), q->Int(1), q->Int(2) < q->Int(3), q->Text(4)});
  }
  ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
      "UPDATE attempts SET ended_ms = ?, outcome = 'expired', "
      "error = 'lease expired: no heartbeat from the worker in time' WHERE id = ?"));
  ASSIGN_OR_RETURN(auto run, db_->Prepare(
      "UPDATE runs SET state = ?, error = 'lease expired: no heartbeat from the worker in time', "
      "lease_attempt = NULL, lease_expires_ms = NULL, progress_epoch = -1 WHERE id = ?"));
  for (const Expired& e : expired) {
    attempt->Reset();
    RETURN_IF_ERROR(attempt->Bind(1, now_ms).Bind(2, e.attempt_id).Run());
    run->Reset();
    RETURN_IF_ERROR(run->Bind(1, std::string(e.retry ? "pending" : "failed")).Bind(2, e.run_id).Run());
    RETURN_IF_ERROR(SetWorkerRun(e.worker, ""));
  }
  RETURN_IF_ERROR(tx.Commit());
  return static_cast<int>(expired.size());
}

absl::StatusOr<int> RunStore::Cancel(const std::string& experiment, const std::string& reason) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "UPDATE runs SET state = 'failed', error = ?, lease_expires_ms = NULL "
      "WHERE experiment_id = ? AND state IN ('pending', 'running')"));
  RETURN_IF_ERROR(q->Bind(1, absl::StrCat("cancelled: ", reason)).Bind(2, experiment_id).Run());
  const int cancelled = db_->Changes();
  RETURN_IF_ERROR(tx.Commit());
  return cancelled;
}

absl::Status RunStore::LoadResults(int64_t experiment_id, const std::vector<int64_t>& attempt_ids,
                                 ExperimentView* view) {
  // Three queries for the whole experiment, not three per run: a report of 10,000 runs
  // x 200 epochs reads 2 million epoch rows. Each returns the rows of the runs' current
  // attempts, grouped by attempt (in primary-key order, so without a sort).
  std::unordered_map<int64_t, RunResult*> results;
  results.reserve(attempt_ids.size());
  for (size_t i = 0; i < attempt_ids.size(); ++i) {
    if (attempt_ids[i] != 0) results[attempt_ids[i]] = &view->runs[i].result;
  }
  int64_t last_id = 0;
  RunResult* last = nullptr;
  auto result_of = [&](int64_t attempt_id) -> RunResult* {
    if (attempt_id != last_id || last == nullptr) {
      auto it = results.find(attempt_id);
      last_id = attempt_id;
      last = it == results.end() ? nullptr : it->second;
    }
    return last;
  };
  constexpr char kCurrentAttempts[] =
      "(SELECT COALESCE(result_attempt, lease_attempt) FROM runs WHERE experiment_id = ?)";
  ASSIGN_OR_RETURN(auto a, db_->Prepare(absl::StrCat(
      "SELECT id, test_loss, test_accuracy, data_x_hash, data_y_hash, initial_hash, final_hash, "
      "environment, predictions, initial_weights, final_weights, epoch_weights "
      "FROM attempts WHERE id IN ", kCurrentAttempts)));
  a->Bind(1, experiment_id);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, a->Step());
    if (!row) break;
    RunResult* r = result_of(a->Int(0));
    if (r == nullptr) continue;
    r->test_loss = a->Real(1);
    r->test_accuracy = a->Real(2);
    r->data_x_hash = a->Text(3);
    r->data_y_hash = a->Text(4);
    r->initial_hash = a->Text(5);
    r->final_hash = a->Text(6);
    // Stored by Complete from well-formed values; a damaged cell reads as empty.
    const auto environment = nlohmann::json::parse(a->Text(7), nullptr, false);
    if (environment.is_object()) {
      for (const auto& [key, value] : environment.items()) {
        if (value.is_string()) r->environment[key] = value.get<std::string>();
      }
    }
    const std::string predictions = a->Blob(8);
    r->predictions.assign(predictions.begin(), predictions.end());
    r->initial_weights = a->Text(9);
    r->final_weights = a->Text(10);
    const auto epoch_weights = nlohmann::json::parse(a->Text(11), nullptr, false);
    if (epoch_weights.is_array()) {
      for (const auto& path : epoch_weights) {
        if (path.is_string()) r->epoch_weights.push_back(path.get<std::string>());
      }
    }
  }
  ASSIGN_OR_RETURN(auto t, db_->Prepare(absl::StrCat(
      "SELECT attempt_id, which, name, hash FROM tensors WHERE attempt_id IN ", kCurrentAttempts,
      " ORDER BY attempt_id, which, ordinal")));
  t->Bind(1, experiment_id);
  for (;;) {
    ASSIGN_OR_RETURN(bool more, t->Step());
    if (!more) break;
    RunResult* r = result_of(t->Int(0));
    if (r == nullptr) continue;
    auto& list = t->Text(1) == "initial" ? r->initial_tensors : r->final_tensors;
    list.push_back(TensorHash{t->Text(2), t->Text(3)});
  }
  ASSIGN_OR_RETURN(auto e, db_->Prepare(absl::StrCat(
      "SELECT attempt_id, epoch, loss, accuracy, val_loss, val_accuracy, seconds, batch_digest, "
      "weights_hash, batch_digests, lr FROM epochs WHERE attempt_id IN ", kCurrentAttempts,
      " ORDER BY attempt_id, epoch")));
  e->Bind(1, experiment_id);
  for (;;) {
    ASSIGN_OR_RETURN(bool more, e->Step());
    if (!more) break;
    RunResult* r = result_of(e->Int(0));
    if (r == nullptr) continue;
    if (r->epochs.empty()) r->epochs.reserve(static_cast<size_t>(view->epochs));
    EpochRecord& rec = r->epochs.emplace_back();
    rec.epoch = static_cast<int>(e->Int(1));
    rec.loss = e->Real(2);
    rec.accuracy = e->Real(3);
    rec.val_loss = e->Real(4);
    rec.val_accuracy = e->Real(5);
    rec.seconds = e->Real(6);
    rec.batch_digest = e->Text(7);
    rec.weights_hash = e->Text(8);
    rec.batch_digests = SplitDigests(e->Text(9));
    rec.lr = e->Real(10);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RunStore::LeaseOwner(int64_t run_id, int64_t lease_id) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT worker FROM attempts WHERE id = ? AND run_id = ?"));
  q->Bind(1, lease_id).Bind(2, run_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("run ", run_id, " has no attempt ", lease_id));
  return q->Text(0);
}

absl::StatusOr<std::string> RunStore::RunLabel(int64_t run_id) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT arm, idx FROM runs WHERE id = ?"));
  q->Bind(1, run_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no run ", run_id));
  return absl::StrCat(q->Text(0), "#", q->Int(1));
}

absl::StatusOr<ExperimentView> RunStore::LoadView(const std::string& experiment,
                                                  bool with_results) {
  QueuedLock lock(&mu_, &queued_);
  // One read transaction, so the view is a consistent snapshot even while workers report
  // (after the changes still waiting for a group commit are committed).
  RETURN_IF_ERROR(group_->Flush());
  RETURN_IF_ERROR(db_->Exec("BEGIN"));
  struct EndRead {
    sql::Database* db;
    ~EndRead() { db->Exec("COMMIT").IgnoreError(); }
  } end_read{db_.get()};
  ExperimentView view;
  view.name = experiment;
  ASSIGN_OR_RETURN(auto x, db_->Prepare(
      "SELECT id, runs_per_arm, epochs FROM experiments WHERE name = ?"));
  x->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool found, x->Step());
  if (!found) {
    return absl::NotFoundError(absl::StrCat(db_->path(), " has no experiment \"", experiment, "\""));
  }
  const int64_t experiment_id = x->Int(0);
  view.runs_per_arm = static_cast<int>(x->Int(1));
  view.epochs = static_cast<int>(x->Int(2));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT r.arm, r.idx, r.init_seed, r.shuffle_seed, r.state, r.attempts, r.error, "
      "r.progress_epoch, COALESCE(r.result_attempt, r.lease_attempt), "
      "COALESCE(a.worker, ''), r.progress_batch, r.progress_batches, r.augment_seed FROM runs r "
      "LEFT JOIN attempts a ON a.id = COALESCE(r.result_attempt, r.lease_attempt) "
      "WHERE r.experiment_id = ? ORDER BY r.arm_order, r.idx"));
  q->Bind(1, experiment_id);
  std::vector<int64_t> attempt_ids;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    RunView run;
    run.arm = q->Text(0);
    run.index = static_cast<int>(q->Int(1));
    run.init_seed = static_cast<uint64_t>(q->Int(2));
    run.shuffle_seed = static_cast<uint64_t>(q->Int(3));
    run.state = ParseState(q->Text(4));
    run.attempts = static_cast<int>(q->Int(5));
    run.error = q->Text(6);
    run.current_epoch = run.state == RunState::kRunning ? static_cast<int>(q->Int(7)) : -1;
    attempt_ids.push_back(q->IsNull(8) ? 0 : q->Int(8));
    run.worker = q->Text(9);
    run.current_batch = q->Int(10);
    run.batches = q->Int(11);
    run.augment_seed = static_cast<uint64_t>(q->Int(12));
    if (view.arms.empty() || view.arms.back() != run.arm) view.arms.push_back(run.arm);
    view.runs.push_back(std::move(run));
  }
  if (!with_results) return view;
  RETURN_IF_ERROR(LoadResults(experiment_id, attempt_ids, &view));
  ASSIGN_OR_RETURN(auto extra, db_->Prepare(
      "SELECT r.arm, r.idx, a.worker, a.final_hash, a.test_loss, a.test_accuracy FROM attempts a "
      "JOIN runs r ON r.id = a.run_id WHERE r.experiment_id = ? AND a.outcome = 'extra' "
      "ORDER BY a.id"));
  extra->Bind(1, experiment_id);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, extra->Step());
    if (!row) break;
    for (RunView& run : view.runs) {
      if (run.arm == extra->Text(0) && run.index == extra->Int(1)) {
        run.extra_results.push_back(
            ExtraResult{extra->Text(2), extra->Text(3), extra->Real(4), extra->Real(5)});
      }
    }
  }
  return view;
}

absl::StatusOr<RunCounts> RunStore::Counts(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT state, COUNT(*) FROM runs WHERE experiment_id = ? GROUP BY state"));
  q->Bind(1, experiment_id);
  RunCounts counts;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    const int n = static_cast<int>(q->Int(1));
    switch (ParseState(q->Text(0))) {
      case RunState::kPending: counts.pending = n; break;
      case RunState::kRunning: counts.running = n; break;
      case RunState::kDone: counts.done = n; break;
      case RunState::kFailed: counts.failed = n; break;
    }
  }
  return counts;
}

absl::StatusOr<RunTiming> RunStore::Timing(const std::string& experiment) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT COUNT(*), AVG(a.ended_ms - a.started_ms) FROM runs r "
      "JOIN attempts a ON a.id = r.result_attempt WHERE r.experiment_id = ?"));
  q->Bind(1, experiment_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  RunTiming timing;
  if (row) {
    timing.done = q->Int(0);
    timing.mean_run_seconds = q->IsNull(1) ? 0 : q->Real(1) / 1000.0;
  }
  return timing;
}

absl::Status RunStore::UpsertWorker(const WorkerRecord& w) {
  QueuedLock lock(&mu_, &queued_);
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "INSERT INTO workers (name, host, torch_version, device, threads, last_seen_ms) "
      "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET host = excluded.host, "
      "torch_version = excluded.torch_version, device = excluded.device, "
      "threads = excluded.threads, last_seen_ms = excluded.last_seen_ms"));
  RETURN_IF_ERROR(q->Bind(1, w.name).Bind(2, w.host).Bind(3, w.torch_version).Bind(4, w.device)
                      .Bind(5, w.threads).Bind(6, w.last_seen_ms).Run());
  return tx.Commit();
}

absl::StatusOr<bool> RunStore::TouchWorker(const std::string& name, int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  // Every call of every worker comes here: last_seen_ms is kept to the second, so that
  // a busy worker costs a read, not a write, per call.
  ASSIGN_OR_RETURN(auto seen, db_->Prepare("SELECT last_seen_ms FROM workers WHERE name = ?"));
  seen->Bind(1, name);
  ASSIGN_OR_RETURN(bool known, seen->Step());
  if (!known) return false;
  const int64_t last = seen->Int(0);
  if (now_ms >= last && now_ms - last < 1000) return true;
  sql::Transaction tx(db_.get());
  RETURN_IF_ERROR(tx.status());
  ASSIGN_OR_RETURN(auto q, db_->Prepare("UPDATE workers SET last_seen_ms = ? WHERE name = ?"));
  RETURN_IF_ERROR(q->Bind(1, now_ms).Bind(2, name).Run());
  const bool touched = db_->Changes() == 1;
  RETURN_IF_ERROR(tx.Commit());
  return touched;
}

absl::StatusOr<std::vector<WorkerRecord>> RunStore::Workers() {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT name, host, torch_version, device, threads, last_seen_ms, current_run "
      "FROM workers ORDER BY name"));
  std::vector<WorkerRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (!row) break;
    out.push_back(WorkerRecord{q->Text(0), q->Text(1), q->Text(2), q->Text(3),
                               static_cast<int>(q->Int(4)), q->Int(5), q->Text(6)});
  }
  return out;
}

}  // namespace repro
