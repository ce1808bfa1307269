// WorkerDaemon against a fake coordinator served in-process (no ports, no processes),
// with a lambda for the trainer and a Sleeper that records each pause and returns at
// once: what a user of the worker would notice, run by run.
#include "worker/daemon.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/cli.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/convert.h"

namespace repro {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// What the fake coordinator tells the worker to wait between heartbeats; told apart
// from the backoff pauses by its value.
constexpr int kHeartbeatMs = 1234;

// Everything the worker sent, in order of arrival.
struct Received {
  int registers = 0;
  int leases = 0;
  int complete_attempts = 0;
  std::vector<v1::HeartbeatRequest> heartbeats;
  std::vector<v1::CompleteRequest> completes;  // the ones the coordinator took
  std::vector<v1::FailRequest> fails;
  std::vector<v1::ReleaseRequest> releases;
  std::vector<v1::GetBlobRequest> blob_requests;
  int upload_attempts = 0;
  std::map<std::string, std::string> uploads;  // the bytes taken, by declared SHA-256
  std::vector<v1::PutBlobRequest> upload_headers;  // each taken upload's first message
  std::vector<v1::CompleteLocalizeRequest> localized;
  v1::WorkerInfo registered;                 // as the last Register gave it
  std::vector<v1::LeaveRequest> leaves;
};

// A coordinator that answers from a script: the given errors first, then success.
class FakeCoordinator final : public v1::WorkerService::Service {
 public:
  void FailRegister(grpc::Status s) { Locked([&] { register_errors_.push_back(s); }); }
  void FailLease(grpc::Status s) { Locked([&] { lease_errors_.push_back(s); }); }
  void FailComplete(grpc::Status s) { Locked([&] { complete_errors_.push_back(s); }); }
  void FailPutBlob(grpc::Status s) { Locked([&] { put_errors_.push_back(s); }); }
  // Leased in order; once they are gone the experiment has finished.
  void AddRun(const v1::RunAssignment& run) { Locked([&] { runs_.push_back(run); }); }
  // Leased before any run.
  void AddLocalize(const v1::LocalizeJob& job) { Locked([&] { jobs_.push_back(job); }); }
  void AddLocalizeSide(const v1::LocalizeSideJob& job) { Locked([&] { sides_.push_back(job); }); }
  // Whether a heartbeat finds its lease still valid (default: always).
  void SetLeaseValid(std::function<bool(const v1::HeartbeatRequest&)> valid) {
    Locked([&] { lease_valid_ = std::move(valid); });
  }
  Received received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  // A blob GetBlob serves, in chunks of `chunk` bytes.
  void AddBlob(const std::string& bytes) {
    Locked([&] { blobs_[Sha256Hex(bytes.data(), bytes.size())] = bytes; });
  }
  void SetBlobChunk(size_t chunk) { Locked([&] { blob_chunk_ = chunk; }); }
  // The next GetBlob calls end UNAVAILABLE after one chunk, as a dropped connection.
  void DropBlobAfterOneChunk(int times) { Locked([&] { blob_drops_ = times; }); }
  // Every chunk sent has its first byte changed.
  void CorruptBlobs() { Locked([&] { corrupt_blobs_ = true; }); }

  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++received_.registers;
    if (!register_errors_.empty()) return Pop(register_errors_);
    received_.registered = req->worker();
    resp->set_experiment("exp");
    resp->set_heartbeat_interval_ms(kHeartbeatMs);
    return grpc::Status::OK;
  }
  grpc::Status Lease(grpc::ServerContext*, const v1::LeaseRequest*, v1::LeaseResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++received_.leases;
    if (!lease_errors_.empty()) return Pop(lease_errors_);
    if (!jobs_.empty()) {
      *resp->mutable_localize() = jobs_.front();
      jobs_.pop_front();
    } else if (!sides_.empty()) {
      *resp->mutable_localize_side() = sides_.front();
      sides_.pop_front();
    } else if (runs_.empty()) {
      resp->set_finished(true);
    } else {
      *resp->mutable_run() = runs_.front();
      runs_.pop_front();
    }
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    received_.heartbeats.push_back(*req);
    resp->set_lease_valid(lease_valid_(*req));
    return grpc::Status::OK;
  }
  grpc::Status ReportEpoch(grpc::ServerContext*, const v1::ReportEpochRequest*,
                           v1::ReportEpochResponse* resp) override {
    resp->set_lease_valid(true);
    return grpc::Status::OK;
  }
  grpc::Status Complete(grpc::ServerContext*, const v1::CompleteRequest* req,
                        v1::CompleteResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++received_.complete_attempts;
    if (!complete_errors_.empty()) return Pop(complete_errors_);
    received_.completes.push_back(*req);
    resp->set_counted(true);
    return grpc::Status::OK;
  }
  grpc::Status Fail(grpc::ServerContext*, const v1::FailRequest* req, v1::FailResponse*) override {
    Locked([&] { received_.fails.push_back(*req); });
    return grpc::Status::OK;
  }
  grpc::Status GetBlob(grpc::ServerContext*, const v1::GetBlobRequest* req,
                       grpc::ServerWriter<v1::BlobChunk>* writer) override {
    std::string bytes;
    size_t chunk_size = 0;
    bool drop = false, corrupt = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      received_.blob_requests.push_back(*req);
      auto it = blobs_.find(req->sha256());
      if (it == blobs_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such blob");
      bytes = it->second;
      chunk_size = blob_chunk_;
      drop = blob_drops_ > 0;
      if (drop) --blob_drops_;
      corrupt = corrupt_blobs_;
    }
    if (req->offset() > static_cast<int64_t>(bytes.size())) {
      return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "offset");
    }
    for (size_t at = static_cast<size_t>(req->offset()); at < bytes.size(); at += chunk_size) {
      v1::BlobChunk chunk;
      chunk.set_offset(static_cast<int64_t>(at));
      chunk.set_total_size(static_cast<int64_t>(bytes.size()));
      chunk.set_data(bytes.substr(at, chunk_size));
      if (corrupt) (*chunk.mutable_data())[0] ^= 1;
      writer->Write(chunk);
      if (drop) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection dropped");
    }
    return grpc::Status::OK;
  }
  grpc::Status PutBlob(grpc::ServerContext*, grpc::ServerReader<v1::PutBlobRequest>* reader,
                       v1::PutBlobResponse* resp) override {
    v1::PutBlobRequest first, piece;
    std::string bytes;
    for (bool any = false; reader->Read(&piece); any = true) {
      if (!any) first = piece;
      if (piece.offset() != static_cast<int64_t>(bytes.size())) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "offset");
      }
      bytes += piece.data();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++received_.upload_attempts;
    if (!put_errors_.empty()) return Pop(put_errors_);
    if (static_cast<int64_t>(bytes.size()) != first.size() ||
        Sha256Hex(bytes.data(), bytes.size()) != first.sha256()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "not the declared bytes");
    }
    first.clear_data();
    received_.upload_headers.push_back(first);
    resp->set_stored(received_.uploads.emplace(first.sha256(), bytes).second);
    return grpc::Status::OK;
  }
  grpc::Status CompleteLocalize(grpc::ServerContext*, const v1::CompleteLocalizeRequest* req,
                                v1::CompleteLocalizeResponse*) override {
    Locked([&] { received_.localized.push_back(*req); });
    return grpc::Status::OK;
  }
  grpc::Status Leave(grpc::ServerContext*, const v1::LeaveRequest* req, v1::LeaveResponse*) override {
    Locked([&] { received_.leaves.push_back(*req); });
    return grpc::Status::OK;
  }
  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest* req,
                       v1::ReleaseResponse* resp) override {
    Locked([&] { received_.releases.push_back(*req); });
    resp->set_released(true);
    return grpc::Status::OK;
  }

 private:
  template <typename F>
  void Locked(F f) {
    std::lock_guard<std::mutex> lock(mu_);
    f();
  }
  static grpc::Status Pop(std::deque<grpc::Status>& errors) {
    grpc::Status s = errors.front();
    errors.pop_front();
    return s;
  }

  std::mutex mu_;
  std::deque<grpc::Status> register_errors_, lease_errors_, complete_errors_, put_errors_;
  std::deque<v1::RunAssignment> runs_;
  std::deque<v1::LocalizeSideJob> sides_;
  std::deque<v1::LocalizeJob> jobs_;
  std::function<bool(const v1::HeartbeatRequest&)> lease_valid_ = [](const auto&) { return true; };
  std::map<std::string, std::string> blobs_;  // by SHA-256
  size_t blob_chunk_ = 1 << 20;
  int blob_drops_ = 0;
  bool corrupt_blobs_ = false;
  Received received_;
};

