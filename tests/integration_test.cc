// Integration tests: experiments end to end with two workers, resuming without
// duplicates, bad plans and flags (the fixture: tests/integration_fixture.h).
#include <map>
#include <set>

#include "tests/integration_fixture.h"

namespace repro::testing {
namespace {

TEST_F(IntegrationTest, EndToEndTwoWorkers) {
  constexpr int kRuns = 3, kEpochs = 2;
  const std::string plan = Path("plan.yaml"), db = Path("e2e.db");
  WriteFile(plan, PlanText("e2e", kRuns, kEpochs, 300, 100));
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db, "--heartbeat-ms",
                                std::to_string(kHeartbeatMs)},
                               "coordinator", &c));
  const std::vector<std::string> remote = {"--coordinator", c.address};

  // No worker yet: no report, and every run waits.
  CommandResult early = Reproctl(remote, {"report"});
  EXPECT_EQ(early.code, 3) << early.err;
  EXPECT_TRUE(absl::StrContains(early.err, "6 run(s) remain")) << early.err;
  EXPECT_TRUE(early.out.empty()) << early.out;
  auto status = Status(remote);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->at("runs").at("pending"), 6) << status->dump();
  EXPECT_EQ(status->at("runs").at("done"), 0) << status->dump();
  EXPECT_EQ(status->at("experiment"), "e2e");

  ChildProcess* wa = StartWorker(c.address, "wA");
  ChildProcess* wb = StartWorker(c.address, "wB");
  ASSERT_TRUE(wa != nullptr && wb != nullptr);
  ASSERT_TRUE(WaitForDone(remote, 6, 120s));

  // The workers leave by themselves once nothing is left to run.
  for (ChildProcess* w : {wa, wb}) {
    ASSERT_TRUE(w->Wait(30s)) << "a worker did not exit after the experiment finished";
    EXPECT_EQ(w->exit_code(), 0) << ReadFile(w->stderr_path());
  }

  CommandResult over_grpc = Reproctl(remote, {"report", "--format", "json"});
  ASSERT_EQ(over_grpc.code, 0) << over_grpc.err;
  CommandResult from_db = Reproctl({"--db", db}, {"report", "--format", "json"});
  ASSERT_EQ(from_db.code, 0) << from_db.err;
  auto parsed = ParseJson(over_grpc.out);
  ASSERT_TRUE(parsed.has_value()) << over_grpc.out;
  const Json report = *parsed;
  auto parsed_db = ParseJson(from_db.out);
  ASSERT_TRUE(parsed_db.has_value()) << from_db.out;
  EXPECT_TRUE(report == *parsed_db) << "report over gRPC:\n" << over_grpc.out
                                    << "\nreport from the file:\n" << from_db.out;

  EXPECT_EQ(report.at("experiment"), "e2e");
  EXPECT_EQ(report.at("complete"), true);
  ExpectSameSeedArmIdentical(report, kRuns);
  // Per class: the test labels the coordinator's data check stored, 10 classes of the
  // first 100 test examples, every run's predictions scored against them.
  for (const Json& arm : report.at("arms")) {
    const Json& per_class = arm.at("per_class");
    EXPECT_EQ(per_class.at("grouped_by"), "label") << per_class;
    EXPECT_EQ(per_class.at("runs"), kRuns);
    ASSERT_EQ(per_class.at("classes").size(), 10u) << per_class;
    int examples = 0;
    for (const Json& c : per_class.at("classes")) {
      examples += c.at("examples").get<int>();
      EXPECT_TRUE(c.at("accuracy_mean").is_number()) << c;
      EXPECT_TRUE(c.at("churn").is_number()) << c;
    }
    EXPECT_EQ(examples, 100);
  }

  const Json* different = FindArm(report, "different_seeds");
  ASSERT_NE(different, nullptr);
  EXPECT_EQ(different->at("runs_done"), kRuns);
  EXPECT_EQ(different->at("models_all_same"), false);
  EXPECT_EQ(different->at("batches_all_same"), false);
  EXPECT_EQ(different->at("data_all_same"), true);
  // The first tensor of the model, as the store keeps it, names the first difference.
  std::string first_tensor;
  {
    Db store(db);
    ASSERT_TRUE(store.ok()) << store.error();
    first_tensor = store.Text(
        "SELECT name FROM tensors WHERE which = 'initial' AND ordinal = 0 LIMIT 1");
  }
  EXPECT_EQ(first_tensor, "conv1.weight");
  bool model_difference = false, batch_difference = false;
  for (const Json& d : different->at("differences")) {
    if (d.at("run") != 1) continue;
    if (d.at("what") == "model") {
      model_difference = true;
      EXPECT_EQ(d.at("tensor"), "conv1.weight") << d.dump();
      EXPECT_EQ(d.at("index"), 0) << d.dump();
    } else if (d.at("what") == "batches") {
      batch_difference = true;
      EXPECT_EQ(d.at("epoch"), 0) << d.dump();
    }
  }
  EXPECT_TRUE(model_difference) << different->at("differences").dump(2);
  EXPECT_TRUE(batch_difference) << different->at("differences").dump(2);
  ASSERT_TRUE(different->at("stdev").at("loss").is_number());
  EXPECT_GT(different->at("stdev").at("loss").get<double>(), 0.0);
  ASSERT_TRUE(report.at("stdev_ratio").at("loss").is_number()) << report.at("stdev_ratio");
  EXPECT_EQ(report.at("stdev_ratio").at("loss").get<double>(), 0.0);

  ASSERT_EQ(report.at("runs").size(), 6u);
  std::set<std::pair<std::string, int>> seen;
  for (const Json& run : report.at("runs")) {
    const std::string arm = run.at("arm");
    const int index = run.at("index");
    SCOPED_TRACE(absl::StrCat(arm, "#", index));
    seen.insert({arm, index});
    EXPECT_EQ(run.at("state"), "done");
    const int expected_seed = arm == "different_seeds" ? index : 0;
    EXPECT_EQ(run.at("seeds").at("init"), expected_seed);
    EXPECT_EQ(run.at("seeds").at("shuffle"), expected_seed);
    const std::string worker = run.at("worker");
    EXPECT_TRUE(worker == "wA" || worker == "wB") << worker;
    EXPECT_TRUE(run.at("weights").empty()) << "the plan exports no weights";
    EXPECT_TRUE(run.at("test_loss").is_number());
    EXPECT_TRUE(run.at("test_accuracy").is_number());
    ASSERT_EQ(run.at("epochs").size(), static_cast<size_t>(kEpochs));
    for (int e = 0; e < kEpochs; ++e) {
      const Json& epoch = run.at("epochs").at(e);
      EXPECT_EQ(epoch.at("epoch"), e);
      EXPECT_TRUE(IsHex32(epoch.at("batch_digest")));
      EXPECT_TRUE(IsHex32(epoch.at("weights_hash")));
    }
  }
  EXPECT_EQ(seen.size(), 6u) << "some run appears twice in the report";

  CommandResult text = Reproctl(remote, {"report"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(absl::StrContains(text.out,
                                "Models all the same: True (number of models checked: 3/3)"))
      << text.out;

  // A serving coordinator (no --exit-when-done) stopped by a signal exits 0, results kept.
  c.process->Signal(SIGTERM);
  ASSERT_TRUE(c.process->Wait(30s)) << "the coordinator ignored SIGTERM";
  EXPECT_FALSE(c.process->killed_by_signal());
  EXPECT_EQ(c.process->exit_code(), 0);
  CommandResult after = Reproctl({"--db", db}, {"report", "--format", "json"});
  ASSERT_EQ(after.code, 0) << after.err;
  auto kept = ParseJson(after.out);
  ASSERT_TRUE(kept.has_value()) << after.out;
  EXPECT_EQ(kept->at("complete"), true);
  EXPECT_TRUE(*kept == report) << "the stored report changed after the coordinator stopped";
  ExpectStoreComplete(db, 6);
}

TEST_F(IntegrationTest, ResumeDoesNotDuplicate) {
  constexpr int kRuns = 2;
  const std::string plan = Path("plan.yaml"), db = Path("resume.db");
  WriteFile(plan, PlanText("resume", kRuns, 1, 300, 100));
  const std::vector<std::string> command = {kCoordinator, "--plan", plan, "--db", db,
                                            "--listen", "127.0.0.1:0", "--local-workers", "2",
                                            "--exit-when-done"};
  ChildProcess* first = Spawn(command, "coordinator-1");
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->Wait(120s)) << "the experiment did not finish in 120 s";
  ASSERT_EQ(first->exit_code(), 0) << ReadFile(first->stderr_path());

  const std::string runs_query =
      "SELECT r.arm, r.idx, r.state, r.result_attempt, a.final_hash FROM runs r "
      "JOIN attempts a ON a.id = r.result_attempt ORDER BY r.arm, r.idx";
  std::vector<std::vector<std::string>> before;
  {
    Db store(db);
    ASSERT_TRUE(store.ok()) << store.error();
    before = store.Rows(runs_query);
  }
  ASSERT_EQ(before.size(), static_cast<size_t>(2 * kRuns));

  ChildProcess* second = Spawn(command, "coordinator-2");
  ASSERT_NE(second, nullptr);
  ASSERT_TRUE(second->Wait(60s)) << "resuming a finished experiment did not exit";
  EXPECT_EQ(second->exit_code(), 0);
  const std::string log = ReadFile(second->stderr_path());
  EXPECT_TRUE(absl::StrContains(log, "resuming")) << log;

  Db store(db);
  ASSERT_TRUE(store.ok()) << store.error();
  EXPECT_EQ(store.Int("SELECT COUNT(*) FROM runs"), 2 * kRuns);
  EXPECT_EQ(store.Int("SELECT COUNT(*) FROM attempts"), 2 * kRuns);
  EXPECT_EQ(store.Int("SELECT COUNT(*) FROM runs WHERE state <> 'done'"), 0);
  EXPECT_EQ(store.Int("SELECT COUNT(*) FROM experiments"), 1);
  EXPECT_EQ(store.Rows(runs_query), before) << "resuming changed the stored runs";
  EXPECT_EQ(store.Text("PRAGMA integrity_check"), "ok");
}

