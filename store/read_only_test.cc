// RunStore::OpenReadOnly, as reproctl --db uses it: it reads a finished store, also from
// a folder it may not write and of the older schema, and never changes a file, least of
// all one that is not a repro database.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "store/store.h"
#include "store/store_test_util.h"

namespace repro {
namespace {

namespace fs = std::filesystem;

constexpr char kPlan[] = "experiment: t\nruns: 2\nepochs: 1\n";

std::string Bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

using store_testing::Sql;

class ReadOnlyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "read_only_store_" + std::to_string(getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = dir_ + "/t.db";
  }
  void TearDown() override {
    fs::permissions(dir_, fs::perms::owner_all);
    fs::remove_all(dir_);
  }

  // A store whose first run is done and whose others are pending, closed (so its WAL is
  // folded into the file and removed).
  void MakeStore() {
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    auto plan = ParsePlan(kPlan, "t.yaml");
    ASSERT_TRUE(plan.ok()) << plan.status();
    ASSERT_TRUE((*store)->EnsureExperiment(*plan, kPlan).ok());
    auto lease = (*store)->LeaseNext("t", "w1", 1000, 60000);
    ASSERT_TRUE(lease.ok() && lease->has_value());
    RunResult result;
    result.test_loss = 0.25;
    result.initial_hash = "i";
    result.final_hash = "f";
    result.epochs.push_back(EpochRecord{});
    ASSERT_TRUE((*store)->Complete((*lease)->run_id, (*lease)->lease_id, result, 2000).ok());
  }

