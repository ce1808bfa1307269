#include "store/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "store/store_test_util.h"

namespace repro {
namespace {

using store_testing::Sql;

constexpr char kPlan[] = "experiment: t\nruns: 2\nepochs: 1\nmax_attempts: 2\n";

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = ::testing::TempDir() + "store_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".db";
    std::remove(path_.c_str());
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    auto plan = ParsePlan(kPlan, "t.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    plan_ = *plan;
    ASSERT_TRUE(*store_->EnsureExperiment(plan_, kPlan));
    ASSERT_TRUE(store_->UpsertWorker({"w1", "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}).ok());
    ASSERT_TRUE(store_->UpsertWorker({"w2", "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}).ok());
  }
  void TearDown() override {
    store_.reset();
    for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path_ + suffix).c_str());
  }

  static RunResult Result(double loss) {
    RunResult r;
    r.test_loss = loss;
    r.test_accuracy = 0.5;
    r.initial_hash = "i";
    r.final_hash = "f";
    r.initial_tensors = {{"a", "1"}, {"b", "2"}};
    r.final_tensors = {{"a", "3"}, {"b", "4"}};
    r.epochs.push_back(EpochRecord{0, 1, 0.5, 1, 0.5, 2, 0.001, "bd", "wh", {"x", "y"}});
    r.environment = {{"host", "h"}, {"torch", "1.13"}};
    r.predictions = {3, 1, 4};
    return r;
  }

  std::string path_;
  Plan plan_;
  std::unique_ptr<RunStore> store_;
};

TEST_F(StoreTest, CreatesEveryRunOnceAndResumesWithoutDuplicates) {
  auto view = store_->LoadView("t");
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_EQ(view->runs.size(), 4u);
  EXPECT_EQ(view->arms, (std::vector<std::string>{"same_seed", "different_seeds"}));
  EXPECT_EQ(view->runs[3].arm, "different_seeds");
  EXPECT_EQ(view->runs[3].init_seed, 1u);

  // The same plan again (a restarted coordinator): nothing new is created.
  store_.reset();
  auto reopened = RunStore::Open(path_);
  ASSERT_TRUE(reopened.ok());
  auto created = (*reopened)->EnsureExperiment(plan_, kPlan);
  ASSERT_TRUE(created.ok());
  EXPECT_FALSE(*created);
  EXPECT_EQ((*reopened)->LoadView("t")->runs.size(), 4u);
}

TEST_F(StoreTest, RefusesADifferentPlanUnderTheSameName) {
  auto other = ParsePlan("experiment: t\nruns: 3\nepochs: 1\n", "u.yaml");
  auto created = store_->EnsureExperiment(*other, "");
  ASSERT_FALSE(created.ok());
  EXPECT_TRUE(absl::StrContains(created.status().message(), "different plan"));
}

TEST_F(StoreTest, LeasesInterleaveArmsAndCompleteRecordsTheResult) {
  auto a = store_->LeaseNext("t", "w1", 1000, 500);
  auto b = store_->LeaseNext("t", "w2", 1000, 500);
  ASSERT_TRUE(a.ok() && a->has_value() && b.ok() && b->has_value());
  EXPECT_EQ((*a)->arm, "same_seed");
  EXPECT_EQ((*b)->arm, "different_seeds");
  EXPECT_EQ((*a)->index, 0);
  EXPECT_EQ((*b)->index, 0);
  EXPECT_TRUE(*store_->Complete((*a)->run_id, (*a)->lease_id, Result(0.25), 2000));
  auto view = store_->LoadView("t");
  const RunView& run = view->runs[0];
  EXPECT_EQ(run.state, RunState::kDone);
  EXPECT_EQ(run.worker, "w1");
  EXPECT_EQ(run.result.test_loss, 0.25);
  ASSERT_EQ(run.result.final_tensors.size(), 2u);
  EXPECT_EQ(run.result.final_tensors[1].name, "b");
  ASSERT_EQ(run.result.epochs.size(), 1u);
  EXPECT_EQ(run.result.epochs[0].batch_digests, (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(run.result.epochs[0].lr, 0.001);
  EXPECT_EQ(run.result.environment.at("torch"), "1.13");
  EXPECT_EQ(run.result.predictions, (std::vector<uint8_t>{3, 1, 4}));
  EXPECT_EQ(view->runs[2].state, RunState::kRunning);
}

TEST_F(StoreTest, ALateResultFromAnExpiredLeaseIsKeptButNotCountedTwice) {
  auto first = store_->LeaseNext("t", "w1", 1000, 500);
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_EQ(*store_->ExpireLeases(1600), 1);  // w1 went silent
  auto second = store_->LeaseNext("t", "w2", 1700, 500);
  ASSERT_EQ((*second)->run_id, (*first)->run_id);
  EXPECT_EQ((*second)->attempt, 2);
  // The stale lease can no longer be renewed...
  EXPECT_FALSE(*store_->Renew((*first)->run_id, (*first)->lease_id, 1800, 500, 0, 1, 2));
  // ...but its result, arriving first, counts; the second result is an extra attempt.
  EXPECT_TRUE(*store_->Complete((*first)->run_id, (*first)->lease_id, Result(0.1), 1900));
  EXPECT_FALSE(*store_->Complete((*second)->run_id, (*second)->lease_id, Result(0.2), 2000));
  // Resending a completion is idempotent.
  EXPECT_TRUE(*store_->Complete((*first)->run_id, (*first)->lease_id, Result(0.1), 2100));
  auto view = store_->LoadView("t");
  EXPECT_EQ(view->runs[0].state, RunState::kDone);
  EXPECT_EQ(view->runs[0].result.test_loss, 0.1);
  ASSERT_EQ(view->runs[0].extra_results.size(), 1u);  // kept as evidence
  EXPECT_EQ(view->runs[0].extra_results[0].worker, "w2");
  EXPECT_EQ(view->runs[0].extra_results[0].test_loss, 0.2);
  int done = 0;
  for (const RunView& r : view->runs) done += r.state == RunState::kDone;
  EXPECT_EQ(done, 1);
}

TEST_F(StoreTest, FailureRetriesThenMarksTheRunFailedWithTheReason) {
  auto a = store_->LeaseNext("t", "w1", 0, 500);
  EXPECT_EQ(*store_->Fail((*a)->run_id, (*a)->lease_id, "boom 1", 10), FailOutcome::kRetry);
  auto b = store_->LeaseNext("t", "w1", 20, 500);
  ASSERT_EQ((*b)->run_id, (*a)->run_id);
  EXPECT_EQ(*store_->Fail((*b)->run_id, (*b)->lease_id, "boom 2", 30),  // max_attempts 2
            FailOutcome::kFailed);
  auto view = store_->LoadView("t");
  EXPECT_EQ(view->runs[0].state, RunState::kFailed);
  EXPECT_EQ(view->runs[0].error, "boom 2");
  EXPECT_EQ(view->runs[0].attempts, 2);
}

TEST_F(StoreTest, RenewKeepsTheLeaseAndRecordsProgress) {
  auto a = store_->LeaseNext("t", "w1", 0, 500);
  EXPECT_TRUE(*store_->Renew((*a)->run_id, (*a)->lease_id, 400, 500, 0, 3, 10));
  EXPECT_EQ(*store_->ExpireLeases(800), 0);
  EXPECT_EQ(*store_->ExpireLeases(901), 1);
}

// Once a lease expired, every write through it is refused and changes nothing: the run
// stays queued for its next attempt, which starts afresh and counts as attempt 2.
TEST_F(StoreTest, WritesThroughAnExpiredLeaseAreRefusedAndChangeNothing) {
  auto stale = store_->LeaseNext("t", "w1", 0, 500);
  ASSERT_TRUE(stale.ok() && stale->has_value());
  const int64_t run = (*stale)->run_id, lease = (*stale)->lease_id;
  ASSERT_EQ(*store_->ExpireLeases(600), 1);

  EXPECT_FALSE(*store_->Renew(run, lease, 700, 500, 1, 5, 10));
  EXPECT_FALSE(*store_->SaveCheckpoint(run, lease, 0, "state", 700));
  EXPECT_FALSE(*store_->Release(run, lease, "stopping", 700));
  EXPECT_EQ(*store_->Fail(run, lease, "boom", 700), FailOutcome::kStale);
  EXPECT_FALSE(*store_->RecordEpoch(run, lease, Result(0.5).epochs[0]));

  auto view = store_->LoadView("t");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->runs[0].state, RunState::kPending);
  EXPECT_EQ(view->runs[0].attempts, 1);
  EXPECT_EQ(view->runs[0].error, "lease expired: no heartbeat from the worker in time");
  EXPECT_EQ(view->runs[0].current_epoch, -1);
  auto next = store_->LeaseNext("t", "w2", 800, 500);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->run_id, run);
  EXPECT_EQ((*next)->attempt, 2);
  EXPECT_TRUE((*next)->checkpoint.empty());  // the stale checkpoint was not kept
  EXPECT_EQ((*next)->checkpoint_epoch, -1);
}

// A run cut short resumes from its last checkpoint, not an older one.
TEST_F(StoreTest, TheNextAttemptResumesFromTheLastCheckpoint) {
  auto first = store_->LeaseNext("t", "w1", 0, 500);
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_TRUE(*store_->SaveCheckpoint((*first)->run_id, (*first)->lease_id, 0, "old", 100));
  EXPECT_TRUE(*store_->SaveCheckpoint((*first)->run_id, (*first)->lease_id, 1, "new", 200));
  ASSERT_EQ(*store_->ExpireLeases(600), 1);
  auto second = store_->LeaseNext("t", "w2", 700, 500);
  ASSERT_TRUE(second.ok() && second->has_value());
  ASSERT_EQ((*second)->run_id, (*first)->run_id);
  EXPECT_EQ((*second)->checkpoint, "new");
  EXPECT_EQ((*second)->checkpoint_epoch, 1);
  EXPECT_TRUE(*store_->Complete((*second)->run_id, (*second)->lease_id, Result(0.3), 900));
  auto view = store_->LoadView("t");
  EXPECT_EQ(view->runs[0].state, RunState::kDone);
}

// A mix of outcomes: Counts sees every state, Timing only the runs' counted results,
// and a handed-back run is queued again without using up an attempt.
TEST_F(StoreTest, CountsAndTimingAfterDoneFailedAndReleasedRuns) {
  auto a = store_->LeaseNext("t", "w1", 0, 60000);
  auto b = store_->LeaseNext("t", "w2", 1000, 60000);
  ASSERT_TRUE(a.ok() && a->has_value() && b.ok() && b->has_value());
  EXPECT_TRUE(*store_->Complete((*a)->run_id, (*a)->lease_id, Result(0.1), 3000));  // 3 s
  EXPECT_TRUE(*store_->Complete((*b)->run_id, (*b)->lease_id, Result(0.2), 6000));  // 5 s
  for (int attempt = 1; attempt <= 2; ++attempt) {  // max_attempts 2: then failed
    auto c = store_->LeaseNext("t", "w1", 7000, 60000);
    ASSERT_TRUE(c.ok() && c->has_value());
    EXPECT_EQ((*c)->attempt, attempt);
    EXPECT_EQ(*store_->Fail((*c)->run_id, (*c)->lease_id, "boom", 100000),
              attempt < 2 ? FailOutcome::kRetry : FailOutcome::kFailed);
  }
  for (int i = 0; i < 3; ++i) {  // released more often than max_attempts: still queued
    auto d = store_->LeaseNext("t", "w2", 8000, 60000);
    ASSERT_TRUE(d.ok() && d->has_value());
    EXPECT_EQ((*d)->attempt, 1);
    EXPECT_TRUE(*store_->Release((*d)->run_id, (*d)->lease_id, "stopping", 200000));
  }

  auto counts = store_->Counts("t");
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->done, 2);
  EXPECT_EQ(counts->failed, 1);
  EXPECT_EQ(counts->pending, 1);
  EXPECT_EQ(counts->running, 0);
  auto timing = store_->Timing("t");
  ASSERT_TRUE(timing.ok()) << timing.status();
  EXPECT_EQ(timing->done, 2);
  EXPECT_DOUBLE_EQ(timing->mean_run_seconds, 4.0);
  EXPECT_EQ(store_->Counts("nope").status().code(), absl::StatusCode::kNotFound);
}

// The worker table shows who holds which run, and a busy worker's heartbeats are
// written at most once a second.
TEST_F(StoreTest, WorkersShowTheirRunAndLastHeartbeat) {
  EXPECT_FALSE(*store_->TouchWorker("stranger", 1000));
  auto a = store_->LeaseNext("t", "w1", 0, 60000);
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_TRUE(*store_->TouchWorker("w1", 1000));
  EXPECT_TRUE(*store_->TouchWorker("w1", 1500));  // within the second: not written
  auto workers = store_->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ((*workers)[0].name, "w1");
  EXPECT_EQ((*workers)[0].current_run, "same_seed#0");
  EXPECT_EQ((*workers)[0].last_seen_ms, 1000);
  EXPECT_EQ((*workers)[1].current_run, "");
  EXPECT_TRUE(*store_->TouchWorker("w1", 2100));
  EXPECT_TRUE(*store_->Complete((*a)->run_id, (*a)->lease_id, Result(0.1), 2200));
  workers = store_->Workers();
  EXPECT_EQ((*workers)[0].last_seen_ms, 2100);
  EXPECT_EQ((*workers)[0].current_run, "");
}

TEST_F(StoreTest, WorkersKeepTheirCapabilitiesAndLabelsAndGoAndComeBack) {
  WorkerRecord w{"w3", "gpu-host", "2.11", "cuda", 8, 1000, "", {{"gpu_name", "NVIDIA H200"}},
                 {{"pool", "a"}}, 0, ""};
  ASSERT_TRUE(store_->UpsertWorker(w).ok());
  auto back = store_->Worker("w3");
  ASSERT_TRUE(back.ok() && back->has_value());
  EXPECT_EQ((*back)->capabilities.at("gpu_name"), "NVIDIA H200");
  EXPECT_EQ((*back)->labels.at("pool"), "a");
  EXPECT_FALSE((*back)->gone());
  EXPECT_FALSE(store_->Worker("stranger")->has_value());

  ASSERT_TRUE(store_->LeaveWorker("w3", "experiment finished", 2000).ok());
  EXPECT_EQ((*store_->Worker("w3"))->gone_ms, 2000);
  EXPECT_EQ((*store_->Worker("w3"))->gone_reason, "left: experiment finished");
  EXPECT_TRUE(*store_->TouchWorker("w3", 2100));  // within the second, but it was gone
  EXPECT_FALSE((*store_->Worker("w3"))->gone());

  // w1 and w2 were last seen at 0, w3 at 2100: only the first two are silent.
  auto silent = store_->MarkSilentWorkersGone(1000, 5000);
  ASSERT_TRUE(silent.ok()) << silent.status();
  EXPECT_EQ(*silent, (std::vector<std::string>{"w1", "w2"}));
  EXPECT_EQ((*store_->Worker("w1"))->gone_reason, "silent");
  EXPECT_EQ((*store_->Worker("w1"))->gone_ms, 5000);
  EXPECT_TRUE(store_->MarkSilentWorkersGone(1000, 6000)->empty());  // marked once
  ASSERT_TRUE(store_->UpsertWorker({"w1", "h", "1.13", "cpu", 1, 7000, "", {}, {}, 0, ""}).ok());
  EXPECT_FALSE((*store_->Worker("w1"))->gone());  // registering again brings it back
}

TEST_F(StoreTest, ALeaseLimitedToSomeArmsTakesOnlyThoseInTheUsualOrder) {
  const std::vector<std::string> different{"different_seeds"};
  const std::vector<std::string> none;
  const std::vector<std::string> both{"different_seeds", "same_seed"};
  EXPECT_FALSE(store_->LeaseNext("t", "w1", 0, 60000, "", &none)->has_value());
  auto a = store_->LeaseNext("t", "w1", 0, 60000, "", &different);
  ASSERT_TRUE(a.ok() && a->has_value()) << a.status();
  EXPECT_EQ((*a)->arm, "different_seeds");
  EXPECT_EQ((*a)->index, 0);
  // Both arms: index first, then the plan's arm order, as an unrestricted lease.
  auto b = store_->LeaseNext("t", "w2", 0, 60000, "", &both);
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->arm, "same_seed");
  EXPECT_EQ((*b)->index, 0);
  auto c = store_->LeaseNext("t", "w2", 0, 60000, "", &both);
  EXPECT_EQ((*c)->arm, "same_seed");
  EXPECT_EQ((*c)->index, 1);
  auto d = store_->LeaseNext("t", "w1", 0, 60000, "", &different);
  EXPECT_EQ((*d)->arm, "different_seeds");
  EXPECT_EQ((*d)->index, 1);
  EXPECT_FALSE(store_->LeaseNext("t", "w1", 0, 60000, "", &different)->has_value());

  // What spread balances: the runs each worker holds or finished, per arm.
  ASSERT_TRUE(*store_->Complete((*b)->run_id, (*b)->lease_id, Result(0.1), 10));
  auto by_worker = store_->ArmRunsByWorker("t", "same_seed");
  ASSERT_TRUE(by_worker.ok()) << by_worker.status();
  EXPECT_EQ(*by_worker, (std::map<std::string, int>{{"w2", 2}}));
  EXPECT_EQ(*store_->ArmRunsByWorker("t", "different_seeds"), (std::map<std::string, int>{{"w1", 2}}));
}

// `column` (an expression) of every attempt in the file at `path`, in the order made.
std::vector<std::string> Attempts(const std::string& path, const std::string& column) {
  std::vector<std::string> out;
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  const std::string sql = "SELECT " + column + " FROM attempts ORDER BY id";
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr), SQLITE_OK);
  while (sqlite3_step(q) == SQLITE_ROW) {
    out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(q, 0)));
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return out;
}