// Returns at once and records how long it was asked to wait.
class RecordingSleeper final : public Sleeper {
 public:
  bool SleepFor(int ms, const std::function<bool()>& wake) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      sleeps_.push_back(ms);
    }
    std::this_thread::yield();  // the heartbeat thread loops on this: let training run
    return wake();
  }
  void Wake() override {}
  // The pauses other than the heartbeat interval: backoff and lease polling.
  std::vector<int> Backoffs() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int> out;
    for (int ms : sleeps_) {
      if (ms != kHeartbeatMs) out.push_back(ms);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<int> sleeps_;
};

v1::RunAssignment Assignment(int64_t run_id) {
  RunSpec spec;
  spec.init_seed = static_cast<uint64_t>(run_id);  // tells the trainer which run it has
  v1::RunAssignment run;
  run.set_run_id(run_id);
  run.set_lease_id(100 + run_id);
  run.set_experiment("exp");
  run.set_arm("arm");
  run.set_index(static_cast<int>(run_id));
  *run.mutable_spec() = ToProto(spec);
  run.set_checkpoint_epoch(-1);
  return run;
}

RunResult Result(const std::string& final_hash) {
  RunResult result;
  result.test_accuracy = 0.9;
  result.final_hash = final_hash;
  result.epochs.push_back(EpochRecord{});
  return result;
}

class DaemonTest : public ::testing::Test {
 protected:
  DaemonTest() {
    options_.coordinator = "in-process";
    options_.name = "w1";
    grpc::ServerBuilder builder;
    builder.RegisterService(&coordinator_);
    server_ = builder.BuildAndStart();
  }
  ~DaemonTest() override { server_->Shutdown(); }

  int RunDaemon(Trainer trainer, Localizer localizer = engine::Localize,
                SideReplayer side_replayer = engine::ReplaySide) {
    WorkerDaemon daemon(options_, v1::WorkerService::NewStub(server_->InProcessChannel({})),
                        std::move(trainer), &sleeper_, &stop_, std::move(localizer),
                        std::move(side_replayer));
    return daemon.Run();
  }

  WorkerOptions options_;
  FakeCoordinator coordinator_;
  std::unique_ptr<grpc::Server> server_;
  RecordingSleeper sleeper_;
  std::atomic<int> stop_{0};
};