  std::string dir_;
  std::string path_;
};

// What reproctl --db report needs, read through OpenReadOnly: "" or what went wrong.
std::string ReadFinishedRun(const std::string& path) {
  auto store = RunStore::OpenReadOnly(path);
  if (!store.ok()) return std::string(store.status().message());
  auto view = (*store)->LoadView("t");
  if (!view.ok()) return std::string(view.status().message());
  if (view->runs.size() != 4 || view->runs[0].state != RunState::kDone ||
      view->runs[0].result.test_loss != 0.25 || view->runs[1].state != RunState::kPending) {
    return "the view is not the store's";
  }
  return "";
}

TEST_F(ReadOnlyStoreTest, ReadsAStoreAndChangesNothing) {
  MakeStore();
  const std::string before = Bytes(path_);
  EXPECT_EQ(ReadFinishedRun(path_), "");
  auto store = RunStore::OpenReadOnly(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_FALSE((*store)->UpsertWorker({"w9", "h", "1.13", "cpu", 1, 0, "", {}, {}, 0, ""}).ok());
  store->reset();
  EXPECT_EQ(Bytes(path_), before);
}

TEST_F(ReadOnlyStoreTest, ReadsAStoreInAFolderItMayNotWrite) {
  MakeStore();
  fs::permissions(path_, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                            fs::perms::group_exec | fs::perms::others_read |
                            fs::perms::others_exec);
  if (getuid() != 0) {
    EXPECT_EQ(ReadFinishedRun(path_), "");
  } else {
    // Permissions do not stop root: read as nobody, in a child that gave root up.
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
      const std::string error = ReadFinishedRun(path_);
      if (!error.empty()) std::fprintf(stderr, "as nobody: %s\n", error.c_str());
      _exit(error.empty() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_NE(WEXITSTATUS(status), 2) << "could not become nobody";
    EXPECT_EQ(WEXITSTATUS(status), 0) << "reading as nobody failed (its message is above)";
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1)
      << "something was made beside the database";
}

TEST_F(ReadOnlyStoreTest, RefusesWhatIsNotARepoDatabaseWithoutChangingIt) {
  const std::string foreign = dir_ + "/foreign.db", empty = dir_ + "/empty.db",
                    text = dir_ + "/notes.txt";
  Sql(foreign, "CREATE TABLE people (name TEXT); INSERT INTO people VALUES ('ada');");
  std::ofstream(empty).close();
  std::ofstream(text) << "not SQLite at all, but long enough to have a header's worth of bytes.";
  for (const std::string& path : {foreign, empty, text}) {
    const std::string before = Bytes(path);
    auto store = RunStore::OpenReadOnly(path);
    ASSERT_FALSE(store.ok()) << path;
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store.status().message(),
              path + ": not a repro database (no repro tables in it); nothing was changed");
    EXPECT_EQ(Bytes(path), before) << path << " was changed";
  }
}

TEST_F(ReadOnlyStoreTest, ReadsASchemaOneStoreWithoutUpgradingIt) {
  MakeStore();
  Sql(path_,
      "ALTER TABLE attempts DROP COLUMN secret_hash; ALTER TABLE attempts DROP COLUMN checksum;"
      "ALTER TABLE attempts DROP COLUMN diverged;"
      "UPDATE meta SET value = '1' WHERE key = 'schema_version';");
  const std::string before = Bytes(path_);
  EXPECT_EQ(ReadFinishedRun(path_), "");
  EXPECT_EQ(Bytes(path_), before) << "the read-only open upgraded the file";
}

TEST_F(ReadOnlyStoreTest, ReadsASchemaTwoStoreWithoutUpgradingIt) {
  MakeStore();
  Sql(path_, "DROP TABLE weight_files; DROP TABLE localizations; "
             "UPDATE meta SET value = '2' WHERE key = 'schema_version';");
  const std::string before = Bytes(path_);
  EXPECT_EQ(ReadFinishedRun(path_), "");
  EXPECT_EQ(Bytes(path_), before) << "the read-only open upgraded the file";
}

TEST_F(ReadOnlyStoreTest, ReadsASchemaFourStoresWorkersWithoutUpgradingIt) {
  MakeStore();
  {
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->UpsertWorker({"w1", "h", "1.13", "cpu", 2, 1500, "", {}, {}, 0, ""}).ok());
  }
  Sql(path_, "ALTER TABLE workers DROP COLUMN capabilities; ALTER TABLE workers DROP COLUMN labels;"
             "ALTER TABLE workers DROP COLUMN gone_ms; ALTER TABLE workers DROP COLUMN gone_reason;"
             "DROP INDEX runs_pending_by_arm;"
             "UPDATE meta SET value = '4' WHERE key = 'schema_version';");
  const std::string before = Bytes(path_);
  EXPECT_EQ(ReadFinishedRun(path_), "");
  auto store = RunStore::OpenReadOnly(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  auto workers = (*store)->Workers();
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ(workers->at(0).threads, 2);
  EXPECT_TRUE(workers->at(0).labels.empty());
  EXPECT_FALSE(workers->at(0).gone());
  store->reset();
  EXPECT_EQ(Bytes(path_), before) << "the read-only open upgraded the file";
}

TEST_F(ReadOnlyStoreTest, ReadsTheTestLabelsAndASchemaFiveStoreWithoutThem) {
  MakeStore();
  {
    auto store = RunStore::Open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(*(*store)->SetTestLabels("t", {2, 0, 1}));
  }
  {
    auto store = RunStore::OpenReadOnly(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->LoadView("t")->test_labels, (std::vector<uint8_t>{2, 0, 1}));
  }
  Sql(path_, "ALTER TABLE experiments DROP COLUMN test_labels;"
             "ALTER TABLE experiments DROP COLUMN adaptive;"
             "UPDATE meta SET value = '5' WHERE key = 'schema_version';");
  const std::string before = Bytes(path_);
  EXPECT_EQ(ReadFinishedRun(path_), "");
  auto store = RunStore::OpenReadOnly(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  auto view = (*store)->LoadView("t");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_TRUE(view->test_labels.empty());
  store->reset();
  EXPECT_EQ(Bytes(path_), before) << "the read-only open upgraded the file";
}

TEST_F(ReadOnlyStoreTest, ReadsASchemaSixStoreAsOneWithAFixedRunCount) {
  MakeStore();
  Sql(path_, "ALTER TABLE experiments DROP COLUMN adaptive;"
             "UPDATE meta SET value = '6' WHERE key = 'schema_version';");
  const std::string before = Bytes(path_);
  auto store = RunStore::OpenReadOnly(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  auto view = (*store)->LoadView("t");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_FALSE(view->adaptive.has_value());
  EXPECT_FALSE((*store)->Adaptive("t")->has_value());
  store->reset();
  EXPECT_EQ(Bytes(path_), before) << "the read-only open upgraded the file";
}

TEST_F(ReadOnlyStoreTest, RefusesAStoreOfANewerSchema) {
  MakeStore();
  const int newer = kSchemaVersion + 1;
  Sql(path_, absl::StrCat("UPDATE meta SET value = '", newer, "' WHERE key = 'schema_version';").c_str());
  auto store = RunStore::OpenReadOnly(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_TRUE(absl::StrContains(store.status().message(),
                                absl::StrCat("schema version ", newer, " is newer")))
      << store.status();
}

}  // namespace
}  // namespace repro