// ---------------------------------------------------------------------------------------
// Bad input: exit code 2 and one sentence on stderr naming what is at fault; nothing written.

enum class Blame { kPlanFile, kDataPath, kTruncatedFile };

struct BadPlanCase {
  const char* name;
  const char* plan;      // $DATA stands for the dataset folder
  const char* position;  // ":LINE:COLUMN" after the plan's path, for plan errors
  Blame blame;
};

void PrintTo(const BadPlanCase& c, std::ostream* os) { *os << c.name; }

class BadPlanTest : public IntegrationTest, public ::testing::WithParamInterface<BadPlanCase> {};

TEST_P(BadPlanTest, ExitsTwoWithOneSentence) {
  const BadPlanCase& c = GetParam();
  std::string data = kFashionMnist;
  if (c.blame == Blame::kDataPath) data = Path("no-such-dataset");
  if (c.blame == Blame::kTruncatedFile) data = MakeTruncatedDataset();
  const std::string plan = Path("plan.yaml"), db = Path("bad.db");
  WriteFile(plan, absl::StrReplaceAll(c.plan, {{"$DATA", data}}));

  CommandResult r = Run({kCoordinator, "--plan", plan, "--db", db, "--listen", "127.0.0.1:0"});
  ASSERT_FALSE(r.timed_out) << "the coordinator did not stop on a bad plan";
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(Lines(r.err).size(), 1u) << "expected one line on stderr, got:\n" << r.err;
  EXPECT_TRUE(!r.err.empty() && r.err.back() == '\n') << r.err;
  switch (c.blame) {
    case Blame::kPlanFile:
      EXPECT_TRUE(absl::StrContains(r.err, plan + c.position))
          << "expected \"" << plan << c.position << "\" in: " << r.err;
      break;
    case Blame::kDataPath:
      EXPECT_TRUE(absl::StrContains(r.err, data)) << r.err;
      break;
    case Blame::kTruncatedFile:
      EXPECT_TRUE(absl::StrContains(r.err, data + "/train-images-idx3-ubyte.gz")) << r.err;
      break;
  }
  for (const char* crash : {"terminate called", "what()", "Aborted"}) {
    EXPECT_FALSE(absl::StrContains(r.err, crash)) << r.err;
  }
  EXPECT_FALSE(fs::exists(db))
      << "BUG: the coordinator created " << db << " although the plan or its data is invalid "
      << "(nothing may be written before the whole plan validates). coordinator/main.cc "
         "opens the store (RunStore::Open creates the file and its schema) before it checks "
         "the dataset with engine::CheckDataset.";
  EXPECT_FALSE(fs::exists(db + "-wal"));
}

