// The fixture of the integration tests (integration_test.cc: experiments end to end,
// bad plans and flags; recovery_test.cc: killed workers and coordinators, draining,
// resuming; hostile_test.cc: what reproctl and the worker refuse): the real coordinator,
// worker and reproctl binaries on loopback ports, training the small CNN on a few hundred
// real Fashion-MNIST images. Each test has a temporary folder and ports of its own, and
// kills what it started (ChildProcess does so even when an assertion fails). They check
// what a user notices: exit codes, one-sentence errors, the reports, and the SQLite
// store after crashes and restarts. Timeouts only guard against hangs; nothing here
// asserts on speed.
#ifndef REPRO_TESTS_INTEGRATION_FIXTURE_H_
#define REPRO_TESTS_INTEGRATION_FIXTURE_H_

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

using Json = nlohmann::json;
using std::chrono::milliseconds;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

inline const std::string kCoordinator = REPRO_COORDINATOR_BIN;
inline const std::string kWorker = REPRO_WORKER_BIN;
inline const std::string kReproctl = REPRO_REPROCTL_BIN;
inline const std::string kFashionMnist = REPRO_FASHION_MNIST;
inline const std::string kTestData = REPRO_TEST_DATA;
inline const std::string kExamples = REPRO_EXAMPLES;

// Sanitizer builds run several times slower, and a heartbeat that comes late makes a
// lease lapse and a run take one more attempt than the tests count on: their ctest
// environment (tests/sanitizers/ctest_env.cmake.in) sets a longer interval.
inline const int kHeartbeatMs = [] {
  const char* value = std::getenv("REPRO_TEST_HEARTBEAT_MS");
  const int ms = value != nullptr ? std::atoi(value) : 0;
  return ms > 0 ? ms : 200;
}();

inline std::string PlanText(const std::string& experiment, int runs, int epochs, int train_limit,
                     int test_limit, const std::string& data = kFashionMnist) {
  return absl::StrCat("experiment: ", experiment, "\nruns: ", runs, "\nepochs: ", epochs,
                      "\ndataset: {kind: fashion-mnist, path: ", data,
                      ", train_limit: ", train_limit, ", test_limit: ", test_limit, "}\n");
}

// Polls `done` every `interval` until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& done, milliseconds timeout,
             milliseconds interval = 100ms) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

inline std::optional<Json> ParseJson(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

inline const Json* FindArm(const Json& report, const std::string& name) {
  for (const Json& arm : report.at("arms")) {
    if (arm.at("name") == name) return &arm;
  }
  return nullptr;
}

inline std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

inline std::string Tail(const std::string& text, size_t n = 3000) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

// A loopback port that was free a moment ago (for a coordinator restarted on the same one).
inline int FreeLoopbackPort() {
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

// A coordinator of `plan` and `db` on a loopback port chosen now and kept in the command,
// so that one restarted with it listens where the workers already dial; the address is
// empty when no port was free.
struct FixedPortCoordinator {
  std::string address;
  std::vector<std::string> command;
};
inline FixedPortCoordinator OnAFixedPort(const std::string& plan, const std::string& db) {
  const int port = FreeLoopbackPort();
  if (port <= 0) return {};
  const std::string address = absl::StrCat("127.0.0.1:", port);
  return {address, {kCoordinator, "--plan", plan, "--db", db, "--listen", address,
                    "--heartbeat-ms", std::to_string(kHeartbeatMs)}};
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

inline ::testing::AssertionResult IsHex32(const std::string& text) {
  static const std::regex hex("^[0-9a-f]{32}$");
  if (std::regex_match(text, hex)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" is not 32 lowercase hex digits";
}

// Checks what every finished experiment's store must hold: each run once, done, with
// exactly one counted ('done') attempt, and an intact file.
inline void ExpectStoreComplete(const std::string& path, int runs_total) {
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
inline void ExpectSameSeedArmIdentical(const Json& report, int runs) {
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

}  // namespace repro::testing

#endif  // REPRO_TESTS_INTEGRATION_FIXTURE_H_
