// The fixture of the CoordinatorService tests (service_test.cc: leases and what is
// final; service_report_test.cc: what workers report, status, reports): the service's
// handlers as workers and reproctl meet them, with no port and no process: real gRPC
// stubs on the server's in-process channel, a real RunStore in a temporary SQLite file,
// and a clock the test moves (nothing here sleeps). Each test checks the answers a caller
// gets and what the store keeps afterwards. tests/rpc_test.cc covers the same surface on
// a real coordinator (health, tokens, TLS).
#ifndef REPRO_COORDINATOR_SERVICE_TEST_FIXTURE_H_
#define REPRO_COORDINATOR_SERVICE_TEST_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/service.h"
#include "proto/convert.h"
#include "store/blobs.h"

namespace repro::service_testing {
// The two default arms of one run each, so two runs; `noop` reads no data.
inline constexpr char kPlan[] =
    "experiment: svc\nruns: 1\nepochs: 2\nmax_attempts: 2\nmodel: {kind: noop}\n";
inline constexpr int kEpochs = 2;
inline constexpr int kLeaseTtlMs = 6000;
inline constexpr char kExpired[] = "lease expired: no heartbeat from the worker in time";

// An epoch's record that fits the plan: finite numbers in range, well-formed hashes.
inline v1::Epoch ValidEpoch(int epoch) {
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
inline v1::RunResult ValidResult(double test_loss) {
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
    auto plan = ParsePlan(PlanText(), "svc.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(*store_->EnsureExperiment(*plan, PlanText()));

    ServiceOptions options;
    options.lease_ttl_ms = kLeaseTtlMs;
    blobs_ = std::make_unique<BlobStore>(BlobStore::RootFor(path_));
    options.blobs = blobs_.get();
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

  // The plan the service runs; a test class may run another (its experiment named svc).
  virtual std::string PlanText() const { return kPlan; }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    service_.reset();
    store_.reset();
    RemoveDatabase();
  }

  void RemoveDatabase() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path_ + suffix).c_str());
    std::error_code error;
    std::filesystem::remove_all(BlobStore::RootFor(path_), error);
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
  std::unique_ptr<BlobStore> blobs_;  // the coordinator's, beside the database
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

}  // namespace repro::service_testing

#endif  // REPRO_COORDINATOR_SERVICE_TEST_FIXTURE_H_
