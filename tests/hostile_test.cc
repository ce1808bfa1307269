// Integration tests: what reproctl and the worker refuse or survive (a foreign database,
// a read-only folder, a worker that cannot train, a stored score changed behind the
// store's back) (the fixture: tests/integration_fixture.h).
#include "tests/integration_fixture.h"

namespace repro::testing {
namespace {

// ---------------------------------------------------------------------------------------
// reproctl --db reads a database and never writes to it.

TEST_F(IntegrationTest, ReproctlRefusesAFileThatIsNotARepoDatabaseWithoutChangingIt) {
  const std::string foreign = Path("foreign.db"), empty = Path("empty.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  WriteFile(empty, "");
  for (const std::string& path : {foreign, empty}) {
    const std::string before = ReadFile(path);
    for (const char* command : {"status", "report", "workers"}) {
      CommandResult r = Reproctl({"--db", path}, {command});
      EXPECT_EQ(r.code, 2) << command << " " << path << ": " << r.err;
      EXPECT_EQ(r.err, absl::StrCat("reproctl: ", path, ": not a repro database (no repro "
                                    "tables in it); nothing was changed\n"));
    }
    EXPECT_EQ(ReadFile(path), before) << path << " was changed";
  }
}

TEST_F(IntegrationTest, ReproctlReadsAFinishedDatabaseFromAFolderItMayNotWrite) {
  const std::string plan = Path("plan.yaml"), folder = Path("archive"), db = folder + "/done.db";
  fs::create_directories(folder);
  WriteFile(plan, PlanText("archived", 2, 1, 300, 100));
  CommandResult done = Run({kCoordinator, "--plan", plan, "--db", db, "--listen", "127.0.0.1:0",
                            "--local-workers", "1", "--exit-when-done"});
  ASSERT_EQ(done.code, 0) << done.err;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.path() != db) fs::remove(entry.path());  // the local worker's log
  }
  const auto read_only = fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read;
  const auto exec = fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec;
  fs::permissions(db, read_only);
  fs::permissions(folder, read_only | exec);
  fs::permissions(dir_, read_only | exec | fs::perms::owner_write);
  std::vector<std::string> argv = {kReproctl, "--db", db, "report"};
  if (getuid() == 0) {
    // Permissions do not stop root: read as nobody, who may not write the folder.
    if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "root without setpriv cannot drop root";
    argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  CommandResult r = Run(argv);
  const auto entries = std::distance(fs::directory_iterator(folder), fs::directory_iterator());
  fs::permissions(folder, fs::perms::owner_all);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "Models all the same: True (number of models checked: 2/2)"))
      << r.out;
  EXPECT_EQ(entries, 1) << "reproctl made files beside the database";
}

// ---------------------------------------------------------------------------------------
// A worker that cannot train (an artifacts folder it cannot make) hands its run back, at
// no cost to the run's attempts, and exits saying why. (A cuda run never reaches a
// worker without CUDA: placement keeps it waiting, tests/placement_test.cc.)

TEST_F(IntegrationTest, AWorkerThatCannotTrainHandsTheRunBackAndExits) {
  struct Case {
    std::string plan_keys, worker_flag, why;
  };
  const Case cases[] = {
      {"exports: {weights: [final]}\n", "--artifacts=/dev/null/artifacts",
       "cannot create the export directory /dev/null/artifacts/"},
  };
  for (const Case& c : cases) {
    const std::string plan = Path("plan.yaml"), db = Path(absl::StrCat("cannot-", &c - cases, ".db"));
    WriteFile(plan, PlanText("cannot", 2, 1, 100, 50) + c.plan_keys);
    Coordinator coordinator;
    ASSERT_TRUE(StartCoordinator({"--plan", plan, "--db", db}, absl::StrCat("coordinator-", &c - cases),
                                 &coordinator));
    ChildProcess* worker = Spawn({kWorker, "--coordinator", coordinator.address, "--name", "w",
                                  c.worker_flag}, absl::StrCat("worker-", &c - cases));
    ASSERT_NE(worker, nullptr);
    ASSERT_TRUE(worker->Wait(120s)) << "the worker kept taking runs";
    EXPECT_EQ(worker->exit_code(), 4);  // a supervisor must not start it again
    const std::string log = ReadFile(worker->stderr_path());
    EXPECT_TRUE(absl::StrContains(log, "exiting with an error: this worker cannot train runs: "))
        << log;
    EXPECT_TRUE(absl::StrContains(log, c.why)) << log;
    Db store(db);
    EXPECT_EQ(store.Int("SELECT COUNT(*) FROM runs WHERE state = 'pending'"), 4);
    EXPECT_EQ(store.Text("SELECT group_concat(outcome) FROM attempts"), "released");
  }
}