INSTANTIATE_TEST_SUITE_P(
    Coordinator, BadPlanTest,
    ::testing::Values(
        BadPlanCase{"YamlSyntaxError",
                    "experiment: bad\nruns: 2\n  epochs: 1\ndataset: {path: $DATA}\n", ":3:9",
                    Blame::kPlanFile},
        BadPlanCase{"UnknownKey",
                    "experiment: bad\nruns: 2\nepochs: 1\nspeed: 3\n"
                    "dataset: {path: $DATA, train_limit: 300, test_limit: 100}\n",
                    ":4:1", Blame::kPlanFile},
        BadPlanCase{"NegativeRuns",
                    "experiment: bad\nruns: -1\nepochs: 1\n"
                    "dataset: {path: $DATA, train_limit: 300, test_limit: 100}\n",
                    ":2:7", Blame::kPlanFile},
        BadPlanCase{"EpochsNotANumber",
                    "experiment: bad\nruns: 2\nepochs: \"ten\"\n"
                    "dataset: {path: $DATA, train_limit: 300, test_limit: 100}\n",
                    ":3:9", Blame::kPlanFile},
        BadPlanCase{"MissingDataset",
                    "experiment: bad\nruns: 2\nepochs: 1\n"
                    "dataset: {path: $DATA, train_limit: 300, test_limit: 100}\n",
                    "", Blame::kDataPath},
        BadPlanCase{"TruncatedTrainImages",
                    "experiment: bad\nruns: 2\nepochs: 1\n"
                    "dataset: {path: $DATA, train_limit: 300, test_limit: 100}\n",
                    "", Blame::kTruncatedFile}),
    [](const ::testing::TestParamInfo<BadPlanCase>& info) { return std::string(info.param.name); });

