// Compares one run's fingerprints with a reference run's: the building block of the
// equality checks within an arm and of the identity checks across arms
// (analysis/analysis.h).
//
// Thread safety: a pure function over const inputs.
#ifndef REPRO_ANALYSIS_RUN_COMPARISON_H_
#define REPRO_ANALYSIS_RUN_COMPARISON_H_

#include <cstddef>
#include <optional>

#include "common/records.h"
#include "analysis/analysis.h"

namespace repro {

// What differs between a run and a reference run; each Difference has run = the index
// given, and is filled as documented on Difference.
struct RunComparison {
  std::optional<Difference> model;        // initial_hash differs
  std::optional<Difference> data;         // data_x_hash or data_y_hash differs
  std::optional<Difference> batches;      // some epoch's batch_digest differs
  std::optional<Difference> final_model;  // final_hash differs
  // The first epoch whose weights_hash differs (or that only one run recorded), whether
  // or not the final models differ: its position in the reference's epoch list (the
  // reference's size when only the run has it), its epoch number, and the batch bound
  // (Difference::batch of kFinalModel).
  std::optional<size_t> weights_position;
  std::optional<int> weights_epoch;
  std::optional<int> weights_batch;
};

RunComparison CompareRunResults(const RunResult& reference, const RunResult& run,
                                int run_index);

}  // namespace repro

#endif  // REPRO_ANALYSIS_RUN_COMPARISON_H_
