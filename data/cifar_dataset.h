// Reader for CIFAR-10's binary version (cifar-10-batches-bin): a directory holding
// data_batch_1.bin .. data_batch_5.bin (the training split, read in that order) and
// test_batch.bin. Each file is a sequence of 3073-byte records: one label byte (0..9),
// then 3072 pixel bytes: the 1024 red, then 1024 green, then 1024 blue values of a
// 32x32 image, each plane row-major. The real files hold 10,000 records each; any
// whole number of records is accepted, so tests can write small files. No LibTorch
// here: raw bytes out, preprocessed into tensors by tensor_dataset.h.
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_DATA_CIFAR_DATASET_H_
#define REPRO_DATA_CIFAR_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/idx_dataset.h"  // Split

namespace repro::data {

inline constexpr int64_t kCifarSide = 32;
inline constexpr int64_t kCifarChannels = 3;
inline constexpr int64_t kCifarClasses = 10;
inline constexpr int64_t kCifarImageBytes = kCifarChannels * kCifarSide * kCifarSide;  // 3072
inline constexpr int64_t kCifarRecordBytes = 1 + kCifarImageBytes;                       // 3073

// One split of CIFAR-10: `count` images as channel-major bytes (the file's own layout,
// so [count, 3, 32, 32] row-major) and their labels.
struct CifarSplit {
  std::vector<std::string> paths;  // the files read, in order
  int64_t count = 0;               // samples kept
  int64_t file_count = 0;          // samples in all the split's files
  std::vector<uint8_t> pixels;     // count * kCifarImageBytes
  std::vector<uint8_t> labels;     // count, each 0..9
};

// The split's file names, in reading order.
std::vector<std::string> CifarFileNames(Split split);

// Reads the train or test split of a CIFAR-10 binary directory, keeping the first
// `limit` samples (0 = all, across the files in order). Reads and checks every record
// of every file even when fewer are kept, so a truncated file or a bad label is caught
// whatever the limit. INVALID_ARGUMENT with one sentence naming the directory, file or
// value at fault: a missing directory or file, an empty file, a size that is not a whole
// number of records, a label above 9, a limit larger than the samples there are.
absl::StatusOr<CifarSplit> ReadCifarSplit(const std::string& dir, Split split,
                                          int64_t limit = 0);

// ReadCifarSplit's checks, reading every file through but keeping no samples (for
// validating a plan's data without holding 150 MB of pixels).
absl::Status CheckCifarSplit(const std::string& dir, Split split, int64_t limit = 0);
// The same checks; the samples a run keeps (the limit, or with 0 all of the split's).
absl::StatusOr<int64_t> CountCifarSplit(const std::string& dir, Split split, int64_t limit = 0);
// The same checks, keeping the labels of the samples a run keeps and no pixels.
absl::StatusOr<std::vector<uint8_t>> ReadCifarLabels(const std::string& dir, Split split,
                                                     int64_t limit = 0);

}  // namespace repro::data

#endif  // REPRO_DATA_CIFAR_DATASET_H_
