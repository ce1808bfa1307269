#include "store/sqlite.h"

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace repro::sql {

absl::Status ErrorStatus(int rc, const std::string& message) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::ResourceExhaustedError(message);
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

Statement::~Statement() {
  if (cache_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  cache_->Return(sql_, stmt_);
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return ErrorStatus(rc, absl::StrCat("SQLite: ", sqlite3_errmsg(db_), " in: ", sqlite3_sql(stmt_)));
}

absl::Status Statement::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string Statement::Text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

std::string Statement::Blob(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  if (data == nullptr) return "";
  return std::string(static_cast<const char*>(data),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

namespace {

// A connection to `filename` (the path, or a URI naming it) with `flags`; errors name
// `path`.
absl::StatusOr<sqlite3*> Connect(const std::string& path, const std::string& filename, int flags) {
  // No memory statistics: with them every allocation of SQLite's, in every thread,
  // takes one process-wide mutex. Must come before SQLite initializes (a later call
  // fails harmlessly).
  static const int memstatus = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)memstatus;
  sqlite3* db = nullptr;
  // NOMUTEX: the caller serializes every use of the connection (see sqlite.h).
  const int rc = sqlite3_open_v2(filename.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open database: ", message));
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::string& path) {
  absl::StatusOr<sqlite3*> connection =
      Connect(path, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!connection.ok()) return connection.status();
  sqlite3* db = *connection;
  std::unique_ptr<Database> out(new Database(db, path));
  // WAL: readers (reproctl --db) never block the coordinator's writes. synchronous=FULL
  // makes every committed result survive a power loss of the VM, not only a crash.
  // The WAL's bounds: see kWalCheckpointPages.
  sqlite3_wal_autocheckpoint(db, kWalCheckpointPages);
  const std::string size_limit = absl::StrCat("PRAGMA journal_size_limit=", kWalSizeLimit);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=ON", size_limit.c_str()}) {
    if (absl::Status s = out->Exec(pragma); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": not a usable SQLite database: ", s.message()));
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Database>> Database::OpenReadOnly(const std::string& path,
                                                                 bool immutable) {
  // A URI, for immutable=1; an absolute path after "file://" (an empty authority), with
  // the characters a URI gives a meaning to escaped.
  std::error_code error;
  const std::string absolute = std::filesystem::absolute(path, error).string();
  std::string uri = "file://";
  for (char c : error ? path : absolute) {
    if (c == '%' || c == '?' || c == '#') {
      constexpr char kHex[] = "0123456789ABCDEF";
      const unsigned char byte = static_cast<unsigned char>(c);
      uri += {'%', kHex[byte >> 4], kHex[byte & 0xf]};
    } else {
      uri.push_back(c);
    }
  }
  absl::StrAppend(&uri, immutable ? "?mode=ro&immutable=1" : "?mode=ro");
  absl::StatusOr<sqlite3*> db = Connect(path, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
  if (!db.ok()) return db.status();
  return std::unique_ptr<Database>(new Database(*db, path));
}

Database::~Database() {
  for (auto& [sql, statements] : cache_) {
    for (sqlite3_stmt* stmt : statements) sqlite3_finalize(stmt);
  }
  sqlite3_close(db_);
}

absl::StatusOr<std::unique_ptr<Statement>> Database::Prepare(const std::string& sql) {
  auto cached = cache_.try_emplace(sql).first;
  std::vector<sqlite3_stmt*>& idle = cached->second;
  if (!idle.empty()) {
    sqlite3_stmt* stmt = idle.back();
    idle.pop_back();
    return std::make_unique<Statement>(db_, stmt, this, &cached->first);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
      SQLITE_OK) {
    return absl::InternalError(absl::StrCat("SQLite: ", sqlite3_errmsg(db_), " in: ", sql));
  }
  return std::make_unique<Statement>(db_, stmt, this, &cached->first);
}

absl::Status Database::Exec(const std::string& sql) {
  char* error = nullptr;
  if (const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error); rc != SQLITE_OK) {
    std::string message = error ? error : "unknown error";
    sqlite3_free(error);
    return ErrorStatus(rc, absl::StrCat("SQLite: ", message));
  }
  return absl::OkStatus();
}

Transaction::Transaction(Database* db) : db_(db), group_(db->commit_group()) {
  if (group_ == nullptr) {
    status_ = db_->Exec("BEGIN IMMEDIATE");
    open_ = status_.ok();
    return;
  }
  status_ = group_->Join();
  if (status_.ok()) status_ = db_->Exec("SAVEPOINT repro_tx");
  if (!status_.ok()) {
    group_->Left();
    return;
  }
  open_ = true;
  changes_at_start_ = db_->TotalChanges();
}

Transaction::~Transaction() {
  if (!open_) return;
  if (group_ == nullptr) {
    db_->Exec("ROLLBACK").IgnoreError();
    return;
  }
  if (!db_->InTransaction()) {
    // No savepoint to roll back to: SQLite rolled the shared transaction back, and with
    // it the changes of the writers waiting for its commit.
    group_->Lost(db_->LastError());
    return;
  }
  db_->Exec("ROLLBACK TO repro_tx").IgnoreError();
  db_->Exec("RELEASE repro_tx").IgnoreError();
  group_->Left();
}

absl::Status Transaction::Commit() {
  if (!open_) return status_;
  if (group_ == nullptr) {
    open_ = false;
    return db_->Exec("COMMIT");
  }
  const bool changed = db_->TotalChanges() != changes_at_start_;
  if (absl::Status s = db_->Exec("RELEASE repro_tx"); !s.ok()) return s;  // rolled back
  open_ = false;
  return group_->Durable(changed);
}

}  // namespace repro::sql
