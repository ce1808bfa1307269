#include "worker/slots.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/cli.h"

namespace repro {

std::optional<Slot> SlotFromEnvironment(std::string* error) {
  const char* value = std::getenv(kSlotEnv);
  if (value == nullptr) return std::nullopt;
  const std::vector<std::string> parts = absl::StrSplit(value, '/');
  Slot slot;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &slot.index) ||
      !absl::SimpleAtoi(parts[1], &slot.count) || slot.count < 1 || slot.index < 1 ||
      slot.index > slot.count) {
    *error = absl::StrCat(kSlotEnv, "=\"", value, "\" is not k/N with 1 <= k <= N");
    return std::nullopt;
  }
  return slot;
}

std::string SlotName(const std::string& name, const Slot& slot) {
  return absl::StrCat(name, ":", slot.index);
}

namespace {

// The exit code a waitpid status stands for: the code, or 128 + the signal.
int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return cli::kExitError;
}

pid_t StartSlot(char** argv, int index, int count) {
  const pid_t pid = fork();
  if (pid != 0) return pid;  // the parent, or -1
  setenv(kSlotEnv, absl::StrCat(index, "/", count).c_str(), /*overwrite=*/1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "worker: cannot start slot %d: %s\n", index, std::strerror(errno));
  _exit(cli::kExitError);
}

}  // namespace

int RunSlots(char** argv, int slots, const std::atomic<int>* signal) {
  std::vector<pid_t> pids(static_cast<size_t>(slots), -1);
  std::vector<int> codes(static_cast<size_t>(slots), 0);
  int running = 0;
  for (int k = 1; k <= slots; ++k) {
    const pid_t pid = StartSlot(argv, k, slots);
    if (pid < 0) {
      cli::LogLine(absl::StrCat("cannot start slot ", k, ": ", std::strerror(errno)));
      codes[static_cast<size_t>(k - 1)] = cli::kExitError;
      continue;
    }
    pids[static_cast<size_t>(k - 1)] = pid;
    ++running;
  }
  cli::LogLine(absl::StrCat("started ", running, " of ", slots, " slots"));
  int forwarded = 0;
  while (running > 0) {
    const int sig = signal->load();
    if (sig != 0 && sig != forwarded) {
      for (pid_t pid : pids) {
        if (pid > 0) kill(pid, sig);
      }
      forwarded = sig;
    }
    int status = 0;
    const pid_t done = waitpid(-1, &status, WNOHANG);
    if (done <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    for (size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] != done) continue;
      codes[i] = ExitCode(status);
      pids[i] = -1;
      --running;
      cli::LogLine(absl::StrCat("slot ", i + 1, " exited with code ", codes[i]));
    }
  }
  for (int code : codes) {
    if (code != 0) return code;
  }
  return cli::kExitOk;
}

}  // namespace repro
