// CoordinatorService: leases, their secrets and their expiry, hand-backs, cancel, and
// what is final stays final (service_test_fixture.h serves the real handlers in-process).
#include "coordinator/service_test_fixture.h"

namespace repro::service_testing {
namespace {

TEST_F(ServiceTest, AnExpiredLeaseGoesToTheNextWorkerAndALateResultIsNotCountedTwice) {
  ASSERT_TRUE(Register("a").ok());
  ASSERT_TRUE(Register("b").ok());
  const v1::RunAssignment first = LeaseRun("a");
  EXPECT_EQ(first.lease_ttl_ms(), kLeaseTtlMs);
  AdvanceClock(kLeaseTtlMs + 1);  // a goes silent past its lease
  const v1::RunAssignment second = LeaseRun("b");
  EXPECT_EQ(second.run_id(), first.run_id());
  EXPECT_NE(second.lease_id(), first.lease_id());
  EXPECT_EQ(StoredRun(second).attempts, 2);
  EXPECT_TRUE(Logged("(attempt 2)"));
  EXPECT_FALSE(HeartbeatSaysValid("a", first));
  EXPECT_TRUE(HeartbeatSaysValid("b", second));

  v1::CompleteResponse resp;
  ASSERT_TRUE(Complete("b", second, ValidResult(0.25), &resp).ok());
  EXPECT_TRUE(resp.counted());
  ASSERT_TRUE(Complete("a", first, ValidResult(0.75), &resp).ok());
  EXPECT_FALSE(resp.counted());

  const RunView run = StoredRun(first);
  EXPECT_EQ(run.state, RunState::kDone);
  EXPECT_EQ(run.worker, "b");
  EXPECT_EQ(run.result.test_loss, 0.25);
  ASSERT_EQ(run.extra_results.size(), 1u);  // a's result is kept as evidence only
  EXPECT_EQ(run.extra_results[0].worker, "a");
  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().done(), 1);
  EXPECT_EQ(status.runs().running(), 0);
  EXPECT_EQ(status.runs().pending(), 1);  // the other arm's run
}

TEST_F(ServiceTest, HeartbeatsLostUntilMaxAttemptsIsUsedUpEndTheRunFailedWithTheReason) {
  ASSERT_TRUE(Register("a").ok());
  v1::RunAssignment run;
  for (int attempt = 1; attempt <= 2; ++attempt) {  // the plan's max_attempts
    run = LeaseRun("a");
    AdvanceClock(kLeaseTtlMs + 1);
    service_->ExpireLeases();  // as the coordinator does periodically
  }
  EXPECT_FALSE(HeartbeatSaysValid("a", run));
  const RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kFailed);
  EXPECT_EQ(stored.error, kExpired);
  EXPECT_EQ(stored.attempts, 2);
  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().failed(), 1);
  EXPECT_EQ(status.runs().running(), 0);
  EXPECT_EQ(status.runs().pending(), 1);
  EXPECT_EQ(status.arms(0).runs().failed(), 1);
  EXPECT_TRUE(Logged("expired without a heartbeat"));
}

TEST_F(ServiceTest, AReleasedRunIsPendingAgainAndTheAttemptDoesNotCount) {
  const v1::RunAssignment drained = RunReleasedByA();
  EXPECT_EQ(StoredRun(drained).state, RunState::kPending);
  EXPECT_EQ(StoredRun(drained).attempts, 0);
  EXPECT_EQ(Status().runs().pending(), 2);
  EXPECT_FALSE(HeartbeatSaysValid("a", drained));

  // b takes it up; with max_attempts 2, a failure now still retries: the hand-back
  // did not use up an attempt.
  const v1::RunAssignment retaken = LeaseRun("b");
  EXPECT_EQ(retaken.run_id(), drained.run_id());
  v1::FailResponse failed;
  ASSERT_TRUE(Fail("b", retaken, &failed).ok());
  EXPECT_TRUE(failed.will_retry());
  EXPECT_EQ(StoredRun(drained).state, RunState::kPending);
}