TEST_F(DaemonTest, FailedRunIsReportedWithItsErrorAndTheNextRunIsTrained) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.AddRun(Assignment(2));
  auto trainer = [](const RunSpec& spec, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    if (spec.init_seed == 1) return absl::InvalidArgumentError("train-images is truncated");
    return Result("second");
  };

  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  Received got = coordinator_.received();
  ASSERT_THAT(got.fails, SizeIs(1));
  EXPECT_EQ(got.fails[0].worker(), "w1");
  EXPECT_EQ(got.fails[0].run_id(), 1);
  EXPECT_EQ(got.fails[0].lease_id(), 101);
  EXPECT_EQ(got.fails[0].error(), "train-images is truncated");
  ASSERT_THAT(got.completes, SizeIs(1));
  EXPECT_EQ(got.completes[0].run_id(), 2);
  EXPECT_EQ(got.completes[0].result().final_hash(), "second");
  EXPECT_THAT(got.releases, IsEmpty());
  ASSERT_THAT(got.leaves, SizeIs(1));  // it said goodbye, and why
  EXPECT_EQ(got.leaves[0].worker(), "w1");
  EXPECT_EQ(got.leaves[0].reason(), "the experiment has finished");
}

TEST_F(DaemonTest, RegistersWhatItCanRunAndItsLabels) {
  options_.threads = 3;
  options_.labels = {{"pool", "spot"}, {"group", "a"}};
  EXPECT_EQ(RunDaemon(Trainer()), cli::kExitOk);
  const v1::WorkerInfo w = coordinator_.received().registered;
  EXPECT_EQ(w.name(), "w1");
  EXPECT_EQ(w.labels().at("pool"), "spot");
  EXPECT_EQ(w.labels().at("group"), "a");
  EXPECT_EQ(w.capabilities().at("threads"), "3");
  EXPECT_EQ(w.capabilities().at("device"), w.device());
  EXPECT_EQ(w.capabilities().at("torch"), w.torch_version());
  EXPECT_EQ(w.capabilities().at("host"), w.host());
  EXPECT_FALSE(w.capabilities().at("cpu_model").empty());
  EXPECT_EQ(w.capabilities().count("deterministic_algorithms"), 0u);  // the plan's, not the worker's
  for (const auto& [key, value] : w.capabilities()) {
    for (char c : value) EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << key << ": " << value;
  }
}

// A trainer that exports weights as the engine does: files named <name>.safetensors in
// `dir`, their paths in the result.
Trainer Exporting(const std::string& dir) {
  return [dir](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    RunResult result = Result("exported");
    std::filesystem::create_directories(dir);
    result.initial_weights = dir + "/initial.safetensors";
    result.final_weights = dir + "/final.safetensors";
    std::ofstream(result.initial_weights, std::ios::binary) << std::string(3 << 20, 'i');
    std::ofstream(result.final_weights, std::ios::binary) << "final weights";
    return result;
  };
}

class DaemonUploadTest : public DaemonTest {
 protected:
  DaemonUploadTest()
      : dir_(std::filesystem::path(::testing::TempDir()) /
             ("daemon_upload_" + std::to_string(getpid()))) {}
  ~DaemonUploadTest() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DaemonUploadTest, ExportedWeightsAreUploadedUnderTheLeaseAndTheResultNamesThemByHash) {
  coordinator_.AddRun(Assignment(1));
  EXPECT_EQ(RunDaemon(Exporting(dir_)), cli::kExitOk);
  Received got = coordinator_.received();
  const std::string initial(3 << 20, 'i'), final_bytes = "final weights";
  const std::string initial_sha = Sha256Hex(initial.data(), initial.size());
  const std::string final_sha = Sha256Hex(final_bytes.data(), final_bytes.size());
  ASSERT_THAT(got.upload_headers, SizeIs(2));
  for (const v1::PutBlobRequest& header : got.upload_headers) {
    EXPECT_EQ(header.worker(), "w1");
    EXPECT_EQ(header.run_id(), 1);
    EXPECT_EQ(header.lease_id(), 101);
  }
  EXPECT_TRUE(got.uploads[initial_sha] == initial);
  EXPECT_EQ(got.uploads[final_sha], final_bytes);
  ASSERT_THAT(got.completes, SizeIs(1));
  const v1::RunResult& result = got.completes[0].result();
  ASSERT_EQ(result.weights_size(), 2);
  EXPECT_EQ(result.weights(0).name(), "initial");
  EXPECT_EQ(result.weights(0).sha256(), initial_sha);
  EXPECT_EQ(result.weights(0).size(), 3 << 20);
  EXPECT_EQ(result.weights(1).name(), "final");
  EXPECT_EQ(result.weights(1).sha256(), final_sha);
  EXPECT_EQ(result.DebugString().find(dir_), std::string::npos) << "a worker path went out";
}

TEST_F(DaemonUploadTest, AnUploadThatFailsForAWhileIsTriedAgainAndTheRunCompletes) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.FailPutBlob(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator restarting"));
  coordinator_.FailPutBlob(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "disk full"));
  EXPECT_EQ(RunDaemon(Exporting(dir_)), cli::kExitOk);
  Received got = coordinator_.received();
  EXPECT_EQ(got.upload_attempts, 4);
  ASSERT_THAT(got.completes, SizeIs(1));
  EXPECT_EQ(got.completes[0].result().weights_size(), 2);
  EXPECT_THAT(got.fails, IsEmpty());
}

TEST_F(DaemonUploadTest, WeightsOverTheCoordinatorsLimitFailTheRunAsThePlansError) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.FailPutBlob(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                        "a weights file of 3.1 MB is over this coordinator's "
                                        "limit of 1.0 MB (coordinator --max-upload-bytes)"));
  EXPECT_EQ(RunDaemon(Exporting(dir_)), cli::kExitOk);
  Received got = coordinator_.received();
  EXPECT_THAT(got.completes, IsEmpty());
  ASSERT_THAT(got.fails, SizeIs(1));
  EXPECT_TRUE(got.fails[0].plan_error());
  EXPECT_THAT(got.fails[0].error(),
              HasSubstr("cannot upload the initial weights of run arm#1: a weights file of 3.1 MB"));
}

