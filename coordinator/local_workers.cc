#include "coordinator/local_workers.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace repro {
namespace {

constexpr int kMaxRestarts = 3;

std::string SelfDirectory() {
  char path[4096];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return ".";
  std::string self(path, static_cast<size_t>(n));
  return self.substr(0, self.rfind('/'));
}

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string all = text.str();
  if (all.size() > max_bytes) all = all.substr(all.size() - max_bytes);
  while (!all.empty() && all.back() == '\n') all.pop_back();
  return all;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return "stopped";
}

}  // namespace

absl::StatusOr<std::string> FindWorkerBinary() {
  if (const char* env = std::getenv("REPRO_WORKER_BINARY"); env != nullptr && *env != '\0') {
    if (Executable(env)) return std::string(env);
    return absl::InvalidArgumentError(
        absl::StrCat("REPRO_WORKER_BINARY=", env, " is not an executable file"));
  }
  const std::string dir = SelfDirectory();
  for (const std::string& candidate : {dir + "/worker", dir + "/../worker/worker"}) {
    if (Executable(candidate)) return candidate;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--local-workers needs the worker binary, but there is none at ", dir, "/worker or ", dir,
      "/../worker/worker; build it or set REPRO_WORKER_BINARY"));
}

absl::Status LocalWorkers::Spawn(Child* child) {
  const std::string name = absl::StrCat("local-", getpid(), "-", child->slot);
  std::vector<std::string> args = {binary_, "--coordinator", address_, "--name", name};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int fd = open(child->log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat(child->log_path, ": cannot open worker log: ",
                                            std::strerror(errno)));
  }
  const pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    return absl::InternalError(absl::StrCat("cannot start a local worker: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: its own process group, so a Ctrl-C on the coordinator's terminal reaches the
    // coordinator only, which then stops its workers in order.
    setpgid(0, 0);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execv(binary_.c_str(), argv.data());
    std::fprintf(stderr, "cannot execute %s: %s\n", binary_.c_str(), std::strerror(errno));
    _exit(127);
  }
  close(fd);
  child->pid = pid;
  log_(absl::StrCat("started local worker ", name, " (pid ", pid, ", log ", child->log_path, ")"));
  return absl::OkStatus();
}

absl::Status LocalWorkers::Start(int count) {
  for (int i = 0; i < count; ++i) {
    Child child;
    child.slot = i;
    child.log_path = absl::StrCat(log_prefix_, "worker-", i, ".log");
    std::remove(child.log_path.c_str());
    if (absl::Status s = Spawn(&child); !s.ok()) return s;
    children_.push_back(child);
  }
  return absl::OkStatus();
}

void LocalWorkers::Poll() {
  for (Child& child : children_) {
    if (child.pid <= 0) continue;
    int status = 0;
    if (waitpid(child.pid, &status, WNOHANG) != child.pid) continue;
    child.pid = -1;
    const bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (clean) continue;  // it saw the experiment finish
    log_(absl::StrCat("local worker ", child.slot, " ", DescribeExit(status), "; last lines of ",
                      child.log_path, ":\n", Tail(child.log_path, 800)));
    if (child.restarts >= kMaxRestarts) {
      log_(absl::StrCat("local worker ", child.slot, " died ", kMaxRestarts + 1,
                        " times; not starting it again"));
      continue;
    }
    ++child.restarts;
    if (absl::Status s = Spawn(&child); !s.ok()) log_(std::string(s.message()));
  }
}

void LocalWorkers::StopAll(int grace_ms) {
  for (Child& child : children_) {
    if (child.pid > 0) kill(child.pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  for (Child& child : children_) {
    while (child.pid > 0) {
      int status = 0;
      const pid_t r = waitpid(child.pid, &status, WNOHANG);
      if (r == child.pid || (r < 0 && errno == ECHILD)) {
        child.pid = -1;
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill(child.pid, SIGKILL);
        waitpid(child.pid, &status, 0);
        child.pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

}  // namespace repro