TEST_F(StoreTest, ALeaseKeepsItsWorkerAndTheHashOfItsSecret) {
  auto a = store_->LeaseNext("t", "w1", 0, 500, std::string(64, 'e'));
  ASSERT_TRUE(a.ok() && a->has_value());
  auto holder = store_->LeaseOwner((*a)->run_id, (*a)->lease_id);
  ASSERT_TRUE(holder.ok()) << holder.status();
  EXPECT_EQ(holder->worker, "w1");
  EXPECT_EQ(holder->secret_hash, std::string(64, 'e'));
  EXPECT_EQ(store_->LeaseOwner((*a)->run_id, (*a)->lease_id + 1).status().code(),
            absl::StatusCode::kNotFound);
}

// Cancelling ends the running attempts with their runs: none stays "running", its
// worker holds no run, and a result that comes later is only an extra attempt.
TEST_F(StoreTest, CancelEndsTheRunningAttemptsAndALateResultLeavesTheRunFailed) {
  auto a = store_->LeaseNext("t", "w1", 0, 60000);
  ASSERT_TRUE(a.ok() && a->has_value());
  EXPECT_EQ(*store_->Cancel("t", "enough", 1000), 4);
  EXPECT_EQ(Attempts(path_, "outcome || ': ' || error"),
            (std::vector<std::string>{"failed: cancelled: enough"}));
  EXPECT_EQ((*store_->Workers())[0].current_run, "");
  EXPECT_FALSE(*store_->Complete((*a)->run_id, (*a)->lease_id, Result(0.1), 2000));
  auto view = store_->LoadView("t");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->runs[0].state, RunState::kFailed);
  EXPECT_EQ(view->runs[0].error, "cancelled: enough");
  EXPECT_EQ(view->runs[0].worker, "w1");  // the worker of its last attempt
  ASSERT_EQ(view->runs[0].extra_results.size(), 1u);
  EXPECT_EQ(store_->Counts("t")->done, 0);
}

