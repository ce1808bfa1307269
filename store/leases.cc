// RunStore's leases: handing a pending run to a worker as a new attempt (LeaseNext),
// and everything that renews or ends a lease other than a result: Renew, Fail,
// SaveCheckpoint, Release, ExpireLeases, Cancel; with the checks they share
// (IsCurrentLease, MaxAttempts) and LeaseOwner. Results are in results.cc.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "store/store.h"
#include "store/store_internal.h"

namespace repro {

absl::StatusOr<std::optional<LeasedRun>> RunStore::LeaseNext(
    const std::string& experiment, const std::string& worker, int64_t now_ms, int64_t ttl_ms,
    const std::string& secret_hash, const std::vector<std::string>* arms) {
  return Write([&]() -> absl::StatusOr<std::optional<LeasedRun>> {
    ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
    constexpr char kColumns[] =
        "SELECT id, arm, idx, init_seed, shuffle_seed, attempts, augment_seed, arm_order FROM runs ";
    std::unique_ptr<sql::Statement> pick;
    if (arms == nullptr) {
      ASSIGN_OR_RETURN(pick, db_->Prepare(absl::StrCat(kColumns,
          "WHERE experiment_id = ? AND state = 'pending' ORDER BY idx, arm_order LIMIT 1")));
      pick->Bind(1, experiment_id);
      ASSIGN_OR_RETURN(bool found, pick->Step());
      if (!found) return std::optional<LeasedRun>();
    } else {
      // The same order (index, then arm order) over the arms this worker may run: each
      // arm's next pending run by runs_pending_by_arm, the earliest of them kept.
      std::pair<int64_t, int64_t> best{-1, -1};
      for (const std::string& arm : *arms) {
        ASSIGN_OR_RETURN(auto next, db_->Prepare(absl::StrCat(kColumns,
            "WHERE experiment_id = ? AND arm = ? AND state = 'pending' ORDER BY idx LIMIT 1")));
        next->Bind(1, experiment_id).Bind(2, arm);
        ASSIGN_OR_RETURN(bool found, next->Step());
        const std::pair<int64_t, int64_t> at{found ? next->Int(2) : 0, found ? next->Int(7) : 0};
        if (found && (pick == nullptr || at < best)) {
          pick = std::move(next);
          best = at;
        }
      }
      if (pick == nullptr) return std::optional<LeasedRun>();
    }
    LeasedRun leased;
    leased.run_id = pick->Int(0);
    leased.arm = pick->Text(1);
    leased.index = static_cast<int>(pick->Int(2));
    leased.seeds = RunSeeds{static_cast<uint64_t>(pick->Int(3)),
                            static_cast<uint64_t>(pick->Int(4)),
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
        "INSERT INTO attempts (run_id, worker, started_ms, secret_hash) VALUES (?, ?, ?, ?)"));
    RETURN_IF_ERROR(attempt->Bind(1, leased.run_id).Bind(2, worker).Bind(3, now_ms)
                        .Bind(4, secret_hash).Run());
    leased.lease_id = db_->LastInsertId();
    ASSIGN_OR_RETURN(auto update, db_->Prepare(
        "UPDATE runs SET state = 'running', attempts = attempts + 1, lease_attempt = ?, "
        "lease_expires_ms = ?, progress_epoch = 0, progress_batch = 0, progress_batches = 0 "
        "WHERE id = ?"));
    RETURN_IF_ERROR(update->Bind(1, leased.lease_id).Bind(2, now_ms + ttl_ms)
                        .Bind(3, leased.run_id).Run());
    RETURN_IF_ERROR(SetWorkerRun(worker, absl::StrCat(leased.arm, "#", leased.index)));
    return std::optional<LeasedRun>(leased);
  });
}

