// CoordinatorService: what workers register and report (checked against the plan where
// it enters), status, workers, a full disk and streamed reports (service_test_fixture.h
// serves the real handlers in-process).
#include "coordinator/service_test_fixture.h"

#include <optional>

#include "absl/strings/numbers.h"

namespace repro::service_testing {
namespace {

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
}  // namespace repro::service_testing

namespace repro::service_testing {
namespace {

// Three runs an arm, with losses chosen so that both arms have spread.
class PlanningReportTest : public ServiceTest {
 protected:
  std::string PlanText() const override {
    return "experiment: svc\nruns: 3\nepochs: 2\nmodel: {kind: noop}\n";
  }
  // The report's runs_needed.loss of its one comparison, asking for `ci_width` (none: the
  // default), or the call's status when it fails.
  std::string RunsNeeded(std::optional<double> ci_width) {
    v1::ReportRequest req;
    req.set_format("json");
    req.set_bootstrap_resamples(0);
    if (ci_width) req.set_ci_width(*ci_width);
    v1::ReportResponse report;
    const grpc::Status s = control_->Report(Ctx().get(), req, &report);
    if (!s.ok()) return absl::StrCat("error ", s.error_code(), ": ", s.error_message());
    const std::string& body = report.body();
    const size_t at = body.find("\"runs_needed\": {");
    const size_t loss = body.find("\"loss\": ", at);
    if (at == std::string::npos || loss == std::string::npos) {
      return "no runs_needed in " + body.substr(0, 3000);
    }
    const size_t from = loss + std::string("\"loss\": ").size();
    return body.substr(from, body.find_first_of(",\n}", from) - from);
  }
};

TEST_F(PlanningReportTest, TheReportOverGrpcAimsTheRunsNeededAtTheWidthAsked) {
  ASSERT_TRUE(Register("a").ok());
  const double losses[] = {0.50, 0.55, 0.40, 0.30, 0.52, 0.61};  // 3 same_seed, 3 different_seeds
  for (int i = 0; i < 6; ++i) {
    const v1::RunAssignment run = LeaseRun("a");
    v1::CompleteResponse done;
    ASSERT_TRUE(Complete("a", run, ValidResult(losses[i]), &done).ok());
  }
  const std::string by_default = RunsNeeded(std::nullopt);
  const std::string narrow = RunsNeeded(0.1);
  const std::string wide = RunsNeeded(2.0);
  EXPECT_EQ(by_default, narrow);  // 0.1 is the default
  int64_t n_narrow = 0, n_wide = 0;
  ASSERT_TRUE(absl::SimpleAtoi(narrow, &n_narrow)) << narrow;
  ASSERT_TRUE(absl::SimpleAtoi(wide, &n_wide)) << wide;
  EXPECT_GT(n_narrow, n_wide) << "a narrower interval needs more runs";
  EXPECT_GE(n_wide, 2);
  EXPECT_TRUE(absl::StartsWith(RunsNeeded(0.0), "error 3: ")) << RunsNeeded(0.0);  // INVALID_ARGUMENT
  EXPECT_TRUE(absl::StartsWith(RunsNeeded(-1.0), "error 3: ")) << RunsNeeded(-1.0);
}

TEST_F(PlanningReportTest, TheReportOverGrpcTellsTheRatioAskedFromOne) {
  ASSERT_TRUE(Register("a").ok());
  const double losses[] = {0.50, 0.55, 0.40, 0.30, 0.52, 0.61};
  for (int i = 0; i < 6; ++i) {
    const v1::RunAssignment run = LeaseRun("a");
    v1::CompleteResponse done;
    ASSERT_TRUE(Complete("a", run, ValidResult(losses[i]), &done).ok());
  }
  auto report = [&](double power_ratio) {
    v1::ReportRequest req;
    req.set_format("text");
    req.set_bootstrap_resamples(0);
    req.set_power_ratio(power_ratio);
    v1::ReportResponse resp;
    const grpc::Status s = control_->Report(Ctx().get(), req, &resp);
    return s.ok() ? resp.body() : absl::StrCat("error ", s.error_code(), ": ", s.error_message());
  };
  EXPECT_TRUE(absl::StrContains(report(2.0), "runs for power 0.8 vs ratio 2")) << report(2.0);
  EXPECT_TRUE(absl::StrContains(report(0), "runs for power 0.8  ")) << report(0);
  EXPECT_TRUE(absl::StartsWith(report(1.0), "error 3: power ratio must be a number above 0 other "
                                            "than 1"))
      << report(1.0);
}

}  // namespace
}  // namespace repro::service_testing
