// RunStore's opening and its experiments: the schema and its version check (Migrate),
// opening and closing the store, and creating and finding experiments. The rest of
// RunStore is in leases.cc, results.cc and workers.cc (see store.h).
#include "store/store.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "store/store_internal.h"

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
  created_ms INTEGER NOT NULL,
  test_labels BLOB,               -- schema 6: a byte per test example; NULL: not known
  adaptive TEXT);                 -- schema 7: AdaptiveState as JSON; NULL: a fixed run count
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
  epoch_weights TEXT NOT NULL DEFAULT '[]',   -- JSON array of paths
  secret_hash TEXT,                           -- schema 2: SHA-256 of the lease's secret
  checksum TEXT,                              -- schema 2: of the stored result, checked on read
  diverged TEXT);                             -- schema 2: RunResult::diverged, NULL when none
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
CREATE TABLE IF NOT EXISTS weight_files (  -- schema 3: RunResult::weights, blobs by SHA-256
  attempt_id INTEGER NOT NULL REFERENCES attempts(id),
  ordinal INTEGER NOT NULL,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  PRIMARY KEY (attempt_id, ordinal));
CREATE TABLE IF NOT EXISTS localizations (  -- schema 4: where two runs part (reproctl localize)
  id INTEGER PRIMARY KEY,
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  run_a INTEGER NOT NULL REFERENCES runs(id),
  run_b INTEGER NOT NULL REFERENCES runs(id),
  epoch INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending'
    CHECK (state IN ('pending', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  worker TEXT NOT NULL DEFAULT '',
  lease_expires_ms INTEGER,
  secret_hash TEXT,
  error TEXT NOT NULL DEFAULT '',
  result TEXT,                              -- JSON of LocalizationResult (so far, apart)
  created_ms INTEGER NOT NULL,
  stage TEXT,                               -- schema 8: NULL: one worker replays both;
                                            -- else each side apart, at this stage
  UNIQUE (experiment_id, run_a, run_b));
CREATE TABLE IF NOT EXISTS localization_sides (  -- schema 8: a side replayed apart, this stage
  localization_id INTEGER NOT NULL REFERENCES localizations(id),
  side TEXT NOT NULL CHECK (side IN ('a', 'b')),
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done')),
  attempts INTEGER NOT NULL DEFAULT 0,
  worker TEXT NOT NULL DEFAULT '',
  lease_expires_ms INTEGER,
  secret_hash TEXT,
  replay TEXT,                              -- JSON of its SideReplay, the dump by SHA-256
  PRIMARY KEY (localization_id, side));
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
  current_run TEXT NOT NULL DEFAULT '',
  capabilities TEXT NOT NULL DEFAULT '{}',  -- schema 5: JSON object of strings
  labels TEXT NOT NULL DEFAULT '{}',        -- schema 5: JSON object of strings
  gone_ms INTEGER,                          -- schema 5: NULL while the worker is here
  gone_reason TEXT NOT NULL DEFAULT '');    -- schema 5
-- schema 5: a lease restricted to the arms a worker may run looks up each arm's next
-- run. Only pending runs are in it, so that a result (running to done) costs no write.
CREATE INDEX IF NOT EXISTS runs_pending_by_arm ON runs (experiment_id, arm, idx)
  WHERE state = 'pending';
)sql";

// The workers' columns of schema 5, as Upgrade adds them and a read-only open of an
// older file shows them.
constexpr std::pair<const char*, const char*> kWorkerColumns5[] = {
    {"capabilities", "TEXT NOT NULL DEFAULT '{}'"},
    {"labels", "TEXT NOT NULL DEFAULT '{}'"},
    {"gone_ms", "INTEGER"},
    {"gone_reason", "TEXT NOT NULL DEFAULT ''"}};

absl::Status NewerSchemaError(const std::string& path, int version) {
  return absl::InvalidArgumentError(absl::StrCat(
      path, ": database schema version ", version, " is newer than this build understands (",
      kSchemaVersion, "); upgrade repro"));
}