absl::StatusOr<bool> RunStore::Renew(int64_t run_id, int64_t lease_id, int64_t now_ms,
                                     int64_t ttl_ms, int epoch, int64_t batch, int64_t batches) {
  return Write([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "UPDATE runs SET lease_expires_ms = ?, progress_epoch = ?, progress_batch = ?, "
        "progress_batches = ? WHERE id = ? AND lease_attempt = ? AND state = 'running'"));
    RETURN_IF_ERROR(q->Bind(1, now_ms + ttl_ms).Bind(2, epoch).Bind(3, batch).Bind(4, batches)
                        .Bind(5, run_id).Bind(6, lease_id).Run());
    return db_->Changes() == 1;
  });
}

absl::StatusOr<bool> RunStore::IsCurrentLease(int64_t run_id, int64_t lease_id) {
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT 1 FROM runs WHERE id = ? AND lease_attempt = ? AND state = 'running'"));
  q->Bind(1, run_id).Bind(2, lease_id);
  return q->Step();
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

absl::StatusOr<FailOutcome> RunStore::Fail(int64_t run_id, int64_t lease_id,
                                           const std::string& error, int64_t now_ms) {
  return Write([&]() -> absl::StatusOr<FailOutcome> {
    ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
        "UPDATE attempts SET ended_ms = ?, outcome = 'failed', error = ? "
        "WHERE id = ? AND run_id = ? AND outcome = 'running'"));
    RETURN_IF_ERROR(
        attempt->Bind(1, now_ms).Bind(2, error).Bind(3, lease_id).Bind(4, run_id).Run());
    if (db_->Changes() == 0) return FailOutcome::kStale;
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT r.attempts, a.worker FROM runs r JOIN attempts a ON a.id = ? "
        "WHERE r.id = ? AND r.lease_attempt = ? AND r.state = 'running'"));
    q->Bind(1, lease_id).Bind(2, run_id).Bind(3, lease_id);
    ASSIGN_OR_RETURN(bool current, q->Step());
    if (!current) return FailOutcome::kStale;  // the run has moved on
    const int attempts = static_cast<int>(q->Int(0));
    RETURN_IF_ERROR(SetWorkerRun(q->Text(1), ""));
    ASSIGN_OR_RETURN(int max_attempts, MaxAttempts(run_id));
    const bool will_retry = attempts < max_attempts;
    ASSIGN_OR_RETURN(auto run, db_->Prepare(
        "UPDATE runs SET state = ?, error = ?, lease_attempt = NULL, lease_expires_ms = NULL, "
        "progress_epoch = -1 WHERE id = ?"));
    RETURN_IF_ERROR(run->Bind(1, std::string(will_retry ? "pending" : "failed"))
                        .Bind(2, error).Bind(3, run_id).Run());
    return will_retry ? FailOutcome::kRetry : FailOutcome::kFailed;
  });
}

absl::StatusOr<bool> RunStore::SaveCheckpoint(int64_t run_id, int64_t lease_id, int epoch,
                                              const std::string& state, int64_t now_ms) {
  return Write([&]() -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(bool valid, IsCurrentLease(run_id, lease_id));
    if (!valid) return false;
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "INSERT OR REPLACE INTO checkpoints (run_id, attempt_id, epoch, state, saved_ms) "
        "VALUES (?, ?, ?, ?, ?)"));
    RETURN_IF_ERROR(q->Bind(1, run_id).Bind(2, lease_id).Bind(3, epoch)
                        .BindBlob(4, state.data(), state.size()).Bind(5, now_ms).Run());
    return true;
  });
}

absl::StatusOr<bool> RunStore::Release(int64_t run_id, int64_t lease_id, const std::string& reason,
                                       int64_t now_ms) {
  return Write([&]() -> absl::StatusOr<bool> {
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
    return true;
  });
}

