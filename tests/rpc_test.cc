// The coordinator's gRPC surface as an ordinary client meets it: the standard health
// service, and the worker service's answers to calls that break the protocol (an
// unregistered worker, a result that does not fit the plan, a lease that does not exist).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "repro/v1/repro.grpc.pb.h"
#include "tests/grpc_health_v1.grpc.pb.h"
#include "tests/process.h"

namespace repro {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "repro_rpc_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    testing::WriteFile(dir_ + "/plan.yaml",
                       "experiment: rpc\nruns: 1\nepochs: 2\n"
                       "dataset: {path: " REPRO_FASHION_MNIST ", train_limit: 100, test_limit: 50}\n");
    const std::string port_file = dir_ + "/port";
    ASSERT_EQ(coordinator_.Start({REPRO_COORDINATOR_BIN, "--plan", dir_ + "/plan.yaml", "--db",
                                  dir_ + "/rpc.db", "--listen", "127.0.0.1:0", "--port-file",
                                  port_file},
                                 dir_, dir_ + "/c.out", dir_ + "/c.err"),
              "");
    for (int i = 0; i < 1500 && port_ == 0; ++i) {
      const std::string text = testing::ReadFile(port_file);
      if (!text.empty() && text.back() == '\n') port_ = std::atoi(text.c_str());
      if (port_ == 0) std::this_thread::sleep_for(20ms);
    }
    ASSERT_GT(port_, 0) << testing::ReadFile(dir_ + "/c.err");
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                   grpc::InsecureChannelCredentials());
    workers_ = v1::WorkerService::NewStub(channel_);
  }
  void TearDown() override {
    coordinator_.KillAll();
    std::error_code ignored;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ignored);
  }

  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + 10s);
    return ctx;
  }

  void Register(const std::string& name) {
    v1::RegisterRequest req;
    req.mutable_worker()->set_name(name);
    v1::RegisterResponse resp;
    ASSERT_TRUE(workers_->Register(Ctx().get(), req, &resp).ok());
    EXPECT_EQ(resp.experiment(), "rpc");
  }

  std::string dir_;
  ChildProcess coordinator_;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

TEST_F(RpcTest, HealthServiceSaysServing) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const std::string service : {"", "repro.v1.WorkerService", "repro.v1.ControlService"}) {
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << service << ": " << s.error_message();
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
}

TEST_F(RpcTest, AnUnregisteredWorkerCannotLease) {
  v1::LeaseRequest req;
  req.set_worker("stranger");
  v1::LeaseResponse resp;
  grpc::Status s = workers_->Lease(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "not registered")) << s.error_message();
}

TEST_F(RpcTest, AResultThatDoesNotFitThePlanIsRefusedAndNothingIsCounted) {
  Register("w");
  v1::LeaseRequest lease_req;
  lease_req.set_worker("w");
  v1::LeaseResponse lease;
  ASSERT_TRUE(workers_->Lease(Ctx().get(), lease_req, &lease).ok());
  ASSERT_TRUE(lease.has_run());
  EXPECT_EQ(lease.run().spec().epochs(), 2);
  EXPECT_EQ(lease.run().spec().train_limit(), 100);

  v1::CompleteRequest req;
  req.set_worker("w");
  req.set_run_id(lease.run().run_id());
  req.set_lease_id(lease.run().lease_id());
  req.mutable_result()->add_epochs();  // one epoch where the plan has two
  v1::CompleteResponse resp;
  grpc::Status s = workers_->Complete(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "has 1 epochs, the plan has 2"))
      << s.error_message();

  // A lease that was never handed out is refused too.
  req.set_lease_id(lease.run().lease_id() + 1000);
  auto* r = req.mutable_result();
  r->clear_epochs();
  for (int e = 0; e < 2; ++e) r->add_epochs()->set_epoch(e);
  const std::string hash(32, 'a');
  r->set_initial_hash(hash);
  r->set_final_hash(hash);
  r->set_data_x_hash(hash);
  r->set_data_y_hash(hash);
  auto* t = r->add_initial_tensors();
  t->set_name("w");
  t->set_hash(hash);
  *r->add_final_tensors() = *t;
  s = workers_->Complete(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND) << s.error_message();

  // Heartbeats on the real lease still keep it; the run is still running, not done.
  v1::HeartbeatRequest hb;
  hb.set_worker("w");
  hb.set_run_id(lease.run().run_id());
  hb.set_lease_id(lease.run().lease_id());
  v1::HeartbeatResponse hb_resp;
  ASSERT_TRUE(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).ok());
  EXPECT_TRUE(hb_resp.lease_valid());
  hb.set_epoch(7);  // outside the plan's two epochs
  EXPECT_EQ(workers_->Heartbeat(Ctx().get(), hb, &hb_resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace repro
