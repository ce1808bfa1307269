// GetBlob: a registered worker fetches the plan's input files from the coordinator's
// blob store in chunks, from any offset; nothing else is served, and no name from the
// wire reaches the file system unless the plan names it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "coordinator/service.h"
#include "store/blobs.h"

namespace repro {
namespace {

namespace fs = std::filesystem;

constexpr char kPlan[] = "experiment: blobs\nruns: 1\nepochs: 1\nmodel: {kind: noop}\n";

class GetBlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("service_blob_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string db = (dir_ / "blobs.db").string();
    auto store = RunStore::Open(db);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto plan = ParsePlan(kPlan, "blobs.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(*store_->EnsureExperiment(*plan, kPlan));

    // 2.5 chunks of bytes that differ by position, in the plan; another blob in the
    // store that the plan does not name.
    for (size_t i = 0; i < kBlobChunkBytes * 5 / 2; ++i) {
      bytes_.push_back(static_cast<char>((i * 131) >> 3));
    }
    sha_ = Sha256Hex(bytes_.data(), bytes_.size());
    other_ = Sha256Hex("other", 5);
    blobs_ = std::make_unique<BlobStore>(BlobStore::RootFor(db));
    ASSERT_TRUE(blobs_->Add(Write("train_x.npy", bytes_), sha_).ok());
    ASSERT_TRUE(blobs_->Add(Write("other", "other"), other_).ok());
    plan->inputs.push_back(InputFile{"train_x", blobs_->PathOf(sha_), sha_,
                                     static_cast<int64_t>(bytes_.size())});

    ServiceOptions options;
    options.blobs = blobs_.get();
    service_ = std::make_unique<CoordinatorService>(store_.get(), *plan, [] { return 1000; },
                                                    options, [](const std::string&) {});
    grpc::ServerBuilder builder;
    builder.RegisterService(static_cast<v1::WorkerService::CallbackService*>(service_.get()));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    workers_ = v1::WorkerService::NewStub(server_->InProcessChannel(grpc::ChannelArguments()));
    v1::RegisterRequest req;
    req.mutable_worker()->set_name("w1");
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(workers_->Register(&ctx, req, &resp).ok());
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
    service_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // The chunks GetBlob sends and the status it ends with.
  grpc::Status Fetch(const std::string& worker, const std::string& sha, int64_t offset,
                     std::vector<v1::BlobChunk>* chunks) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetBlobRequest req;
    req.set_worker(worker);
    req.set_sha256(sha);
    req.set_offset(offset);
    auto reader = workers_->GetBlob(&ctx, req);
    v1::BlobChunk chunk;
    while (reader->Read(&chunk)) chunks->push_back(chunk);
    return reader->Finish();
  }

  fs::path dir_;
  std::string bytes_, sha_, other_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<RunStore> store_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
};

TEST_F(GetBlobTest, ARegisteredWorkerGetsThePlansBlobInChunks) {
  std::vector<v1::BlobChunk> chunks;
  const grpc::Status s = Fetch("w1", sha_, 0, &chunks);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(chunks.size(), 3u);
  std::string got;
  for (const v1::BlobChunk& chunk : chunks) {
    EXPECT_LE(chunk.data().size(), kBlobChunkBytes);
    EXPECT_EQ(chunk.offset(), static_cast<int64_t>(got.size()));
    EXPECT_EQ(chunk.total_size(), static_cast<int64_t>(bytes_.size()));
    got += chunk.data();
  }
  EXPECT_EQ(got, bytes_);
}

TEST_F(GetBlobTest, AnOffsetResumesWhereAPartialCopyStopped) {
  const int64_t offset = static_cast<int64_t>(kBlobChunkBytes) + 12345;
  std::vector<v1::BlobChunk> chunks;
  ASSERT_TRUE(Fetch("w1", sha_, offset, &chunks).ok());
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.front().offset(), offset);
  std::string got;
  for (const v1::BlobChunk& chunk : chunks) got += chunk.data();
  EXPECT_EQ(got, bytes_.substr(static_cast<size_t>(offset)));

  // At the very end: one empty chunk that gives the size.
  chunks.clear();
  ASSERT_TRUE(Fetch("w1", sha_, static_cast<int64_t>(bytes_.size()), &chunks).ok());
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].data(), "");
  EXPECT_EQ(chunks[0].total_size(), static_cast<int64_t>(bytes_.size()));

  chunks.clear();
  EXPECT_EQ(Fetch("w1", sha_, static_cast<int64_t>(bytes_.size()) + 1, &chunks).error_code(),
            grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_TRUE(chunks.empty());
}

TEST_F(GetBlobTest, OnlyThePlansBlobsAreServed) {
  std::vector<v1::BlobChunk> chunks;
  // In the store, but not an input of this plan.
  EXPECT_EQ(Fetch("w1", other_, 0, &chunks).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Fetch("w1", std::string(64, 'a'), 0, &chunks).error_code(),
            grpc::StatusCode::NOT_FOUND);
  for (const std::string& bad : {std::string("../../blobs.db"), sha_.substr(1), std::string(64, 'A'),
                                std::string()}) {
    EXPECT_EQ(Fetch("w1", bad, 0, &chunks).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << bad;
  }
  EXPECT_TRUE(chunks.empty());
}

TEST_F(GetBlobTest, AnUnregisteredWorkerGetsNothing) {
  std::vector<v1::BlobChunk> chunks;
  EXPECT_EQ(Fetch("stranger", sha_, 0, &chunks).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Fetch("", sha_, 0, &chunks).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(chunks.empty());
}

}  // namespace
}  // namespace repro