// When a result from an expired lease counts first, the attempt leased after it is not
// needed: it ends rather than stay "running" for ever.
TEST_F(StoreTest, AnEarlierAttemptsResultEndsTheAttemptLeasedAfterIt) {
  auto first = store_->LeaseNext("t", "w1", 1000, 500);
  ASSERT_TRUE(first.ok() && first->has_value());
  ASSERT_EQ(*store_->ExpireLeases(1600), 1);
  auto second = store_->LeaseNext("t", "w2", 1700, 500);
  ASSERT_EQ((*second)->run_id, (*first)->run_id);
  EXPECT_TRUE(*store_->Complete((*first)->run_id, (*first)->lease_id, Result(0.1), 1900));
  EXPECT_EQ(Attempts(path_, "outcome"), (std::vector<std::string>{"done", "failed"}));
  EXPECT_EQ(Attempts(path_, "error")[1],
            "not needed: the result of an earlier attempt counted first");
  EXPECT_EQ((*store_->Workers())[1].current_run, "");  // w2 holds no run
  EXPECT_FALSE(*store_->Renew((*second)->run_id, (*second)->lease_id, 2000, 500, 0, 1, 2));
}

TEST_F(StoreTest, ASchemaOneDatabaseIsUpgradedKeepingItsRuns) {
  ASSERT_TRUE(store_->LeaseNext("t", "w1", 1000, 60000).ok());
  store_.reset();
  // Make the file what repro wrote before schema 2: no secret_hash, checksum or diverged column.
  ASSERT_NO_FATAL_FAILURE(Sql(path_,
                              "ALTER TABLE attempts DROP COLUMN secret_hash;"
                              "ALTER TABLE attempts DROP COLUMN checksum;"
                              "ALTER TABLE attempts DROP COLUMN diverged;"
                              "UPDATE meta SET value = '1' WHERE key = 'schema_version';"));

  auto store = RunStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  auto counts = store_->Counts("t");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->running, 1);
  EXPECT_EQ(counts->pending, 3);
  store_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db,
                               "SELECT (SELECT value FROM meta WHERE key = 'schema_version'), "
                               "(SELECT COUNT(*) FROM pragma_table_info('attempts') "
                               " WHERE name IN ('secret_hash', 'checksum', 'diverged'))",
                               -1, &q, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(sqlite3_column_text(q, 0))),
            std::to_string(kSchemaVersion));
  EXPECT_EQ(sqlite3_column_int(q, 1), 3);
  sqlite3_finalize(q);
  sqlite3_close(db);
}