// The schema version of a file opened read-only; INVALID_ARGUMENT naming it when it holds
// no repro schema. Reads only.
absl::StatusOr<int> ReadSchemaVersion(sql::Database& db) {
  auto q = db.Prepare(
      "SELECT (SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN "
      "('meta', 'experiments', 'runs', 'attempts')), "
      "(SELECT value FROM meta WHERE key = 'schema_version')");
  // Without the meta table the query does not compile: no repro database either.
  if (!q.ok() && db.LastErrorCode() == SQLITE_ERROR) return 0;
  if (!q.ok()) return q.status();
  ASSIGN_OR_RETURN(bool row, (*q)->Step());
  if (!row || (*q)->Int(0) != 4 || (*q)->IsNull(1)) return 0;
  return std::max(1, std::atoi((*q)->Text(1).c_str()));
}

// Whether a read-only open failed only for want of the WAL's shared-memory file, which
// SQLite makes beside the database: true in a folder this process cannot write.
bool CannotMakeWalIndex(const sql::Database& db) {
  const int code = db.LastErrorCode();
  return code == SQLITE_READONLY || code == SQLITE_CANTOPEN;
}

bool NonEmptyFile(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return !error && size > 0;
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

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::OpenReadOnly(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, sql::Database::OpenReadOnly(path, /*immutable=*/false));
  absl::StatusOr<int> version = ReadSchemaVersion(*db);
  if (!version.ok() && CannotMakeWalIndex(*db)) {
    // No process can write there either, so the file is as its last writer left it,
    // unless that writer left changes in the WAL, which only a writable folder can take.
    if (NonEmptyFile(path + "-wal")) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": cannot be read from this folder: ", path, "-wal holds changes not yet in it, "
          "and reading them needs a folder this user may write; copy both files to one"));
    }
    ASSIGN_OR_RETURN(db, sql::Database::OpenReadOnly(path, /*immutable=*/true));
    version = ReadSchemaVersion(*db);
  }
  if (!version.ok() && db->LastErrorCode() == SQLITE_NOTADB) version = 0;
  if (!version.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read the database: ", version.status().message()));
  }
  if (*version == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a repro database (no repro tables in it); nothing was changed"));
  }
  if (*version > kSchemaVersion) return NewerSchemaError(path, *version);
  if (*version < 3) {
    // Before schema 3 no weights travelled: an empty TEMP table stands for them.
    RETURN_IF_ERROR(db->Exec("CREATE TEMP TABLE weight_files (attempt_id INTEGER, "
                             "ordinal INTEGER, name TEXT, sha256 TEXT, size INTEGER)"));
  }
  if (*version < 4) {
    // Nor were runs localized: an empty TEMP table stands for that too.
    RETURN_IF_ERROR(db->Exec("CREATE TEMP TABLE localizations (id INTEGER, experiment_id "
                             "INTEGER, run_a INTEGER, run_b INTEGER, epoch INTEGER, state TEXT, "
                             "attempts INTEGER, worker TEXT, lease_expires_ms INTEGER, "
                             "secret_hash TEXT, error TEXT, result TEXT, created_ms INTEGER, "
                             "stage TEXT)"));
  } else if (*version < 8) {
    // Nor were sides replayed apart.
    RETURN_IF_ERROR(db->Exec("CREATE TEMP VIEW localizations AS SELECT *, NULL AS stage "
                             "FROM main.localizations"));
  }
  if (*version < 5) {
    // Nor had workers capabilities, labels or a time they left.
    RETURN_IF_ERROR(db->Exec("CREATE TEMP VIEW workers AS SELECT *, '{}' AS capabilities, "
                             "'{}' AS labels, NULL AS gone_ms, '' AS gone_reason "
                             "FROM main.workers"));
  }
  if (*version < 7) {
    // Nor were run counts adaptive; before schema 6 nor were the test set's labels kept.
    RETURN_IF_ERROR(db->Exec(absl::StrCat(
        "CREATE TEMP VIEW experiments AS SELECT *, ", *version < 6 ? "NULL AS test_labels, " : "",
        "NULL AS adaptive FROM main.experiments")));
  }
  if (*version < 2) {
    // Schema 1 lacks the attempts' secret_hash, checksum and diverged: a TEMP view (it
    // lives in this connection, not in the file, and is found before main's table) shows
    // them as NULL, as Upgrade leaves them for the attempts it keeps.
    RETURN_IF_ERROR(db->Exec("CREATE TEMP VIEW attempts AS SELECT *, NULL AS secret_hash, "
                             "NULL AS checksum, NULL AS diverged FROM main.attempts"));
  }
  return std::unique_ptr<RunStore>(new RunStore(std::move(db)));
}

