// Public dataset checks for the engine's data sets, without LibTorch: the coordinator
// or reproctl can validate a plan's dataset directory before any run is handed out,
// and get the same one-sentence errors that a run would fail with.
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_DATA_DATASET_CHECK_H_
#define REPRO_DATA_DATASET_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/array_dataset.h"

namespace repro::data {

// OK when `dir` exists and is a directory; INVALID_ARGUMENT naming it otherwise.
absl::Status CheckDatasetDirectory(const std::string& dir);

// OK when a split limit (`limit_name`: "train_limit" or "test_limit") is 0 (all) or
// positive; INVALID_ARGUMENT naming it otherwise.
absl::Status CheckSplitLimit(const std::string& limit_name, int64_t limit);

// OK for the dataset kinds the engine reads ("fashion-mnist", "mnist": IDX files;
// "cifar10": CIFAR-10's binary version; "arrays": .npy files by role,
// array_dataset.h); INVALID_ARGUMENT naming the kind otherwise.
absl::Status CheckDatasetKind(const std::string& kind);

// Reads and validates both splits of a dataset directory as a run would: the
// directory and its four IDX files exist (gzip-compressed, or uncompressed under the
// same name without ".gz"), magic numbers and image size are right, no file is
// truncated or corrupt, image and label counts agree, labels are in range, and the
// limits (0 = all) do not exceed the samples there are. Decompresses everything
// (about 30 MB for Fashion-MNIST, well under a second). For "cifar10" the same through
// cifar_dataset.h: the six .bin files exist, each is a whole, non-zero number of
// 3073-byte records, every label is 0..9 (reads all 180 MB, keeping none of it).
// Errors are INVALID_ARGUMENT with one sentence naming the file or value at fault.
absl::Status CheckDataset(const std::string& kind, const std::string& path,
                          int64_t train_limit = 0, int64_t test_limit = 0);

// How many samples of each split a run reads: the limit, or with limit 0 the split's size;
// and the classes the model is built for.
struct DatasetSizes {
  int64_t train = 0;
  int64_t test = 0;
  int64_t classes = 10;  // 10 for the directory kinds; K for arrays (0: not known)
  // The labels of the `test` samples a run reads, in the order it predicts them (the
  // first `test` of the test split, in file order): the report's per-class figures.
  std::vector<uint8_t> test_labels;
};
// CheckDataset, and the sizes it found: the coordinator holds what workers report (one
// prediction per test sample, one batch digest per batch, classes below `classes`) to
// them. Kind "arrays" has no directory: INVALID_ARGUMENT pointing to the overload below.
absl::StatusOr<DatasetSizes> CheckDatasetSizes(const std::string& kind, const std::string& path,
                                               int64_t train_limit = 0, int64_t test_limit = 0);
// The same for kind "arrays": CheckArrayFiles (array_dataset.h) on the plan's files, which
// reads the x files' headers and the y files' labels, not the pixels.
absl::StatusOr<DatasetSizes> CheckDatasetSizes(const ArrayFiles& files, int64_t train_limit = 0,
                                               int64_t test_limit = 0);

}  // namespace repro::data

#endif  // REPRO_DATA_DATASET_CHECK_H_
