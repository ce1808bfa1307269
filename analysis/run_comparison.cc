#include "analysis/run_comparison.h"

#include <algorithm>
#include <string>
#include <vector>

namespace repro {
namespace {

Difference NewDifference(int run, DifferenceKind what) {
  Difference d;
  d.run = run;
  d.what = what;
  return d;
}

// Sets d->tensor and d->index to the first position where the tensor lists differ
// in name or hash; leaves them "" / -1 when the lists agree.
void FindFirstDifferentTensor(const std::vector<TensorHash>& reference,
                              const std::vector<TensorHash>& run, Difference* d) {
  const size_t common = std::min(reference.size(), run.size());
  for (size_t i = 0; i < common; ++i) {
    if (reference[i].name != run[i].name || reference[i].hash != run[i].hash) {
      d->tensor = run[i].name;
      d->index = static_cast<int>(i);
      return;
    }
  }
  if (reference.size() != run.size()) {
    d->tensor = run.size() > common ? run[common].name : reference[common].name;
    d->index = static_cast<int>(common);
  }
}

// The position of the first epoch whose `field` differs, or that only one run recorded.
std::optional<size_t> FirstDifferentPosition(const std::vector<EpochRecord>& reference,
                                             const std::vector<EpochRecord>& run,
                                             std::string EpochRecord::*field) {
  const size_t common = std::min(reference.size(), run.size());
  for (size_t i = 0; i < common; ++i) {
    if (reference[i].*field != run[i].*field) return i;
  }
  if (reference.size() != run.size()) return common;
  return std::nullopt;
}

int EpochAt(const std::vector<EpochRecord>& reference, const std::vector<EpochRecord>& run,
            size_t position) {
  return position < run.size() ? run[position].epoch : reference[position].epoch;
}

// The first batch whose digest differs within one epoch recorded by both runs, when both
// kept per-batch digests for it; a batch that only one run has counts as differing.
std::optional<int> FirstDifferentBatch(const std::vector<EpochRecord>& reference,
                                       const std::vector<EpochRecord>& run,
                                       size_t position) {
  if (position >= reference.size() || position >= run.size()) return std::nullopt;
  const std::vector<std::string>& a = reference[position].batch_digests;
  const std::vector<std::string>& b = run[position].batch_digests;
  if (a.empty() || b.empty()) return std::nullopt;
  const size_t common = std::min(a.size(), b.size());
  for (size_t i = 0; i < common; ++i) {
    if (a[i] != b[i]) return static_cast<int>(i);
  }
  if (a.size() != b.size()) return static_cast<int>(common);
  return std::nullopt;
}

}  // namespace

RunComparison CompareRunResults(const RunResult& reference, const RunResult& run,
                                int run_index) {
  RunComparison out;
  if (run.initial_hash != reference.initial_hash) {
    Difference d = NewDifference(run_index, DifferenceKind::kModel);
    FindFirstDifferentTensor(reference.initial_tensors, run.initial_tensors, &d);
    out.model = d;
  }
  if (run.data_x_hash != reference.data_x_hash ||
      run.data_y_hash != reference.data_y_hash) {
    out.data = NewDifference(run_index, DifferenceKind::kData);
  }
  if (auto position = FirstDifferentPosition(reference.epochs, run.epochs,
                                             &EpochRecord::batch_digest)) {
    Difference d = NewDifference(run_index, DifferenceKind::kBatches);
    d.epoch = EpochAt(reference.epochs, run.epochs, *position);
    d.batch = FirstDifferentBatch(reference.epochs, run.epochs, *position);
    out.batches = d;
  }
  out.weights_position =
      FirstDifferentPosition(reference.epochs, run.epochs, &EpochRecord::weights_hash);
  if (out.weights_position) {
    out.weights_epoch = EpochAt(reference.epochs, run.epochs, *out.weights_position);
    out.weights_batch =
        FirstDifferentBatch(reference.epochs, run.epochs, *out.weights_position);
  }
  if (run.final_hash != reference.final_hash) {
    Difference d = NewDifference(run_index, DifferenceKind::kFinalModel);
    FindFirstDifferentTensor(reference.final_tensors, run.final_tensors, &d);
    d.epoch = out.weights_epoch;
    d.batch = out.weights_batch;
    out.final_model = d;
  }
  return out;
}

}  // namespace repro
