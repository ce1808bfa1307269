// Replaying one epoch of a run batch by batch, to localize where two runs part: the
// weights hash after every batch (so two replays' first different batch is found), and
// optionally an op trace of one batch (op_trace.h), so that two traces of that batch
// name the first op whose outputs differ.
//
// A replay trains under the spec's exact conditions (threads, determinism switches,
// device, seeds) by the same steps as TrainRun (training.h): from the start, or from a
// checkpoint as a resumed run does (LoadCheckpoint), through the epochs before the
// replayed one, then the replayed epoch with a hash after each batch. So
// batch_hashes.back() is the weights hash TrainRun records for that epoch. The replay
// writes nothing: no exports, no checkpoints.
//
// The traced batch runs twice: first under the tracer, then, with the training state put
// back exactly as it was before it (SaveStep, RestoreStep), untraced; the untraced step
// is the one the replay goes on from. The traced step's end weights are
// kept as a hash, to check that the observer changes nothing (TraceChangedNothing).
//
// Thread safety: as TrainRun (one run or replay at a time per process).
#ifndef REPRO_WORKER_ENGINE_REPLAY_H_
#define REPRO_WORKER_ENGINE_REPLAY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/run_spec.h"
#include "worker/engine/engine.h"
#include "worker/engine/op_trace.h"

namespace repro::engine {

struct ReplayRequest {
  int epoch = 0;  // the epoch to replay (0-based), below spec.epochs
  // A checkpoint of this run (engine checkpoint bytes) from before `epoch`, normally the
  // one after epoch - 1; empty: train from the start up to `epoch` first.
  std::string checkpoint;
  std::optional<int64_t> trace_batch;  // also trace every op of this batch of `epoch`
  std::optional<int64_t> dump_op;      // with trace_batch: dump the op at this index of the trace
  // With trace_batch: end the replay after that batch (batch_hashes ends there too), as
  // a localization's trace and dump stages need nothing after it.
  bool end_after_trace = false;
};

struct ReplayResult {
  std::string start_hash;  // the weights hash at the start of `epoch`
  // The weights hash (FingerprintModel, as EpochRecord::weights_hash) after every batch
  // of `epoch`; where a loss is not finite it stops where the run stops (TrainBatches);
  // with end_after_trace, up to the traced batch.
  std::vector<std::string> batch_hashes;
  std::vector<OpRecord> trace;         // empty unless trace_batch
  std::optional<OpDump> dump;          // when dump_op names an op of the trace
  std::string traced_batch_end_hash;   // the weights hash after the traced step
  double seconds = 0;                  // the replayed epoch: steps, hashes, the trace
  double batch_seconds = 0;            // the traced batch's step without the tracer
  double traced_batch_seconds = 0;     // and with it
  int64_t trace_bytes = 0;             // TraceBytes(trace)
};

// Replays req.epoch of the run `spec` describes. INVALID_ARGUMENT for a request that does
// not fit the run (an epoch or batch it does not have, a checkpoint from after the
// epoch or of another run, dump_op without trace_batch, the noop model);
// FAILED_PRECONDITION when the run diverges before the epoch; otherwise TrainRun's
// errors. Callbacks as TrainRun's (on_checkpoint is never called).
absl::StatusOr<ReplayResult> ReplayEpoch(const RunSpec& spec, const ReplayRequest& request,
                                         const Callbacks& callbacks = {});

// True when the traced step ended with the weights of the untraced one.
bool TraceChangedNothing(const ReplayResult& result, int64_t trace_batch);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_REPLAY_H_
