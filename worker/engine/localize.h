// Where two runs part, down to the batch and the operation (issue 15): the stages of
// common/localize_stages.h, each side's replay under its run's spec (its threads,
// determinism switches, device and seeds; replay.h). ReplaySide is one side's replay of
// one stage, what a worker does when each side replays on a worker of its own; Localize
// runs every stage of both sides in this process, one after the other.
//
// On one worker, what parts the two sides is what their specs set apart (threads,
// determinism switches) or what varies from one run to the next (non-deterministic
// kernels), not two machines: runs that parted only because they trained on different
// hardware replay alike here, which is why the coordinator replays such runs each on a
// worker like its own.
//
// Thread safety: as TrainRun (one at a time per process).
#ifndef REPRO_WORKER_ENGINE_LOCALIZE_H_
#define REPRO_WORKER_ENGINE_LOCALIZE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/run_spec.h"
#include "common/localize_stages.h"
#include "common/records.h"
#include "worker/engine/engine.h"

namespace repro::engine {

struct LocalizeRequest {
  RunSpec a, b;  // the two runs' specs, as they trained
  int epoch = 0;  // the first epoch after which their recorded weights differ
  // The weights hashes the runs recorded after `epoch` ("" when not known): whether a
  // replay reproduced its run.
  std::string recorded_a, recorded_b;
};

// One side's replay of a stage: ReplayEpoch with the stage's request, timed, its dump
// (kDump) as plain bytes. ReplayEpoch's errors.
absl::StatusOr<SideReplay> ReplaySide(const RunSpec& spec, const SideRequest& request,
                                      const Callbacks& callbacks = {});

// INVALID_ARGUMENT when the specs cannot be compared (different models or data, an
// epoch a run does not have); the replays' errors otherwise.
// `callbacks` as ReplayEpoch's (should_stop ends a replay at a batch boundary, CANCELLED).
absl::StatusOr<LocalizationResult> Localize(const LocalizeRequest& request,
                                            const Callbacks& callbacks = {});

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_LOCALIZE_H_