TEST_F(DaemonTest, ALocalizationIsReplayedUnderEachRunsSpecAndAnsweredWithItsSecret) {
  v1::LocalizeJob job;
  job.set_job_id(7);
  job.set_job_secret(std::string(32, 's'));
  job.set_run_a("t1#0");
  job.set_run_b("t2#0");
  RunSpec a, b;
  a.threads = 0;  // a leaves its threads to the worker
  b.threads = 2;
  *job.mutable_spec_a() = ToProto(a);
  *job.mutable_spec_b() = ToProto(b);
  job.set_epoch(3);
  job.set_recorded_a(std::string(32, 'a'));
  coordinator_.AddLocalize(job);
  coordinator_.AddRun(Assignment(1));
  options_.threads = 5;
  std::vector<engine::LocalizeRequest> asked;
  auto localizer = [&](const engine::LocalizeRequest& r, const engine::Callbacks&) -> absl::StatusOr<LocalizationResult> {
    asked.push_back(r);
    LocalizationResult l;
    l.epoch = r.epoch;
    l.batch = 4;
    l.op_kind = "outputs";
    l.op_name = "aten::addmm";
    l.inputs_equal = true;
    return l;
  };
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    return Result("after");
  };
  EXPECT_EQ(RunDaemon(trainer, localizer), cli::kExitOk);
  ASSERT_THAT(asked, SizeIs(1));
  EXPECT_EQ(asked[0].a.threads, 5);
  EXPECT_EQ(asked[0].b.threads, 2);
  EXPECT_EQ(asked[0].epoch, 3);
  EXPECT_EQ(asked[0].recorded_a, std::string(32, 'a'));
  Received got = coordinator_.received();
  ASSERT_THAT(got.localized, SizeIs(1));
  EXPECT_EQ(got.localized[0].job_id(), 7);
  EXPECT_EQ(got.localized[0].job_secret(), std::string(32, 's'));
  EXPECT_EQ(got.localized[0].error(), "");
  EXPECT_EQ(got.localized[0].result().batch(), 4);
  EXPECT_EQ(got.localized[0].result().op_kind(), "outputs");
  EXPECT_EQ(got.localized[0].result().op_name(), "aten::addmm");
  EXPECT_TRUE(got.localized[0].result().inputs_equal());
  ASSERT_THAT(got.completes, SizeIs(1));  // and then the run
}

// A replay takes as long as an epoch: heartbeats name the job and its secret meanwhile,
// A side of a localization replayed apart: the run's spec under this worker's settings,
// the stage's batch and op, heartbeats naming the side, and its dump uploaded under the
// side's lease before the answer names it by SHA-256.
TEST_F(DaemonTest, ALocalizationSideIsReplayedAloneAndItsDumpUploadedUnderItsLease) {
  v1::LocalizeSideJob job;
  job.set_job_id(9);
  job.set_job_secret(std::string(32, 'k'));
  job.set_side("b");
  job.set_run("two#0");
  RunSpec spec;
  spec.threads = 0;  // left to the worker
  *job.mutable_spec() = ToProto(spec);
  job.set_stage("dump");
  job.set_epoch(2);
  job.set_trace_batch(5);
  job.set_dump_op(17);
  coordinator_.AddLocalizeSide(job);
  std::vector<SideRequest> asked;
  OpOutputs dump{"aten::mm", "", {TensorValues{true, "Float", {1}, std::string(4, '\x01')}}};
  options_.threads = 3;
  auto replayer = [&](const RunSpec& spec, const SideRequest& r,
                      const engine::Callbacks&) -> absl::StatusOr<SideReplay> {
    EXPECT_EQ(spec.threads, 3) << "the worker's own threads, as its run had";
    asked.push_back(r);
    SideReplay replay;
    replay.batch_hashes = {"h0", "h1"};
    replay.dump = dump;
    return replay;
  };
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    return Result("after");
  };
  EXPECT_EQ(RunDaemon(trainer, engine::Localize, replayer), cli::kExitOk);
  ASSERT_THAT(asked, SizeIs(1));
  EXPECT_EQ(asked[0].epoch, 2);
  EXPECT_EQ(asked[0].trace_batch, 5);
  EXPECT_EQ(asked[0].dump_op, 17);
  Received got = coordinator_.received();
  ASSERT_THAT(got.upload_headers, SizeIs(1));
  EXPECT_EQ(got.upload_headers[0].localize_job_id(), 9);
  EXPECT_EQ(got.upload_headers[0].localize_side(), "b");
  EXPECT_EQ(got.upload_headers[0].lease_secret(), std::string(32, 'k'));
  EXPECT_EQ(got.upload_headers[0].run_id(), 0);
  const std::string sha = got.upload_headers[0].sha256();
  auto uploaded = DecodeOpOutputs(got.uploads.at(sha));
  ASSERT_TRUE(uploaded.ok()) << uploaded.status();
  EXPECT_EQ(uploaded->name, "aten::mm");
  EXPECT_EQ(uploaded->tensors.at(0).bytes, std::string(4, '\x01'));
  ASSERT_THAT(got.localized, SizeIs(1));
  EXPECT_EQ(got.localized[0].side(), "b");
  EXPECT_EQ(got.localized[0].stage(), "dump");
  EXPECT_EQ(got.localized[0].error(), "");
  EXPECT_EQ(got.localized[0].replay().dump_sha256(), sha);
  EXPECT_THAT(got.localized[0].replay().batch_hashes(), ::testing::ElementsAre("h0", "h1"));
  for (const v1::HeartbeatRequest& beat : got.heartbeats) {
    if (beat.localize_job_id() == 9) {
      EXPECT_EQ(beat.localize_side(), "b");
    }
  }
}

