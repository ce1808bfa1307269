// The registered workers as placement sees them (common/placement.h): which of the
// plan's arms each may run, worked out once when it registers (or when a coordinator
// restarted from its database first meets it), and, for an arm whose runs spread across
// hosts or GPUs, whether it may take one now. Lease asks ArmsFor before each lease; a
// plan with no placement and a worker that can run every arm cost nothing more.
//
// Spread: a worker may take a run of such an arm only while its host (or GPU) has had no
// more of the arm's runs (running or counted) than any other host of a worker that is
// here and can run the arm. So runs go to distinct hosts while there are hosts to spare,
// then round by round; a host never waits on one that left.
//
// Thread safety: thread-safe (one mutex around the cache; the store is thread-safe).
#ifndef REPRO_COORDINATOR_WORKER_DIRECTORY_H_
#define REPRO_COORDINATOR_WORKER_DIRECTORY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/experiment_view.h"
#include "common/plan.h"
#include "store/store.h"

namespace repro {

class WorkerDirectory {
 public:
  WorkerDirectory(const Plan* plan, RunStore* store);

  // Keeps what `worker` registered; returns what it may run, for the log: "" when every
  // arm, else "runs arms a, b; not c (it has no CUDA)".
  std::string Register(const WorkerRecord& worker);

  // The arms `worker` may take a run of now, in plan order; nullopt when any (the lease
  // need not filter). NOT_FOUND when it never registered.
  absl::StatusOr<std::optional<std::vector<std::string>>> ArmsFor(const std::string& worker);
  // Which runs `worker` may replay for a localization (RunStore::LeaseLocalization): a
  // run of an arm it may run (placement; spread does not count), on a machine like the
  // one the run trained on (common/placement.h ReplayMismatch). NOT_FOUND when it never
  // registered.
  absl::StatusOr<ReplayerRule> ReplayerFor(const std::string& worker);

 private:
  struct Entry {
    WorkerRecord record;
    std::vector<std::string> arms;  // those it may run, in plan order
    bool all = false;               // every arm, none of which spreads
  };
  Entry Make(const WorkerRecord& worker) const;
  absl::StatusOr<Entry> Find(const std::string& worker);
  // Whether `worker`'s host or GPU is among the least used by `arm`'s runs.
  absl::StatusOr<bool> SpreadAllows(const ArmSpec& arm, const WorkerRecord& worker);

  const Plan* plan_;
  RunStore* store_;
  absl::Mutex mu_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_WORKER_DIRECTORY_H_
