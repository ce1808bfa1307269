// The store on its disk: the write-ahead log stays bounded while the coordinator
// runs, the status shows what the store takes on disk, and a full disk fails a change
// with a code to retry on, keeps nothing of it, and lets it through once there is room.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "store/status_view.h"
#include "store/store.h"

namespace repro {
namespace {

constexpr char kPlan[] = "experiment: disk\nruns: 1\nepochs: 200\nmax_attempts: 2\n";

class DiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "disk_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    Remove();
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto plan = ParsePlan(kPlan, "disk.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(*store_->EnsureExperiment(*plan, kPlan));
    ASSERT_TRUE(store_->UpsertWorker({"w", "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}).ok());
  }
  void TearDown() override {
    store_.reset();
    Remove();
  }
  void Remove() {
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path_ + suffix).c_str());
  }
  int64_t WalBytes() {
    std::error_code error;
    const auto size = std::filesystem::file_size(path_ + "-wal", error);
    return error ? 0 : static_cast<int64_t>(size);
  }

  // A finished run of the plan's 200 epochs: some 40 KB of rows to store.
  static RunResult Result() {
    RunResult r;
    r.test_loss = 0.25;
    r.test_accuracy = 0.75;
    r.initial_hash = r.final_hash = r.data_x_hash = r.data_y_hash = std::string(32, 'a');
    r.initial_tensors = {{"conv.weight", std::string(32, 'b')}};
    r.final_tensors = {{"conv.weight", std::string(32, 'c')}};
    for (int e = 0; e < 200; ++e) {
      r.epochs.push_back(EpochRecord{e, 1, 0.5, 1, 0.5, 2, 0.001, std::string(32, 'd'),
                                     std::string(32, 'e'), {}});
    }
    r.predictions.assign(10000, 7);
    return r;
  }

  std::string path_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(DiskTest, TheWalIsCheckpointedWhileAWorkerIsHeardFromAndStatusShowsTheDiskUse) {
  // Each call of a worker notes when it was heard from: one page written and committed
  // per second of the worker's life. 2,000 of them would be 8 MB of WAL if it were
  // never checkpointed; checkpointed every kWalCheckpointPages pages it stays near 4 MB.
  for (int i = 1; i <= 2000; ++i) {
    ASSERT_TRUE(store_->TouchWorker("w", int64_t{1000} * i).ok());
  }
  const int64_t bound = (sql::kWalCheckpointPages + 16) * int64_t{4096 + 24};
  EXPECT_LE(WalBytes(), bound);

  auto status = BuildStatus(*store_, "disk");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->database_bytes, static_cast<int64_t>(std::filesystem::file_size(path_)));
  EXPECT_EQ(status->wal_bytes, WalBytes());
  EXPECT_GT(status->wal_bytes, 0);
  auto text = RenderStatus(*status, "text", 0);
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(absl::StrContains(*text, "Store: ")) << *text;
  EXPECT_TRUE(absl::StrContains(*text, "write-ahead log")) << *text;
  auto json = RenderStatus(*status, "json", 0);
  ASSERT_TRUE(json.ok());
  EXPECT_TRUE(absl::StrContains(*json, "\"wal_bytes\": " + std::to_string(status->wal_bytes)))
      << *json;
}

TEST_F(DiskTest, AFullDiskRefusesAResultWithACodeToRetryOnAndTakesItOnceThereIsRoom) {
  auto leased = store_->LeaseNext("disk", "w", 1000, 60000);
  ASSERT_TRUE(leased.ok() && leased->has_value());
  const LeasedRun run = **leased;
  ASSERT_TRUE(store_->SetMaxGrowthForTesting(1).ok());

  auto full = store_->Complete(run.run_id, run.lease_id, Result(), 2000);
  ASSERT_FALSE(full.ok());
  // RESOURCE_EXHAUSTED: a worker keeps its result and sends it again (worker/daemon.cc).
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted) << full.status();
  EXPECT_TRUE(absl::StrContains(full.status().message(), "full")) << full.status();
  // Nothing of the result was kept; the run is still the worker's.
  auto view = store_->LoadView("disk");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->runs[0].state, RunState::kRunning);
  EXPECT_TRUE(view->runs[0].result.epochs.empty());

  // Room again: the same result, resent, counts; and the store goes on taking changes.
  ASSERT_TRUE(store_->SetMaxGrowthForTesting(1 << 20).ok());
  auto counted = store_->Complete(run.run_id, run.lease_id, Result(), 3000);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_TRUE(*counted);
  auto next = store_->LeaseNext("disk", "w", 4000, 60000);
  ASSERT_TRUE(next.ok() && next->has_value()) << next.status();
  store_.reset();
  auto reopened = RunStore::Open(path_);
  ASSERT_TRUE(reopened.ok());
  auto counts = (*reopened)->Counts("disk");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->done, 1);
  EXPECT_EQ(counts->running, 1);
}

// A result too large for the disk makes SQLite roll back the whole commit that other
// writers' changes wait in. Each of them is then told so, with a code to retry on; no
// change is reported stored that is not, and the store goes on committing.
TEST_F(DiskTest, WritersSharingACommitWithAFailedWriteAreToldToRetryAndLoseNothingTheyWereToldOk) {
  auto leased = store_->LeaseNext("disk", "w", 1000, 60000);
  ASSERT_TRUE(leased.ok() && leased->has_value());
  const LeasedRun run = **leased;
  ASSERT_TRUE(store_->SetMaxGrowthForTesting(8).ok());  // room for small rows only
  std::atomic<bool> stop{false};
  std::thread big([&] {
    while (!stop) store_->Complete(run.run_id, run.lease_id, Result(), 2000).IgnoreError();
  });
  constexpr int kThreads = 8, kEach = 100;
  std::vector<std::vector<absl::Status>> results(kThreads);
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        results[t].push_back(store_->UpsertWorker(
            {"w" + std::to_string(t) + "-" + std::to_string(i), "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}));
      }
    });
  }
  for (std::thread& w : writers) w.join();
  stop = true;
  big.join();
  store_.reset();
  auto reopened = RunStore::Open(path_);
  ASSERT_TRUE(reopened.ok());
  auto workers = (*reopened)->Workers();
  ASSERT_TRUE(workers.ok());
  std::set<std::string> stored;
  for (const WorkerRecord& w : *workers) stored.insert(w.name);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      const absl::Status& s = results[t][i];
      const std::string name = "w" + std::to_string(t) + "-" + std::to_string(i);
      if (s.ok()) {
        EXPECT_TRUE(stored.count(name)) << name << " was told stored but is not";
      } else {
        EXPECT_TRUE(s.code() == absl::StatusCode::kResourceExhausted ||
                    s.code() == absl::StatusCode::kUnavailable) << name << ": " << s;
      }
    }
  }
}

}  // namespace
}  // namespace repro