TEST_F(IntegrationTest, CommandLineErrorsExitTwo) {
  for (const std::string& binary : {kCoordinator, kWorker, kReproctl}) {
    CommandResult r = Run({binary, "--no-such-flag"});
    EXPECT_EQ(r.code, 2) << binary << ": " << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << binary << ": " << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "--no-such-flag")) << binary << ": " << r.err;
  }

  CommandResult unknown = Run({kReproctl, "frobnicate"});
  EXPECT_EQ(unknown.code, 2) << unknown.err;
  EXPECT_TRUE(absl::StrContains(unknown.err, "frobnicate")) << unknown.err;

  const std::string missing_db = Path("no-such.db");
  CommandResult no_db = Run({kReproctl, "--db", missing_db, "report"});
  EXPECT_EQ(no_db.code, 2) << no_db.err;
  EXPECT_TRUE(absl::StrContains(no_db.err, missing_db)) << no_db.err;
  EXPECT_FALSE(fs::exists(missing_db)) << "reproctl created the database it was asked to read";

  // A real store: a coordinator that started an experiment and was stopped at once.
  const std::string plan = Path("plan.yaml"), db = Path("stopped.db");
  WriteFile(plan, PlanText("stopped", 2, 1, 300, 100));
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db}, "coordinator", &c));
  c.process->Signal(SIGTERM);
  ASSERT_TRUE(c.process->Wait(30s));
  CommandResult xml = Run({kReproctl, "report", "--format", "xml", "--db", db});
  EXPECT_EQ(xml.code, 2) << xml.err;
  EXPECT_TRUE(absl::StrContains(xml.err, "xml")) << xml.err;
  EXPECT_TRUE(xml.out.empty()) << xml.out;
  CommandResult unfinished = Run({kReproctl, "--db", db, "report"});
  EXPECT_EQ(unfinished.code, 3) << unfinished.err;
  EXPECT_TRUE(absl::StrContains(unfinished.err, "4 run(s) remain")) << unfinished.err;

  CommandResult scores =
      Run({kReproctl, "analyze-scores", kTestData + "/resnet_same_seed.csv"});
  EXPECT_EQ(scores.code, 0) << scores.err;
  EXPECT_TRUE(absl::StrContains(scores.out, "[0.01994929 0.00301954]")) << scores.out;
  const std::string missing_csv = Path("no-such-scores.csv");
  CommandResult no_scores = Run({kReproctl, "analyze-scores", missing_csv});
  EXPECT_EQ(no_scores.code, 2) << no_scores.err;
  EXPECT_TRUE(absl::StrContains(no_scores.err, missing_csv)) << no_scores.err;
}

// ---------------------------------------------------------------------------------------
// worker --slots N: N runs at once, each slot its own process and registered name, and
// packing changes no run's fingerprints.

// Each done run's final weight hash, by "arm#index".
std::map<std::string, std::string> FinalHashes(const std::string& db) {
  Db store(db);
  std::map<std::string, std::string> out;
  for (const auto& row : store.Rows("SELECT r.arm || '#' || r.idx, a.final_hash FROM runs r "
                                    "JOIN attempts a ON a.id = r.result_attempt")) {
    out[row[0]] = row[1];
  }
  return out;
}

TEST_F(IntegrationTest, SlotsTrainRunsAtOnceAndPackingChangesNoFingerprint) {
  const std::string plan = Path("plan.yaml");
  WriteFile(plan, PlanText("slots", 4, 1, 1200, 100));
  std::map<std::string, std::string> hashes[2];
  for (int packed = 0; packed < 2; ++packed) {
    const std::string db = Path(absl::StrCat("slots-", packed, ".db"));
    Coordinator c;
    ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db}, absl::StrCat("c", packed), &c));
    std::vector<std::string> argv = {kWorker, "--coordinator", c.address, "--name", "w",
                                     "--threads", "1"};
    if (packed == 1) argv.insert(argv.end(), {"--slots", "2"});
    ChildProcess* worker = Spawn(argv, absl::StrCat("w", packed));
    ASSERT_NE(worker, nullptr);
    ASSERT_TRUE(worker->Wait(180s)) << "the worker did not finish the experiment";
    EXPECT_EQ(worker->exit_code(), 0) << ReadFile(worker->stderr_path());
    hashes[packed] = FinalHashes(db);
    EXPECT_EQ(hashes[packed].size(), 8u);
    if (packed == 0) continue;

    Db store(db);
    EXPECT_EQ(store.Text("SELECT group_concat(name, ',') FROM (SELECT name FROM workers "
                         "ORDER BY name)"),
              "w:1,w:2");
    EXPECT_EQ(store.Text("SELECT COUNT(DISTINCT worker) FROM attempts WHERE outcome = 'done'"),
              "2");
    // Two runs of the two slots overlapped in time: packed, not taking turns.
    EXPECT_NE(store.Text("SELECT COUNT(*) FROM attempts a JOIN attempts b ON a.worker < b.worker "
                         "WHERE a.started_ms < b.ended_ms AND b.started_ms < a.ended_ms"),
              "0");
    const std::string log = ReadFile(worker->stderr_path());
    EXPECT_TRUE(absl::StrContains(log, "started 2 of 2 slots")) << log;
  }
  EXPECT_EQ(hashes[1], hashes[0]) << "a packed run's weights differ from the same run alone";
}