// and a job the coordinator says is over is not answered.
TEST_F(DaemonTest, ALocalizationSendsHeartbeatsWhileItReplays) {
  v1::LocalizeJob job;
  job.set_job_id(9);
  job.set_job_secret(std::string(32, 'k'));
  coordinator_.AddLocalize(job);
  job.set_job_id(10);
  coordinator_.AddLocalize(job);
  coordinator_.SetLeaseValid([](const v1::HeartbeatRequest& beat) {
    return beat.localize_job_id() != 10;  // job 10 was handed on
  });
  auto beats_of = [this](int64_t id) {
    int n = 0;
    for (const v1::HeartbeatRequest& beat : coordinator_.received().heartbeats) {
      n += beat.localize_job_id() == id && beat.job_secret() == std::string(32, 'k') &&
           beat.run_id() == 0;
    }
    return n;
  };
  bool told_to_stop = false;  // job 10's replay, once its lease was lost
  auto localizer = [&](const engine::LocalizeRequest&,
                       const engine::Callbacks& callbacks) -> absl::StatusOr<LocalizationResult> {
    // The replay ends only once the job's heartbeats have been heard.
    const int64_t id = beats_of(9) < 2 ? 9 : 10;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (beats_of(id) < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (id == 9) {
      EXPECT_FALSE(callbacks.should_stop()) << "job 9 still holds its lease";
    } else {
      told_to_stop = callbacks.should_stop();  // the replay stops at its next batch
    }
    return LocalizationResult{};
  };
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    return Result("none");
  };
  EXPECT_EQ(RunDaemon(trainer, localizer), cli::kExitOk);
  EXPECT_GE(beats_of(9), 2);
  EXPECT_GE(beats_of(10), 2);
  Received got = coordinator_.received();
  ASSERT_THAT(got.localized, SizeIs(1));  // job 10's lease was lost: no answer
  EXPECT_EQ(got.localized[0].job_id(), 9);
  EXPECT_TRUE(told_to_stop);
}

TEST_F(DaemonTest, ALocalizationThatCannotBeReplayedIsAnsweredWithTheReason) {
  v1::LocalizeJob job;
  job.set_job_id(8);
  coordinator_.AddLocalize(job);
  auto localizer = [](const engine::LocalizeRequest&, const engine::Callbacks&) -> absl::StatusOr<LocalizationResult> {
    return absl::InvalidArgumentError("epoch 9 is beyond the run's 2 epochs");
  };
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    return Result("none");
  };
  EXPECT_EQ(RunDaemon(trainer, localizer), cli::kExitOk);
  Received got = coordinator_.received();
  ASSERT_THAT(got.localized, SizeIs(1));
  EXPECT_EQ(got.localized[0].error(), "epoch 9 is beyond the run's 2 epochs");
}

TEST_F(DaemonTest, ThrowingTrainerFailsTheRunInsteadOfEndingTheWorker) {
  coordinator_.AddRun(Assignment(1));
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    throw std::runtime_error("CUDA out of memory");
  };

  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  Received got = coordinator_.received();
  ASSERT_THAT(got.fails, SizeIs(1));
  EXPECT_EQ(got.fails[0].run_id(), 1);
  EXPECT_THAT(got.fails[0].error(), HasSubstr("CUDA out of memory"));
  EXPECT_THAT(got.completes, IsEmpty());
  EXPECT_EQ(got.leases, 2);  // went on to ask for the next run
}

// Trains batch after batch, as the engine does, until told to stop (or 10 s have
// passed, then it finishes the run).
struct BatchLoop {
  static constexpr int64_t kBatches = 1000000;
  std::atomic<int64_t> stopped_after{-1};

  Trainer trainer(std::function<void(int64_t batch)> after_batch = nullptr) {
    return [this, after_batch](const RunSpec&, const engine::Callbacks& cb) -> absl::StatusOr<RunResult> {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      for (int64_t b = 1; b <= kBatches && std::chrono::steady_clock::now() < give_up; ++b) {
        cb.on_batch(0, b, kBatches);
        if (after_batch) after_batch(b);
        if (cb.should_stop()) {
          stopped_after.store(b);
          return absl::CancelledError("stopped at a batch boundary");
        }
        std::this_thread::yield();
      }
      return Result("trained to the end");
    };
  }
};

TEST_F(DaemonTest, LostLeaseStopsTrainingAndSendsNoResult) {
  coordinator_.AddRun(Assignment(1));
  // The coordinator takes the run back once it has seen some progress.
  coordinator_.SetLeaseValid([](const v1::HeartbeatRequest& req) { return req.batch() < 3; });
  BatchLoop loop;

  EXPECT_EQ(RunDaemon(loop.trainer()), cli::kExitOk);
  EXPECT_GE(loop.stopped_after.load(), 3);
  Received got = coordinator_.received();
  ASSERT_THAT(got.heartbeats, Not(IsEmpty()));
  const v1::HeartbeatRequest& last = got.heartbeats.back();
  EXPECT_EQ(last.worker(), "w1");
  EXPECT_EQ(last.run_id(), 1);
  EXPECT_EQ(last.lease_id(), 101);
  EXPECT_EQ(last.epoch(), 0);
  EXPECT_GE(last.batch(), 3);
  EXPECT_EQ(last.batches(), BatchLoop::kBatches);
  EXPECT_THAT(got.completes, IsEmpty());
  EXPECT_THAT(got.fails, IsEmpty());
  EXPECT_THAT(got.releases, IsEmpty());
}

