// The result of a run of model kind "noop" (the plan's `model: {kind: noop}`): nothing
// is read or trained, and the run returns at once with a result the coordinator
// accepts, so a fleet of workers can be checked end to end (register, lease, report,
// complete, environment) before anyone pays for GPUs, and the coordinator's dispatch
// rate can be measured (bench/dispatch.sh).
//
// What the result holds, honestly empty:
// - data_x_hash and data_y_hash: the hash of no bytes (no data was read);
// - the model: one tensor named "noop", float32 of shape [0] (no weights). The
//   coordinator needs at least one tensor in a result, and this one hashes exactly as
//   fingerprint.h hashes an empty float tensor; initial and final models are that one;
// - every epoch the plan asks for: zero batches (batch_digest is the hash of an empty
//   sequence), weights_hash the model's, loss, accuracy and seconds 0, lr the spec's;
// - test loss and accuracy 0, no predictions.
// So every noop run of every arm is identical, whatever its seeds.
//
// Thread safety: a pure function.
#ifndef REPRO_WORKER_ENGINE_NOOP_H_
#define REPRO_WORKER_ENGINE_NOOP_H_

#include "common/records.h"

namespace repro::engine {

inline constexpr char kNoopModel[] = "noop";
inline constexpr char kNoopTensor[] = "noop";

RunResult NoopResult(int epochs, double lr);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_NOOP_H_