TEST_F(IntegrationTest, SigtermToASlottedWorkerDrainsEverySlotAndLosesNoRun) {
  const std::string plan = Path("plan.yaml"), db = Path("drain.db");
  WriteFile(plan, PlanText("drain", 4, 20, 6000, 100));
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db}, "coordinator", &c));
  ChildProcess* worker = Spawn({kWorker, "--coordinator", c.address, "--name", "w", "--slots",
                                "2", "--threads", "1"},
                               "worker");
  ASSERT_NE(worker, nullptr);
  const std::vector<std::string> remote = {"--coordinator", c.address};
  ASSERT_TRUE(WaitFor(
      [&] {
        auto status = Status(remote);
        return status && status->at("runs").at("running").get<int>() == 2;
      },
      60s))
      << "the two slots did not both start a run";
  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Wait(30s)) << "the slots did not drain within 30 s";
  EXPECT_EQ(worker->exit_code(), 0) << ReadFile(worker->stderr_path());
  auto status = Status(remote);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->at("runs").at("running"), 0) << status->dump();
  EXPECT_EQ(status->at("runs").at("failed"), 0) << status->dump();
  EXPECT_EQ(status->at("runs").at("pending").get<int>() + status->at("runs").at("done").get<int>(),
            8)
      << status->dump();
  Db store(db);
  EXPECT_EQ(store.Text("SELECT COUNT(*) FROM attempts WHERE outcome = 'released'"), "2");
}

// ---------------------------------------------------------------------------------------
// Bring your own model and data (examples/byo): a model scripted by PyTorch's Python
// front end and Fashion-MNIST as NumPy arrays, trained by a coordinator and two workers
// whose folders hold no data; exported weights read back by NumPy.