TEST_F(DaemonTest, StopSignalDuringTrainingHandsTheRunBack) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.AddRun(Assignment(2));
  BatchLoop loop;
  auto sigterm_after_batch_2 = [this](int64_t batch) {
    if (batch == 2) stop_.store(SIGTERM);
  };

  EXPECT_EQ(RunDaemon(loop.trainer(sigterm_after_batch_2)), cli::kExitOk);
  EXPECT_EQ(loop.stopped_after.load(), 2);
  Received got = coordinator_.received();
  ASSERT_THAT(got.releases, SizeIs(1));
  EXPECT_EQ(got.releases[0].run_id(), 1);
  EXPECT_EQ(got.releases[0].lease_id(), 101);
  EXPECT_THAT(got.releases[0].reason(), HasSubstr("w1 stopped during the run"));
  EXPECT_THAT(got.completes, IsEmpty());
  EXPECT_THAT(got.fails, IsEmpty());
  EXPECT_EQ(got.leases, 1);  // run 2 is left for another worker
  ASSERT_THAT(got.leaves, SizeIs(1));
  EXPECT_EQ(got.leaves[0].reason(), "stopped on a signal");
}

TEST_F(DaemonTest, ResultIsResentUntilTheCoordinatorTakesItOnce) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.FailComplete(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator restarting"));
  coordinator_.FailComplete(grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator restarting"));
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    return Result("f00d");
  };

  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  Received got = coordinator_.received();
  EXPECT_EQ(got.complete_attempts, 3);
  ASSERT_THAT(got.completes, SizeIs(1));
  EXPECT_EQ(got.completes[0].run_id(), 1);
  EXPECT_EQ(got.completes[0].lease_id(), 101);
  EXPECT_EQ(got.completes[0].result().final_hash(), "f00d");
  EXPECT_THAT(sleeper_.Backoffs(), ElementsAre(250, 500));
}

TEST_F(DaemonTest, RegistrationBacksOffUpToTheMaximum) {
  options_.max_backoff_ms = 2000;
  for (int i = 0; i < 6; ++i) {
    coordinator_.FailRegister(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused"));
  }
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    ADD_FAILURE() << "nothing to train";
    return Result("none");
  };

  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  EXPECT_EQ(coordinator_.received().registers, 7);
  EXPECT_THAT(sleeper_.Backoffs(), ElementsAre(250, 500, 1000, 2000, 2000, 2000));
}

TEST_F(DaemonTest, LeaseBacksOffWhileTheCoordinatorIsAway) {
  for (int i = 0; i < 3; ++i) {
    coordinator_.FailLease(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer"));
  }

  EXPECT_EQ(RunDaemon(nullptr), cli::kExitOk);
  EXPECT_EQ(coordinator_.received().leases, 4);
  EXPECT_THAT(sleeper_.Backoffs(), ElementsAre(250, 500, 1000));
}

TEST_F(DaemonTest, RefusedRegistrationEndsTheWorkerWithAnError) {
  coordinator_.FailRegister(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "bad token"));

  EXPECT_EQ(RunDaemon(nullptr), cli::kExitError);
  Received got = coordinator_.received();
  EXPECT_EQ(got.registers, 1);
  EXPECT_EQ(got.leases, 0);
  EXPECT_THAT(sleeper_.Backoffs(), IsEmpty());
}

// ------------------------------------------------------------------ what waiting cannot mend

TEST_F(DaemonTest, AWorkerThatCannotTrainHandsTheRunBackAndStops) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.AddRun(Assignment(2));
  int trained = 0;
  auto no_cuda = [&trained](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    ++trained;
    return absl::FailedPreconditionError(
        "device cuda requested but this LibTorch has no CUDA (or no GPU visible)");
  };

  EXPECT_EQ(RunDaemon(no_cuda), cli::kExitCannotWork);
  EXPECT_EQ(trained, 1);
  Received got = coordinator_.received();
  ASSERT_THAT(got.releases, SizeIs(1));  // costs the run no attempt
  EXPECT_EQ(got.releases[0].run_id(), 1);
  EXPECT_THAT(got.releases[0].reason(), HasSubstr("w1 cannot train it"));
  EXPECT_THAT(got.releases[0].reason(), HasSubstr("no CUDA"));
  EXPECT_THAT(got.fails, IsEmpty());
  EXPECT_EQ(got.leases, 1);  // run 2 is left for a worker that can train it
}

