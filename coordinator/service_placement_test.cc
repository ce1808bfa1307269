// Placement: a run goes only to a worker that can run it (its arm's device, capabilities
// and labels); a run no worker here can run waits, never spending an attempt, and status
// says why; an arm that spreads its runs balances them across hosts; a worker that leaves
// or goes silent is shown gone.
#include "coordinator/service_test_fixture.h"
#include "store/status_view.h"

namespace repro::service_testing {
namespace {

v1::WorkerInfo Worker(const std::string& name, const std::string& host, const std::string& device,
                      std::map<std::string, std::string> labels = {}) {
  v1::WorkerInfo w;
  w.set_name(name);
  w.set_host(host);
  w.set_device(device);
  w.set_threads(2);
  (*w.mutable_capabilities())["host"] = host;
  if (device == "cuda") (*w.mutable_capabilities())["gpu_name"] = "NVIDIA H200";
  w.mutable_labels()->insert(labels.begin(), labels.end());
  return w;
}

class PlacementTest : public ServiceTest {
 protected:
  std::string PlanText() const override {
    return "experiment: svc\nruns: 2\nepochs: 2\nmax_attempts: 2\nmodel: {kind: noop}\n"
           "arms:\n"
           "  cpu: {seed: fixed}\n"
           "  gpu: {seed: fixed, determinism: {device: cuda}}\n"
           "  pinned: {seed: fixed, placement: {labels: {pool: a}}}\n";
  }
  // The arms of the runs `worker` leases until it is told to wait.
  std::vector<std::string> LeaseAll(const std::string& worker) {
    std::vector<std::string> arms;
    for (;;) {
      v1::LeaseResponse resp;
      const grpc::Status s = Lease(worker, &resp);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (!s.ok() || !resp.has_run()) {
        EXPECT_GT(resp.retry_after_ms(), 0) << resp.DebugString();
        return arms;
      }
      arms.push_back(absl::StrCat(resp.run().arm(), "#", resp.run().index()));
    }
  }
  // The run `worker` leases next ("arm#index"), or "" when it is told to wait.
  std::string LeaseOne(const std::string& worker) {
    v1::LeaseResponse resp;
    const grpc::Status s = Lease(worker, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!resp.has_run()) return "";
    return absl::StrCat(resp.run().arm(), "#", resp.run().index());
  }
  const v1::ArmProgress* Arm(const v1::StatusResponse& status, const std::string& name) {
    for (const v1::ArmProgress& arm : status.arms()) {
      if (arm.name() == name) return &arm;
    }
    ADD_FAILURE() << "no arm " << name;
    return nullptr;
  }
};

TEST_F(PlacementTest, ACpuWorkerNeverTakesACudaRunAndStatusSaysWhyTheArmWaits) {
  ASSERT_TRUE(RegisterWorker(Worker("c", "h1", "cpu")).ok());
  EXPECT_TRUE(Logged("runs arms cpu; not gpu (it has no CUDA), pinned (it has no label pool)"));
  EXPECT_EQ(LeaseAll("c"), (std::vector<std::string>{"cpu#0", "cpu#1"}));

  const v1::StatusResponse status = Status();
  EXPECT_EQ(Arm(status, "cpu")->waiting(), "");
  EXPECT_EQ(Arm(status, "gpu")->waiting(),
            "needs device cuda; none of 1 worker can (c: it has no CUDA)");
  EXPECT_EQ(Arm(status, "pinned")->waiting(),
            "needs label pool=a; none of 1 worker can (c: it has no label pool)");
  auto view = store_->LoadView("svc", /*with_results=*/false);
  ASSERT_TRUE(view.ok()) << view.status();
  for (const RunView& run : view->runs) {
    if (run.arm != "cpu") {
      EXPECT_EQ(run.state, RunState::kPending) << run.arm << "#" << run.index;
      EXPECT_EQ(run.attempts, 0) << "an attempt was spent on " << run.arm << "#" << run.index;
    }
  }

  // A worker with CUDA and the label comes: it takes what was waiting, and nothing waits.
  ASSERT_TRUE(RegisterWorker(Worker("g", "h2", "cuda", {{"pool", "a"}})).ok());
  EXPECT_EQ(LeaseAll("g"), (std::vector<std::string>{"gpu#0", "pinned#0", "gpu#1", "pinned#1"}));
  const v1::StatusResponse after = Status();
  for (const v1::ArmProgress& arm : after.arms()) EXPECT_EQ(arm.waiting(), "") << arm.name();
}

TEST_F(PlacementTest, StatusShowsAGpuWorkersGpuAndLabels) {
  v1::WorkerInfo g = Worker("g", "h1", "cuda", {{"pool", "a"}});
  (*g.mutable_capabilities())["gpu_memory_mb"] = "143771";
  (*g.mutable_capabilities())["driver"] = "550.54.15";
  (*g.mutable_capabilities())["cuda"] = "12.4";
  ASSERT_TRUE(RegisterWorker(g).ok());
  auto text = RenderStatus(FromProto(Status()), "text", now_ms_.load());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(absl::StrContains(
      *text, "h1, cuda (NVIDIA H200, 143771 MB, driver 550.54.15, CUDA 12.4), 2 threads"))
      << *text;
  EXPECT_TRUE(absl::StrContains(*text, ", pool=a, seen 0s ago, idle")) << *text;
}

TEST_F(PlacementTest, AWorkerThatRegistersAgainWithOtherLabelsIsPlacedByThem) {
  ASSERT_TRUE(RegisterWorker(Worker("c", "h1", "cpu", {{"pool", "b"}})).ok());
  EXPECT_EQ(LeaseAll("c"), (std::vector<std::string>{"cpu#0", "cpu#1"}));
  ASSERT_TRUE(RegisterWorker(Worker("c", "h1", "cpu", {{"pool", "a"}})).ok());
  EXPECT_EQ(LeaseAll("c"), (std::vector<std::string>{"pinned#0", "pinned#1"}));
}

TEST_F(PlacementTest, ACoordinatorRestartedOnTheDatabasePlacesWorkersItHasNotMet) {
  ASSERT_TRUE(RegisterWorker(Worker("c", "h1", "cpu")).ok());
  // A second service on the same store: the worker never registered with it.
  auto plan = ParsePlan(PlanText(), "svc.yaml");
  ASSERT_TRUE(plan.ok());
  server_->Shutdown();
  service_ = std::make_unique<CoordinatorService>(store_.get(), *plan, [this] { return now_ms_.load(); },
                                                  ServiceOptions(), [](const std::string&) {});
  grpc::ServerBuilder builder;
  builder.RegisterService(static_cast<v1::WorkerService::CallbackService*>(service_.get()));
  builder.RegisterService(static_cast<v1::ControlService::CallbackService*>(service_.get()));
  server_ = builder.BuildAndStart();
  workers_ = v1::WorkerService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  control_ = v1::ControlService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
  EXPECT_EQ(LeaseAll("c"), (std::vector<std::string>{"cpu#0", "cpu#1"}));
}

TEST_F(PlacementTest, LabelsAndCapabilitiesOutsideTheRulesAreRefusedAtRegistration) {
  v1::WorkerInfo bad_key = Worker("c", "h1", "cpu", {{"po ol", "a"}});
  grpc::Status s = RegisterWorker(bad_key);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "worker labels \"po ol\"")) << s.error_message();
  v1::WorkerInfo bad_value = Worker("c", "h1", "cpu", {{"pool", "a\nb"}});
  EXPECT_EQ(RegisterWorker(bad_value).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::WorkerInfo many = Worker("c", "h1", "cpu");
  for (int i = 0; i < 65; ++i) (*many.mutable_capabilities())[absl::StrCat("k", i)] = "v";
  s = RegisterWorker(many);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(s.error_message(), "at most 64")) << s.error_message();
  EXPECT_TRUE(store_->Workers()->empty());  // nothing kept of a refused registration
}

