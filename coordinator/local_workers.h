// LocalWorkers: the `--local-workers N` processes, started from the worker binary
// beside the coordinator's, pointed at its address, with their output in log files
// (the coordinator's own terminal shows progress). A worker that dies is reported and
// started again, up to a limit, and every worker is stopped when the experiment ends.
//
// Thread safety: not thread-safe; the coordinator's main loop owns it.
#ifndef REPRO_COORDINATOR_LOCAL_WORKERS_H_
#define REPRO_COORDINATOR_LOCAL_WORKERS_H_

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace repro {

// The worker binary: $REPRO_WORKER_BINARY, else `worker` beside this executable, else
// ../worker/worker (the build tree's layout).
absl::StatusOr<std::string> FindWorkerBinary();

class LocalWorkers {
 public:
  using Log = std::function<void(const std::string&)>;
  // `extra_args` are added to every worker's command line (TLS files).
  LocalWorkers(std::string binary, std::string coordinator_address, std::string log_prefix,
               Log log, std::vector<std::string> extra_args = {})
      : binary_(std::move(binary)), address_(std::move(coordinator_address)),
        log_prefix_(std::move(log_prefix)), log_(std::move(log)),
        extra_args_(std::move(extra_args)) {}
  ~LocalWorkers() { StopAll(); }

  absl::Status Start(int count);
  // Reaps workers that exited; restarts those that died (at most 3 restarts each).
  void Poll();
  // SIGTERM, then SIGKILL after `grace_ms`, and wait for every worker.
  void StopAll(int grace_ms = 10000);

 private:
  struct Child {
    int slot = 0;
    pid_t pid = -1;
    int restarts = 0;
    std::string log_path;
  };
  absl::Status Spawn(Child* child);

  std::string binary_;
  std::string address_;
  std::string log_prefix_;
  Log log_;
  std::vector<std::string> extra_args_;
  std::vector<Child> children_;
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_LOCAL_WORKERS_H_
