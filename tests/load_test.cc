// The real coordinator under load and against hostile or departed callers: a report of
// the study's size over gRPC, reports abandoned by their callers, SIGTERM with a backlog,
// large calls without a token, and a second coordinator on a port in use.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/plan.h"
#include "repro/v1/repro.grpc.pb.h"
#include "store/store.h"
#include "tests/process.h"

namespace repro {
namespace {

using namespace std::chrono_literals;
using testing::ChildProcess;

// The study's shape (examples/cifar10-resnet29v2.yaml): 2 arms x 50 runs x 200 epochs.
constexpr int kRunsPerArm = 50;
constexpr int kEpochs = 200;

std::string Hex32(uint64_t a, uint64_t b) {
  char text[33];
  std::snprintf(text, sizeof text, "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return text;
}

// A finished run as a worker would send it: every epoch, hashes that differ between
// runs (so that the analyses have something to compare), 10,000 test predictions.
RunResult StudyResult(const LeasedRun& run) {
  const uint64_t key = (run.arm == "same_seed" ? 0u : 1000u) + static_cast<uint64_t>(run.index);
  RunResult r;
  r.test_loss = 0.3 + 0.001 * run.index;
  r.test_accuracy = 0.9 - 0.001 * run.index;
  r.initial_hash = Hex32(key, 1);
  r.final_hash = Hex32(key, 2);
  r.data_x_hash = Hex32(7, 7);
  r.data_y_hash = Hex32(8, 8);
  r.initial_tensors = {{"conv.weight", Hex32(key, 3)}};
  r.final_tensors = {{"conv.weight", Hex32(key, 4)}};
  for (int e = 0; e < kEpochs; ++e) {
    r.epochs.push_back(EpochRecord{e, 1.0 / (e + 1), 0.5, 1.1 / (e + 1), 0.5, 30.5, 0.001,
                                   Hex32(key, 100 + e), Hex32(key, 1000 + e), {}});
  }
  r.predictions.resize(10000);
  for (size_t i = 0; i < r.predictions.size(); ++i) {
    r.predictions[i] = static_cast<uint8_t>((i + (i % 7 == 0 ? key : 0)) % 10);
  }
  return r;
}

// Writes a finished experiment of the study's shape (with `arms`, a plan's arms: key;
// empty for the default two) into a new store at `path`, through the store's own API as
// the coordinator would.
void WriteStudyStore(const std::string& path, const std::string& arms = "") {
  const std::string plan_text = absl::StrCat("experiment: study\nruns: ", kRunsPerArm,
                                             "\nepochs: ", kEpochs, "\nmodel: {kind: noop}\n", arms);
  auto plan = ParsePlan(plan_text, "study.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto store = RunStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->EnsureExperiment(*plan, plan_text).ok());
  for (;;) {
    auto leased = (*store)->LeaseNext("study", "w", 1000, 1 << 30);
    ASSERT_TRUE(leased.ok()) << leased.status();
    if (!leased->has_value()) break;
    const LeasedRun& run = **leased;
    ASSERT_TRUE((*store)->Complete(run.run_id, run.lease_id, StudyResult(run), 2000).ok());
  }
}

// Peak resident memory of process `pid` in MB (VmHWM), -1 when unknown.
long PeakRssMb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) return std::atol(line.c_str() + 6) / 1024;
  }
  return -1;
}

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "repro_load_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    coordinator_.KillAll();
    std::error_code ignored;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ignored);
  }

  // Starts the coordinator with `args` on a free loopback port; sets port_ and the stubs.
  void Start(std::vector<std::string> args) {
    const std::string port_file = dir_ + "/port";
    args.insert(args.begin(), {REPRO_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--port-file",
                               port_file});
    ASSERT_EQ(coordinator_.Start(args, dir_, dir_ + "/c.out", dir_ + "/c.err"), "");
    port_ = testing::WaitForPortFile(coordinator_, port_file);
    ASSERT_GT(port_, 0) << testing::ReadFile(dir_ + "/c.err");
    channel_ = grpc::CreateChannel(Address(), grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel_);
    workers_ = v1::WorkerService::NewStub(channel_);
  }
  // The study's store, served by a coordinator that resumes it.
  void StartOnStudyStore() {
    db_ = dir_ + "/study.db";
    WriteStudyStore(db_);
    Start({"--db", db_});
  }
  std::string Address() const { return absl::StrCat("127.0.0.1:", port_); }

  testing::CommandResult Reproctl(std::vector<std::string> args) {
    args.insert(args.begin(), REPRO_REPROCTL_BIN);
    return testing::RunCommand(args, dir_, 120s);
  }

  std::string dir_, db_;
  int port_ = 0;
  ChildProcess coordinator_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

