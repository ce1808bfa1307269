// An adaptive experiment's rounds (the plan's `runs: {min, max, step, until}`, README
// "Adaptive run counts"): once every run so far has finished, a look at the scores
// (analysis/adaptive.h TakeLook) says whether the experiment is done or adds a round of
// runs, which the store keeps with the look in one transaction (RunStore::RecordLook).
// A coordinator restarted between looks takes the next one from the store's state.
//
// Thread safety: Finished may be called from any thread; it counts the runs and takes a
// look under one mutex, so one look is taken at a time and only over a finished round.
#ifndef REPRO_COORDINATOR_ADAPTIVE_ROUNDS_H_
#define REPRO_COORDINATOR_ADAPTIVE_ROUNDS_H_

#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/plan.h"
#include "store/store.h"

namespace repro {

class AdaptiveRounds {
 public:
  using Log = std::function<void(const std::string&)>;
  // `store` and `plan` must outlive this.
  AdaptiveRounds(RunStore* store, const Plan& plan, Log log);

  // Whether the experiment has finished: no run pending or running and, when its run
  // count is adaptive, a look has stopped it. When every run has finished and the rule
  // has not stopped, takes the next look first: false when it added a round of runs,
  // and then `*added` (when given) is set.
  absl::StatusOr<bool> Finished(bool* added = nullptr);

 private:
  absl::StatusOr<bool> Look(bool* added) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  RunStore* store_;
  const Plan& plan_;
  Log log_;
  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;  // a look has stopped it (never unset)
};

// A look as the coordinator logs it: "look 2 of at most 20 (interval level 99.75 %):
// same_seed ratio 0.91 in [0.7, 1.18], 0.48 wide (target 0.1); 10 more runs for
// different_seeds, same_seed".
std::string DescribeLook(const AdaptiveState& state, int number, const AdaptiveLook& look);

}  // namespace repro

#endif  // REPRO_COORDINATOR_ADAPTIVE_ROUNDS_H_
