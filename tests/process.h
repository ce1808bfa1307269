// Child processes for the integration tests: start one of the built binaries with its
// standard output and error in files, wait for it with a deadline, signal it, and make
// sure nothing it started outlives the test.
//
// A ChildProcess is not thread-safe: one test thread starts, waits on and kills it.
// Each child runs in a process group of its own; the destructor sends SIGKILL to that
// group and reaps the child, so a failing assertion never leaves a coordinator or a
// worker behind.
#ifndef REPRO_TESTS_PROCESS_H_
#define REPRO_TESTS_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace repro::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts argv[0] (a path) with the arguments argv[1..] in directory `dir`, standard
  // input from /dev/null, standard output and error into the two files (truncated).
  // REPRO_COORDINATOR and REPRO_TOKEN are removed from its environment. Returns an
  // empty string on success, else why it could not start.
  std::string Start(const std::vector<std::string>& argv, const std::string& dir,
                    const std::string& stdout_path, const std::string& stderr_path);

  pid_t pid() const { return pid_; }
  const std::string& stdout_path() const { return stdout_path_; }
  const std::string& stderr_path() const { return stderr_path_; }
  const std::string& name() const { return name_; }

  // True while the child has not exited (reaps it when it has).
  bool Running();
  // Waits until the child exits or `timeout` passes; true if it exited.
  bool Wait(std::chrono::milliseconds timeout);
  // After the child exited: its exit code, or 128 + the signal that ended it.
  int exit_code() const { return exit_code_; }
  bool killed_by_signal() const { return signaled_; }

  // Sends `sig` to the child only (not to its group).
  void Signal(int sig);
  // SIGKILL to the child's whole process group, then reaps the child.
  void KillAll();

 private:
  void Reaped(int status);

  pid_t pid_ = -1;
  bool reaped_ = true;
  int exit_code_ = -1;
  bool signaled_ = false;
  std::string name_, stdout_path_, stderr_path_;
};

// What a short command did.
struct CommandResult {
  int code = -1;           // exit code, 128 + signal, or -1 if it did not start
  bool timed_out = false;  // killed after the deadline
  std::string out, err;
};

// Runs a command to its end (killed after `timeout`), its output kept in files under
// `dir` and returned.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& dir,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& text);

// The port that `child`, a coordinator started with --port-file `port_file`, wrote there
// (a whole line); 0 when it exited first or did not within 30 s.
int WaitForPortFile(ChildProcess& child, const std::string& port_file);

}  // namespace repro::testing

#endif  // REPRO_TESTS_PROCESS_H_
