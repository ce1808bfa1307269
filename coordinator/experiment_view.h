// The input of the analyses: an experiment's runs as the store holds them. Built by
// the RunStore (coordinator/store.h) from SQLite, or by tests directly.
//
// Thread safety: plain structs; callers synchronize.
#ifndef REPRO_COORDINATOR_EXPERIMENT_VIEW_H_
#define REPRO_COORDINATOR_EXPERIMENT_VIEW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/records.h"

namespace repro {

enum class RunState { kPending, kRunning, kDone, kFailed };
const char* RunStateName(RunState state);  // "pending", "running", "done", "failed"

// A result that arrived for a run that already had one (a lease that expired while
// its worker went on training): kept as evidence, never counted in the statistics.
struct ExtraResult {
  std::string worker;
  std::string final_hash;
  double test_loss = 0;
  double test_accuracy = 0;
};

struct RunView {
  std::string arm;
  int index = 0;                // 0-based within the arm
  uint64_t init_seed = 0;
  uint64_t shuffle_seed = 0;
  uint64_t augment_seed = 0;
  RunState state = RunState::kPending;
  int attempts = 0;
  std::string worker;           // worker that holds/held the run
  std::string error;            // reason of the last failure
  int current_epoch = -1;       // running runs: the epoch in progress (0-based)
  int64_t current_batch = 0;    // running runs: batches done in that epoch
  int64_t batches = 0;          // running runs: batches per epoch (0 = not known yet)
  RunResult result;             // complete for kDone runs; epochs so far otherwise
  std::vector<ExtraResult> extra_results;
};

struct ExperimentView {
  std::string name;
  std::vector<std::string> arms;  // in plan order
  int runs_per_arm = 0;
  int epochs = 0;
  std::vector<RunView> runs;      // ordered by arm (plan order), then index
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_EXPERIMENT_VIEW_H_