TEST_F(PlacementTest, AWorkerThatLeavesOrFallsSilentIsGoneUntilItCallsAgain) {
  ASSERT_TRUE(RegisterWorker(Worker("c", "h1", "cpu")).ok());
  ASSERT_TRUE(RegisterWorker(Worker("d", "h2", "cpu")).ok());
  v1::LeaveRequest leave;
  leave.set_worker("c");
  leave.set_reason("the experiment has finished");
  v1::LeaveResponse left;
  ASSERT_TRUE(workers_->Leave(Ctx().get(), leave, &left).ok());
  EXPECT_TRUE(Logged("worker c left: the experiment has finished"));
  AdvanceClock(kLeaseTtlMs + RunStore::kSeenGranularityMs - 1);
  service_->NoteSilentWorkers();
  EXPECT_FALSE(Logged("worker d has been silent"));
  AdvanceClock(2);
  service_->NoteSilentWorkers();
  EXPECT_TRUE(Logged("worker d has been silent for more than 7 s: gone"));
  v1::StatusResponse status = Status();
  ASSERT_EQ(status.workers_size(), 2);
  EXPECT_EQ(status.workers(0).gone_reason(), "left: the experiment has finished");
  EXPECT_EQ(status.workers(1).gone_reason(), "silent");
  EXPECT_EQ(Arm(status, "cpu")->waiting(), "no worker is here");
  leave.set_worker("stranger");
  EXPECT_EQ(workers_->Leave(Ctx().get(), leave, &left).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  v1::LeaseResponse resp;
  ASSERT_TRUE(Lease("d", &resp).ok());
  EXPECT_TRUE(resp.has_run());
  status = Status();
  EXPECT_EQ(status.workers(1).gone_unix_ms(), 0);  // back
  EXPECT_EQ(status.workers(1).current_run(), "cpu#0");
}

// Runs of arms that no one worker may run both of replay apart, each side on a worker
// that may run its arm; while no worker here may take a side, the request says why.
TEST_F(PlacementTest, ALocalizationOfArmsNoOneWorkerMayRunReplaysEachSideApart) {
  ASSERT_TRUE(RegisterWorker(Worker("g", "h1", "cuda")).ok());
  ASSERT_TRUE(RegisterWorker(Worker("c", "h2", "cpu", {{"pool", "a"}})).ok());
  // gpu#0 on g, pinned#0 on c, alike until their last epoch.
  for (const auto& [worker, wanted, last] :
       {std::tuple{"g", "gpu", 'e'}, std::tuple{"c", "pinned", 'f'}}) {
    v1::RunAssignment run;
    do {
      run = LeaseRun(worker);
    } while (run.arm() != wanted && !::testing::Test::HasFailure());
    auto req = AboutLease<v1::CompleteRequest>(worker, run);
    *req.mutable_result() = ValidResult(0.5);
    req.mutable_result()->mutable_epochs(1)->set_weights_hash(std::string(32, last));
    v1::CompleteResponse resp;
    ASSERT_TRUE(workers_->Complete(Ctx().get(), req, &resp).ok());
  }
  // Asked when every worker has left: arms that ask something of their workers replay
  // apart, since no worker that may run both can be counted on.
  for (const char* name : {"g", "c"}) {
    v1::LeaveRequest leave;
    leave.set_worker(name);
    leave.set_reason("drained");
    v1::LeaveResponse left;
    ASSERT_TRUE(workers_->Leave(Ctx().get(), leave, &left).ok());
  }
  v1::LocalizeRequest ask;
  ask.set_run_a("gpu#0");
  ask.set_run_b("pinned#0");
  v1::LocalizeResponse resp;
  const grpc::Status s = control_->Localize(Ctx().get(), ask, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.state(), "pending");
  EXPECT_EQ(resp.stage(), "epoch");  // apart
  EXPECT_EQ(resp.waiting(), "no worker is here");
  ASSERT_TRUE(RegisterWorker(Worker("g", "h1", "cuda")).ok());
  ASSERT_TRUE(control_->Localize(Ctx().get(), ask, &resp).ok());
  EXPECT_EQ(resp.waiting(), "no worker here may replay pinned#0 (one of its arm, on a machine "
                            "like the one the run trained on): g: it has no label pool");
  v1::LeaseResponse lease;
  ASSERT_TRUE(Lease("g", &lease).ok());
  ASSERT_TRUE(lease.has_localize_side()) << lease.DebugString();
  EXPECT_EQ(lease.localize_side().run(), "gpu#0");
  EXPECT_EQ(lease.localize_side().side(), "a");
  EXPECT_EQ(lease.localize_side().stage(), "epoch");
  // Side b waits for c, and c takes it once it is back; nobody is handed side a twice.
  ASSERT_TRUE(Lease("g", &lease).ok());
  EXPECT_FALSE(lease.has_localize_side());
  ASSERT_TRUE(RegisterWorker(Worker("c", "h2", "cpu", {{"pool", "a"}})).ok());
  ASSERT_TRUE(control_->Localize(Ctx().get(), ask, &resp).ok());
  EXPECT_EQ(resp.state(), "running");
  EXPECT_EQ(resp.waiting(), "");
  ASSERT_TRUE(Lease("c", &lease).ok());
  ASSERT_TRUE(lease.has_localize_side()) << lease.DebugString();
  EXPECT_EQ(lease.localize_side().run(), "pinned#0");
  EXPECT_EQ(lease.localize_side().side(), "b");
}

class SpreadTest : public PlacementTest {
 protected:
  std::string PlanText() const override {
    return "experiment: svc\nruns: 4\nepochs: 2\nmodel: {kind: noop}\n"
           "arms:\n  spread: {seed: fixed, placement: {spread: hosts}}\n";
  }
};

TEST_F(SpreadTest, RunsGoToDistinctHostsRoundByRoundAndNeverWaitOnAHostThatLeft) {
  ASSERT_TRUE(RegisterWorker(Worker("a1", "h1", "cpu")).ok());
  ASSERT_TRUE(RegisterWorker(Worker("a2", "h1", "cpu")).ok());
  ASSERT_TRUE(RegisterWorker(Worker("b1", "h2", "cpu")).ok());
  EXPECT_EQ(LeaseOne("a1"), "spread#0");
  EXPECT_EQ(LeaseOne("a2"), "");  // h1 has one; h2 none yet
  EXPECT_EQ(LeaseOne("b1"), "spread#1");
  EXPECT_EQ(LeaseOne("a2"), "spread#2");  // one each: either host may take the next
  EXPECT_EQ(LeaseOne("a1"), "");          // h1 has two, h2 one
  // h2's only worker leaves: h1 no longer waits on it.
  v1::LeaveRequest leave;
  leave.set_worker("b1");
  leave.set_reason("drained");
  v1::LeaveResponse left;
  ASSERT_TRUE(workers_->Leave(Ctx().get(), leave, &left).ok());
  EXPECT_EQ(LeaseOne("a1"), "spread#3");
}

}  // namespace
}  // namespace repro::service_testing
