// GroupCommit: the RunStore's writers share commits, so that with synchronous=FULL
// many concurrent changes cost one fsync instead of one each. Every change is still
// its own all-or-nothing unit (a savepoint), and a writer still returns only once its
// change is on disk, so a worker is never told "done" for a result that a power loss
// could take back.
//
// How: the first transaction opens one SQLite transaction (BEGIN IMMEDIATE); each
// transaction is a savepoint in it. A writer whose savepoint changed rows waits (the
// store's mutex released) while other threads are queued for the store, so that they
// add their changes to the same commit; the writer that finds none queued (or the
// commit full, max_batch changes) commits for all, and the others return with that
// commit's status. A transaction that changed nothing does not wait. Readers on the
// store's connection may see changes of the open commit a little before they are
// durable; LoadView (which needs a transaction of its own) commits them first.
//
// No statement may still be stepping (a SELECT read to its first row and kept) while a
// writer waits for the commit: SQLite would keep the connection's read transaction
// open across the COMMIT, the checkpoint that COMMIT runs could not proceed, and the
// WAL would grow without end (sqlite.h: kWalCheckpointPages).
//
// A failed write can make SQLite roll the whole shared transaction back (a full disk,
// an I/O error): then every writer of the batch gets that error, whose code says it may
// try again (sqlite.h: ErrorStatus), and the next writer opens a new transaction.
//
// Thread safety: every method requires the store's mutex (given at construction),
// which Durable releases while it waits. `queued` counts the threads that are waiting
// to take that mutex (QueuedLock keeps it).
#ifndef REPRO_STORE_GROUP_COMMIT_H_
#define REPRO_STORE_GROUP_COMMIT_H_

#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "store/sqlite.h"

namespace repro {

// Takes `mu`, counting this thread in `queued` while it waits for it.
class ABSL_SCOPED_LOCKABLE QueuedLock {
 public:
  QueuedLock(absl::Mutex* mu, std::atomic<int>* queued) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    queued->fetch_add(1, std::memory_order_relaxed);
    mu_->Lock();
    queued->fetch_sub(1, std::memory_order_relaxed);
  }
  ~QueuedLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  QueuedLock(const QueuedLock&) = delete;
  QueuedLock& operator=(const QueuedLock&) = delete;

 private:
  absl::Mutex* mu_;
};

class GroupCommit final : public sql::CommitGroup {
 public:
  GroupCommit(sql::Database* db, absl::Mutex* mu, const std::atomic<int>* queued,
              int max_batch = 1024)
      : db_(db), mu_(mu), queued_(queued), max_batch_(max_batch) {}

  absl::Status Join() override;
  absl::Status Durable(bool changed) override;
  void Left() override;
  void Lost(const absl::Status& cause) override;
  // Commits the open transaction now, if there is one.
  absl::Status Flush();

  // For tests and benchmarks: commits so far, and changes they held.
  int64_t commits() const { return commits_; }
  int64_t committed_changes() const { return committed_changes_; }

 private:
  absl::Status CommitNow();  // the open batch, with its waiting writers
  absl::Status Close();      // an open transaction that no writer waits for
  bool Ready(int64_t batch) const { return durable_ >= batch || queued_->load() == 0; }

  sql::Database* const db_;
  absl::Mutex* const mu_;
  const std::atomic<int>* const queued_;
  const int max_batch_;
  bool open_ = false;        // the shared transaction is open
  int pending_ = 0;          // transactions with changes waiting for its commit
  int64_t batch_ = 0;        // the id of the open (or next) batch
  int64_t durable_ = -1;     // the id of the last batch committed
  std::map<int64_t, absl::Status> failed_;  // batches whose COMMIT failed (rare)
  int64_t commits_ = 0;
  int64_t committed_changes_ = 0;
};

}  // namespace repro

#endif  // REPRO_STORE_GROUP_COMMIT_H_
