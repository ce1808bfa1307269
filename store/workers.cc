// RunStore's worker table: registering a worker (UpsertWorker), noting that it was
// heard from (TouchWorker), listing the workers (Workers) and the run each one holds
// (SetWorkerRun, kept by the lease and result methods).
#include <string>
#include <vector>

#include "common/status_macros.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace repro {

absl::Status RunStore::UpsertWorker(const WorkerRecord& w) {
  return Write([&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "INSERT INTO workers (name, host, torch_version, device, threads, last_seen_ms) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET host = excluded.host, "
        "torch_version = excluded.torch_version, device = excluded.device, "
        "threads = excluded.threads, last_seen_ms = excluded.last_seen_ms"));
    return q->Bind(1, w.name).Bind(2, w.host).Bind(3, w.torch_version).Bind(4, w.device)
        .Bind(5, w.threads).Bind(6, w.last_seen_ms).Run();
  });
}

absl::StatusOr<bool> RunStore::TouchWorker(const std::string& name, int64_t now_ms) {
  QueuedLock lock(&mu_, &queued_);
  // Every call of every worker comes here: last_seen_ms is kept to the second, so that
  // a busy worker costs a read, not a write, per call.
  int64_t last = 0;
  {
    // Read, and the statement reset, before the write: stepped and kept across the write's
    // group commit, it would keep the connection's read transaction open through the
    // COMMIT, whose checkpoint then cannot run, and the WAL would grow without end.
    ASSIGN_OR_RETURN(auto seen, db_->Prepare("SELECT last_seen_ms FROM workers WHERE name = ?"));
    seen->Bind(1, name);
    ASSIGN_OR_RETURN(bool known, seen->Step());
    if (!known) return false;
    last = seen->Int(0);
  }
  if (now_ms >= last && now_ms - last < 1000) return true;
  return WriteLocked([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare("UPDATE workers SET last_seen_ms = ? WHERE name = ?"));
    RETURN_IF_ERROR(q->Bind(1, now_ms).Bind(2, name).Run());
    return db_->Changes() == 1;
  });
}

absl::StatusOr<std::vector<WorkerRecord>> RunStore::Workers() {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT name, host, torch_version, device, threads, last_seen_ms, current_run "
      "FROM workers ORDER BY name"));
  std::vector<WorkerRecord> out;
  RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
    out.push_back(WorkerRecord{row.Text(0), row.Text(1), row.Text(2), row.Text(3),
                               static_cast<int>(row.Int(4)), row.Int(5), row.Text(6)});
  }));
  return out;
}

absl::Status RunStore::SetWorkerRun(const std::string& worker, const std::string& run) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare("UPDATE workers SET current_run = ? WHERE name = ?"));
  return q->Bind(1, run).Bind(2, worker).Run();
}

}  // namespace repro