TEST_F(IntegrationTest, ByoExampleTrainsAScriptedModelOnArrays) {
  const std::string byo = Path("byo");
  CommandResult made = Run({"/usr/bin/python3", kExamples + "/byo/make_byo.py", "--out", byo,
                            "--train", "600", "--test", "200"});
  ASSERT_EQ(made.code, 0) << made.err;
  // The example's plan, smaller: 2 runs per arm, 1 epoch.
  std::string plan = ReadFile(kExamples + "/byo/plan.yaml");
  plan = std::regex_replace(plan, std::regex("\nruns: 3\n"), "\nruns: 2\n");
  plan = std::regex_replace(plan, std::regex("\nepochs: 2\n"), "\nepochs: 1\n");
  WriteFile(byo + "/plan.yaml", plan);
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", byo + "/plan.yaml", "--db", Path("byo.db")}, "c", &c));
  // Files travel: the coordinator has copied them into its blob store; the workers
  // cannot read its copies, only fetch them (GetBlob) into caches of their own.
  fs::rename(byo, Path("byo-moved"));
  std::vector<ChildProcess*> workers;
  for (const char* name : {"wa", "wb"}) {
    fs::create_directories(Path(name));
    workers.push_back(Spawn({kWorker, "--coordinator", c.address, "--name", name, "--artifacts",
                             Path(absl::StrCat(name, "/artifacts")), "--cache",
                             Path(absl::StrCat(name, "/cache"))},
                            name));
  }
  const std::vector<std::string> remote = {"--coordinator", c.address};
  ASSERT_TRUE(WaitForDone(remote, 4, 180s));
  CommandResult json = Reproctl(remote, {"report", "--format", "json"});
  ASSERT_EQ(json.code, 0) << json.err;
  auto report = ParseJson(json.out);
  ASSERT_TRUE(report.has_value()) << json.out;
  // The blob store beside the database holds the 5 files; each worker that trained a run
  // holds them in its cache (4 arrays and the model), and nothing else.
  const auto blobs_under = [](const std::string& root) {
    int n = 0;
    if (!fs::exists(root)) return 0;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      n += entry.is_regular_file() && entry.path().filename().string().size() == 64;
    }
    return n;
  };
  // The weights travelled: every run names its final file by SHA-256 and size, and the
  // blob store keeps each distinct file once (same-seed runs' files are one).
  std::map<std::string, int64_t> distinct;
  int64_t uploaded = 0;
  std::vector<std::string> same_seed_hashes;
  for (const Json& run : report->at("runs")) {
    ASSERT_EQ(run.at("weights").size(), 1u) << run.dump();
    const Json& file = run.at("weights").at(0);
    EXPECT_EQ(file.at("name"), "final");
    distinct[file.at("sha256")] = file.at("size");
    uploaded += file.at("size").get<int64_t>();
    if (run.at("arm") == "same_seed") same_seed_hashes.push_back(file.at("sha256"));
  }
  ASSERT_EQ(same_seed_hashes.size(), 2u);
  EXPECT_EQ(same_seed_hashes[0], same_seed_hashes[1]);
  int64_t stored = 0;
  for (const auto& [sha, size] : distinct) stored += size;
  EXPECT_LT(stored, uploaded);
  EXPECT_EQ(report->at("weights_storage").at("files"), 4);
  EXPECT_EQ(report->at("weights_storage").at("bytes"), uploaded);
  EXPECT_EQ(report->at("weights_storage").at("stored_bytes"), stored);
  auto status = Status(remote);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->at("weights").at("stored_bytes"), stored) << status->dump();
  EXPECT_EQ(blobs_under(Path("byo.db.blobs/sha256")), 5 + static_cast<int>(distinct.size()));
  std::set<std::string> trained_on;
  for (const Json& run : report->at("runs")) trained_on.insert(run.at("worker").get<std::string>());
  EXPECT_FALSE(trained_on.empty());
  for (const char* name : {"wa", "wb"}) {
    EXPECT_EQ(blobs_under(Path(absl::StrCat(name, "/cache/sha256"))),
              trained_on.count(name) > 0 ? 5 : 0)
        << name;
  }
  ExpectSameSeedArmIdentical(*report, 2);
  const Json* different = FindArm(*report, "different_seeds");
  ASSERT_NE(different, nullptr);
  EXPECT_EQ(different->at("models_all_same"), false);  // init: seeded draws per seed
  EXPECT_EQ(different->at("final_models_all_same"), false);

  // Every run's final weights fetched back by reproctl (the workers' own copies gone),
  // as NumPy reads a safetensors file: the scripted model's own tensor names, finite
  // values; same-seed runs byte for byte equal.
  for (const char* name : {"wa", "wb"}) fs::remove_all(Path(absl::StrCat(name, "/artifacts")));
  std::vector<std::string> same_seed_files;
  for (const Json& run : report->at("runs")) {
    const std::string label = absl::StrCat(run.at("arm").get<std::string>(), "#",
                                           run.at("index").get<int>());
    const std::string dir = Path(absl::StrCat("fetched/", label));
    CommandResult fetched = Reproctl(remote, {"fetch", label, "--weights", "final", "-o", dir});
    ASSERT_EQ(fetched.code, 0) << fetched.err;
    const std::string file = dir + "/final.safetensors";
    EXPECT_EQ(fetched.out, absl::StrCat("wrote ", file, "\n"));
    CommandResult read = Run({"/usr/bin/python3", "-c", R"(
import json, struct, sys, numpy as np
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
header = json.loads(data[8:8 + n])
body = data[8 + n:]
for name, t in sorted(header.items()):
    if name == "__metadata__":
        continue
    a = np.frombuffer(body[t["data_offsets"][0]:t["data_offsets"][1]], dtype=np.float32)
    assert np.isfinite(a).all(), name
    print(name, a.size)
)", file});
    ASSERT_EQ(read.code, 0) << read.err;
    EXPECT_TRUE(absl::StrContains(read.out, "features.0.weight 72")) << read.out;
    EXPECT_TRUE(absl::StrContains(read.out, "classifier.weight 7840")) << read.out;
    if (run.at("arm") == "same_seed") same_seed_files.push_back(ReadFile(file));
  }
  ASSERT_EQ(same_seed_files.size(), 2u);
  EXPECT_TRUE(same_seed_files[0] == same_seed_files[1]);
  // The same from the database's blob store, without the coordinator's help.
  CommandResult offline = Reproctl({"--db", Path("byo.db")},
                                   {"fetch", "same_seed#1", "--weights", "all", "-o", Path("offline")});
  ASSERT_EQ(offline.code, 0) << offline.err;
  EXPECT_TRUE(ReadFile(Path("offline/final.safetensors")) == same_seed_files[0]);
  // What cannot be fetched says why.
  CommandResult initial = Reproctl(remote, {"fetch", "same_seed#0", "--weights", "initial"});
  EXPECT_EQ(initial.code, 2);
  EXPECT_TRUE(absl::StrContains(initial.err, "run same_seed#0 has no initial weights: the plan "
                                             "does not export them"))
      << initial.err;
  CommandResult unknown = Reproctl(remote, {"fetch", "same_seed#9"});
  EXPECT_TRUE(absl::StrContains(unknown.err, "experiment byo has no run same_seed#9")) << unknown.err;
  for (ChildProcess* w : workers) ASSERT_TRUE(w->Wait(30s));
}