TEST_F(ServiceTest, ASecondReleaseOfTheSameLeaseChangesNothing) {
  const v1::RunAssignment drained = RunReleasedByA();
  v1::ReleaseResponse resp;
  ASSERT_TRUE(Release("a", drained, &resp).ok());
  EXPECT_FALSE(resp.released());
  EXPECT_EQ(StoredRun(drained).attempts, 0);  // not taken back twice

  // Nor does it take the run from the worker that leased it since.
  const v1::RunAssignment retaken = LeaseRun("b");
  ASSERT_TRUE(Release("a", drained, &resp).ok());
  EXPECT_FALSE(resp.released());
  EXPECT_TRUE(HeartbeatSaysValid("b", retaken));
  EXPECT_EQ(StoredRun(retaken).state, RunState::kRunning);
  EXPECT_EQ(StoredRun(retaken).attempts, 1);
  EXPECT_EQ(Status().runs().running(), 1);
}

TEST_F(ServiceTest, AReleaseAfterCompleteKeepsTheRunDone) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  v1::CompleteResponse completed;
  ASSERT_TRUE(Complete("a", run, ValidResult(0.5), &completed).ok());
  ASSERT_TRUE(completed.counted());
  v1::ReleaseResponse released;
  ASSERT_TRUE(Release("a", run, &released).ok());
  EXPECT_FALSE(released.released());
  const RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kDone);
  EXPECT_EQ(stored.result.test_loss, 0.5);
  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().done(), 1);
  EXPECT_EQ(status.runs().pending(), 1);
}

TEST_F(ServiceTest, CompleteFailOrReleaseWithAnotherWorkersLeaseIsDeniedAndChangesNothing) {
  ASSERT_TRUE(Register("owner").ok());
  ASSERT_TRUE(Register("intruder").ok());
  const v1::RunAssignment run = LeaseRun("owner");
  v1::CompleteResponse completed;
  v1::FailResponse failed;
  v1::ReleaseResponse released;
  for (const grpc::Status& s : {Complete("intruder", run, ValidResult(0.5), &completed),
                                Fail("intruder", run, &failed),
                                Release("intruder", run, &released)}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "belongs to another worker"));
  }
  const RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kRunning);
  EXPECT_EQ(stored.worker, "owner");
  EXPECT_EQ(stored.attempts, 1);
  EXPECT_TRUE(stored.extra_results.empty());
  EXPECT_TRUE(HeartbeatSaysValid("owner", run));
  EXPECT_EQ(Status().runs().running(), 1);
}

TEST_F(ServiceTest, AnUnregisteredWorkerIsRefused) {
  ASSERT_TRUE(Register("owner").ok());
  const v1::RunAssignment run = LeaseRun("owner");
  v1::LeaseResponse lease;
  v1::CompleteResponse completed;
  for (const grpc::Status& s :
       {Lease("stranger", &lease), Complete("stranger", run, ValidResult(0.5), &completed)}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
    EXPECT_TRUE(absl::StrContains(s.error_message(), "not registered")) << s.error_message();
  }
  EXPECT_EQ(Register("").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(StoredRun(run).state, RunState::kRunning);
  v1::WorkersResponse workers;
  ASSERT_TRUE(control_->Workers(Ctx().get(), v1::WorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).name(), "owner");
}

TEST_F(ServiceTest, CancelFailsTheRemainingRunsAndLeaseThenGivesNoRun) {
  ASSERT_TRUE(Register("a").ok());
  ASSERT_TRUE(Register("b").ok());
  const v1::RunAssignment running = LeaseRun("a");
  v1::CancelRequest req;
  req.set_reason("enough");
  v1::CancelResponse resp;
  ASSERT_TRUE(control_->Cancel(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.runs_cancelled(), 2);  // the running run and the pending one
  EXPECT_TRUE(Logged("experiment cancelled (enough)"));

  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().failed(), 2);
  EXPECT_TRUE(status.complete());
  EXPECT_EQ(StoredRun(running).error, "cancelled: enough");
  EXPECT_FALSE(HeartbeatSaysValid("a", running));
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("b", &lease).ok());
  EXPECT_FALSE(lease.has_run());
  EXPECT_TRUE(lease.finished());
}