TEST_F(DaemonTest, AnAssignmentWhoseNamesLeaveTheArtifactsFolderIsFailedWithNothingWritten) {
  const std::filesystem::path root = std::filesystem::path(::testing::TempDir()) / "daemon_names";
  std::filesystem::remove_all(root);
  options_.artifacts = (root / "artifacts").string();
  auto with_names = [](int64_t id, const std::string& experiment, const std::string& arm) {
    v1::RunAssignment run = Assignment(id);
    run.set_experiment(experiment);
    run.set_arm(arm);
    run.mutable_spec()->set_export_final(true);
    return run;
  };
  coordinator_.AddRun(with_names(1, "../../escaped", "arm"));
  coordinator_.AddRun(with_names(2, "exp", "../escaped"));
  coordinator_.AddRun(with_names(3, "exp", "a/b"));
  coordinator_.AddRun(with_names(4, "exp", "arm"));
  // Writes where the engine would: its weights under the spec's export folder.
  std::vector<std::string> export_dirs;
  auto exporter = [&](const RunSpec& spec, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    export_dirs.push_back(spec.export_dir);
    std::filesystem::create_directories(spec.export_dir);
    std::ofstream(spec.export_dir + "/final.safetensors") << "weights";
    return Result("ok");
  };

  EXPECT_EQ(RunDaemon(exporter), cli::kExitOk);
  Received got = coordinator_.received();
  ASSERT_THAT(got.fails, SizeIs(3));
  EXPECT_THAT(got.fails[0].error(),
              HasSubstr("experiment name \"../../escaped\" is not a valid name"));
  EXPECT_THAT(got.fails[1].error(), HasSubstr("arm name \"../escaped\" is not a valid name"));
  EXPECT_THAT(got.fails[2].error(), HasSubstr("arm name \"a/b\" is not a valid name"));
  ASSERT_THAT(got.completes, SizeIs(1));
  EXPECT_EQ(got.completes[0].run_id(), 4);
  EXPECT_THAT(export_dirs, ElementsAre(options_.artifacts + "/exp/arm/run-4"));
  EXPECT_FALSE(std::filesystem::exists(root / "escaped"));
  EXPECT_FALSE(std::filesystem::exists(root / "artifacts" / "escaped"));
  std::filesystem::remove_all(root);
}

// A run's input file, by role, as the coordinator names it: its path on the
// coordinator's disk (which the worker never reads), its SHA-256 and size.
void AddInput(v1::RunAssignment* run, const std::string& role, const std::string& bytes) {
  v1::InputFile* file = run->mutable_spec()->add_inputs();
  file->set_role(role);
  file->set_path("/coordinator/only/" + role + ".npy");
  file->set_sha256(Sha256Hex(bytes.data(), bytes.size()));
  file->set_size(static_cast<int64_t>(bytes.size()));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class DaemonCacheTest : public DaemonTest {
 protected:
  DaemonCacheTest() {
    cache_ = ::testing::TempDir() + "/daemon-cache-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(cache_);
    options_.cache = cache_;
  }
  ~DaemonCacheTest() override { std::filesystem::remove_all(cache_); }
  std::string CachePath(const std::string& bytes) const {
    const std::string sha = Sha256Hex(bytes.data(), bytes.size());
    return cache_ + "/sha256/" + sha.substr(0, 2) + "/" + sha;
  }
  std::string cache_;
};

TEST_F(DaemonCacheTest, InputsAreFetchedIntoTheCacheOnceResumedAfterADropAndTrainedOn) {
  const std::string x = "x-array bytes, fetched in pieces", y = "labels";
  coordinator_.AddBlob(x);
  coordinator_.AddBlob(y);
  coordinator_.SetBlobChunk(5);
  coordinator_.DropBlobAfterOneChunk(1);
  v1::RunAssignment first = Assignment(1), second = Assignment(2);
  for (v1::RunAssignment* run : {&first, &second}) {
    AddInput(run, "train_x", x);
    AddInput(run, "train_y", y);
  }
  coordinator_.AddRun(first);
  coordinator_.AddRun(second);
  std::vector<std::vector<std::string>> read;  // per run, the bytes of each input
  auto trainer = [&read](const RunSpec& spec, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    read.emplace_back();
    for (const InputFile& f : spec.inputs) read.back().push_back(f.path + "=" + ReadFile(f.path));
    return Result("trained");
  };

  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  const std::vector<std::string> expected = {CachePath(x) + "=" + x, CachePath(y) + "=" + y};
  EXPECT_THAT(read, ElementsAre(expected, expected));
  Received got = coordinator_.received();
  ASSERT_THAT(got.completes, SizeIs(2));
  // x: dropped after 5 bytes, resumed from there; y: once. The second run: no fetch.
  ASSERT_THAT(got.blob_requests, SizeIs(3));
  EXPECT_EQ(got.blob_requests[0].worker(), "w1");
  EXPECT_EQ(got.blob_requests[0].sha256(), Sha256Hex(x.data(), x.size()));
  EXPECT_EQ(got.blob_requests[0].offset(), 0);
  EXPECT_EQ(got.blob_requests[1].sha256(), Sha256Hex(x.data(), x.size()));
  EXPECT_EQ(got.blob_requests[1].offset(), 5);
  EXPECT_EQ(got.blob_requests[2].sha256(), Sha256Hex(y.data(), y.size()));
  EXPECT_EQ(got.blob_requests[2].offset(), 0);
  EXPECT_THAT(sleeper_.Backoffs(), ::testing::Contains(250));
  EXPECT_FALSE(std::filesystem::exists(CachePath(x) + ".part"));
}

TEST_F(DaemonCacheTest, ACorruptedFetchIsDeletedAndTheRunHandedBackUntrained) {
  const std::string x = "the plan's bytes";
  coordinator_.AddBlob(x);
  coordinator_.CorruptBlobs();
  v1::RunAssignment run = Assignment(1);
  AddInput(&run, "train_x", x);
  coordinator_.AddRun(run);
  coordinator_.AddRun(Assignment(2));
  int trained = 0;
  auto trainer = [&trained](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    ++trained;
    return Result("trained");
  };

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunDaemon(trainer), cli::kExitCannotWork);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(trained, 0);
  Received got = coordinator_.received();
  ASSERT_THAT(got.releases, SizeIs(1));  // costs the run no attempt
  EXPECT_EQ(got.releases[0].run_id(), 1);
  EXPECT_THAT(got.fails, IsEmpty());
  EXPECT_EQ(got.leases, 1);  // takes no more runs
  EXPECT_THAT(log, HasSubstr("input train_x (" + Sha256Hex(x.data(), x.size()) +
                             "): the bytes fetched from the coordinator hash to"));
  EXPECT_FALSE(std::filesystem::exists(CachePath(x)));
  EXPECT_FALSE(std::filesystem::exists(CachePath(x) + ".part"));
}

