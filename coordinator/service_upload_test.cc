// PutBlob and FetchWeights: a worker uploads a run's exported weights under its lease,
// the coordinator keeps only bytes of the declared size and SHA-256, once per hash, a
// result may name only files that were uploaded, and reproctl fetches them back.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "coordinator/service.h"
#include "coordinator/service_test_fixture.h"
#include "proto/convert.h"
#include "store/blobs.h"

namespace repro {
namespace {

namespace fs = std::filesystem;
using service_testing::ValidResult;

constexpr char kPlan[] =
    "experiment: up\nruns: 2\nepochs: 2\nmodel: {kind: noop}\nexports: {weights: [final]}\n"
    "arms:\n  same_seed: {seed: fixed}\n";
constexpr int64_t kLimit = 3 << 20;

class UploadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("service_upload_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string db = (dir_ / "up.db").string();
    auto store = RunStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto plan = ParsePlan(kPlan, "up.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(*store_->EnsureExperiment(*plan, kPlan));
    blobs_ = std::make_unique<BlobStore>(BlobStore::RootFor(db));
    ServiceOptions options;
    options.blobs = blobs_.get();
    options.max_upload_bytes = kLimit;
    service_ = std::make_unique<CoordinatorService>(store_.get(), *plan, [] { return 1000; },
                                                    options, [](const std::string&) {});
    grpc::ServerBuilder builder;
    builder.RegisterService(static_cast<v1::WorkerService::CallbackService*>(service_.get()));
    builder.RegisterService(static_cast<v1::ControlService::CallbackService*>(service_.get()));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    auto channel = server_->InProcessChannel(grpc::ChannelArguments());
    workers_ = v1::WorkerService::NewStub(channel);
    control_ = v1::ControlService::NewStub(channel);
    v1::RegisterRequest req;
    req.mutable_worker()->set_name("w1");
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(workers_->Register(&ctx, req, &resp).ok());
    for (size_t i = 0; i < (size_t{5} << 20) / 2; ++i) weights_.push_back(static_cast<char>(i * 7));
    sha_ = Sha256Hex(weights_.data(), weights_.size());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    service_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  v1::RunAssignment LeaseRun() {
    v1::LeaseRequest req;
    req.set_worker("w1");
    v1::LeaseResponse resp;
    grpc::ClientContext ctx;
    EXPECT_TRUE(workers_->Lease(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.has_run());
    return resp.run();
  }

  // One PutBlob call declaring `sha` and `size` and sending `bytes` in pieces of `piece`
  // bytes (the offsets as sent unless `skip` moves the second piece on).
  grpc::Status Upload(const v1::RunAssignment& run, const std::string& bytes,
                      const std::string& sha, int64_t size, v1::PutBlobResponse* resp,
                      size_t piece = 1 << 20, int64_t skip = 0) {
    grpc::ClientContext ctx;
    auto writer = workers_->PutBlob(&ctx, resp);
    auto req = AboutLease<v1::PutBlobRequest>("w1", run);
    req.set_sha256(sha);
    req.set_size(size);
    for (size_t at = 0, n = 0; at < bytes.size() || n == 0; at += piece, ++n) {
      req.set_offset(static_cast<int64_t>(at) + (n == 1 ? skip : 0));
      req.set_data(bytes.substr(at, piece));
      if (!writer->Write(req)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  grpc::Status Complete(const v1::RunAssignment& run, const std::string& sha, int64_t size) {
    auto req = AboutLease<v1::CompleteRequest>("w1", run);
    *req.mutable_result() = ValidResult(0.5);
    v1::WeightsFile* file = req.mutable_result()->add_weights();
    file->set_name("final");
    file->set_sha256(sha);
    file->set_size(size);
    v1::CompleteResponse resp;
    grpc::ClientContext ctx;
    return workers_->Complete(&ctx, req, &resp);
  }

  // Everything under the blob store's folder: blobs and any temporary file.
  std::vector<std::string> StoreFiles() const {
    std::vector<std::string> files;
    if (!fs::exists(blobs_->root())) return files;
    for (const auto& entry : fs::recursive_directory_iterator(blobs_->root())) {
      if (entry.is_regular_file()) files.push_back(entry.path().filename().string());
    }
    return files;
  }

  fs::path dir_;
  std::string weights_, sha_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

TEST_F(UploadTest, UploadedWeightsAreKeptOnceNamedByTheResultAndFetchedBack) {
  const v1::RunAssignment first = LeaseRun(), second = LeaseRun();
  v1::PutBlobResponse resp;
  grpc::Status s = Upload(first, weights_, sha_, static_cast<int64_t>(weights_.size()), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(resp.stored());
  ASSERT_TRUE(Complete(first, sha_, static_cast<int64_t>(weights_.size())).ok());
  // Bit-identical weights of another run: checked, and kept once.
  s = Upload(second, weights_, sha_, static_cast<int64_t>(weights_.size()), &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_FALSE(resp.stored());
  ASSERT_TRUE(Complete(second, sha_, static_cast<int64_t>(weights_.size())).ok());
  EXPECT_EQ(StoreFiles(), std::vector<std::string>{sha_});

  auto usage = store_->Weights("up");
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_EQ(usage->files, 2);
  EXPECT_EQ(usage->bytes, 2 * static_cast<int64_t>(weights_.size()));
  EXPECT_EQ(usage->stored_bytes, static_cast<int64_t>(weights_.size()));

  grpc::ClientContext ctx;
  v1::FetchWeightsRequest req;
  req.set_run("same_seed#1");
  req.set_which("all");
  auto reader = control_->FetchWeights(&ctx, req);
  v1::BlobChunk chunk;
  std::string fetched;
  while (reader->Read(&chunk)) {
    EXPECT_EQ(chunk.name(), "final");
    EXPECT_EQ(chunk.sha256(), sha_);
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(fetched.size()));
    fetched += chunk.data();
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(fetched == weights_);
}

TEST_F(UploadTest, BytesThatAreNotTheDeclaredOnesAreRefusedAndLeaveNothing) {
  const v1::RunAssignment run = LeaseRun();
  const int64_t size = static_cast<int64_t>(weights_.size());
  std::string spoiled = weights_;
  spoiled[12345] ^= 1;
  struct Case {
    std::string bytes;
    int64_t size;
    int64_t skip;
    const char* message;
  } cases[] = {
      {spoiled, size, 0, "the bytes hash to"},
      {weights_.substr(0, weights_.size() - 1), size, 0, "arrived of the"},
      {weights_ + "x", size, 0, "more bytes than the"},
      {weights_, size, 4096, "a piece at offset 1052672 where byte 1048576 comes next"},
  };
  for (const Case& c : cases) {
    v1::PutBlobResponse resp;
    const grpc::Status s = Upload(run, c.bytes, sha_, c.size, &resp, 1 << 20, c.skip);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_NE(s.error_message().find(c.message), std::string::npos) << s.error_message();
  }
  EXPECT_TRUE(StoreFiles().empty());
  // A result naming what never arrived is refused; the run stays unfinished.
  const grpc::Status s = Complete(run, sha_, size);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("were not uploaded before it completed"), std::string::npos)
      << s.error_message();
  auto counts = store_->Counts("up");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->done, 0);
}

TEST_F(UploadTest, AFileOverTheLimitOrAnotherWorkersLeaseIsRefusedBeforeAnyByte) {
  const v1::RunAssignment run = LeaseRun();
  v1::PutBlobResponse resp;
  const std::string big(kLimit + 1, 'x');
  grpc::Status s = Upload(run, big, Sha256Hex(big.data(), big.size()), kLimit + 1, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("over this coordinator's limit of 3.1 MB"), std::string::npos)
      << s.error_message();
  v1::RunAssignment forged = run;
  forged.set_lease_secret(std::string(32, '0'));
  s = Upload(forged, weights_, sha_, static_cast<int64_t>(weights_.size()), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  s = Upload(run, weights_, "../../etc/passwd", static_cast<int64_t>(weights_.size()), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_TRUE(StoreFiles().empty());
}

TEST_F(UploadTest, FetchingWhatARunDoesNotHaveSaysWhy) {
  struct Case {
    const char* run;
    const char* which;
    grpc::StatusCode code;
    const char* message;
  } cases[] = {
      {"same_seed#7", "final", grpc::StatusCode::NOT_FOUND, "experiment up has no run same_seed#7"},
      {"same_seed#0", "final", grpc::StatusCode::NOT_FOUND, "run same_seed#0 has no result yet"},
      {"same_seed", "final", grpc::StatusCode::INVALID_ARGUMENT, "expected ARM#INDEX"},
      {"same_seed#0", "best", grpc::StatusCode::INVALID_ARGUMENT, "expected initial, final or all"},
  };
  for (const Case& c : cases) {
    grpc::ClientContext ctx;
    v1::FetchWeightsRequest req;
    req.set_run(c.run);
    req.set_which(c.which);
    auto reader = control_->FetchWeights(&ctx, req);
    v1::BlobChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), c.code) << c.run << " " << c.which;
    EXPECT_NE(s.error_message().find(c.message), std::string::npos) << s.error_message();
  }
}

}  // namespace
}  // namespace repro
