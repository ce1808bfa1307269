// Where two runs part, down to the batch and the operation (issue 15), on one worker:
// the epoch in which their weights first differ is replayed once under each run's spec
// (its threads, determinism switches, device and seeds; replay.h) with a weights hash
// after every batch; the first batch after which the two replays differ is replayed
// again on each side with every op traced (op_trace.h), and the first op whose outputs
// differ is replayed once more on each side, dumped whole, to measure by how much.
//
// Both sides run in this process, one after the other, so what parts them here is what
// their specs set apart (threads, determinism switches) or what varies from one run to
// the next (non-deterministic kernels), not two machines: runs that parted only because
// they ran on different hardware replay alike here, and the result says the replays
// did not part.
//
// Thread safety: as TrainRun (one at a time per process).
#ifndef REPRO_WORKER_ENGINE_LOCALIZE_H_
#define REPRO_WORKER_ENGINE_LOCALIZE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/run_spec.h"
#include "worker/engine/op_trace.h"

namespace repro::engine {

struct LocalizeRequest {
  RunSpec a, b;  // the two runs' specs, as they trained
  int epoch = 0;  // the first epoch after which their recorded weights differ
  // The weights hashes the runs recorded after `epoch` ("" when not known): whether a
  // replay reproduced its run.
  std::string recorded_a, recorded_b;
};

struct Localization {
  int epoch = 0;
  int64_t batches = 0;            // in the replayed epoch
  std::optional<int64_t> batch;   // the first after which the replays' weights differ
  // Whether each side's replay ended the epoch with the weights its run recorded
  // (nullopt: not known).
  std::optional<bool> a_reproduced, b_reproduced;
  OpDivergence op;                // kind kNone when no batch
  std::optional<OutputDifference> difference;  // op.kind kOutputs
  bool trace_changed_nothing = true;  // each traced step ended as its untraced one
  int64_t trace_ops = 0;          // side a's traced batch
  int64_t trace_bytes = 0;
  double replay_seconds = 0;      // the two replays of the epoch
  double step_seconds = 0;        // side a's batch, untraced
  double traced_step_seconds = 0; // and traced
  double seconds = 0;             // the whole localization
};

// INVALID_ARGUMENT when the specs cannot be compared (different models or data, an
// epoch a run does not have); the replays' errors otherwise.
absl::StatusOr<Localization> Localize(const LocalizeRequest& request);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_LOCALIZE_H_
