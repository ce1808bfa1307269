// Integration tests: a killed worker or coordinator, draining on SIGTERM or an eviction
// notice, a run resumed from its checkpoint (the fixture: tests/integration_fixture.h).
#include "tests/integration_fixture.h"

namespace repro::testing {
namespace {

// ---------------------------------------------------------------------------------------
// Failures: a worker killed mid-run, a coordinator killed mid-experiment.

TEST_F(IntegrationTest, KilledWorkerRunCompletesElsewhere) {
  const std::string plan = Path("plan.yaml"), db = Path("killed-worker.db");
  WriteFile(plan, PlanText("killed-worker", 2, 3, 6000, 100));
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db, "--heartbeat-ms",
                                std::to_string(kHeartbeatMs)},
                               "coordinator", &c));
  const std::vector<std::string> remote = {"--coordinator", c.address};
  ChildProcess* wa = StartWorker(c.address, "wA");
  ChildProcess* wb = StartWorker(c.address, "wB");
  ASSERT_TRUE(wa != nullptr && wb != nullptr);

  // Kill wA while it is in the first two of three epochs, so its run cannot have finished.
  std::string victim_arm;
  int victim_index = -1;
  Json last;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto status = Status(remote);
        if (!status) return false;
        last = *status;
        for (const Json& run : status->at("running")) {
          if (run.at("worker") == "wA" && run.at("epoch").get<int>() < 2) {
            victim_arm = run.at("arm");
            victim_index = run.at("index");
            return true;
          }
        }
        return false;
      },
      60s, 20ms))
      << "no run was seen running on wA; last status: " << last.dump();
  wa->Signal(SIGKILL);
  ASSERT_TRUE(wa->Wait(10s));
  ASSERT_TRUE(wa->killed_by_signal());

  ASSERT_TRUE(WaitForDone(remote, 4, 120s));
  CommandResult r = Reproctl(remote, {"report", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto report = ParseJson(r.out);
  ASSERT_TRUE(report.has_value()) << r.out;
  EXPECT_EQ(report->at("complete"), true);
  ASSERT_EQ(report->at("runs").size(), 4u);
  for (const Json& run : report->at("runs")) {
    EXPECT_EQ(run.at("state"), "done") << run.dump();
    if (run.at("arm") == victim_arm && run.at("index") == victim_index) {
      EXPECT_EQ(run.at("worker"), "wB") << "the killed worker's run: " << run.dump();
      EXPECT_GE(run.at("attempts").get<int>(), 2) << run.dump();
    }
  }
  ExpectSameSeedArmIdentical(*report, 2);

  {
    Db store(db);
    ASSERT_TRUE(store.ok()) << store.error();
    EXPECT_EQ(store.Int("SELECT COUNT(*) FROM runs WHERE state = 'done'"), 4);
    const std::string victim = absl::StrCat("r.arm = '", victim_arm, "' AND r.idx = ", victim_index);
    EXPECT_EQ(store.Int("SELECT COUNT(*) FROM attempts a JOIN runs r ON a.run_id = r.id WHERE " +
                        victim + " AND a.worker = 'wA' AND a.outcome = 'expired'"),
              1)
        << "the attempt of the killed worker is not recorded as expired: "
        << absl::StrJoin(store.Rows("SELECT a.worker, a.outcome FROM attempts a JOIN runs r "
                                    "ON a.run_id = r.id WHERE " + victim),
                         "; ", [](std::string* out, const std::vector<std::string>& row) {
                           absl::StrAppend(out, absl::StrJoin(row, " "));
                         });
    EXPECT_EQ(store.Int("SELECT COUNT(*) FROM attempts WHERE worker = 'wA' AND outcome = 'done'"),
              store.Int("SELECT COUNT(*) FROM runs r JOIN attempts a ON a.id = r.result_attempt "
                        "WHERE a.worker = 'wA'"));
  }
  ExpectStoreComplete(db, 4);

  // wB leaves on its own once the experiment has finished.
  ASSERT_TRUE(wb->Wait(30s)) << "wB did not exit after the experiment finished";
  EXPECT_EQ(wb->exit_code(), 0);
  c.process->Signal(SIGTERM);
  EXPECT_TRUE(c.process->Wait(30s));
}

TEST_F(IntegrationTest, KilledCoordinatorResumes) {
  const std::string plan = Path("plan.yaml"), db = Path("killed-coordinator.db");
  WriteFile(plan, PlanText("killed-coordinator", 3, 2, 3000, 100));
  auto [address, command] = OnAFixedPort(plan, db);
  ASSERT_FALSE(address.empty());
  ChildProcess* first = Spawn(command, "coordinator-1");
  ASSERT_NE(first, nullptr);
  ChildProcess* wa = StartWorker(address, "wA");
  ChildProcess* wb = StartWorker(address, "wB");
  ASSERT_TRUE(wa != nullptr && wb != nullptr);

  const std::vector<std::string> file = {"--db", db};
  ASSERT_TRUE(WaitForDone(file, 1, 120s, 20ms));
  first->Signal(SIGKILL);
  ASSERT_TRUE(first->Wait(10s));
  ASSERT_TRUE(first->killed_by_signal());
  auto at_kill = Status(file);
  ASSERT_TRUE(at_kill.has_value()) << "the store is unreadable after the coordinator was killed";
  const int done_at_kill = at_kill->at("runs").at("done");
  EXPECT_LT(done_at_kill, 6) << "the experiment finished before the coordinator was killed, "
                                "so the restart had nothing to resume";

  command.push_back("--exit-when-done");
  ChildProcess* second = Spawn(command, "coordinator-2");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->Wait(120s)) << "the restarted coordinator did not finish the experiment";
  EXPECT_EQ(second->exit_code(), 0);
  const std::string log = ReadFile(second->stderr_path());
  EXPECT_TRUE(absl::StrContains(log, "resuming")) << log;

  ExpectStoreComplete(db, 6);
  CommandResult r = Reproctl(file, {"report", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto report = ParseJson(r.out);
  ASSERT_TRUE(report.has_value()) << r.out;
  EXPECT_EQ(report->at("complete"), true);
  EXPECT_EQ(report->at("runs").size(), 6u);
  for (const Json& run : report->at("runs")) {
    const std::string worker = run.at("worker");
    EXPECT_TRUE(worker == "wA" || worker == "wB") << run.dump();
  }
  ExpectSameSeedArmIdentical(*report, 3);
}

// ---------------------------------------------------------------------------------------
// Draining: a worker told to stop (SIGTERM, or an eviction notice from the metadata
// endpoint) hands its run back within 10 s without using up one of the run's attempts.

class DrainTest : public IntegrationTest {
 protected:
  // Starts a coordinator and worker wA, waits until wA is training, and returns the
  // run it holds as "arm#index".
  std::string StartAndWaitForTraining(const std::vector<std::string>& worker_flags) {
    plan_ = Path("plan.yaml");
    db_ = Path("drain.db");
    WriteFile(plan_, PlanText("drain", 1, 3, 20000, 100));
    if (!StartCoordinator({"--plan", plan_, "--db", db_, "--heartbeat-ms",
                           std::to_string(kHeartbeatMs)},
                          "coordinator", &coordinator_)) {
      ADD_FAILURE() << "no coordinator";
      return "";
    }
    std::vector<std::string> argv = {kWorker, "--coordinator", coordinator_.address, "--name", "wA"};
    argv.insert(argv.end(), worker_flags.begin(), worker_flags.end());
    worker_ = Spawn(argv, "wA");
    std::string held;
    WaitFor(
        [&] {
          auto status = Status({"--coordinator", coordinator_.address});
          if (!status) return false;
          for (const Json& run : status->at("running")) {
            if (run.at("worker") == "wA" && run.at("batch").get<int>() > 0) {
              held = absl::StrCat(run.at("arm").get<std::string>(), "#", run.at("index").get<int>());
            }
          }
          return !held.empty();
        },
        60s, 20ms);
    return held;
  }

  // After the drain: wA exited 0 within 10 s, its attempt is 'released', the run is
  // pending with no attempt used, and another worker finishes the experiment.
  void ExpectDrainedAndFinishable(std::chrono::steady_clock::time_point asked) {
    ASSERT_TRUE(worker_->Wait(10s)) << "the worker did not exit within 10 s of being asked to stop";
    EXPECT_LE(std::chrono::steady_clock::now() - asked, 10s);
    EXPECT_EQ(worker_->exit_code(), 0) << ReadFile(worker_->stderr_path());
    {
      Db store(db_);
      EXPECT_EQ(store.Int("SELECT COUNT(*) FROM attempts WHERE worker = 'wA' AND outcome = 'released'"), 1)
          << ReadFile(worker_->stderr_path());
      // Both runs (one per arm) are queued, neither has used an attempt.
      EXPECT_EQ(store.Int("SELECT COUNT(*) FROM runs WHERE state = 'pending' AND attempts = 0"), 2);
    }
    ChildProcess* wb = StartWorker(coordinator_.address, "wB");
    ASSERT_NE(wb, nullptr);
    ASSERT_TRUE(WaitForDone({"--db", db_}, 2, 120s));
    Db store(db_);
    EXPECT_EQ(store.Int("SELECT COUNT(*) FROM runs WHERE state = 'done'"), 2);
    EXPECT_EQ(store.Int("SELECT COUNT(*) FROM attempts WHERE outcome = 'done'"), 2);
  }

  std::string plan_, db_;
  Coordinator coordinator_;
  ChildProcess* worker_ = nullptr;
};

TEST_F(DrainTest, SigtermHandsTheRunBackWithinTenSeconds) {
  const std::string held = StartAndWaitForTraining({});
  ASSERT_FALSE(held.empty()) << "wA never started training";
  const auto asked = std::chrono::steady_clock::now();
  worker_->Signal(SIGTERM);
  ExpectDrainedAndFinishable(asked);
}

TEST_F(DrainTest, AnEvictionNoticeDrainsTheWorker) {
  FakeEndpoint metadata(R"({"DocumentIncarnation": 1, "Events": []})");
  const std::string url = absl::StrCat("http://127.0.0.1:", metadata.port(),
                                       "/metadata/scheduledevents?api-version=2020-07-01");
  const std::string held = StartAndWaitForTraining(
      {"--scheduled-events", url, "--scheduled-events-interval-ms", "100"});
  ASSERT_FALSE(held.empty()) << "wA never started training";
  EXPECT_GT(metadata.metadata_requests(), 0) << "the worker never asked the endpoint";
  const auto asked = std::chrono::steady_clock::now();
  metadata.set_body(R"({"DocumentIncarnation": 2, "Events": [{"EventId": "e1",
      "EventType": "Preempt", "ResourceType": "VirtualMachine", "NotBefore": ""}]})");
  ExpectDrainedAndFinishable(asked);
  EXPECT_TRUE(absl::StrContains(ReadFile(worker_->stderr_path()), "eviction announced (Preempt"));
}

