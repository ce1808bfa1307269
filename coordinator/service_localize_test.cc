// Localize: reproctl asks where two finished runs part; the next Lease of any worker
// takes the request before any run, with a secret; only that worker may answer it, and
// a worker that goes silent hands it on, until its attempts are used up.
#include "coordinator/service_test_fixture.h"

namespace repro::service_testing {
namespace {

class LocalizeTest : public ServiceTest {
 protected:
  // same_seed#0 and different_seeds#0 finished, alike until epoch 1.
  void FinishBoth(char a_last = 'e', char b_last = 'f') {
    ASSERT_TRUE(Register("w").ok());
    const v1::RunAssignment a = LeaseRun("w"), b = LeaseRun("w");
    for (const auto& [run, last] : {std::pair{&a, a_last}, std::pair{&b, b_last}}) {
      auto req = AboutLease<v1::CompleteRequest>("w", *run);
      *req.mutable_result() = ValidResult(0.5);
      req.mutable_result()->mutable_epochs(1)->set_weights_hash(std::string(32, last));
      v1::CompleteResponse resp;
      const grpc::Status s = workers_->Complete(Ctx().get(), req, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }
  grpc::Status Ask(const std::string& a, const std::string& b, v1::LocalizeResponse* resp) {
    v1::LocalizeRequest req;
    req.set_run_a(a);
    req.set_run_b(b);
    return control_->Localize(Ctx().get(), req, resp);
  }
  grpc::Status Answer(const std::string& worker, const v1::LocalizeJob& job,
                      const std::string& secret, int64_t batch) {
    v1::CompleteLocalizeRequest req;
    req.set_worker(worker);
    req.set_job_id(job.job_id());
    req.set_job_secret(secret);
    req.mutable_result()->set_epoch(job.epoch());
    req.mutable_result()->set_batch(batch);
    req.mutable_result()->set_op_kind("outputs");
    req.mutable_result()->set_op_name("aten::convolution_backward");
    v1::CompleteLocalizeResponse resp;
    return workers_->CompleteLocalize(Ctx().get(), req, &resp);
  }
};

TEST_F(LocalizeTest, AWorkerTakesTheRequestBeforeAnyRunAndOnlyItMayAnswer) {
  FinishBoth();
  v1::LocalizeResponse asked;
  ASSERT_TRUE(Ask("same_seed#0", "different_seeds#0", &asked).ok());
  EXPECT_EQ(asked.state(), "pending");
  EXPECT_EQ(asked.epoch(), 1);  // the first epoch after which their weights differ
  ASSERT_TRUE(Register("v").ok());
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("v", &lease).ok());
  ASSERT_TRUE(lease.has_localize()) << lease.DebugString();
  const v1::LocalizeJob& job = lease.localize();
  EXPECT_EQ(job.run_a(), "same_seed#0");
  EXPECT_EQ(job.run_b(), "different_seeds#0");
  EXPECT_EQ(job.epoch(), 1);
  EXPECT_EQ(job.recorded_a(), std::string(32, 'e'));
  EXPECT_EQ(job.recorded_b(), std::string(32, 'f'));
  EXPECT_EQ(job.spec_a().epochs(), kEpochs);
  EXPECT_EQ(job.spec_a().model_kind(), "noop");  // the runs' specs, as they trained
  EXPECT_EQ(job.spec_b().model_kind(), "noop");
  EXPECT_EQ(job.job_secret().size(), 32u);
  ASSERT_TRUE(Ask("same_seed#0", "different_seeds#0", &asked).ok());
  EXPECT_EQ(asked.state(), "running");
  EXPECT_EQ(asked.worker(), "v");

  EXPECT_EQ(Answer("w", job, job.job_secret(), 3).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Answer("v", job, std::string(32, '0'), 3).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_TRUE(Answer("v", job, job.job_secret(), 2).ok());
  ASSERT_TRUE(Ask("same_seed#0", "different_seeds#0", &asked).ok());
  EXPECT_EQ(asked.state(), "done");
  EXPECT_EQ(asked.result().batch(), 2);
  EXPECT_EQ(asked.result().op_name(), "aten::convolution_backward");
  EXPECT_EQ(asked.result().worker(), "v");  // as the coordinator knows the caller
  // Answered once: the next lease is no localization.
  ASSERT_TRUE(Lease("v", &lease).ok());
  EXPECT_FALSE(lease.has_localize());
}

TEST_F(LocalizeTest, ASilentWorkerHandsItOnUntilItsAttemptsAreUsedUp) {
  FinishBoth();
  v1::LocalizeResponse asked;
  ASSERT_TRUE(Ask("same_seed#0", "different_seeds#0", &asked).ok());
  ASSERT_TRUE(Register("v").ok());
  for (int attempt = 1; attempt <= RunStore::kLocalizeAttempts; ++attempt) {
    v1::LeaseResponse lease;
    ASSERT_TRUE(Lease("v", &lease).ok());
    ASSERT_TRUE(lease.has_localize()) << "attempt " << attempt;
    AdvanceClock(kLeaseTtlMs + 1);  // no heartbeat in a lease's length
  }
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("v", &lease).ok());
  EXPECT_FALSE(lease.has_localize());
  ASSERT_TRUE(Ask("same_seed#0", "different_seeds#0", &asked).ok());
  EXPECT_EQ(asked.state(), "failed");
  EXPECT_NE(asked.error().find("its workers stopped answering 3 times; the last was v"),
            std::string::npos)
      << asked.error();
}

TEST_F(LocalizeTest, HeartbeatsKeepALocalizationWithItsWorkerAndOnlyItsOwn) {
  FinishBoth();
  v1::LocalizeResponse asked;
  ASSERT_TRUE(Ask("same_seed#0", "different_seeds#0", &asked).ok());
  ASSERT_TRUE(Register("v").ok());
  ASSERT_TRUE(Register("w").ok());
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("v", &lease).ok());
  ASSERT_TRUE(lease.has_localize());
  const v1::LocalizeJob job = lease.localize();
  auto beat = [&](const std::string& worker, const std::string& secret, v1::HeartbeatResponse* resp) {
    v1::HeartbeatRequest req;
    req.set_worker(worker);
    req.set_localize_job_id(job.job_id());
    req.set_job_secret(secret);
    return workers_->Heartbeat(Ctx().get(), req, resp);
  };
  // Replaying for four leases' length, a heartbeat every half lease: still v's.
  for (int i = 0; i < 8; ++i) {
    AdvanceClock(kLeaseTtlMs / 2);
    v1::HeartbeatResponse resp;
    ASSERT_TRUE(beat("v", job.job_secret(), &resp).ok());
    EXPECT_TRUE(resp.lease_valid());
    v1::LeaseResponse other;
    ASSERT_TRUE(Lease("w", &other).ok());
    EXPECT_FALSE(other.has_localize()) << "handed on while its worker was alive";
  }
  // Another worker, or the wrong secret, renews nothing.
  v1::HeartbeatResponse resp;
  EXPECT_EQ(beat("w", job.job_secret(), &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(beat("v", std::string(32, '0'), &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Silent for a lease's length (killed): w takes it, and v's late heartbeat is refused.
  AdvanceClock(kLeaseTtlMs + 1);
  v1::LeaseResponse taken;
  ASSERT_TRUE(Lease("w", &taken).ok());
  ASSERT_TRUE(taken.has_localize());
  EXPECT_EQ(taken.localize().job_id(), job.job_id());
  EXPECT_EQ(beat("v", job.job_secret(), &resp).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // Answered: a heartbeat of its worker says the lease is over.
  ASSERT_TRUE(Answer("w", taken.localize(), taken.localize().job_secret(), 1).ok());
  ASSERT_TRUE(beat("w", taken.localize().job_secret(), &resp).ok());
  EXPECT_FALSE(resp.lease_valid());
}

TEST_F(LocalizeTest, RunsThatCannotBeLocalizedAreRefusedSayingWhy) {
  v1::LocalizeResponse asked;
  grpc::Status s = Ask("same_seed#0", "different_seeds#0", &asked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "run same_seed#0 has no result yet");
  FinishBoth('e', 'e');
  s = Ask("same_seed#0", "different_seeds#0", &asked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("never part"), std::string::npos) << s.error_message();
  s = Ask("same_seed#0", "same_seed#0", &asked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  s = Ask("same_seed#0", "nope#0", &asked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "experiment svc has no run nope#0");
  s = Ask("same_seed#0", "../x", &asked);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace repro::service_testing
