// CoordinatorService's handlers as workers and reproctl meet them, with no port and no
// process: real gRPC stubs on the server's in-process channel, a real RunStore in a
// temporary SQLite file, and a clock the test moves (nothing here sleeps). Each test
// checks the answers a caller gets and what the store keeps afterwards.
// tests/rpc_test.cc covers the same surface on a real coordinator (health, tokens, TLS).
#include "coordinator/service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "proto/convert.h"

namespace repro {
namespace {

// The two default arms of one run each, so two runs; `noop` reads no data.
constexpr char kPlan[] =
    "experiment: svc\nruns: 1\nepochs: 2\nmax_attempts: 2\nmodel: {kind: noop}\n";
constexpr int kEpochs = 2;
constexpr int kLeaseTtlMs = 6000;
constexpr char kExpired[] = "lease expired: no heartbeat from the worker in time";

// An epoch's record that fits the plan: finite numbers in range, well-formed hashes.
v1::Epoch ValidEpoch(int epoch) {
  v1::Epoch e;
  e.set_epoch(epoch);
  e.set_loss(0.5);
  e.set_accuracy(0.75);
  e.set_val_loss(0.625);
  e.set_val_accuracy(0.5);
  e.set_seconds(1.5);
  e.set_lr(0.001);
  e.set_batch_digest(std::string(32, 'b'));
  e.set_weights_hash(std::string(32, 'c'));
  return e;
}

// A result that fits the plan: every epoch in order, well-formed hashes, one tensor.
v1::RunResult ValidResult(double test_loss) {
  v1::RunResult r;
  r.set_test_loss(test_loss);
  const std::string hash(32, 'a');
  for (std::string* h : {r.mutable_initial_hash(), r.mutable_final_hash(),
                         r.mutable_data_x_hash(), r.mutable_data_y_hash()}) {
    *h = hash;
  }
  v1::TensorHash* tensor = r.add_initial_tensors();
  tensor->set_name("noop");
  tensor->set_hash(hash);
  *r.add_final_tensors() = *tensor;
  for (int e = 0; e < kEpochs; ++e) *r.add_epochs() = ValidEpoch(e);
  return r;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "service_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    RemoveDatabase();
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto plan = ParsePlan(kPlan, "svc.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(*store_->EnsureExperiment(*plan, kPlan));

    ServiceOptions options;
    options.lease_ttl_ms = kLeaseTtlMs;
    service_ = std::make_unique<CoordinatorService>(
        store_.get(), *plan, [this] { return now_ms_.load(); }, options,
        [this](const std::string& line) {
          absl::MutexLock lock(&log_mu_);
          log_.push_back(line);
        });
    grpc::ServerBuilder builder;  // no listening port: the in-process channel only
    builder.RegisterService(static_cast<v1::WorkerService::CallbackService*>(service_.get()));
    builder.RegisterService(static_cast<v1::ControlService::CallbackService*>(service_.get()));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    std::shared_ptr<grpc::Channel> channel = server_->InProcessChannel(grpc::ChannelArguments());
    workers_ = v1::WorkerService::NewStub(channel);
    control_ = v1::ControlService::NewStub(channel);
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    service_.reset();
    store_.reset();
    RemoveDatabase();
  }

  void RemoveDatabase() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path_ + suffix).c_str());
  }

  void AdvanceClock(int64_t ms) { now_ms_ += ms; }

  // A deadline on every call, as on the wire; here it only turns a hang into a failure.
  static std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return ctx;
  }

  grpc::Status Register(const std::string& name) {
    v1::RegisterRequest req;
    req.mutable_worker()->set_name(name);
    req.mutable_worker()->set_host("host-" + name);
    v1::RegisterResponse resp;
    return workers_->Register(Ctx().get(), req, &resp);
  }

  grpc::Status RegisterWorker(const v1::WorkerInfo& info) {
    v1::RegisterRequest req;
    *req.mutable_worker() = info;
    v1::RegisterResponse resp;
    return workers_->Register(Ctx().get(), req, &resp);
  }

  grpc::Status Lease(const std::string& worker, v1::LeaseResponse* resp) {
    v1::LeaseRequest req;
    req.set_worker(worker);
    return workers_->Lease(Ctx().get(), req, resp);
  }

  // A run leased by `worker`; the test fails when it gets none.
  v1::RunAssignment LeaseRun(const std::string& worker) {
    v1::LeaseResponse resp;
    const grpc::Status s = Lease(worker, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_TRUE(resp.has_run()) << resp.DebugString();
    return resp.run();
  }

  // Whether the coordinator still considers `worker`'s lease of `run` valid.
  bool HeartbeatSaysValid(const std::string& worker, const v1::RunAssignment& run) {
    v1::HeartbeatResponse resp;
    const grpc::Status s =
        workers_->Heartbeat(Ctx().get(), AboutLease<v1::HeartbeatRequest>(worker, run), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.lease_valid();
  }

  grpc::Status Complete(const std::string& worker, const v1::RunAssignment& run,
                        const v1::RunResult& result, v1::CompleteResponse* resp) {
    auto req = AboutLease<v1::CompleteRequest>(worker, run);
    *req.mutable_result() = result;
    return workers_->Complete(Ctx().get(), req, resp);
  }

  grpc::Status Fail(const std::string& worker, const v1::RunAssignment& run,
                    v1::FailResponse* resp) {
    auto req = AboutLease<v1::FailRequest>(worker, run);
    req.set_error("out of memory");
    return workers_->Fail(Ctx().get(), req, resp);
  }

  grpc::Status Release(const std::string& worker, const v1::RunAssignment& run,
                       v1::ReleaseResponse* resp) {
    auto req = AboutLease<v1::ReleaseRequest>(worker, run);
    req.set_reason("draining");
    return workers_->Release(Ctx().get(), req, resp);
  }

  // A run that worker "a" leased and handed back; "b" is registered to take it up.
  v1::RunAssignment RunReleasedByA() {
    EXPECT_TRUE(Register("a").ok());
    EXPECT_TRUE(Register("b").ok());
    const v1::RunAssignment run = LeaseRun("a");
    v1::ReleaseResponse resp;
    EXPECT_TRUE(Release("a", run, &resp).ok());
    EXPECT_TRUE(resp.released());
    return run;
  }

  grpc::Status ReportEpoch(const std::string& worker, const v1::RunAssignment& run, int epoch,
                           v1::ReportEpochResponse* resp) {
    auto req = AboutLease<v1::ReportEpochRequest>(worker, run);
    *req.mutable_epoch() = ValidEpoch(epoch);
    return workers_->ReportEpoch(Ctx().get(), req, resp);
  }

  v1::StatusResponse Status() {
    v1::StatusResponse resp;
    const grpc::Status s = control_->Status(Ctx().get(), v1::StatusRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // The run as the store holds it (with its results), found by arm and index.
  RunView StoredRun(const v1::RunAssignment& run) {
    auto view = store_->LoadView("svc");
    EXPECT_TRUE(view.ok()) << view.status();
    if (view.ok()) {
      for (const RunView& r : view->runs) {
        if (r.arm == run.arm() && r.index == run.index()) return r;
      }
    }
    ADD_FAILURE() << "no run " << run.arm() << "#" << run.index() << " in the store";
    return RunView();
  }

  bool Logged(const std::string& part) {
    absl::MutexLock lock(&log_mu_);
    for (const std::string& line : log_) {
      if (absl::StrContains(line, part)) return true;
    }
    return false;
  }

  std::string path_;
  std::atomic<int64_t> now_ms_{1'000'000};
  absl::Mutex log_mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mu_);
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

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

TEST_F(ServiceTest, EpochsOutsideThePlanAreInvalidArguments) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  v1::ReportEpochResponse reported;
  for (int epoch : {-1, kEpochs}) {
    EXPECT_EQ(ReportEpoch("a", run, epoch, &reported).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT) << "epoch " << epoch;
  }
  v1::RunResult beyond = ValidResult(0.5);
  beyond.add_epochs()->set_epoch(kEpochs);  // one epoch more than the plan has
  v1::RunResult out_of_order = ValidResult(0.5);
  out_of_order.mutable_epochs(1)->set_epoch(5);
  v1::CompleteResponse completed;
  for (const v1::RunResult& result : {beyond, out_of_order}) {
    const grpc::Status s = Complete("a", run, result, &completed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  }
  EXPECT_EQ(StoredRun(run).state, RunState::kRunning);
  EXPECT_EQ(Status().runs().done(), 0);
  // The lease is intact: an epoch inside the plan is taken.
  ASSERT_TRUE(ReportEpoch("a", run, kEpochs - 1, &reported).ok());
  EXPECT_TRUE(reported.lease_valid());
}

TEST_F(ServiceTest, StatusAndWorkersShowTheRunsAndTheWorkers) {
  ASSERT_TRUE(Register("a").ok());
  ASSERT_TRUE(Register("b").ok());
  const v1::RunAssignment run = LeaseRun("a");
  auto beat = AboutLease<v1::HeartbeatRequest>("a", run);
  beat.set_epoch(1);
  beat.set_batch(3);
  beat.set_batches(10);
  v1::HeartbeatResponse beat_resp;
  ASSERT_TRUE(workers_->Heartbeat(Ctx().get(), beat, &beat_resp).ok());

  const v1::StatusResponse status = Status();
  EXPECT_EQ(status.experiment(), "svc");
  EXPECT_EQ(status.epochs(), kEpochs);
  EXPECT_FALSE(status.complete());
  EXPECT_EQ(status.runs().running(), 1);
  EXPECT_EQ(status.runs().pending(), 1);
  ASSERT_EQ(status.arms_size(), 2);
  EXPECT_EQ(status.arms(0).name(), "same_seed");
  EXPECT_EQ(status.arms(1).name(), "different_seeds");
  ASSERT_EQ(status.running_size(), 1);
  EXPECT_EQ(status.running(0).worker(), "a");
  EXPECT_EQ(status.running(0).epoch(), 1);
  EXPECT_EQ(status.running(0).batch(), 3);
  EXPECT_EQ(status.running(0).batches(), 10);

  v1::WorkersResponse workers;
  ASSERT_TRUE(control_->Workers(Ctx().get(), v1::WorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 2);
  for (const v1::WorkerStatus& w : workers.workers()) {
    EXPECT_EQ(w.host(), "host-" + w.name());
    EXPECT_EQ(w.last_seen_unix_ms(), now_ms_.load());
    EXPECT_EQ(w.current_run(), w.name() == "a" ? run.arm() + "#0" : "") << w.name();
  }
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

// A worker's name and descriptions are shown by reproctl and in the coordinator's log:
// Register takes only names of letters, digits and - _ . : @, and bounded, printable
// descriptions.
TEST_F(ServiceTest, RegisterRefusesNamesAndDescriptionsThatCouldForgeTheLogOrFloodStatus) {
  for (const std::string& name :
       {std::string("evil\n12:00:00 worker b finished run same_seed#0"),
        std::string("\x1b[2Jevil"), std::string("two words"), std::string(129, 'a'),
        std::string("caf\xc3\xa9")}) {
    const grpc::Status s = Register(name);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_TRUE(absl::StrContains(s.error_message(), "worker name")) << s.error_message();
  }
  v1::WorkerInfo info;
  info.set_name("w");
  info.set_host(std::string(1 << 20, 'h'));  // a megabyte
  EXPECT_TRUE(absl::StrContains(RegisterWorker(info).error_message(), "worker host"));
  info.set_host("h");
  info.set_device("cpu\x1b[31m");
  EXPECT_TRUE(absl::StrContains(RegisterWorker(info).error_message(), "worker device"));
  info.set_device("cpu");
  info.set_torch_version(std::string(257, 'v'));
  EXPECT_EQ(RegisterWorker(info).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  ASSERT_TRUE(Register("gpu-1.node_7:0@site").ok());  // every character a name may have
  v1::WorkersResponse workers;
  ASSERT_TRUE(control_->Workers(Ctx().get(), v1::WorkersRequest(), &workers).ok());
  ASSERT_EQ(workers.workers_size(), 1);
  EXPECT_EQ(workers.workers(0).name(), "gpu-1.node_7:0@site");
  EXPECT_FALSE(Logged("evil"));
}

// What a worker sends as an error or a reason reaches the log with its control
// characters escaped, so it cannot forge a line or drive the terminal.
TEST_F(ServiceTest, AFailureOrReleaseReasonReachesTheLogWithoutControlCharacters) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment failing = LeaseRun("a");
  auto fail = AboutLease<v1::FailRequest>("a", failing);
  fail.set_error("oom\n12:00:00 worker b finished run x\x1b[2J");
  v1::FailResponse failed;
  ASSERT_TRUE(workers_->Fail(Ctx().get(), fail, &failed).ok());
  const v1::RunAssignment releasing = LeaseRun("a");
  auto release = AboutLease<v1::ReleaseRequest>("a", releasing);
  release.set_reason("bye\r\x07");
  v1::ReleaseResponse released;
  ASSERT_TRUE(workers_->Release(Ctx().get(), release, &released).ok());
  EXPECT_TRUE(Logged("oom\\x0a12:00:00 worker b finished run x\\x1b[2J"));
  EXPECT_TRUE(Logged("bye\\x0d\\x07"));
  absl::MutexLock lock(&log_mu_);
  for (const std::string& line : log_) {
    for (const char c : line) {
      EXPECT_TRUE(c >= 0x20 && c < 0x7f) << "a control character in the log line: " << line;
    }
  }
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

// A NaN was stored as NULL and read back as 0, so a run whose numbers were no numbers
// looked perfect: every number is now refused where it enters, and nothing is stored.
TEST_F(ServiceTest, NumbersThatAreNoNumbersAreRefusedWhereTheyEnterAndNothingIsStored) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  v1::RunResult nan_loss = ValidResult(std::nan(""));
  v1::RunResult infinite_accuracy = ValidResult(0.5);
  infinite_accuracy.set_test_accuracy(std::numeric_limits<double>::infinity());
  v1::RunResult negative_accuracy = ValidResult(0.5);
  negative_accuracy.mutable_epochs(1)->set_val_accuracy(-0.25);
  v1::CompleteResponse completed;
  for (const auto& [result, named] : {std::pair{&nan_loss, "test_loss nan"},
                                      std::pair{&infinite_accuracy, "test_accuracy inf"},
                                      std::pair{&negative_accuracy, "epoch 1's val_accuracy -0.25"}}) {
    const grpc::Status s = Complete("a", run, *result, &completed);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << named;
    EXPECT_TRUE(absl::StrContains(s.error_message(), named)) << s.error_message();
  }
  auto epoch = AboutLease<v1::ReportEpochRequest>("a", run);
  *epoch.mutable_epoch() = ValidEpoch(0);
  epoch.mutable_epoch()->set_loss(std::nan(""));
  v1::ReportEpochResponse reported;
  const grpc::Status s = workers_->ReportEpoch(Ctx().get(), epoch, &reported);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "epoch 0's loss nan")) << s.error_message();
  auto beat = AboutLease<v1::HeartbeatRequest>("a", run);
  beat.set_batch(11);
  beat.set_batches(10);
  v1::HeartbeatResponse beat_resp;
  EXPECT_EQ(workers_->Heartbeat(Ctx().get(), beat, &beat_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  const RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kRunning);
  EXPECT_TRUE(stored.result.epochs.empty());
  EXPECT_EQ(Status().runs().done(), 0);
  // The lease is intact: the honest result is taken.
  ASSERT_TRUE(Complete("a", run, ValidResult(0.5), &completed).ok());
  EXPECT_TRUE(completed.counted());
}

// A run whose loss became NaN is done with a diverged result: counted once, its sentence
// kept, and the report leaves it out of the scores instead of scoring it 0.
TEST_F(ServiceTest, ADivergedRunIsDoneWithItsDivergenceKeptAndLeftOutOfTheScores) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  v1::RunResult diverged = ValidResult(0);
  diverged.mutable_epochs()->RemoveLast();
  diverged.set_diverged("diverged: loss nan at epoch 1, batch 17");
  v1::CompleteResponse completed;
  const grpc::Status s = Complete("a", run, diverged, &completed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(completed.counted());
  EXPECT_TRUE(Logged("diverged: loss nan at epoch 1, batch 17"));
  const RunView stored = StoredRun(run);
  EXPECT_EQ(stored.state, RunState::kDone);
  EXPECT_EQ(stored.result.diverged, "diverged: loss nan at epoch 1, batch 17");
  EXPECT_EQ(stored.result.epochs.size(), 1u);
  EXPECT_EQ(stored.corrupt, "");

  v1::ReportRequest req;
  req.set_partial(true);
  req.set_format("json");
  req.set_bootstrap_resamples(0);
  v1::ReportResponse report;
  ASSERT_TRUE(control_->Report(Ctx().get(), req, &report).ok());
  EXPECT_TRUE(absl::StrContains(report.body(), "\"runs_diverged\": 1")) << report.body();
  EXPECT_TRUE(absl::StrContains(report.body(), "\"diverged\": \"diverged: loss nan at epoch 1, batch 17\""));
  EXPECT_FALSE(absl::StrContains(report.body(), "\"test_loss\": 0.0")) << report.body();
}

// A disk that is full fails a result with RESOURCE_EXHAUSTED, a code the worker retries
// on (worker/daemon.cc: Transient) keeping its result; resent once there is room, it counts.
TEST_F(ServiceTest, AFullDiskAnswersACodeToRetryOnAndTheResentResultCounts) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  ASSERT_TRUE(store_->SetMaxGrowthForTesting(0).ok());
  v1::RunResult result = ValidResult(0.5);
  for (int i = 0; i < 2000; ++i) {  // rows the full store has no room for
    v1::TensorHash tensor;
    tensor.set_name(absl::StrCat("layer", i, ".weight"));
    tensor.set_hash(std::string(32, 'd'));
    *result.add_initial_tensors() = tensor;
    *result.add_final_tensors() = tensor;
  }
  v1::CompleteResponse completed;
  const grpc::Status full = Complete("a", run, result, &completed);
  EXPECT_EQ(full.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << full.error_message();
  EXPECT_EQ(StoredRun(run).state, RunState::kRunning);

  ASSERT_TRUE(store_->SetMaxGrowthForTesting(1 << 20).ok());
  const grpc::Status resent = Complete("a", run, result, &completed);
  ASSERT_TRUE(resent.ok()) << resent.error_message();
  EXPECT_TRUE(completed.counted());
  EXPECT_EQ(StoredRun(run).state, RunState::kDone);
}

// ReportStream sends the report Report sends, in pieces, and refuses what Report refuses.
TEST_F(ServiceTest, ReportStreamSendsTheReportInPieces) {
  ASSERT_TRUE(Register("a").ok());
  const v1::RunAssignment run = LeaseRun("a");
  v1::CompleteResponse completed;
  ASSERT_TRUE(Complete("a", run, ValidResult(0.5), &completed).ok());
  v1::ReportRequest req;
  req.set_partial(true);
  req.set_format("json");
  req.set_bootstrap_resamples(0);
  v1::ReportResponse whole;
  ASSERT_TRUE(control_->Report(Ctx().get(), req, &whole).ok());
  auto ctx = Ctx();
  std::unique_ptr<grpc::ClientReader<v1::ReportChunk>> reader = control_->ReportStream(ctx.get(), req);
  std::string streamed;
  v1::ReportChunk chunk;
  while (reader->Read(&chunk)) streamed += chunk.body();
  const grpc::Status s = reader->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(streamed, whole.body());

  req.set_partial(false);  // one run remains: the stream says so, as Report does
  auto unfinished = Ctx();
  reader = control_->ReportStream(unfinished.get(), req);
  while (reader->Read(&chunk)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

}  // namespace
}  // namespace repro