absl::StatusOr<int> RunStore::ExpireLeases(int64_t now_ms) {
  return Write([&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(auto q, db_->Prepare(
        "SELECT r.id, r.lease_attempt, r.attempts, e.max_attempts, a.worker FROM runs r "
        "JOIN experiments e ON e.id = r.experiment_id JOIN attempts a ON a.id = r.lease_attempt "
        "WHERE r.state = 'running' AND r.lease_expires_ms < ?"));
    q->Bind(1, now_ms);
    struct Expired { int64_t run_id, attempt_id; bool retry; std::string worker; };
    std::vector<Expired> expired;
    RETURN_IF_ERROR(ForEachRow(*q, [&](const sql::Statement& row) {
      expired.push_back({row.Int(0), row.Int(1), row.Int(2) < row.Int(3), row.Text(4)});
    }));
    ASSIGN_OR_RETURN(auto attempt, db_->Prepare(
        "UPDATE attempts SET ended_ms = ?, outcome = 'expired', "
        "error = 'lease expired: no heartbeat from the worker in time' WHERE id = ?"));
    ASSIGN_OR_RETURN(auto run, db_->Prepare(
        "UPDATE runs SET state = ?, error = 'lease expired: no heartbeat from the worker in "
        "time', lease_attempt = NULL, lease_expires_ms = NULL, progress_epoch = -1 WHERE id = ?"));
    for (const Expired& e : expired) {
      attempt->Reset();
      RETURN_IF_ERROR(attempt->Bind(1, now_ms).Bind(2, e.attempt_id).Run());
      run->Reset();
      RETURN_IF_ERROR(
          run->Bind(1, std::string(e.retry ? "pending" : "failed")).Bind(2, e.run_id).Run());
      RETURN_IF_ERROR(SetWorkerRun(e.worker, ""));
    }
    return static_cast<int>(expired.size());
  });
}

absl::StatusOr<int> RunStore::Cancel(const std::string& experiment, const std::string& reason,
                                     int64_t now_ms) {
  return Write([&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(int64_t experiment_id, ExperimentId(experiment));
    const std::string error = absl::StrCat("cancelled: ", reason);
    // The running attempts end with their runs, so that nothing is left "running" and a
    // late result of theirs is only evidence (Complete), and their workers hold no run.
    ASSIGN_OR_RETURN(auto workers, db_->Prepare(
        "UPDATE workers SET current_run = '' WHERE name IN (SELECT a.worker FROM runs r "
        "JOIN attempts a ON a.id = r.lease_attempt WHERE r.experiment_id = ? "
        "AND r.state = 'running')"));
    RETURN_IF_ERROR(workers->Bind(1, experiment_id).Run());
    ASSIGN_OR_RETURN(auto attempts, db_->Prepare(
        "UPDATE attempts SET ended_ms = ?, outcome = 'failed', error = ? "
        "WHERE outcome = 'running' AND run_id IN (SELECT id FROM runs WHERE experiment_id = ? "
        "AND state IN ('pending', 'running'))"));
    RETURN_IF_ERROR(attempts->Bind(1, now_ms).Bind(2, error).Bind(3, experiment_id).Run());
    ASSIGN_OR_RETURN(auto runs, db_->Prepare(
        "UPDATE runs SET state = 'failed', error = ?, lease_attempt = NULL, "
        "lease_expires_ms = NULL, progress_epoch = -1 "
        "WHERE experiment_id = ? AND state IN ('pending', 'running')"));
    RETURN_IF_ERROR(runs->Bind(1, error).Bind(2, experiment_id).Run());
    return db_->Changes();
  });
}

absl::StatusOr<LeaseHolder> RunStore::LeaseOwner(int64_t run_id, int64_t lease_id) {
  QueuedLock lock(&mu_, &queued_);
  ASSIGN_OR_RETURN(auto q, db_->Prepare(
      "SELECT worker, COALESCE(secret_hash, '') FROM attempts WHERE id = ? AND run_id = ?"));
  q->Bind(1, lease_id).Bind(2, run_id);
  ASSIGN_OR_RETURN(bool row, q->Step());
  if (!row) return absl::NotFoundError(absl::StrCat("run ", run_id, " has no attempt ", lease_id));
  return LeaseHolder{q->Text(0), q->Text(1)};
}

}  // namespace repro