TEST_F(IntegrationTest, AModelFileThatCannotBeTrainedEndsTheExperimentWithOneClearError) {
  const std::string plan = Path("plan.yaml"), db = Path("broken.db");
  WriteFile(Path("model.pt"), "this is no TorchScript archive");
  WriteFile(plan, PlanText("broken", 10, 1, 200, 100) +
                      "model: {kind: torchscript, path: model.pt}\nmax_attempts: 3\n");
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db, "--exit-when-done"}, "c", &c));
  for (const char* name : {"wa", "wb"}) ASSERT_NE(StartWorker(c.address, name), nullptr);
  ASSERT_TRUE(c.process->Wait(120s)) << "the coordinator kept the experiment open";
  EXPECT_EQ(c.process->exit_code(), 1) << ReadFile(c.process->stderr_path());
  Db store(db);
  EXPECT_EQ(store.Text("SELECT COUNT(*) FROM runs WHERE state = 'failed'"), "20");
  // At most one attempt per worker: not 20 runs x 3 attempts.
  EXPECT_LE(std::stoi(store.Text("SELECT COUNT(*) FROM attempts")), 2);
  // The file as the plan names it, not the worker's cached copy.
  EXPECT_EQ(store.Text(absl::StrCat("SELECT COUNT(*) FROM runs WHERE error NOT LIKE "
                                    "'cancelled: the plan cannot be trained (worker w_): model "
                                    "file ", fs::absolute(Path("model.pt")).string(),
                                    " is not a TorchScript module%'")),
            "0")
      << store.Text("SELECT error FROM runs LIMIT 1");
}