TEST_F(DaemonCacheTest, ACachedCopyThatDiffersFromThePlansIsHandedBackUntrained) {
  // A copy of the right size in the cache, but other bytes: not fetched again, and the
  // check before training finds it.
  const std::string x = "abc";
  std::filesystem::create_directories(std::filesystem::path(CachePath(x)).parent_path());
  std::ofstream(CachePath(x), std::ios::binary) << "abd";
  v1::RunAssignment run = Assignment(1);
  AddInput(&run, "train_x", x);
  coordinator_.AddRun(run);
  int trained = 0;
  auto trainer = [&trained](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    ++trained;
    return Result("trained");
  };

  ::testing::internal::CaptureStderr();
  EXPECT_EQ(RunDaemon(trainer), cli::kExitCannotWork);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(trained, 0);
  Received got = coordinator_.received();
  EXPECT_THAT(got.blob_requests, IsEmpty());
  ASSERT_THAT(got.releases, SizeIs(1));
  EXPECT_THAT(log, HasSubstr("this worker's copy of the plan's train_x file " + CachePath(x) +
                             " differs from the coordinator's"));
}

TEST_F(DaemonCacheTest, TheCacheIsKeptWithinItsBoundLeastRecentlyUsedFirst) {
  // Two old blobs, 10 bytes each, the older first; a bound of 25 bytes; a run that
  // fetches 10 more: the oldest goes, the run's own stays.
  const std::string old1(10, '1'), old2(10, '2'), x(10, 'x');
  for (const std::string* bytes : {&old1, &old2}) {
    std::filesystem::create_directories(std::filesystem::path(CachePath(*bytes)).parent_path());
    std::ofstream(CachePath(*bytes), std::ios::binary) << *bytes;
  }
  const auto now = std::filesystem::file_time_type::clock::now();
  std::filesystem::last_write_time(CachePath(old1), now - std::chrono::hours(2));
  std::filesystem::last_write_time(CachePath(old2), now - std::chrono::hours(1));
  // Two abandoned fetches: one untouched for two days goes, one of an hour ago stays.
  const std::string stale(20, 's'), recent(20, 'r');
  for (const std::string* bytes : {&stale, &recent}) {
    std::filesystem::create_directories(std::filesystem::path(CachePath(*bytes)).parent_path());
    std::ofstream(CachePath(*bytes) + ".part", std::ios::binary) << bytes->substr(0, 5);
  }
  std::filesystem::last_write_time(CachePath(stale) + ".part", now - std::chrono::hours(48));
  std::filesystem::last_write_time(CachePath(recent) + ".part", now - std::chrono::hours(1));
  options_.cache_max_bytes = 25;
  coordinator_.AddBlob(x);
  v1::RunAssignment run = Assignment(1);
  AddInput(&run, "train_x", x);
  coordinator_.AddRun(run);
  auto trainer = [](const RunSpec&, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    return Result("trained");
  };

  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  EXPECT_FALSE(std::filesystem::exists(CachePath(old1)));
  EXPECT_TRUE(std::filesystem::exists(CachePath(old2)));
  EXPECT_TRUE(std::filesystem::exists(CachePath(x)));
  EXPECT_FALSE(std::filesystem::exists(CachePath(stale) + ".part"));
  EXPECT_TRUE(std::filesystem::exists(CachePath(recent) + ".part"));
}

TEST_F(DaemonTest, AnErrorOfThePlansOwnIsReportedAsSuch) {
  coordinator_.AddRun(Assignment(1));
  coordinator_.AddRun(Assignment(2));
  auto trainer = [](const RunSpec& spec, const engine::Callbacks&) -> absl::StatusOr<RunResult> {
    if (spec.init_seed == 1) {
      return engine::PlanError(absl::InvalidArgumentError("model file m.pt has no forward method"));
    }
    return absl::InvalidArgumentError("out of memory");
  };
  EXPECT_EQ(RunDaemon(trainer), cli::kExitOk);
  Received got = coordinator_.received();
  ASSERT_THAT(got.fails, SizeIs(2));
  EXPECT_TRUE(got.fails[0].plan_error());
  EXPECT_EQ(got.fails[0].error(), "model file m.pt has no forward method");
  EXPECT_FALSE(got.fails[1].plan_error());  // an error of this run alone
}

TEST_F(DaemonTest, ATlsMistakeEndsTheWorkerAfterAFewAttempts) {
  // What gRPC says when the coordinator's certificate is not signed by the worker's CA.
  for (int i = 0; i < 20; ++i) {
    coordinator_.FailRegister(grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7070: Ssl "
        "handshake failed: SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed"));
  }
  options_.tls.ca = "ca.pem";

  ::testing::internal::CaptureStderr();
  const int code = RunDaemon(nullptr);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(code, cli::kExitCannotWork);
  EXPECT_EQ(coordinator_.received().registers, 5);
  EXPECT_THAT(sleeper_.Backoffs(), ElementsAre(250, 500, 1000, 2000));
  EXPECT_THAT(log, HasSubstr("exiting with an error: the certificate of the coordinator at "
                             "in-process is not trusted: the CA in --tls-ca ca.pem did not sign it"));
}

TEST_F(DaemonTest, FinishedExperimentEndsTheWorker) {
  EXPECT_EQ(RunDaemon(nullptr), cli::kExitOk);
  Received got = coordinator_.received();
  EXPECT_EQ(got.registers, 1);
  EXPECT_EQ(got.leases, 1);
  EXPECT_THAT(got.heartbeats, IsEmpty());
}

}  // namespace
}  // namespace repro