TEST_F(StoreTest, ASchemaFourDatabaseGainsTheWorkersPlacementColumns) {
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(Sql(path_,
                              "ALTER TABLE workers DROP COLUMN capabilities;"
                              "ALTER TABLE workers DROP COLUMN labels;"
                              "ALTER TABLE workers DROP COLUMN gone_ms;"
                              "ALTER TABLE workers DROP COLUMN gone_reason;"
                              "DROP INDEX runs_pending_by_arm;"
                              "UPDATE meta SET value = '4' WHERE key = 'schema_version';"));
  auto store = RunStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  auto w1 = store_->Worker("w1");
  ASSERT_TRUE(w1.ok() && w1->has_value()) << w1.status();
  EXPECT_TRUE((*w1)->labels.empty());
  ASSERT_TRUE(store_->LeaveWorker("w1", "drained", 10).ok());
  EXPECT_EQ((*store_->Worker("w1"))->gone_reason, "left: drained");
  const std::vector<std::string> arms{"same_seed"};
  EXPECT_TRUE(store_->LeaseNext("t", "w1", 0, 60000, "", &arms)->has_value());
}

TEST_F(StoreTest, TheTestLabelsAreKeptOnceAndReadWithTheView) {
  EXPECT_FALSE(*store_->SetTestLabels("t", {}));  // none read (--skip-data-check)
  EXPECT_TRUE(store_->LoadView("t")->test_labels.empty());
  EXPECT_TRUE(*store_->SetTestLabels("t", {3, 1, 4, 0, 255}));
  EXPECT_FALSE(*store_->SetTestLabels("t", {9}));  // a later start keeps the first
  EXPECT_FALSE(store_->SetTestLabels("nope", {1}).ok());
  EXPECT_EQ(store_->LoadView("t")->test_labels, (std::vector<uint8_t>{3, 1, 4, 0, 255}));
  EXPECT_EQ(store_->LoadView("t", /*with_results=*/false)->test_labels.size(), 5u);
  store_.reset();
  auto reopened = RunStore::Open(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->LoadView("t")->test_labels, (std::vector<uint8_t>{3, 1, 4, 0, 255}));
}

