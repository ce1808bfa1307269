// A thin RAII layer over SQLite's C API: one connection, prepared statements with
// bound parameters only (no SQL is ever built from values), errors as absl::Status.
//
// Thread safety: a Database and its Statements belong to one thread at a time; the
// RunStore serializes access with its own mutex (so the connection is opened without
// SQLite's own per-call mutex).
#ifndef REPRO_STORE_SQLITE_H_
#define REPRO_STORE_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace repro::sql {

class Database;

// The Status for SQLite's result code `rc`, with `message`. A full disk (SQLITE_FULL,
// SQLITE_NOMEM) is RESOURCE_EXHAUSTED and a failing or busy device (SQLITE_IOERR,
// SQLITE_BUSY, SQLITE_LOCKED) UNAVAILABLE: conditions that pass, so that a caller may
// try again later (a worker keeps its result and sends it again); anything else is
// INTERNAL.
absl::Status ErrorStatus(int rc, const std::string& message);

// The WAL is checkpointed into the database at the commit that takes it past this many
// pages (SQLite's default autocheckpoint, 4 MiB of 4 KiB pages), and a WAL file that grew
// past kWalSizeLimit (a reader held an old snapshot meanwhile) is cut back to it.
inline constexpr int kWalCheckpointPages = 1000;
inline constexpr int64_t kWalSizeLimit = 8 << 20;

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  // A statement of `cache`'s (Database::Prepare): handed back, reset, when destroyed.
  Statement(sqlite3* db, sqlite3_stmt* stmt, Database* cache, const std::string* sql)
      : db_(db), stmt_(stmt), cache_(cache), sql_(sql) {}
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite.
  Statement& Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); return *this; }
  Statement& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Statement& Bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); return *this; }
  Statement& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, const void* data, size_t size) {
    sqlite3_bind_blob(stmt_, i, size == 0 ? "" : data, static_cast<int>(size), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindNull(int i) { sqlite3_bind_null(stmt_, i); return *this; }

  // Steps once: true when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to the end, for statements that return no rows.
  absl::Status Run();
  void Reset() { sqlite3_reset(stmt_); sqlite3_clear_bindings(stmt_); }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const;
  std::string Blob(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  Database* cache_ = nullptr;
  const std::string* sql_ = nullptr;
};

// A commit shared by many transactions (RunStore's group commit, group_commit.h).
// With one set on the Database, a Transaction is a savepoint inside one open
// transaction that the group commits, so that many writers pay for one fsync.
class CommitGroup {
 public:
  virtual ~CommitGroup() = default;
  // Before a transaction: makes sure the shared transaction is open.
  virtual absl::Status Join() = 0;
  // After a transaction's savepoint was released: returns once its changes (if it
  // `changed` any row) are committed, with the status of that commit.
  virtual absl::Status Durable(bool changed) = 0;
  // After a transaction was rolled back to its savepoint.
  virtual void Left() = 0;
  // SQLite rolled back the whole shared transaction itself (it does on a full disk or an
  // I/O error during a write): every change waiting for its commit is gone; `cause` says
  // why, and is what their writers get.
  virtual void Lost(const absl::Status& cause) = 0;
};

class Database {
 public:
  // Opens (creating if needed) the file; WAL journal, foreign keys on, busy timeout.
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::string& path);
  // Opens an existing file read-only (SQLITE_OPEN_READONLY): nothing is ever written to
  // it or created in its place. `immutable`: SQLite's immutable=1, which reads the file
  // as it is, without the WAL's shared-memory file and without locks; only for a file
  // that no one writes (one in a read-only folder, where that file cannot be made).
  static absl::StatusOr<std::unique_ptr<Database>> OpenReadOnly(const std::string& path,
                                                                bool immutable);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Compiled once per SQL text and kept: a Statement goes back to the cache, reset and
  // unbound, when destroyed (the coordinator runs the same few statements thousands of
  // times a second, and compiling them was a good part of its time).
  absl::StatusOr<std::unique_ptr<Statement>> Prepare(const std::string& sql);
  absl::Status Exec(const std::string& sql);  // for schema and pragmas only
  int64_t LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  // The primary result code of the connection's last failed call (SQLITE_READONLY ...).
  int LastErrorCode() const { return sqlite3_errcode(db_) & 0xff; }
  // The connection's last error as a Status (ErrorStatus).
  absl::Status LastError() const {
    return ErrorStatus(sqlite3_errcode(db_), std::string("SQLite: ") + sqlite3_errmsg(db_));
  }
  // A transaction is open (BEGIN or SAVEPOINT, not yet committed or rolled back).
  bool InTransaction() const { return sqlite3_get_autocommit(db_) == 0; }
  int Changes() const { return sqlite3_changes(db_); }
  // Rows changed by every statement since the connection opened.
  int64_t TotalChanges() const { return sqlite3_total_changes64(db_); }
  const std::string& path() const { return path_; }
  // Not owned; null (the default) for one commit per Transaction.
  void set_commit_group(CommitGroup* group) { group_ = group; }
  CommitGroup* commit_group() const { return group_; }

 private:
  friend class Statement;
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void Return(const std::string* sql, sqlite3_stmt* stmt) { cache_[*sql].push_back(stmt); }
  sqlite3* db_;
  std::string path_;
  CommitGroup* group_ = nullptr;
  // Idle compiled statements by SQL text (several when a text is in use more than once).
  std::unordered_map<std::string, std::vector<sqlite3_stmt*>> cache_;
};

// Runs BEGIN IMMEDIATE on construction and ROLLBACK on destruction unless Commit()ed,
// so an early error return never leaves half a change behind. With a CommitGroup on
// the Database: SAVEPOINT, ROLLBACK TO, and Commit() returns once the group's commit
// holding the changes is done (so, as without, a change is durable when Commit() is OK).
class Transaction {
 public:
  explicit Transaction(Database* db);
  ~Transaction();
  absl::Status status() const { return status_; }
  absl::Status Commit();

 private:
  Database* db_;
  CommitGroup* group_;
  absl::Status status_;
  bool open_ = false;
  int64_t changes_at_start_ = 0;
};

}  // namespace repro::sql

#endif  // REPRO_STORE_SQLITE_H_
