// What a worker reports (heartbeat progress, epoch records, a finished run's result)
// checked against the plan where it enters the coordinator, before anything is stored:
// every number is finite and in its range (accuracies in [0, 1], losses and seconds
// >= 0, learning rates > 0), every hash is a hash, and every list and text is bounded
// by what the plan and its data allow (one prediction per test sample when the plan
// keeps them, one batch digest per batch, bounded tensors, names and environment). A
// worker is trusted to train, not to be right: a NaN stored as NULL reads back as 0,
// and a diverged run would look perfect.
//
// Thread safety: immutable after construction; its methods are safe to call concurrently.
#ifndef REPRO_COORDINATOR_RESULT_CHECK_H_
#define REPRO_COORDINATOR_RESULT_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/plan.h"
#include "common/records.h"

namespace repro {

// Limits that do not follow from a plan.
inline constexpr int kMaxTensors = 10000;           // per model (ResNet-164 has under 1,000)
inline constexpr int kMaxTensorName = 256;
inline constexpr int kMaxEnvironmentKeys = 64;
inline constexpr int kMaxEnvironmentKey = 64;
inline constexpr int kMaxEnvironmentValue = 1024;
inline constexpr int kMaxDiverged = 300;             // RunResult::diverged
// A split's size when the coordinator did not read the data (--skip-data-check) and
// the plan sets no limit: what predictions and batches are held to instead.
inline constexpr int64_t kMaxUnknownSplit = 1000000;
// The classes of the directory data sets (data/dataset_check.h); kind arrays has K, up to
// what a prediction's byte holds (data/array_dataset.h).
inline constexpr int kClasses = 10;
inline constexpr int kMaxClasses = 256;

// OK when `value` is printable ASCII of `min` to `max` bytes: what the report, the log,
// `reproctl workers` and the store's JSON columns can hold as they are. The error names
// `field` and shows the value escaped.
absl::Status CheckText(const std::string& field, const std::string& value, size_t min,
                       size_t max);

class ResultCheck {
 public:
  // `train_examples` and `test_examples`: the samples of each split a run reads, as the
  // coordinator's data check counted them or the plan's limits say; 0 = not known.
  // `classes`: the data's classes (DatasetSizes::classes), which predictions must be
  // below; 0 = not known (any class up to kMaxClasses).
  ResultCheck(const Plan& plan, int64_t train_examples, int64_t test_examples,
              int64_t classes = kClasses);

  // A heartbeat's progress: epoch `epoch` in progress, `batch` of `batches` done
  // (`batches` 0: not known yet).
  absl::Status CheckProgress(int epoch, int64_t batch, int64_t batches) const;
  // One epoch's record, alone (ReportEpoch) or within a result.
  absl::Status CheckEpoch(const EpochRecord& epoch) const;
  // A finished run's result, whole; a diverged one has fewer epochs and no predictions.
  absl::Status CheckResult(const RunResult& result) const;

 private:
  absl::Status CheckModel(const RunResult& result) const;
  absl::Status CheckOutputs(const RunResult& result) const;
  // The exported files it names: ones the plan exports, each once, by SHA-256 and size
  // (whether the store holds them the service checks).
  absl::Status CheckWeights(const RunResult& result) const;

  int epochs_;
  bool noop_;
  bool keep_predictions_;
  bool keep_batch_digests_;
  bool export_initial_, export_final_, export_every_epoch_;
  int64_t test_examples_;      // 0 = not known
  int64_t classes_;            // predictions are below it
  int64_t batches_per_epoch_;  // -1 = not known
  int64_t max_batches_;        // batches_per_epoch_, or the most an unknown split gives
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_RESULT_CHECK_H_
