// Adaptive run counts end to end: real coordinator and worker processes on loopback,
// real training on Fashion-MNIST. The coordinator adds rounds while the rule asks for
// them, workers stay through the looks, a coordinator killed between rounds resumes
// without adding a round twice, and same-seed CPU runs (all alike) settle at the first
// look. The stopping rule's arithmetic is checked against scores chosen by seed in
// coordinator/service_adaptive_test.cc.
#include "tests/integration_fixture.h"

namespace repro::testing {
namespace {

// A small Fashion-MNIST plan of one epoch whose run count is `runs` (adaptive).
std::string AdaptivePlan(const std::string& name, const std::string& runs, const std::string& more) {
  return absl::StrCat("experiment: ", name, "\nruns: ", runs, "\nepochs: 1\n",
                      "dataset: {kind: fashion-mnist, path: ", kFashionMnist,
                      ", train_limit: 600, test_limit: 100}\n", more);
}

TEST_F(IntegrationTest, AnAdaptiveExperimentKilledBetweenRoundsAddsEachRoundOnce) {
  const std::string plan = Path("plan.yaml"), db = Path("adaptive.db");
  // Two arms with the same seeds train the same models on one machine: the ratio is 1,
  // and its interval at 2, 4 or 6 runs is far wider than 0.01, so the rule runs to max.
  WriteFile(plan, AdaptivePlan(
                      "adaptive", "{min: 2, max: 6, step: 2, until: {ratio_ci_width: 0.01}}",
                      "arms: {a: {seed: per_run}, different_seeds: {seed: per_run}}\n"));
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  std::vector<std::string> command = {kCoordinator, "--plan", plan, "--db", db, "--listen",
                                      address, "--heartbeat-ms", std::to_string(kHeartbeatMs)};
  ChildProcess* first = Spawn(command, "coordinator-1");
  ASSERT_NE(first, nullptr);
  ASSERT_NE(StartWorker(address, "wA"), nullptr);
  ASSERT_NE(StartWorker(address, "wB"), nullptr);

  const std::vector<std::string> file = {"--db", db};
  ASSERT_TRUE(WaitFor(
      [&] {
        auto status = Status(file);
        return status && status->at("adaptive").is_object() &&
               !status->at("adaptive").at("looks").empty();
      },
      120s, 20ms));
  first->Signal(SIGKILL);
  ASSERT_TRUE(first->Wait(10s));
  auto at_kill = Status(file);
  ASSERT_TRUE(at_kill.has_value());
  const size_t looks_at_kill = at_kill->at("adaptive").at("looks").size();
  ASSERT_LT(looks_at_kill, 3u) << "the experiment finished before the kill";
  EXPECT_EQ(at_kill->at("complete"), false);

  command.push_back("--exit-when-done");
  ChildProcess* second = Spawn(command, "coordinator-2");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->Wait(180s)) << "the restarted coordinator did not finish the experiment";
  EXPECT_EQ(second->exit_code(), 0) << ReadFile(second->stderr_path());
  const std::string log = ReadFile(second->stderr_path());
  EXPECT_TRUE(absl::StrContains(log, "look 3 of at most 3")) << log;
  EXPECT_TRUE(absl::StrContains(log, "the most the plan allows: no more runs")) << log;

  ExpectStoreComplete(db, 12);  // 6 per arm, each run once
  auto status = Status(file);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->at("complete"), true);
  const Json& adaptive = status->at("adaptive");
  EXPECT_EQ(adaptive.at("stopped"), "max");
  ASSERT_EQ(adaptive.at("looks").size(), 3u);
  int runs = 2;
  for (const Json& look : adaptive.at("looks")) {
    const Json& a = look.at("arms").at(0);
    EXPECT_EQ(a.at("arm"), "a");
    EXPECT_EQ(a.at("runs"), runs) << look.dump();
    EXPECT_EQ(a.at("reference_runs"), runs);
    EXPECT_EQ(a.at("settled"), false);
    runs += 2;
  }
  EXPECT_EQ(adaptive.at("looks").at(0).at("decision"), "more");
  EXPECT_EQ(adaptive.at("looks").at(2).at("decision"), "max");
}

TEST_F(IntegrationTest, SameSeedRunsOnACpuSettleAtTheFirstLook) {
  const std::string plan = Path("plan.yaml"), db = Path("settles.db");
  WriteFile(plan, AdaptivePlan(
                      "settles", "{min: 3, max: 30, until: {ratio_ci_width: 0.1}}",
                      "determinism: {threads: 1}\n"));
  CommandResult done = Run({kCoordinator, "--plan", plan, "--db", db, "--listen", "127.0.0.1:0",
                            "--local-workers", "2", "--exit-when-done"});
  ASSERT_EQ(done.code, 0) << done.err;
  EXPECT_TRUE(absl::StrContains(done.err, "rounds of 3 up to 30 per arm")) << done.err;
  EXPECT_TRUE(absl::StrContains(done.err, "look 1 of at most 10")) << done.err;
  EXPECT_TRUE(absl::StrContains(done.err, "same_seed ratio 0 in [0, 0], 0 wide")) << done.err;
  ExpectStoreComplete(db, 6);
  auto status = Status({"--db", db});
  ASSERT_TRUE(status.has_value());
  const Json& look = status->at("adaptive").at("looks").at(0);
  EXPECT_EQ(status->at("adaptive").at("stopped"), "reached");
  EXPECT_EQ(look.at("arms").at(0).at("ratio"), 0.0);
  EXPECT_EQ(look.at("arms").at(0).at("high"), 0.0);
  EXPECT_EQ(look.at("arms").at(0).at("settled"), true);
}

}  // namespace
}  // namespace repro::testing