// Lease ids are sequential and a worker's name is only its word: what proves a call
// comes from the worker a lease was handed to is the lease's secret, which only that
// worker got. A holder of the worker token who names another worker changes nothing.
TEST_F(ServiceTest, ACallNamingAnotherWorkerWithoutItsLeaseSecretIsDeniedAndChangesNothing) {
  ASSERT_TRUE(Register("owner").ok());
  ASSERT_TRUE(Register("intruder").ok());
  const v1::RunAssignment run = LeaseRun("owner");
  const v1::RunAssignment own = LeaseRun("intruder");  // the intruder's own lease and secret
  EXPECT_EQ(run.lease_secret().size(), 32u);  // 128 bits in hex
  EXPECT_NE(run.lease_secret(), own.lease_secret());
  v1::RunAssignment forged = run;  // the owner's name, run and lease id
  for (const std::string& secret : {std::string(), own.lease_secret(), std::string(32, '0')}) {
    forged.set_lease_secret(secret);
    v1::CompleteResponse completed;
    v1::FailResponse failed;
    v1::ReleaseResponse released;
    v1::ReportEpochResponse reported;
    v1::HeartbeatResponse beat;
    v1::SaveCheckpointResponse saved;
    auto checkpoint = AboutLease<v1::SaveCheckpointRequest>("owner", forged);
    checkpoint.set_state("state");
    for (const grpc::Status& s :
         {Complete("owner", forged, ValidResult(0.5), &completed), Fail("owner", forged, &failed),
          Release("owner", forged, &released), ReportEpoch("owner", forged, 0, &reported),
          workers_->Heartbeat(Ctx().get(), AboutLease<v1::HeartbeatRequest>("owner", forged), &beat),
          workers_->SaveCheckpoint(Ctx().get(), checkpoint, &saved)}) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
      EXPECT_TRUE(absl::StrContains(s.error_message(), "lease secret")) << s.error_message();
    }
  }
  RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kRunning);
  EXPECT_EQ(stored.attempts, 1);
  EXPECT_TRUE(stored.extra_results.empty());
  EXPECT_EQ(Status().runs().running(), 2);
  // The owner's own result is the one that counts.
  v1::CompleteResponse completed;
  ASSERT_TRUE(Complete("owner", run, ValidResult(0.25), &completed).ok());
  EXPECT_TRUE(completed.counted());
  stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kDone);
  EXPECT_EQ(stored.worker, "owner");
  EXPECT_EQ(stored.result.test_loss, 0.25);
}

// Cancelling is final: the running attempts end with their runs, and a result that
// arrives afterwards is kept as evidence but never turns the run done.
TEST_F(ServiceTest, ALateResultForACancelledRunIsKeptAsEvidenceAndTheRunStaysFailed) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  v1::CancelRequest cancel;
  cancel.set_reason("enough");
  v1::CancelResponse cancelled;
  ASSERT_TRUE(control_->Cancel(Ctx().get(), cancel, &cancelled).ok());
  v1::CompleteResponse completed;
  ASSERT_TRUE(Complete("a", run, ValidResult(0.5), &completed).ok());
  EXPECT_FALSE(completed.counted());
  const RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kFailed);
  EXPECT_EQ(stored.error, "cancelled: enough");
  ASSERT_EQ(stored.extra_results.size(), 1u);
  EXPECT_EQ(stored.extra_results[0].test_loss, 0.5);
  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().failed(), 2);
  EXPECT_EQ(status.runs().done(), 0);
  EXPECT_FALSE(Logged("finished run same_seed#0:"));  // not logged as counted
}

// A failure the worker marks as the plan's own (a model file that cannot be trained)
// ends the experiment at once: one clear error, not max_attempts failures of every run.
TEST_F(ServiceTest, APlanErrorCancelsTheExperimentWithItsReason) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment first = LeaseRun("a");
  auto req = AboutLease<v1::FailRequest>("a", first);
  req.set_error("model file /m.pt has no forward method");
  req.set_plan_error(true);
  v1::FailResponse failed;
  ASSERT_TRUE(workers_->Fail(Ctx().get(), req, &failed).ok());
  EXPECT_FALSE(failed.will_retry());
  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().failed(), 2) << status.DebugString();  // both arms' runs
  EXPECT_EQ(status.runs().pending(), 0);
  const RunView run = StoredRun(first);
  EXPECT_EQ(run.state, RunState::kFailed);
  EXPECT_EQ(run.attempts, 1);
  EXPECT_TRUE(absl::StrContains(
      run.error, "the plan cannot be trained (worker a): model file /m.pt has no forward method"))
      << run.error;
  EXPECT_TRUE(Logged("experiment cancelled"));
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("a", &lease).ok());
  EXPECT_TRUE(lease.finished());
}