TEST_F(LoadTest, AStudySizedReportAndTheStoresDiskUseComeThroughTheCoordinator) {
  StartOnStudyStore();
  testing::CommandResult over_grpc =
      Reproctl({"--coordinator", Address(), "report", "--format", "json", "--output",
                dir_ + "/grpc.json"});
  ASSERT_EQ(over_grpc.code, 0) << over_grpc.err;
  testing::CommandResult from_file =
      Reproctl({"--db", db_, "report", "--format", "json", "--output", dir_ + "/db.json"});
  ASSERT_EQ(from_file.code, 0) << from_file.err;
  const std::string report = testing::ReadFile(dir_ + "/grpc.json");
  EXPECT_GT(report.size(), size_t{4} << 20);  // more than gRPC's default message limit
  EXPECT_TRUE(report == testing::ReadFile(dir_ + "/db.json"))
      << "the report over gRPC differs from the one read from the store";

  for (const std::string& source : {std::string("--coordinator"), std::string("--db")}) {
    testing::CommandResult status = Reproctl(
        {source, source == "--db" ? db_ : Address(), "status", "--format", "json"});
    ASSERT_EQ(status.code, 0) << status.err;
    EXPECT_TRUE(absl::StrContains(status.out, "\"database_bytes\"")) << status.out;
    EXPECT_TRUE(absl::StrContains(status.out, "\"wal_bytes\"")) << status.out;
    testing::CommandResult text = Reproctl({source, source == "--db" ? db_ : Address(), "status"});
    EXPECT_TRUE(absl::StrContains(text.out, "Store: ")) << text.out;
  }
}

TEST_F(LoadTest, ReportsAbandonedByTheirCallersHoldUpNeitherStatusNorSigterm) {
  StartOnStudyStore();
  // 40 reports whose callers give up after 300 ms, as a script retrying in a loop would;
  // each asks for two million bootstrap resamples, some 2 s of work, 80 s for them all.
  std::vector<std::thread> callers;
  for (int i = 0; i < 40; ++i) {
    callers.emplace_back([this] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 300ms);
      v1::ReportRequest req;
      req.set_format("json");
      req.set_bootstrap_resamples(2'000'000);
      v1::ReportResponse resp;
      (void)control_->Report(&ctx, req, &resp);
    });
  }
  for (std::thread& t : callers) t.join();
  // Status is answered at once, not after the abandoned reports.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 3s);
  v1::StatusResponse status;
  const grpc::Status s = control_->Status(&ctx, v1::StatusRequest(), &status);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(status.runs().done(), 2 * kRunsPerArm);
  // And SIGTERM ends the coordinator within 10 s whatever is still queued.
  const auto sent = std::chrono::steady_clock::now();
  coordinator_.Signal(SIGTERM);
  ASSERT_TRUE(coordinator_.Wait(15s)) << "the coordinator did not exit within 15 s of SIGTERM";
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 10s);
  EXPECT_EQ(coordinator_.exit_code(), 0) << testing::ReadFile(dir_ + "/c.err");
}