// Not through Write: a file that cannot open a transaction, or take the schema, is no
// repro database, and the errors say so.
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
  const int version = has ? std::atoi(get->Text(0).c_str()) : kSchemaVersion;
  if (version > kSchemaVersion) return NewerSchemaError(db_->path(), version);
  RETURN_IF_ERROR(Upgrade(version));
  ASSIGN_OR_RETURN(auto put, db_->Prepare(
      "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)"));
  RETURN_IF_ERROR(put->Bind(1, std::to_string(kSchemaVersion)).Run());
  return tx.Commit();
}

// Brings a database of an older schema to kSchemaVersion, inside Migrate's transaction.
// kSchema creates what is missing but cannot add columns to a table that exists.
absl::Status RunStore::Upgrade(int from_version) {
  if (from_version < 2) {
    // Schema 2: lease secrets, result checksums, divergences. Attempts of schema 1 have
    // none: a lease taken before the upgrade presents no secret and is refused (its run
    // goes back to the queue when it expires); a result stored before it is read
    // unchecked (and could not have diverged: schema 1 had no such outcome).
    for (const char* column : {"secret_hash", "checksum", "diverged"}) {
      RETURN_IF_ERROR(AddColumn("attempts", column, "TEXT"));
    }
  }
  if (from_version < 5) {
    // Schema 5: workers' capabilities and labels (placement), and when they left. Workers
    // registered before have none: they can run any arm that asks nothing of them.
    for (const auto& [column, type] : kWorkerColumns5) RETURN_IF_ERROR(AddColumn("workers", column, type));
  }
  if (from_version < 6) {
    // Schema 6: the test set's labels, for the report's per-class figures. None for the
    // experiments before: the next coordinator that checks the data stores them.
    RETURN_IF_ERROR(AddColumn("experiments", "test_labels", "BLOB"));
  }
  if (from_version < 7) {
    // Schema 7: an adaptive run count's rule and looks. Experiments before had fixed counts.
    RETURN_IF_ERROR(AddColumn("experiments", "adaptive", "TEXT"));
  }
  if (from_version < 8) {
    // Schema 8: localizations whose sides replay apart (kSchema creates their table).
    RETURN_IF_ERROR(AddColumn("localizations", "stage", "TEXT"));
  }
  return absl::OkStatus();
}

absl::Status RunStore::AddColumn(const std::string& table, const std::string& column,
                                 const std::string& type) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT 1 FROM pragma_table_info(?) WHERE name = ?"));
  q->Bind(1, table).Bind(2, column);
  ASSIGN_OR_RETURN(bool present, q->Step());
  if (present) return absl::OkStatus();
  return db_->Exec(absl::StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", type));
}