// So are a run failed with its attempts used up and an attempt its worker failed or
// handed back: a result for such a lease never turns the run done.
TEST_F(ServiceTest, ALateResultAfterAFailureOrAHandBackNeverTurnsTheRunDone) {
  ASSERT_TRUE(Register("a").ok());
  v1::FailResponse failed;
  const v1::RunAssignment first = LeaseRun("a");
  ASSERT_TRUE(Fail("a", first, &failed).ok());
  ASSERT_TRUE(failed.will_retry());
  const v1::RunAssignment last = LeaseRun("a");  // the same run, attempt 2 of 2
  ASSERT_EQ(last.run_id(), first.run_id());
  ASSERT_TRUE(Fail("a", last, &failed).ok());
  ASSERT_FALSE(failed.will_retry());
  v1::CompleteResponse completed;
  for (const v1::RunAssignment& lease : {last, first}) {
    ASSERT_TRUE(Complete("a", lease, ValidResult(0.5), &completed).ok());
    EXPECT_FALSE(completed.counted());
  }
  EXPECT_EQ(StoredRun(first).state, RunState::kFailed);
  EXPECT_EQ(StoredRun(first).extra_results.size(), 2u);

  const v1::RunAssignment handed_back = LeaseRun("a");  // the other arm's run
  v1::ReleaseResponse released;
  ASSERT_TRUE(Release("a", handed_back, &released).ok());
  ASSERT_TRUE(Complete("a", handed_back, ValidResult(0.5), &completed).ok());
  EXPECT_FALSE(completed.counted());
  EXPECT_EQ(StoredRun(handed_back).state, RunState::kPending);
  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.runs().done(), 0);
  EXPECT_EQ(status.runs().failed(), 1);
  EXPECT_EQ(status.runs().pending(), 1);
}

// A failure reported through a lease that has ended changes no run, and the log does
// not say the worker failed the run.
TEST_F(ServiceTest, AFailureThroughAnEndedLeaseIsNotLoggedAsAFailedRun) {
  ASSERT_TRUE(Register("a").ok());
  ASSERT_TRUE(Register("b").ok());
  const v1::RunAssignment first = LeaseRun("a");
  AdvanceClock(kLeaseTtlMs + 1);
  const v1::RunAssignment second = LeaseRun("b");
  v1::FailResponse failed;
  ASSERT_TRUE(Fail("a", first, &failed).ok());
  EXPECT_FALSE(failed.will_retry());
  EXPECT_FALSE(Logged("worker a failed run"));
  EXPECT_TRUE(Logged("after its lease ended"));
  EXPECT_EQ(StoredRun(second).state, RunState::kRunning);
  EXPECT_TRUE(HeartbeatSaysValid("b", second));
}

// A failed run names the worker of its last attempt, in the view and the report.
TEST_F(ServiceTest, AFailedRunNamesItsLastWorker) {
  ASSERT_TRUE(Register("a").ok());
  ASSERT_TRUE(Register("b").ok());
  v1::FailResponse failed;
  const v1::RunAssignment first = LeaseRun("a");
  ASSERT_TRUE(Fail("a", first, &failed).ok());
  const v1::RunAssignment last = LeaseRun("b");
  ASSERT_TRUE(Fail("b", last, &failed).ok());
  ASSERT_EQ(StoredRun(last).state, RunState::kFailed);
  EXPECT_EQ(StoredRun(last).worker, "b");
  v1::ReportRequest req;
  req.set_partial(true);
  req.set_bootstrap_resamples(0);
  v1::ReportResponse report;
  const grpc::Status s = control_->Report(Ctx().get(), req, &report);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(absl::StrContains(report.body(), "(attempts: 2, worker: b)")) << report.body();
}

}  // namespace
}  // namespace repro::service_testing
