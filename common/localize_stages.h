// The steps of a localization (reproctl localize; issue 15), without LibTorch: both runs
// replay the epoch where they part with a weights hash after every batch (kEpoch); both
// replay the first batch whose hashes differ with every op traced (kTrace); both replay it
// once more with the first op whose outputs differ dumped whole (kDump). After each stage
// FoldStage takes both sides' replays into the answer so far and says which stage is
// next, so the same rule drives the two ways a localization runs:
//   - on one worker, both sides one after the other (worker/engine/localize.h), when the
//     runs trained on machines alike;
//   - each side on a worker like the one its run trained on, the coordinator folding the
//     sides' answers as they come (coordinator/service.h), when they did not.
//
// Thread safety: plain values and functions.
#ifndef REPRO_COMMON_LOCALIZE_STAGES_H_
#define REPRO_COMMON_LOCALIZE_STAGES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/op_records.h"
#include "common/records.h"

namespace repro {

enum class LocalizeStage { kEpoch, kTrace, kDump, kDone };

// "epoch", "trace", "dump", "done"; StageNamed reads them back (nullopt for other text).
const char* StageName(LocalizeStage stage);
std::optional<LocalizeStage> StageNamed(std::string_view name);

// What each side replays in a stage.
struct SideRequest {
  int epoch = 0;                       // the epoch, every stage
  std::optional<int64_t> trace_batch;  // kTrace and kDump: the batch whose ops are traced
  std::optional<int64_t> dump_op;      // kDump: the op of that trace dumped whole
};

// The request of `stage`, from the answer so far (its epoch, batch and op index).
SideRequest RequestFor(LocalizeStage stage, const LocalizationResult& so_far);

// One side's replay of a stage.
struct SideReplay {
  // The weights hash after every batch of the epoch (kEpoch), or up to the traced batch
  // (kTrace, kDump: a replay ends there).
  std::vector<std::string> batch_hashes;
  std::vector<OpRecord> trace;            // kTrace: the traced batch's ops
  std::string traced_batch_end_hash;      // kTrace: the weights after the traced step
  int64_t trace_bytes = 0;                // kTrace: TraceBytes(trace)
  double batch_seconds = 0;               // kTrace: the traced batch's step without the tracer
  double traced_batch_seconds = 0;        // and with it
  std::optional<OpOutputs> dump;          // kDump: the op's outputs
  double seconds = 0;       // the replayed epoch (up to where it ends)
  double wall_seconds = 0;  // the whole replay, with the epochs before it
};

// Whether a traced step ended with the weights of the untraced one: the hash after the
// traced step against the replay's hash after `batch` (false when it has none there).
bool TraceChangedNothing(const std::vector<std::string>& batch_hashes,
                         const std::string& traced_batch_end_hash, int64_t batch);

// Folds both sides' replays of `stage` into `result`, which holds the earlier stages'
// (a fresh one, with its epoch set, before kEpoch); the stage that comes next, kDone
// when `result` is the answer. `recorded_a` and `recorded_b` are the weights hashes the
// runs recorded after the epoch ("" when not known), so kEpoch tells whether each replay
// reproduced its run. INVALID_ARGUMENT for kDone, or for dumps that cannot be compared.
absl::StatusOr<LocalizeStage> FoldStage(LocalizeStage stage, const SideReplay& a,
                                        const SideReplay& b, std::string_view recorded_a,
                                        std::string_view recorded_b, LocalizationResult* result);

}  // namespace repro

#endif  // REPRO_COMMON_LOCALIZE_STAGES_H_