// ---------------------------------------------------------------------------------------
// Checkpoints: a run whose worker dies resumes on another worker from its last
// checkpoint and ends bit-identical to the same run never interrupted (CPU,
// deterministic algorithms, one thread).

TEST_F(IntegrationTest, AResumedRunEndsWithTheUninterruptedRunsFinalHash) {
  const std::string plan = Path("plan.yaml");
  WriteFile(plan, PlanText("checkpoints", 1, 4, 6000, 100) + "checkpoint_every: 1\n");

  // The reference: the same plan, never interrupted.
  const std::string reference_db = Path("reference.db");
  CommandResult reference =
      Run({kCoordinator, "--plan", plan, "--db", reference_db, "--listen", "127.0.0.1:0",
           "--local-workers", "1", "--exit-when-done"});
  ASSERT_EQ(reference.code, 0) << reference.err;
  std::map<std::string, std::string> uninterrupted;
  {
    Db store(reference_db);
    for (const auto& row : store.Rows("SELECT r.arm, a.final_hash FROM runs r JOIN attempts a "
                                      "ON a.id = r.result_attempt")) {
      uninterrupted[row[0]] = row[1];
    }
  }
  ASSERT_EQ(uninterrupted.size(), 2u);

  // The same plan again: wA trains until it has saved a checkpoint and is well into the
  // next epoch, then dies; wB takes the run over from the checkpoint.
  const std::string db = Path("interrupted.db");
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db, "--heartbeat-ms",
                                std::to_string(kHeartbeatMs)},
                               "coordinator", &c));
  ChildProcess* wa = StartWorker(c.address, "wA");
  ASSERT_NE(wa, nullptr);
  std::string victim_arm;
  ASSERT_TRUE(WaitFor(
      [&] {
        Db store(db);
        victim_arm = store.Text(
            "SELECT r.arm FROM runs r JOIN checkpoints k ON k.run_id = r.id "
            "WHERE r.state = 'running' AND k.epoch >= 0 AND r.progress_epoch > k.epoch "
            "AND r.progress_batch > 0");
        return !victim_arm.empty();
      },
      120s, 20ms))
      << "wA never got past a checkpoint";
  wa->Signal(SIGKILL);
  ASSERT_TRUE(wa->Wait(10s));
  ChildProcess* wb = StartWorker(c.address, "wB");
  ASSERT_NE(wb, nullptr);
  ASSERT_TRUE(WaitForDone({"--db", db}, 2, 180s));

  Db store(db);
  for (const auto& row : store.Rows("SELECT r.arm, a.final_hash, r.attempts FROM runs r "
                                    "JOIN attempts a ON a.id = r.result_attempt")) {
    EXPECT_EQ(row[1], uninterrupted[row[0]]) << "run of arm " << row[0];
    if (row[0] == victim_arm) {
      EXPECT_EQ(row[2], "2") << "the interrupted run's attempts";
    }
  }
  EXPECT_EQ(store.Int("SELECT COUNT(*) FROM checkpoints"), 0) << "finished runs keep no checkpoint";
  EXPECT_TRUE(absl::StrContains(ReadFile(wb->stderr_path()), "resuming from the checkpoint after epoch"))
      << ReadFile(wb->stderr_path());
  ExpectStoreComplete(db, 2);
}

}  // namespace
}  // namespace repro::testing
