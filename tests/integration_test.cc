// Integration tests: the real coordinator, worker and reproctl binaries on loopback
// ports, training the small CNN on a few hundred real Fashion-MNIST images. Each test
// has a temporary folder and ports of its own, and kills what it started (ChildProcess
// does so even when an assertion fails). They check what a user notices: exit codes,
// one-sentence errors, the reports, and the SQLite store after crashes and restarts.
// Timeouts only guard against hangs; nothing here asserts on speed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "tests/fake_http.h"
#include "tests/process.h"

namespace repro::testing {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kCoordinator = REPRO_COORDINATOR_BIN;
const std::string kWorker = REPRO_WORKER_BIN;
const std::string kReproctl = REPRO_REPROCTL_BIN;
const std::string kFashionMnist = REPRO_FASHION_MNIST;
const std::string kTestData = REPRO_TEST_DATA;

// Sanitizer builds run several times slower, and a heartbeat that comes late makes a
// lease lapse and a run take one more attempt than the tests count on: their ctest
// environment (tests/sanitizers/ctest_env.cmake.in) sets a longer interval.
const int kHeartbeatMs = [] {
  const char* value = std::getenv("REPRO_TEST_HEARTBEAT_MS");
  const int ms = value != nullptr ? std::atoi(value) : 0;
  return ms > 0 ? ms : 200;
}();

std::string PlanText(const std::string& experiment, int runs, int epochs, int train_limit,
                     int test_limit, const std::string& data = kFashionMnist) {
  return absl::StrCat("experiment: ", experiment, "\nruns: ", runs, "\nepochs: ", epochs,
                      "\ndataset: {kind: fashion-mnist, path: ", data,
                      ", train_limit: ", train_limit, ", test_limit: ", test_limit, "}\n");
}

// Polls `done` every `interval` until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& done, milliseconds timeout,
             milliseconds interval = 100ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::optional<Json> ParseJson(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

const Json* FindArm(const Json& report, const std::string& name) {
  for (const Json& arm : report.at("arms")) {
    if (arm.at("name") == name) return &arm;
  }
  return nullptr;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

std::string Tail(const std::string& text, size_t n = 3000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

// A loopback port that was free a moment ago (for a coordinator restarted on the same one).
int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Read-only queries on an experiment's SQLite file, as a user with sqlite3 would make them.
class Db {
 public:
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      error_ = db_ != nullptr ? sqlite3_errmsg(db_) : "cannot open";
    } else {
      sqlite3_busy_timeout(db_, 5000);
    }
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // Every row, each column as text ("NULL" for NULL); an "error: ..." row on failure.
  std::vector<std::vector<std::string>> Rows(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      return {{absl::StrCat("error: ", sqlite3_errmsg(db_), " in ", sql)}};
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const unsigned char* text = sqlite3_column_text(stmt, i);
        row.push_back(text == nullptr ? "NULL" : reinterpret_cast<const char*>(text));
      }
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) rows.push_back({absl::StrCat("error: ", sqlite3_errmsg(db_))});
    sqlite3_finalize(stmt);
    return rows;
  }

  // The first column of the first row, as text ("" when there is no row).
  std::string Text(const std::string& sql) {
    auto rows = Rows(sql);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0];
  }
  int64_t Int(const std::string& sql) { return std::strtoll(Text(sql).c_str(), nullptr, 10); }

 private:
  sqlite3* db_ = nullptr;
  std::string error_;
};

class IntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "repro_it_XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "cannot make a temporary folder";
    dir_ = pattern;
  }

  void TearDown() override {
    for (auto& child : children_) child->KillAll();
    if (HasFailure()) {
      for (auto& child : children_) {
        std::fprintf(stderr, "---- stderr of %s (%s):\n%s\n", child->name().c_str(),
                     child->stderr_path().c_str(), Tail(ReadFile(child->stderr_path())).c_str());
      }
      std::fprintf(stderr, "---- files kept in %s\n", dir_.c_str());
    } else if (!dir_.empty()) {
      std::error_code ignored;
      fs::remove_all(dir_, ignored);
    }
  }

  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  // Starts a long-lived process; killed at the end of the test at the latest.
  ChildProcess* Spawn(const std::vector<std::string>& argv, const std::string& label) {
    children_.push_back(std::make_unique<ChildProcess>());
    ChildProcess* child = children_.back().get();
    const std::string error =
        child->Start(argv, dir_, Path(label + ".out"), Path(label + ".err"));
    if (!error.empty()) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    return child;
  }

  ChildProcess* StartWorker(const std::string& address, const std::string& name) {
    return Spawn({kWorker, "--coordinator", address, "--name", name}, name);
  }

  struct Coordinator {
    ChildProcess* process = nullptr;
    std::string address;
  };

  // Starts a coordinator on a port of its own choosing and waits until it has told us which.
  ::testing::AssertionResult StartCoordinator(std::vector<std::string> args,
                                              const std::string& label, Coordinator* out) {
    const std::string port_file = Path(label + ".port");
    std::vector<std::string> argv = {kCoordinator, "--listen", "127.0.0.1:0", "--port-file",
                                     port_file};
    argv.insert(argv.end(), args.begin(), args.end());
    out->process = Spawn(argv, label);
    if (out->process == nullptr) return ::testing::AssertionFailure() << "no coordinator";
    int port = 0;
    const bool up = WaitFor(
        [&] {
          const std::string text = ReadFile(port_file);
          if (!text.empty() && text.back() == '\n') port = std::atoi(text.c_str());
          return port > 0 || !out->process->Running();
        },
        30s, 20ms);
    if (!up || port <= 0) {
      return ::testing::AssertionFailure()
             << "the coordinator did not write its port to " << port_file
             << (out->process->Running() ? " within 30 s"
                                         : absl::StrCat("; it exited with code ",
                                                        out->process->exit_code()))
             << "; stderr:\n" << ReadFile(out->process->stderr_path());
    }
    out->address = absl::StrCat("127.0.0.1:", port);
    return ::testing::AssertionSuccess();
  }

  CommandResult Run(const std::vector<std::string>& argv) { return RunCommand(argv, dir_, 60s); }

  // reproctl with `target` ({"--coordinator", ADDR} or {"--db", PATH}) and `args`.
  CommandResult Reproctl(const std::vector<std::string>& target,
                         const std::vector<std::string>& args) {
    std::vector<std::string> argv = {kReproctl};
    argv.insert(argv.end(), target.begin(), target.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv);
  }

  std::optional<Json> Status(const std::vector<std::string>& target) {
    CommandResult r = Reproctl(target, {"status", "--format", "json"});
    if (r.code != 0) return std::nullopt;
    return ParseJson(r.out);
  }

  // Waits until `status --format json` shows at least `done` runs done.
  ::testing::AssertionResult WaitForDone(const std::vector<std::string>& target, int done,
                                         milliseconds timeout,
                                         milliseconds interval = 100ms) {
    Json last;
    const bool ok = WaitFor(
        [&] {
          auto status = Status(target);
          if (status) last = *status;
          return status && status->at("runs").at("done").get<int>() >= done;
        },
        timeout, interval);
    if (ok) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "fewer than " << done << " runs done after "
                                         << timeout.count() << " ms; last status: " << last.dump();
  }

  // A Fashion-MNIST folder whose training images stop after 10 of the 60000 the header
  // announces; the other three files are the real ones.
  std::string MakeTruncatedDataset() {
    const std::string dir = Path("truncated-fashion-mnist");
    fs::create_directories(dir);
    for (const char* name : {"train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                             "t10k-labels-idx1-ubyte.gz"}) {
      fs::copy_file(kFashionMnist + "/" + name, dir + "/" + name);
    }
    const std::string images = dir + "/train-images-idx3-ubyte.gz";
    gzFile gz = gzopen(images.c_str(), "wb");
    EXPECT_NE(gz, nullptr) << images;
    if (gz == nullptr) return dir;
    std::string bytes;
    for (uint32_t word : {0x00000803u, 60000u, 28u, 28u}) {
      for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((word >> shift) & 0xff));
    }
    bytes.append(10 * 28 * 28, '\x7f');
    EXPECT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
              static_cast<int>(bytes.size()));
    EXPECT_EQ(gzclose(gz), Z_OK);
    return dir;
  }

  std::string dir_;
  std::vector<std::unique_ptr<ChildProcess>> children_;
};

