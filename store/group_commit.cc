#include "store/group_commit.h"

#include <functional>

#include "absl/strings/str_cat.h"

namespace repro {

absl::Status GroupCommit::Join() {
  // A read that failed on a broken disk may have rolled the transaction back too.
  if (open_ && !db_->InTransaction()) Lost(db_->LastError());
  if (open_) return absl::OkStatus();
  absl::Status s = db_->Exec("BEGIN IMMEDIATE");
  open_ = s.ok();
  return s;
}

absl::Status GroupCommit::Close() {
  open_ = false;
  return db_->Exec("COMMIT");
}

absl::Status GroupCommit::CommitNow() {
  if (!db_->InTransaction()) {
    Lost(db_->LastError());
    return failed_[durable_];
  }
  absl::Status s = db_->Exec("COMMIT");
  if (!s.ok()) {
    db_->Exec("ROLLBACK").IgnoreError();  // none of the batch's changes stays
    failed_[batch_] = s;
  }
  ++commits_;
  committed_changes_ += pending_;
  open_ = false;
  pending_ = 0;
  durable_ = batch_++;
  return s;
}

absl::Status GroupCommit::Durable(bool changed) {
  if (!changed) {
    // Nothing of this transaction's to wait for; close the transaction if it holds
    // nobody else's changes either (COMMIT without changes writes nothing).
    return pending_ == 0 && open_ ? Close() : absl::OkStatus();
  }
  ++pending_;
  const int64_t mine = batch_;
  while (durable_ < mine) {
    if (queued_->load() == 0 || pending_ >= max_batch_) return CommitNow();
    // Let the queued threads add their changes; whoever then finds nobody queued
    // commits for all (it may be this thread, woken by the condition).
    const std::function<bool()> ready = [this, mine] { return Ready(mine); };
    mu_->Await(absl::Condition(&ready));
  }
  auto failed = failed_.find(mine);
  return failed == failed_.end() ? absl::OkStatus() : failed->second;
}

void GroupCommit::Left() {
  if (open_ && pending_ == 0) Close().IgnoreError();
}

void GroupCommit::Lost(const absl::Status& cause) {
  if (!open_) return;
  // Those writers did nothing wrong: they may send their change again once the disk has
  // room or works again, so the code is one to retry on whatever `cause` says.
  const absl::StatusCode code = cause.code() == absl::StatusCode::kResourceExhausted
                                    ? cause.code()
                                    : absl::StatusCode::kUnavailable;
  failed_[batch_] = absl::Status(
      code, absl::StrCat("the store rolled back the changes waiting for its commit (",
                         cause.message(), "); none of them was kept"));
  open_ = false;
  pending_ = 0;
  durable_ = batch_++;  // wakes the batch's writers, who find it failed
}

absl::Status GroupCommit::Flush() {
  if (!open_) return absl::OkStatus();
  return pending_ > 0 ? CommitNow() : Close();
}

}  // namespace repro