// ---------------------------------------------------------------------------------------
// A score changed in the stored file after the run (a flipped bit) shows as a corrupt run
// in the report, with which run, and moves no mean.

TEST_F(IntegrationTest, AStoredScoreChangedAfterTheRunShowsAsCorruptAndMovesNoMean) {
  const std::string plan = Path("plan.yaml"), db = Path("honest.db");
  WriteFile(plan, PlanText("honest", 2, 1, 300, 100));
  CommandResult done = Run({kCoordinator, "--plan", plan, "--db", db, "--listen", "127.0.0.1:0",
                            "--local-workers", "1", "--exit-when-done"});
  ASSERT_EQ(done.code, 0) << done.err;
  auto before = ParseJson(Reproctl({"--db", db}, {"report", "--format", "json"}).out);
  ASSERT_TRUE(before.has_value());
  double run0_loss = 0;
  for (const Json& run : before->at("runs")) {
    if (run.at("arm") == "different_seeds" && run.at("index") == 0) run0_loss = run.at("test_loss");
  }

  // Change different_seeds #1's stored test loss in its last bits, as a bad disk would.
  sqlite3* handle = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &handle), SQLITE_OK);
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(handle,
                         "UPDATE attempts SET test_loss = test_loss * (1 + 2.3e-16) WHERE id = "
                         "(SELECT result_attempt FROM runs WHERE arm = 'different_seeds' AND idx = 1)",
                         nullptr, nullptr, &error),
            SQLITE_OK)
      << error;
  EXPECT_EQ(sqlite3_changes(handle), 1);
  sqlite3_close(handle);

  CommandResult text = Reproctl({"--db", db}, {"report"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(std::regex_search(text.out, std::regex("Done runs without scores: 0 diverged, 1 corrupt\n"
                                                     "- Run #1 \\(worker: [^)]+\\): corrupt: the stored "
                                                     "result \\(attempt [0-9]+\\) no longer matches")))
      << text.out;
  auto after = ParseJson(Reproctl({"--db", db}, {"report", "--format", "json"}).out);
  ASSERT_TRUE(after.has_value());
  const Json* arm = FindArm(*after, "different_seeds");
  ASSERT_NE(arm, nullptr);
  EXPECT_EQ(arm->at("runs_corrupt"), 1);
  EXPECT_EQ(arm->at("runs_scored"), 1);
  EXPECT_EQ(arm->at("mean").at("loss").get<double>(), run0_loss);
  EXPECT_EQ(FindArm(*after, "same_seed")->at("runs_corrupt"), 0);
}

// ---------------------------------------------------------------------------------------
// Dataset kind arrays: the coordinator reads the .npy files' headers and labels before
// anything is written, refuses a label out of range naming the file, and a good plan's
// runs train on a model of the labels' classes.

// An .npy file (format 1.0) as np.save writes it: `shape` in Python's form, e.g. "(4,)".
std::string Npy(const std::string& descr, const std::string& shape, const std::string& data) {
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ",
                                    shape, ", }");
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

// `labels` as int64 little-endian.
std::string Int64s(const std::vector<int64_t>& labels) {
  std::string out;
  for (int64_t label : labels) {
    for (int i = 0; i < 8; ++i) out += static_cast<char>((static_cast<uint64_t>(label) >> (8 * i)) & 0xff);
  }
  return out;
}

TEST_F(IntegrationTest, AnArraysPlanIsCheckedBeforeAnythingIsWrittenAndTrainsOnKClasses) {
  constexpr int kTrain = 64, kTest = 32;
  fs::create_directories(Path("arrays"));
  std::string train_x, test_x;
  for (int i = 0; i < kTrain * 28 * 28; ++i) train_x += static_cast<char>((i * 7 + i / 784 * 31) % 256);
  test_x = train_x.substr(0, kTest * 28 * 28);
  std::vector<int64_t> train_y, test_y;
  for (int i = 0; i < kTrain; ++i) train_y.push_back(i % 3);
  for (int i = 0; i < kTest; ++i) test_y.push_back(i % 3);
  WriteFile(Path("arrays/train_x.npy"), Npy("|u1", absl::StrCat("(", kTrain, ", 28, 28)"), train_x));
  WriteFile(Path("arrays/train_y.npy"), Npy("<i8", absl::StrCat("(", kTrain, ",)"), Int64s(train_y)));
  WriteFile(Path("arrays/test_x.npy"), Npy("|u1", absl::StrCat("(", kTest, ", 28, 28)"), test_x));
  std::vector<int64_t> bad_y = test_y;
  bad_y[1] = 5;
  WriteFile(Path("arrays/test_y.npy"), Npy("<i8", absl::StrCat("(", kTest, ",)"), Int64s(bad_y)));
  const std::string plan = Path("plan.yaml"), db = Path("arrays.db");
  WriteFile(plan,
            "experiment: arrays\nruns: 1\nepochs: 1\n"
            "dataset: {kind: arrays, train: {x: arrays/train_x.npy, y: arrays/train_y.npy},\n"
            "          test: {x: arrays/test_x.npy, y: arrays/test_y.npy}}\n"
            "training: {batch_size: 16}\n");
  const std::vector<std::string> command = {kCoordinator, "--plan", plan, "--db", db,
                                            "--listen", "127.0.0.1:0", "--local-workers", "1",
                                            "--exit-when-done"};
  CommandResult r = Run(command);
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err, absl::StrCat("coordinator: plan ", plan, ": dataset.test.y: ", Path("arrays/test_y.npy"),
                                ": label 5 at index 1 is outside 0..2 (the classes of dataset.train.y: "
                                "its largest label + 1 = 3)\n"));
  EXPECT_FALSE(fs::exists(db)) << "the database was created for a plan whose data is bad";

  WriteFile(Path("arrays/test_y.npy"), Npy("<i8", absl::StrCat("(", kTest, ",)"), Int64s(test_y)));
  ChildProcess* coordinator = Spawn(command, "coordinator");
  ASSERT_NE(coordinator, nullptr);
  ASSERT_TRUE(coordinator->Wait(120s)) << "the experiment did not finish in 120 s";
  ASSERT_EQ(coordinator->exit_code(), 0) << ReadFile(coordinator->stderr_path());
  ExpectStoreComplete(db, 2);
  Db store(db);
  ASSERT_TRUE(store.ok()) << store.error();
  for (const auto& row : store.Rows("SELECT hex(a.predictions) FROM runs r JOIN attempts a "
                                    "ON a.id = r.result_attempt")) {
    ASSERT_EQ(row.at(0).size(), 2u * kTest);
    for (size_t i = 0; i < row.at(0).size(); i += 2) {
      EXPECT_EQ(row.at(0)[i], '0') << row.at(0);
      EXPECT_LE(row.at(0)[i + 1], '2') << "a prediction outside the 3 classes: " << row.at(0);
    }
  }
}

}  // namespace
}  // namespace repro::testing