TEST_F(LoadTest, SigtermEndsTheCoordinatorWithinTenSecondsWhileAReportIsBeingComputed) {
  // Three arms compared with different_seeds, each with ten million bootstrap resamples:
  // half a minute of analysis, which cannot stop in the middle.
  db_ = dir_ + "/arms.db";
  WriteStudyStore(db_, "arms: {same_seed: {seed: fixed}, a: {seed: fixed}, b: {seed: fixed}, "
                       "different_seeds: {seed: per_run}}\n");
  Start({"--db", db_});
  std::thread caller([this] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 120s);
    v1::ReportRequest req;
    req.set_bootstrap_resamples(10'000'000);
    v1::ReportResponse resp;
    (void)control_->Report(&ctx, req, &resp);
  });
  std::this_thread::sleep_for(1s);
  const auto sent = std::chrono::steady_clock::now();
  coordinator_.Signal(SIGTERM);
  const bool exited = coordinator_.Wait(15s);
  const auto took = std::chrono::steady_clock::now() - sent;
  coordinator_.KillAll();  // ends the caller's call if the coordinator did not exit
  caller.join();
  ASSERT_TRUE(exited) << "the coordinator did not exit within 15 s of SIGTERM";
  EXPECT_LT(took, 10s);
  EXPECT_EQ(coordinator_.exit_code(), 0) << testing::ReadFile(dir_ + "/c.err");
}

TEST_F(LoadTest, LargeCallsWithoutATokenAreRefusedBeforeTheyAreRead) {
  testing::WriteFile(dir_ + "/plan.yaml", "experiment: gate\nruns: 1\nepochs: 1\nmodel: {kind: noop}\n");
  testing::WriteFile(dir_ + "/token", "a-token-of-some-length-1234\n");
  Start({"--plan", dir_ + "/plan.yaml", "--db", dir_ + "/gate.db", "--token-file", dir_ + "/token"});
  const long before = PeakRssMb(coordinator_.pid());
  // Eight callers at once, each with a 60 MiB message and no token.
  std::vector<std::thread> callers;
  std::vector<grpc::StatusCode> codes(8);
  for (size_t i = 0; i < codes.size(); ++i) {
    callers.emplace_back([this, &codes, i] {
      v1::SaveCheckpointRequest req;
      req.set_worker("intruder");
      req.set_state(std::string(60 << 20, 'x'));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 60s);
      v1::SaveCheckpointResponse resp;
      codes[i] = workers_->SaveCheckpoint(&ctx, req, &resp).error_code();
    });
  }
  for (std::thread& t : callers) t.join();
  for (grpc::StatusCode code : codes) EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED);
  // Nothing of the 480 MiB was buffered (it once raised the coordinator to 427 MB).
  const long after = PeakRssMb(coordinator_.pid());
  EXPECT_LT(after, before + 100) << "peak RSS went from " << before << " MB to " << after << " MB";
  EXPECT_TRUE(absl::StrContains(testing::ReadFile(dir_ + "/c.err"), "refused SaveCheckpoint"));
}

TEST_F(LoadTest, ASecondCoordinatorOnAPortInUseExitsSayingSo) {
  testing::WriteFile(dir_ + "/plan.yaml", "experiment: port\nruns: 1\nepochs: 1\nmodel: {kind: noop}\n");
  Start({"--plan", dir_ + "/plan.yaml", "--db", dir_ + "/first.db"});
  testing::CommandResult second = testing::RunCommand(
      {REPRO_COORDINATOR_BIN, "--plan", dir_ + "/plan.yaml", "--db", dir_ + "/second.db",
       "--listen", Address()},
      dir_, 30s);
  EXPECT_FALSE(second.timed_out) << "the second coordinator started serving on a port in use";
  EXPECT_EQ(second.code, 1) << second.err;
  EXPECT_TRUE(absl::StrContains(second.err, "cannot listen on " + Address())) << second.err;
  EXPECT_TRUE(absl::StrContains(second.err, "in use")) << second.err;
  EXPECT_TRUE(coordinator_.Running());
}

}  // namespace
}  // namespace repro