TEST_F(StoreTest, ASchemaFiveDatabaseGainsTheTestLabelsColumn) {
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(Sql(path_,
                              "ALTER TABLE experiments DROP COLUMN test_labels;"
                              "ALTER TABLE experiments DROP COLUMN adaptive;"
                              "UPDATE meta SET value = '5' WHERE key = 'schema_version';"));
  auto store = RunStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  EXPECT_TRUE(store_->LoadView("t")->test_labels.empty());
  EXPECT_TRUE(*store_->SetTestLabels("t", {7, 7}));
  EXPECT_EQ(store_->LoadView("t")->test_labels, (std::vector<uint8_t>{7, 7}));
}

constexpr char kAdaptivePlan[] =
    "experiment: ad\nepochs: 1\nbase_seed: 100\n"
    "runs: {min: 2, max: 5, step: 2, until: {ratio_ci_width: 0.2}}\n";

TEST_F(StoreTest, AnAdaptiveExperimentKeepsItsLooksAndTheRunsTheyAdd) {
  auto plan = ParsePlan(kAdaptivePlan, "ad.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(*store_->EnsureExperiment(*plan, kAdaptivePlan));
  auto state = store_->Adaptive("ad");
  ASSERT_TRUE(state.ok() && state->has_value()) << state.status();
  EXPECT_EQ((*state)->min, 2);
  EXPECT_EQ((*state)->max, 5);
  EXPECT_EQ((*state)->looks_planned, 3);  // at 2, 4 and 5 runs
  EXPECT_DOUBLE_EQ((*state)->level, 1 - 0.05 / 3);
  EXPECT_EQ((*state)->reference, "different_seeds");
  EXPECT_TRUE((*state)->looks.empty());
  EXPECT_FALSE(store_->Adaptive("t")->has_value());  // a fixed count
  EXPECT_EQ(store_->RecordLook(plan_, 1, {}).code(), absl::StatusCode::kFailedPrecondition);

  AdaptiveLook look;
  look.arms.push_back({"same_seed", 2, 2, 0.5, 0.1, 2.5, false, 40});
  look.arms.push_back({"other", 2, 2, std::nullopt, std::nullopt, std::nullopt, false, std::nullopt});
  look.decision = "more";
  look.added = {{"different_seeds", 2}, {"same_seed", 2}};
  ASSERT_TRUE(store_->RecordLook(*plan, 1, look).ok());
  // The same look again (a second caller) adds nothing.
  EXPECT_EQ(store_->RecordLook(*plan, 1, look).code(), absl::StatusCode::kFailedPrecondition);
  auto view = store_->LoadView("ad");
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_EQ(view->runs.size(), 8u);
  const RunView& added = view->runs[7];  // different_seeds#3, seeded as the plan seeds it
  EXPECT_EQ(added.arm, "different_seeds");
  EXPECT_EQ(added.index, 3);
  EXPECT_EQ(added.init_seed, 103u);
  EXPECT_EQ(added.state, RunState::kPending);
  EXPECT_EQ(view->runs[3].init_seed, 100u);  // same_seed#3
  ASSERT_TRUE(view->adaptive.has_value());
  ASSERT_EQ(view->adaptive->looks.size(), 1u);
  EXPECT_EQ(view->adaptive->stopped(), "");
  const AdaptiveArmLook& kept = view->adaptive->looks[0].arms[0];
  EXPECT_EQ(kept.ratio, 0.5);
  EXPECT_EQ(kept.high, 2.5);
  EXPECT_EQ(kept.runs_needed, 40);
  EXPECT_FALSE(view->adaptive->looks[0].arms[1].ratio.has_value());
  EXPECT_EQ(view->adaptive->looks[0].added, look.added);

  AdaptiveLook last;
  last.decision = "reached";
  ASSERT_TRUE(store_->RecordLook(*plan, 2, last).ok());
  EXPECT_EQ((*store_->Adaptive("ad"))->stopped(), "reached");
  EXPECT_EQ(store_->RecordLook(*plan, 3, look).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->LoadView("ad")->runs.size(), 8u);
}

TEST_F(StoreTest, ADamagedAdaptiveStateIsAnErrorNotAFreshStart) {
  auto plan = ParsePlan(kAdaptivePlan, "ad.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(*store_->EnsureExperiment(*plan, kAdaptivePlan));
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(Sql(path_, "UPDATE experiments SET adaptive = '{\"min\": 2}' "
                                     "WHERE name = 'ad';"));
  auto store = RunStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  for (const absl::Status& s : {store_->Adaptive("ad").status(), store_->LoadView("ad").status(),
                                store_->RecordLook(*plan, 1, {})}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "the adaptive run count's state is damaged")) << s;
  }
  EXPECT_EQ(store_->LoadView("ad", /*with_results=*/false).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(StoreTest, ASchemaSixDatabaseGainsTheAdaptiveColumn) {
  store_.reset();
  ASSERT_NO_FATAL_FAILURE(Sql(path_,
                              "ALTER TABLE experiments DROP COLUMN adaptive;"
                              "UPDATE meta SET value = '6' WHERE key = 'schema_version';"));
  auto store = RunStore::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = std::move(*store);
  EXPECT_FALSE(store_->Adaptive("t")->has_value());
  auto plan = ParsePlan(kAdaptivePlan, "ad.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(*store_->EnsureExperiment(*plan, kAdaptivePlan));
  EXPECT_TRUE(store_->LoadView("ad")->adaptive.has_value());
}

TEST_F(StoreTest, RefusesAFileThatIsNotADatabase) {
  const std::string bad = path_ + ".txt";
  FILE* f = std::fopen(bad.c_str(), "w");
  std::fputs("this is not sqlite, it is a text file that is long enough to have a header.....",
             f);
  std::fclose(f);
  auto store = RunStore::Open(bad);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::StrContains(store.status().message(), bad)) << store.status();
  std::remove(bad.c_str());
}

}  // namespace
}  // namespace repro

