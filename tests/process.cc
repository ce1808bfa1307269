#include "tests/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace repro::testing {

ChildProcess::~ChildProcess() { KillAll(); }

std::string ChildProcess::Start(const std::vector<std::string>& argv, const std::string& dir,
                                const std::string& stdout_path,
                                const std::string& stderr_path) {
  if (argv.empty()) return "no command given";
  if (!reaped_) return "this ChildProcess already runs a process";
  name_ = argv[0].substr(argv[0].rfind('/') + 1);
  stdout_path_ = stdout_path;
  stderr_path_ = stderr_path;

  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (std::string& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  // The tests name the coordinator explicitly; an address in the environment must not leak in.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (absl::StartsWith(*e, "REPRO_COORDINATOR=") || absl::StartsWith(*e, "REPRO_TOKEN=")) continue;
    env.emplace_back(*e);
  }
  std::vector<char*> c_env;
  for (std::string& e : env) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (!dir.empty()) posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, defaults;
  sigemptyset(&empty);
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // a group of its own: KillAll reaches its children
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  const int rc = posix_spawn(&pid, c_argv[0], &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::StrCat("cannot start ", argv[0], ": ", std::strerror(rc));
  pid_ = pid;
  reaped_ = false;
  exit_code_ = -1;
  signaled_ = false;
  return "";
}

void ChildProcess::Reaped(int status) {
  reaped_ = true;
  if (WIFEXITED(status)) {
    exit_code_ = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    signaled_ = true;
    exit_code_ = 128 + WTERMSIG(status);
  }
}

bool ChildProcess::Running() {
  if (reaped_) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    Reaped(status);
    return false;
  }
  if (r < 0 && errno == ECHILD) {
    reaped_ = true;
    return false;
  }
  return true;
}

bool ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!Running()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void ChildProcess::Signal(int sig) {
  if (Running()) kill(pid_, sig);
}

void ChildProcess::KillAll() {
  if (pid_ <= 0) return;
  // The group outlives its leader when the leader left children behind (a coordinator
  // killed with -9 leaves its local workers): kill the group even after a reap.
  kill(-pid_, SIGKILL);
  if (!reaped_) {
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) Reaped(status);
    reaped_ = true;
  }
  pid_ = -1;
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& dir,
                         std::chrono::milliseconds timeout) {
  static std::atomic<int> counter{0};
  const std::string base = absl::StrCat(dir, "/cmd-", counter.fetch_add(1));
  CommandResult result;
  ChildProcess child;
  const std::string error = child.Start(argv, dir, base + ".out", base + ".err");
  if (!error.empty()) {
    result.err = error;
    return result;
  }
  if (!child.Wait(timeout)) {
    result.timed_out = true;
    child.KillAll();
  }
  result.code = child.exit_code();
  result.out = ReadFile(base + ".out");
  result.err = ReadFile(base + ".err");
  return result;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

int WaitForPortFile(ChildProcess& child, const std::string& port_file) {
  for (int i = 0; i < 1500 && child.Running(); ++i) {
    const std::string text = ReadFile(port_file);
    if (!text.empty() && text.back() == '\n') return std::atoi(text.c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return 0;
}

}  // namespace repro::testing