::testing::AssertionResult IsHex32(const std::string& text) {
  static const std::regex hex("^[0-9a-f]{32}$");
  if (std::regex_match(text, hex)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" is not 32 lowercase hex digits";
}

// Checks what every finished experiment's store must hold: each run once, done, with
// exactly one counted ('done') attempt, and an intact file.
void ExpectStoreComplete(const std::string& path, int runs_total) {
  Db db(path);
  ASSERT_TRUE(db.ok()) << path << ": " << db.error();
  EXPECT_EQ(db.Int("SELECT COUNT(*) FROM runs"), runs_total);
  EXPECT_EQ(db.Int("SELECT COUNT(*) FROM runs WHERE state = 'done'"), runs_total);
  EXPECT_EQ(db.Int("SELECT COUNT(*) FROM (SELECT run_id FROM attempts WHERE outcome = 'done' "
                   "GROUP BY run_id HAVING COUNT(*) > 1)"),
            0)
      << "some run has more than one counted ('done') attempt";
  EXPECT_EQ(db.Int("SELECT COUNT(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM attempts a "
                   "WHERE a.id = r.result_attempt AND a.run_id = r.id AND a.outcome = 'done')"),
            0)
      << "some done run does not point at a 'done' attempt of its own";
  EXPECT_EQ(db.Text("PRAGMA integrity_check"), "ok");
}

// The same_seed arm of a finished default plan: every fingerprint equal, no spread.
void ExpectSameSeedArmIdentical(const Json& report, int runs) {
  const Json* same = FindArm(report, "same_seed");
  ASSERT_NE(same, nullptr) << report.dump(2);
  EXPECT_EQ(same->at("runs_total"), runs);
  EXPECT_EQ(same->at("runs_done"), runs);
  EXPECT_EQ(same->at("models_all_same"), true);
  EXPECT_EQ(same->at("data_all_same"), true);
  EXPECT_EQ(same->at("batches_all_same"), true);
  EXPECT_EQ(same->at("final_models_all_same"), true);
  EXPECT_TRUE(same->at("differences").empty()) << same->at("differences").dump();
  EXPECT_TRUE(same->at("first_divergence_epoch").is_null()) << same->dump();
  ASSERT_TRUE(same->at("stdev").at("loss").is_number()) << same->dump();
  ASSERT_TRUE(same->at("stdev").at("accuracy").is_number()) << same->dump();
  EXPECT_EQ(same->at("stdev").at("loss").get<double>(), 0.0);
  EXPECT_EQ(same->at("stdev").at("accuracy").get<double>(), 0.0);
}

// ---------------------------------------------------------------------------------------

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
    EXPECT_EQ(run.at("artifacts").at("worker"), worker);
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
  const int port = FreeLoopbackPort();
  ASSERT_GT(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  std::vector<std::string> command = {kCoordinator, "--plan", plan, "--db", db, "--listen",
                                      address, "--heartbeat-ms", std::to_string(kHeartbeatMs)};
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
// A worker that cannot train (no CUDA, an artifacts folder it cannot make) hands its run
// back, at no cost to the run's attempts, and exits saying why.

TEST_F(IntegrationTest, AWorkerThatCannotTrainHandsTheRunBackAndExits) {
  struct Case {
    std::string plan_keys, worker_flag, why;
  };
  const Case cases[] = {
      {"determinism: {device: cuda}\n", "--threads=1", "device cuda requested but this LibTorch has no CUDA"},
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
    if (worker->exit_code() == 0 && &c == cases) {
      std::fprintf(stderr, "this machine has CUDA: the first case does not apply\n");
      continue;
    }
    EXPECT_EQ(worker->exit_code(), 1);
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

}  // namespace
}  // namespace repro::testing