// Where runs part (issue 15): two arms that differ only in LibTorch's intra-op threads
// (1 and 2) part in their first epoch on Debian's LibTorch; `reproctl localize` has a
// worker replay both and names the batch, the operation, its module, whether its inputs
// were equal and by how much its outputs differ.
TEST_F(IntegrationTest, LocalizeNamesTheBatchAndTheOperationWhereThreadCountsPart) {
  const std::string plan = Path("plan.yaml"), db = Path("localize.db");
  WriteFile(plan, PlanText("localize", 2, 1, 256, 100) +
                      "model: {kind: small-cnn}\n"
                      "training: {batch_size: 64, optimizer: adam, lr: 0.001}\n"
                      "determinism: {deterministic_algorithms: true, threads: 1, device: cpu}\n"
                      "arms:\n  t1: {seed: fixed}\n  t2: {seed: fixed, determinism: {threads: 2}}\n");
  Coordinator c;
  ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db}, "c", &c));
  ChildProcess* worker =
      Spawn({kWorker, "--coordinator", c.address, "--name", "w1", "--stay"}, "w1");
  const std::vector<std::string> remote = {"--coordinator", c.address};
  ASSERT_TRUE(WaitForDone(remote, 4, 120s));

  CommandResult json = Reproctl(remote, {"localize", "t1#0", "t2#0", "--format", "json"});
  ASSERT_EQ(json.code, 0) << json.err;
  auto found = ParseJson(json.out);
  ASSERT_TRUE(found.has_value()) << json.out;
  EXPECT_EQ(found->at("state"), "done");
  EXPECT_EQ(found->at("epoch"), 0);
  EXPECT_EQ(found->at("worker"), "w1");
  const Json& answer = found->at("answer");
  ASSERT_TRUE(answer.at("batch").is_number()) << json.out;
  EXPECT_GE(answer.at("batch").get<int>(), 0);
  EXPECT_LT(answer.at("batch").get<int>(), 4);
  EXPECT_EQ(answer.at("reproduced").at("a"), true) << "the replay of t1#0 is not the run";
  EXPECT_EQ(answer.at("reproduced").at("b"), true) << "the replay of t2#0 is not the run";
  const Json& op = answer.at("op");
  ASSERT_TRUE(op.is_object()) << json.out;
  EXPECT_EQ(op.at("kind"), "outputs");
  EXPECT_FALSE(op.at("name").get<std::string>().empty());
  EXPECT_FALSE(op.at("module").get<std::string>().empty());
  EXPECT_EQ(op.at("inputs_equal"), true) << "the first differing op has equal inputs";
  EXPECT_GT(op.at("max_ulps").get<uint64_t>(), 0u);
  EXPECT_GT(op.at("differing_values").get<int64_t>(), 0);
  EXPECT_EQ(answer.at("trace_changed_nothing"), true);

  CommandResult text = Reproctl(remote, {"localize", "t1#0", "t2#0"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(absl::StrContains(text.out, "Its inputs were equal on both sides: this operation "
                                          "is where the runs part."))
      << text.out;
  // The answer is kept: the file gives it without the coordinator.
  CommandResult stored = Reproctl({"--db", db}, {"localize", "t1#0", "t2#0", "--format", "json"});
  ASSERT_EQ(stored.code, 0) << stored.err;
  EXPECT_EQ(ParseJson(stored.out), found);
  // The report has it too, in every format.
  CommandResult report = Reproctl(remote, {"report", "--format", "json"});
  ASSERT_EQ(report.code, 0) << report.err;
  auto parsed = ParseJson(report.out);
  ASSERT_TRUE(parsed.has_value());
  ASSERT_EQ(parsed->at("where_runs_part").size(), 1u);
  EXPECT_EQ(parsed->at("where_runs_part").at(0), *found);
  CommandResult report_text = Reproctl(remote, {"report"});
  EXPECT_TRUE(absl::StrContains(report_text.out, "Where runs part (reproctl localize):\n  Runs "
                                                 "t1#0 and t2#0 part in epoch 0"))
      << report_text.out;
  CommandResult html = Reproctl(remote, {"report", "--format", "html"});
  EXPECT_TRUE(absl::StrContains(html.out, "<h2>Where runs part</h2>")) << html.out.substr(0, 2000);
  // Two runs of one arm never part, and say so.
  CommandResult same = Reproctl(remote, {"localize", "t1#0", "t1#1"});
  EXPECT_EQ(same.code, 1);
  EXPECT_TRUE(absl::StrContains(same.err, "t1#0 and t1#1 never part")) << same.err;
  worker->Signal(SIGTERM);
  ASSERT_TRUE(worker->Wait(30s));
}

// An arm that asks for it (localize: true) has where its runs part found once it has
// finished, before the coordinator exits: here runs of one initial model whose batches
// come in different orders, which part at the first batch, and at an operation whose
// inputs (the batches) already differ.
TEST_F(IntegrationTest, AnArmThatAsksIsLocalizedWhenItFinishes) {
  const std::string plan = Path("plan.yaml"), db = Path("auto.db");
  WriteFile(plan, PlanText("auto", 2, 1, 256, 100) +
                      "model: {kind: small-cnn}\n"
                      "training: {batch_size: 64, optimizer: adam, lr: 0.001}\n"
                      "determinism: {deterministic_algorithms: true, threads: 1, device: cpu}\n"
                      "arms:\n  shuffled: {init: fixed, shuffle: per_run, localize: true}\n");
  CommandResult run = Run({kCoordinator, "--plan", plan, "--db", db, "--listen", "127.0.0.1:0",
                           "--local-workers", "1", "--exit-when-done"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_TRUE(absl::StrContains(run.err, "arm shuffled has finished and its runs shuffled#0 and "
                                         "shuffled#1 part (localize: true)"))
      << run.err;
  CommandResult json = Reproctl({"--db", db}, {"report", "--format", "json"});
  ASSERT_EQ(json.code, 0) << json.err;
  auto report = ParseJson(json.out);
  ASSERT_TRUE(report.has_value());
  ASSERT_EQ(report->at("where_runs_part").size(), 1u) << json.out;
  const Json& found = report->at("where_runs_part").at(0);
  EXPECT_EQ(found.at("state"), "done") << found.dump();
  EXPECT_EQ(found.at("run_a"), "shuffled#0");
  EXPECT_EQ(found.at("run_b"), "shuffled#1");
  const Json& answer = found.at("answer");
  EXPECT_EQ(answer.at("batch"), 0) << found.dump();
  EXPECT_EQ(answer.at("op").at("kind"), "outputs") << found.dump();
  EXPECT_EQ(answer.at("op").at("phase"), "forward") << found.dump();
  EXPECT_EQ(answer.at("op").at("inputs_equal"), false) << "the batches differ, not an op";
}

// A coordinator restarted from its database alone, on a machine where the plan's files
// are gone, takes them from its blob store by the hashes it recorded.
TEST_F(IntegrationTest, ARestartFromTheDatabaseAloneNeedsNotThePlansFiles) {
  const std::string plan = Path("plan.yaml"), db = Path("resume-blobs.db");
  WriteFile(Path("model.pt"), std::string(4096, 'm'));
  WriteFile(plan, PlanText("resume-blobs", 1, 1, 200, 100) +
                      "model: {kind: torchscript, path: model.pt}\n");
  {
    Coordinator first;
    ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db}, "first", &first));
    first.process->Signal(SIGTERM);
    ASSERT_TRUE(first.process->Wait(30s));
  }
  fs::remove(Path("model.pt"));
  fs::remove(plan);
  Coordinator again;
  ASSERT_TRUE(StartCoordinator({"--db", db}, "again", &again));
  auto status = Status({"--coordinator", again.address});
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(status->at("runs").at("pending"), 2) << status->dump();
  again.process->Signal(SIGTERM);
  ASSERT_TRUE(again.process->Wait(30s));
  EXPECT_TRUE(absl::StrContains(ReadFile(again.process->stderr_path()),
                                "model.path: not at the stored plan's path; using the blob "
                                "store's copy"))
      << ReadFile(again.process->stderr_path());
  // Without the copy either, the file is named as missing.
  fs::remove_all(db + ".blobs");
  CommandResult lost = Run({kCoordinator, "--db", db, "--listen", "127.0.0.1:0"});
  EXPECT_EQ(lost.code, 2);
  EXPECT_TRUE(absl::StrContains(lost.err, "model.path: " + Path("model.pt") + ": no such file"))
      << lost.err;
}

}  // namespace
}  // namespace repro::testing