absl::StatusOr<bool> RunStore::EnsureExperiment(const Plan& plan, const std::string& plan_text) {
  const std::string canonical = CanonicalPlan(plan);
  return Write([&]() -> absl::StatusOr<bool> {
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
        "max_attempts, created_ms, adaptive) VALUES (?, ?, ?, ?, ?, ?, CAST(strftime('%s','now') "
        "AS INTEGER) * 1000, ?)"));
    insert->Bind(1, plan.experiment).Bind(2, plan_text).Bind(3, canonical).Bind(4, plan.runs)
        .Bind(5, plan.epochs).Bind(6, plan.max_attempts);
    if (plan.adaptive) insert->Bind(7, AdaptiveStateJson(NewAdaptiveState(plan)).dump());
    RETURN_IF_ERROR(insert->Run());
    const int64_t experiment_id = db_->LastInsertId();
    for (size_t a = 0; a < plan.arms.size(); ++a) {
      RETURN_IF_ERROR(InsertRuns(experiment_id, plan, a, 0, plan.runs));
    }
    return true;
  });
}

absl::Status RunStore::InsertRuns(int64_t experiment_id, const Plan& plan, size_t arm, int from,
                                  int count) {
  ASSIGN_OR_RETURN(auto run, db_->Prepare(
      "INSERT INTO runs (experiment_id, arm, arm_order, idx, init_seed, shuffle_seed, "
      "augment_seed) VALUES (?, ?, ?, ?, ?, ?, ?)"));
  for (int i = from; i < from + count; ++i) {
    const RunSeeds seeds = SeedsFor(plan, plan.arms[arm], i);
    run->Reset();
    RETURN_IF_ERROR(run->Bind(1, experiment_id).Bind(2, plan.arms[arm].name)
                        .Bind(3, static_cast<int64_t>(arm)).Bind(4, i)
                        .Bind(5, static_cast<int64_t>(seeds.init))
                        .Bind(6, static_cast<int64_t>(seeds.shuffle))
                        .Bind(7, static_cast<int64_t>(seeds.augment)).Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RunStore::SetTestLabels(const std::string& experiment,
                                             const std::vector<uint8_t>& labels) {
  if (labels.empty()) return false;
  return Write([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE experiments SET test_labels = ? WHERE name = ? AND test_labels IS NULL"));
    RETURN_IF_ERROR(q->BindBlob(1, labels.data(), labels.size()).Bind(2, experiment).Run());
    if (db_->Changes() > 0) return true;
    RETURN_IF_ERROR(ExperimentId(experiment).status());  // none of that name: say so
    return false;
  });
}

absl::StatusOr<std::vector<std::string>> RunStore::ExperimentNames() {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT name FROM experiments ORDER BY id"));
  std::vector<std::string> names;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    names.push_back(row.Text(0));
  }));
  return names;
}

absl::StatusOr<std::string> RunStore::PlanColumn(const std::string& experiment,
                                                const char* column) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      absl::StrCat("SELECT ", column, " FROM experiments WHERE name = ?")));
  q->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return NoExperimentError(db_->path(), experiment);
  return q->Text(0);
}

absl::StatusOr<std::string> RunStore::PlanText(const std::string& experiment) {
  return PlanColumn(experiment, "plan_text");
}

absl::StatusOr<std::string> RunStore::CanonicalPlanText(const std::string& experiment) {
  return PlanColumn(experiment, "canonical_plan");
}

absl::StatusOr<int64_t> RunStore::ExperimentId(const std::string& experiment) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare("SELECT id FROM experiments WHERE name = ?"));
  q->Bind(1, experiment);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return NoExperimentError(db_->path(), experiment);
  return q->Int(0);
}

absl::Status RunStore::SetMaxGrowthForTesting(int64_t pages) {
  QueuedLock lock(&mu_, &queued_);
  RETURN_IF_ERROR(group_->Flush());
  int64_t now = 0;
  {
    ASSIGN_OR_RETURN(auto q, db_->Prepare("PRAGMA page_count"));
    ASSIGN_OR_RETURN(bool row, q->Step());
    if (row) now = q->Int(0);
  }
  return db_->Exec(absl::StrCat("PRAGMA max_page_count = ", now + pages));
}

}  // namespace repro
