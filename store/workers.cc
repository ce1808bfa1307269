// RunStore's worker table: registering a worker with its capabilities and labels
// (UpsertWorker), noting that it was heard from (TouchWorker), that it left or went
// silent (LeaveWorker, MarkSilentWorkersGone), listing the workers (Workers, Worker) and
// the run each one holds (SetWorkerRun, kept by the lease and result methods), and how
// many of an arm's runs each has had (ArmRunsByWorker, for spread placement).
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace repro {
namespace {

constexpr char kWorkerColumns[] =
    "name, host, torch_version, device, threads, last_seen_ms, current_run, capabilities, "
    "labels, COALESCE(gone_ms, 0), gone_reason";

WorkerRecord ReadWorker(const sql::Statement& row) {
  WorkerRecord w;
  w.name = row.Text(0);
  w.host = row.Text(1);
  w.torch_version = row.Text(2);
  w.device = row.Text(3);
  w.threads = static_cast<int>(row.Int(4));
  w.last_seen_ms = row.Int(5);
  w.current_run = row.Text(6);
  w.capabilities = StringMap(row.Text(7));
  w.labels = StringMap(row.Text(8));
  w.gone_ms = row.Int(9);
  w.gone_reason = row.Text(10);
  return w;
}

}  // namespace

absl::Status RunStore::UpsertWorker(const WorkerRecord& w) {
  return Write([&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "INSERT INTO workers (name, host, torch_version, device, threads, last_seen_ms, "
        "capabilities, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "host = excluded.host, torch_version = excluded.torch_version, device = excluded.device, "
        "threads = excluded.threads, last_seen_ms = excluded.last_seen_ms, "
        "capabilities = excluded.capabilities, labels = excluded.labels, gone_ms = NULL, "
        "gone_reason = ''"));
    return q->Bind(1, w.name).Bind(2, w.host).Bind(3, w.torch_version).Bind(4, w.device)
        .Bind(5, w.threads).Bind(6, w.last_seen_ms)
        .Bind(7, nlohmann::json(w.capabilities).dump())
        .Bind(8, nlohmann::json(w.labels).dump()).Run();
  });
}

absl::StatusOr<bool> RunStore::TouchWorker(const std::string& name, int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  // Every call of every worker comes here: last_seen_ms is kept to the second, so that
  // a busy worker costs a read, not a write, per call.
  int64_t last = 0;
  bool gone = false;
  {
    // Read, and the statement reset, before the write: stepped and kept across the write's
    // group commit, it would keep the connection's read transaction open through the
    // COMMIT, whose checkpoint then cannot run, and the WAL would grow without end.
    ASSIGN_OR_RETURN(auto seen, db_->Prepare(
        "SELECT last_seen_ms, gone_ms IS NOT NULL FROM workers WHERE name = ?"));
    seen->Bind(1, name);
    ASSIGN_OR_RETURN(bool known, seen->Step());
    if (!known) return false;
    last = seen->Int(0);
    gone = seen->Int(1) != 0;
  }
  if (!gone && now_ms >= last && now_ms - last < kSeenGranularityMs) return true;
  return WriteLocked([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE workers SET last_seen_ms = ?, gone_ms = NULL, gone_reason = '' WHERE name = ?"));
    RETURN_IF_ERROR(q->Bind(1, now_ms).Bind(2, name).Run());
    return db_->Changes() == 1;
  });
}

absl::StatusOr<std::vector<WorkerRecord>> RunStore::Workers() {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      absl::StrCat("SELECT ", kWorkerColumns, " FROM workers ORDER BY name")));
  std::vector<WorkerRecord> out;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) { out.push_back(ReadWorker(row)); }));
  return out;
}

absl::StatusOr<std::optional<WorkerRecord>> RunStore::Worker(const std::string& name) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      absl::StrCat("SELECT ", kWorkerColumns, " FROM workers WHERE name = ?")));
  q->Bind(1, name);
  ASSIGN_OR_RETURN(bool found, q->Step());
  if (!found) return std::nullopt;
  return ReadWorker(*q);
}

absl::Status RunStore::LeaveWorker(const std::string& name, const std::string& reason,
                                   int64_t now_ms) {
  return Write([&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE workers SET last_seen_ms = ?, gone_ms = ?, gone_reason = ? WHERE name = ?"));
    return q->Bind(1, now_ms).Bind(2, now_ms).Bind(3, absl::StrCat("left: ", reason))
        .Bind(4, name).Run();
  });
}

absl::StatusOr<std::vector<std::string>> RunStore::MarkSilentWorkersGone(int64_t silent_before_ms,
                                                                         int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  std::vector<std::string> silent;
  {
    // A worker replaying runs for a localization sends heartbeats too.
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT name FROM workers WHERE gone_ms IS NULL AND last_seen_ms < ?"));
    q->Bind(1, silent_before_ms);
    RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) { silent.push_back(row.Text(0)); }));
  }
  if (silent.empty()) return silent;
  RETURN_IF_ERROR(WriteLocked([&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE workers SET gone_ms = ?, gone_reason = 'silent' WHERE name = ?"));
    for (const std::string& name : silent) {
      q->Reset();
      RETURN_IF_ERROR(q->Bind(1, now_ms).Bind(2, name).Run());
    }
    return absl::OkStatus();
  }));
  return silent;
}

absl::StatusOr<std::map<std::string, int>> RunStore::ArmRunsByWorker(const std::string& experiment,
                                                                     const std::string& arm) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT a.worker, COUNT(*) FROM runs r JOIN attempts a ON a.id = "
      "CASE r.state WHEN 'running' THEN r.lease_attempt ELSE r.result_attempt END "
      "WHERE r.experiment_id = ? AND r.arm = ? AND r.state IN ('running', 'done') "
      "GROUP BY a.worker"));
  q->Bind(1, experiment_id).Bind(2, arm);
  std::map<std::string, int> out;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    out[row.Text(0)] = static_cast<int>(row.Int(1));
  }));
  return out;
}

absl::Status RunStore::SetWorkerRun(const std::string& worker, const std::string& run) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare("UPDATE workers SET current_run = ? WHERE name = ?"));
  return q->Bind(1, run).Bind(2, worker).Run();
}

}  // namespace repro
