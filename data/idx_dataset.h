// Reader for IDX files, the format of MNIST and Fashion-MNIST: a big-endian header
// (magic, dimension sizes) followed by unsigned bytes. Files are read through zlib,
// so gzip-compressed files (the usual ".gz" names) are read directly, and uncompressed
// ones under the same names without ".gz" are accepted when the ".gz" is absent.
// No LibTorch here: raw bytes out, turned into tensors by tensor_dataset.h.
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_DATA_IDX_DATASET_H_
#define REPRO_DATA_IDX_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace repro::data {

enum class Split { kTrain, kTest };

// "train" or "test".
const char* SplitName(Split split);

// Images of one IDX image file: count x rows x cols bytes, row-major.
struct IdxImages {
  std::string path;
  int64_t count = 0;       // images kept
  int64_t file_count = 0;  // images in the file
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> pixels;
};

// Labels of one IDX label file.
struct IdxLabels {
  std::string path;
  int64_t count = 0;       // labels kept
  int64_t file_count = 0;  // labels in the file
  std::vector<uint8_t> labels;
};

// One split (images with their labels) of an MNIST-like data set.
struct IdxSplit {
  IdxImages images;
  IdxLabels labels;
};

// The image side the MNIST-like data sets have, and their number of classes.
inline constexpr int64_t kIdxImageSide = 28;
inline constexpr int64_t kIdxClasses = 10;

// Reads an IDX image file (magic 0x00000803, three dimensions, 28x28 images).
// Keeps the first `keep` images (0 = all) but reads and checks the whole file.
// `limit_name` names the limit in the error when `keep` exceeds the images there are.
absl::StatusOr<IdxImages> ReadIdxImages(const std::string& path, int64_t keep = 0,
                                        const std::string& limit_name = "limit");

// Reads an IDX label file (magic 0x00000801, one dimension, labels 0..9).
absl::StatusOr<IdxLabels> ReadIdxLabels(const std::string& path, int64_t keep = 0,
                                        const std::string& limit_name = "limit");

// The path of `base_name` + ".gz" in `dir` when that exists, else of `base_name`
// when that exists; INVALID_ARGUMENT naming the directory otherwise.
absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& base_name);

// Reads the train or test split of an MNIST-like data set directory, keeping the first
// `limit` samples (0 = all). Checks the directory, both files and that they agree.
absl::StatusOr<IdxSplit> ReadIdxSplit(const std::string& dir, Split split, int64_t limit = 0);

}  // namespace repro::data

#endif  // REPRO_DATA_IDX_DATASET_H_