namespace repro {
namespace {

// Many writers at once share commits (group_commit.h), and still every run is leased
// and completed exactly once, every result is on disk when Complete returns (a store
// reopened from the file has them all), and a view taken meanwhile is consistent.
TEST(GroupCommitTest, ConcurrentWritersShareCommitsAndLoseNothing) {
  const std::string path = ::testing::TempDir() + "group_commit_test_" + std::to_string(getpid()) + ".db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  const std::string text = "experiment: g\nruns: 200\nepochs: 1\n";
  auto plan = ParsePlan(text, "g.yaml");
  ASSERT_TRUE(plan.ok()) << plan.status();
  constexpr int kThreads = 16;
  {
    auto store = RunStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(*(*store)->EnsureExperiment(*plan, text));
    std::atomic<int> completed{0}, errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        const std::string worker = "w" + std::to_string(t);
        if (!(*store)->UpsertWorker({worker, "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}).ok()) ++errors;
        for (int64_t now = 1;; ++now) {
          if (!(*store)->TouchWorker(worker, now * 1000).ok()) ++errors;
          auto leased = (*store)->LeaseNext("g", worker, now, 1 << 30);
          if (!leased.ok()) { ++errors; return; }
          if (!leased->has_value()) return;
          RunResult r;
          r.initial_hash = r.final_hash = "h";
          r.initial_tensors = r.final_tensors = {{"noop", "t"}};
          r.epochs.push_back(EpochRecord{0, 1, 0.5, 1, 0.5, 2, 0.001, "bd", "wh", {}});
          auto counted = (*store)->Complete((**leased).run_id, (**leased).lease_id, r, now);
          if (!counted.ok() || !*counted) { ++errors; return; }
          ++completed;
          if (t == 0 && now % 20 == 0 && !(*store)->LoadView("g").ok()) ++errors;
        }
      });
    }
    for (auto& thread : threads) thread.join();
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(completed.load(), 400);
  }
  auto reopened = RunStore::Open(path);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  auto counts = (*reopened)->Counts("g");
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->done, 400);
  EXPECT_EQ(counts->pending + counts->running + counts->failed, 0);
  auto view = (*reopened)->LoadView("g");
  ASSERT_TRUE(view.ok()) << view.status();
  for (const RunView& run : view->runs) {
    EXPECT_EQ(run.attempts, 1) << run.arm << "#" << run.index;
    EXPECT_EQ(run.result.epochs.size(), 1u) << run.arm << "#" << run.index;
  }
  // Without the results, for status: the same runs and states.
  auto light = (*reopened)->LoadView("g", /*with_results=*/false);
  ASSERT_TRUE(light.ok()) << light.status();
  ASSERT_EQ(light->runs.size(), 400u);
  EXPECT_TRUE(light->runs[0].result.epochs.empty());
  EXPECT_EQ(light->runs[0].state, RunState::kDone);
  reopened->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
}

}  // namespace
}  // namespace repro
