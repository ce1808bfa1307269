// Dataset kind arrays: four NumPy .npy files (npy.h) named by the plan, by role.
// - x (train_x, test_x): uint8 (|u1, scaled by 1/255 in the engine) or float32 (<f4,
//   used as is, every value finite), shaped (N, C, H, W), or (N, H, W) for one channel;
//   train and test have the same C, H and W.
// - y (train_y, test_y): integer class labels, int64, int32 or uint8, shaped (N,) with
//   the N of its x.
// - The number of classes K is the largest label of the whole train_y file plus one
//   (whatever train_limit keeps, so a limit does not change the model), 2 <= K <=
//   kMaxArrayClasses; every test label is below K.
// Little-endian only ('<' or '|' byte order; a big-endian '>' file is an error), C order
// only. Every error is INVALID_ARGUMENT naming the plan key and the file:
// "dataset.train.x: /abs/train_x.npy: dtype <f8 is not uint8 or float32".
// No LibTorch: bytes out; worker/engine/tensor_dataset.h makes the tensors.
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_DATA_ARRAY_DATASET_H_
#define REPRO_DATA_ARRAY_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/npy.h"

namespace repro::data {

// The most classes: predictions travel and are stored as one byte per test sample
// (RunResult::predictions), so a class must fit in a byte.
inline constexpr int64_t kMaxArrayClasses = 256;

// The files of kind arrays, absolute paths as the plan's inputs hold them
// (Plan::inputs, RunSpec::inputs).
struct ArrayFiles {
  std::string train_x, train_y, test_x, test_y;

  // Sets the file of `role` (train_x, train_y, test_x or test_y); false for any other
  // role (a model's file), which is left alone.
  bool Set(const std::string& role, const std::string& path);
};

// What the headers and the labels say: the checks of the files, without their pixels.
struct ArrayInfo {
  int64_t train = 0;     // samples a run reads: the limit, or with 0 the split's
  int64_t test = 0;
  int64_t train_file = 0;  // samples in the files
  int64_t test_file = 0;
  int64_t channels = 0, height = 0, width = 0;
  int64_t classes = 0;   // K
  bool x_float = false;  // float32 x (else uint8)
  NpyHeader train_x, train_y, test_x, test_y;  // as ReadNpyHeader read them
};

// Checks the four files as a run reads them, reading only the x files' headers and the
// y files whole (labels are small): every check above, and the limits (0 = all) within
// the samples there are. Cheap for any size of x.
// With `test_labels`, keeps the labels of the test samples a run reads there.
absl::StatusOr<ArrayInfo> CheckArrayFiles(const ArrayFiles& files, int64_t train_limit = 0,
                                          int64_t test_limit = 0,
                                          std::vector<int64_t>* test_labels = nullptr);

// One split as a run reads it: `count` samples of C x H x W, channel-major (NCHW).
struct ArraySplit {
  int64_t count = 0;
  // count*C*H*W values as the file holds them: bytes for uint8 x, or little-endian
  // float32 (4 bytes each) when ArrayInfo::x_float.
  std::vector<uint8_t> x;
  std::vector<int64_t> labels;   // count, each 0..K-1
};

struct ArrayDataset {
  ArrayInfo info;
  ArraySplit train, test;
};

// CheckArrayFiles, then the first `train_limit` / `test_limit` samples (0 = all) of
// each split. Float32 x must be finite (checked on the samples kept).
absl::StatusOr<ArrayDataset> ReadArrayDataset(const ArrayFiles& files, int64_t train_limit = 0,
                                              int64_t test_limit = 0);

}  // namespace repro::data

#endif  // REPRO_DATA_ARRAY_DATASET_H_
