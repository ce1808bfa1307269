// Stored results carry a checksum (store/result_checksum.h): a value changed in the file
// after Complete wrote it marks its run corrupt when LoadView reads it, instead of moving
// the report's numbers; a result from before schema 2 is read unchecked. Also what the
// store keeps of a diverged run, and that nothing but Complete changes a stored result.
#include "store/result_checksum.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "store/store.h"

namespace repro {
namespace {

constexpr char kPlan[] = "experiment: c\nruns: 2\nepochs: 2\n";

RunResult Result(double loss) {
  RunResult r;
  r.test_loss = loss;
  r.test_accuracy = 0.75;
  r.data_x_hash = "x";
  r.data_y_hash = "y";
  r.initial_hash = "i";
  r.final_hash = "f";
  r.initial_tensors = {{"a", "1"}, {"b", "2"}};
  r.final_tensors = {{"a", "3"}, {"b", "4"}};
  for (int e = 0; e < 2; ++e) {
    r.epochs.push_back(EpochRecord{e, 1, 0.5, 0.9, 0.625, 2, 0.001, "bd", "wh", {"p", "q"}});
  }
  r.environment = {{"host", "h"}};
  r.predictions = {3, 1, 4, 1, 5};
  return r;
}

// `value` with its lowest mantissa bit flipped: the smallest change a disk can make.
double Flipped(double value) {
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  bits ^= 1;
  std::memcpy(&value, &bits, sizeof bits);
  return value;
}

class ResultChecksumTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "checksum_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    std::remove(path_.c_str());
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto plan = ParsePlan(kPlan, "c.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE(*store_->EnsureExperiment(*plan, kPlan));
    ASSERT_TRUE(store_->UpsertWorker({"w", "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}).ok());
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path_ + suffix).c_str());
  }

  LeasedRun Lease() {
    auto leased = store_->LeaseNext("c", "w", 1000, 60000);
    EXPECT_TRUE(leased.ok() && leased->has_value());
    return leased.ok() && leased->has_value() ? **leased : LeasedRun();
  }

  // Leases and completes every run (4: two arms of two), run i with loss 0.25 * (i + 1).
  void CompleteAll() {
    for (int i = 0; i < 4; ++i) {
      const LeasedRun run = Lease();
      ASSERT_TRUE(*store_->Complete(run.run_id, run.lease_id, Result(0.25 * (i + 1)), 2000));
    }
  }

  // Runs `sql` on the file with the store closed, as another program (or a bad disk) would;
  // `?1` is bound to `value` when the statement has it.
  void Edit(const std::string& sql, double value = 0) {
    store_.reset();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    if (sqlite3_bind_parameter_count(q) > 0) sqlite3_bind_double(q, 1, value);
    EXPECT_EQ(sqlite3_step(q), SQLITE_DONE) << sqlite3_errmsg(db);
    sqlite3_finalize(q);
    sqlite3_close(db);
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  ExperimentView View() {
    auto view = store_->LoadView("c");
    EXPECT_TRUE(view.ok()) << view.status();
    return view.ok() ? *view : ExperimentView();
  }

  std::string path_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(ResultChecksumTest, AFlippedBitInAStoredResultMarksItsRunCorrupt) {
  CompleteAll();
  for (const RunView& run : View().runs) EXPECT_EQ(run.corrupt, "") << run.arm << run.index;
  // One field of each of three runs' results changes on disk; the fourth stays intact.
  // Run ids 1 and 2 are same_seed #0 and #1, 3 and 4 different_seeds #0 and #1.
  Edit("UPDATE attempts SET test_loss = ?1 WHERE run_id = 1", Flipped(0.25));
  Edit("UPDATE epochs SET val_accuracy = ?1 WHERE epoch = 1 AND attempt_id = "
       "(SELECT id FROM attempts WHERE run_id = 2)", Flipped(0.625));
  Edit("UPDATE tensors SET hash = '5' WHERE which = 'final' AND ordinal = 1 AND attempt_id = "
       "(SELECT id FROM attempts WHERE run_id = 3)");
  const ExperimentView view = View();
  ASSERT_EQ(view.runs.size(), 4u);
  for (const RunView& run : view.runs) {
    const bool changed = !(run.arm == "different_seeds" && run.index == 1);  // run id 4
    EXPECT_EQ(run.state, RunState::kDone);
    EXPECT_EQ(absl::StrContains(run.corrupt, "no longer matches the checksum written with it"),
              changed)
        << run.arm << "#" << run.index << ": " << run.corrupt;
  }
}

TEST_F(ResultChecksumTest, AResultStoredBeforeSchemaTwoIsReadUnchecked) {
  CompleteAll();
  Edit("UPDATE attempts SET checksum = NULL, test_loss = ?1 WHERE run_id = 1", 9.5);
  const ExperimentView view = View();
  EXPECT_EQ(view.runs[0].result.test_loss, 9.5);
  EXPECT_EQ(view.runs[0].corrupt, "");
}

TEST_F(ResultChecksumTest, ADivergedRunKeepsItsSentenceAndAnExpiryNoteIsNoDivergence) {
  const LeasedRun diverged = Lease();
  RunResult r = Result(0);
  r.epochs.resize(1);
  r.predictions.clear();
  r.diverged = "diverged: loss nan at epoch 1, batch 7";
  ASSERT_TRUE(*store_->Complete(diverged.run_id, diverged.lease_id, r, 2000));
  // A lease that expired before its result came keeps that note on its attempt; the
  // result is no divergence for it.
  auto late = store_->LeaseNext("c", "w", 1000, 10);
  ASSERT_TRUE(late.ok() && late->has_value());
  ASSERT_EQ(*store_->ExpireLeases(5000), 1);
  ASSERT_TRUE(*store_->Complete((*late)->run_id, (*late)->lease_id, Result(0.5), 6000));

  const ExperimentView view = View();
  EXPECT_EQ(view.runs[0].state, RunState::kDone);
  EXPECT_EQ(view.runs[0].result.diverged, "diverged: loss nan at epoch 1, batch 7");
  EXPECT_EQ(view.runs[0].result.epochs.size(), 1u);
  EXPECT_EQ(view.runs[0].corrupt, "");
  EXPECT_EQ(view.runs[2].state, RunState::kDone);
  EXPECT_EQ(view.runs[2].result.diverged, "");
  EXPECT_EQ(view.runs[2].corrupt, "");
}

TEST_F(ResultChecksumTest, OnlyCompleteWritesAResultsEpochs) {
  const LeasedRun run = Lease();
  // An epoch the worker reported but its result does not hold (it diverged there).
  EpochRecord reported{1, 2, 0.5, 2, 0.5, 2, 0.001, "bd", "wh", {}};
  ASSERT_TRUE(*store_->RecordEpoch(run.run_id, run.lease_id, reported));
  RunResult r = Result(0);
  r.epochs.resize(1);
  r.predictions.clear();
  r.diverged = "diverged: loss inf at epoch 1, batch 0";
  ASSERT_TRUE(*store_->Complete(run.run_id, run.lease_id, r, 2000));
  // A report resent after the result changes nothing of it.
  reported.epoch = 0;
  EXPECT_FALSE(*store_->RecordEpoch(run.run_id, run.lease_id, reported));

  const RunView stored = View().runs[0];
  ASSERT_EQ(stored.result.epochs.size(), 1u);
  EXPECT_EQ(stored.result.epochs[0].loss, 1);
  EXPECT_EQ(stored.corrupt, "");
}

TEST(ResultChecksumValueTest, CoversEveryStoredFieldButTheSignOfZero) {
  const RunResult base = Result(0.25);
  const std::string sum = ResultChecksum(base);
  EXPECT_EQ(sum.size(), 32u);
  EXPECT_EQ(ResultChecksum(base), sum);
  std::vector<RunResult> changed(10, base);
  changed[0].test_accuracy = Flipped(base.test_accuracy);
  changed[1].epochs[0].batch_digests[1] = "r";
  changed[2].environment["host"] = "g";
  changed[3].predictions[4] = 6;
  changed[4].diverged = "diverged: loss nan at epoch 0, batch 0";
  changed[5].final_tensors[0].name = "z";
  changed[6].epochs[1].lr = Flipped(base.epochs[1].lr);
  changed[7].epoch_weights = {"/w"};
  changed[8].weights = {{"final", std::string(64, 'a'), 10}};
  RunResult other_size = changed[8];
  other_size.weights[0].size = 11;
  changed[9] = other_size;
  EXPECT_NE(ResultChecksum(changed[8]), ResultChecksum(changed[9]));
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_NE(ResultChecksum(changed[i]), sum) << i;
  RunResult zero = base;
  zero.test_loss = 0.0;
  RunResult negative_zero = base;
  negative_zero.test_loss = -0.0;  // SQLite reads it back as 0.0
  EXPECT_EQ(ResultChecksum(zero), ResultChecksum(negative_zero));
}

}  // namespace
}  // namespace repro
