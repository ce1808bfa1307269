// A data set split as the tensors the model is fed, contiguous on the CPU:
// - MNIST-like (IDX bytes of idx_dataset.h): pixels as float32 / 255 in [0, 1], shape
//   [N, 1, 28, 28]; labels int64 [N].
// - CIFAR-10 (cifar_dataset.h), as the study's Keras script: pixels as float32 / 255,
//   then minus the per-pixel mean of the training samples used (after train_limit),
//   one mean per channel, row and column ([3, 32, 32]), taken from both splits; shape
//   [N, 3, 32, 32] (NCHW); labels int64 [N].
// - arrays (array_dataset.h: .npy files by role): uint8 pixels as float32 / 255 exactly
//   as the IDX ones (so the same images give the same bytes and data hashes), float32
//   as they are; shape [N, C, H, W]; labels int64 [N]; the model gets K classes.
// The preprocessing is plain C++ float arithmetic, not a LibTorch kernel, so the bytes
// (and data hashes) cannot change with LibTorch's vectorization (which divides by a
// scalar as a multiplication by its reciprocal). The CIFAR mean is summed in double in
// sample order and rounded once to float; NumPy's float32 mean (the study's) may differ
// from it in the last bit for some pixels.
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_WORKER_ENGINE_TENSOR_DATASET_H_
#define REPRO_WORKER_ENGINE_TENSOR_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/run_spec.h"
#include "data/array_dataset.h"
#include "data/cifar_dataset.h"
#include "data/idx_dataset.h"

namespace repro::engine {

struct TensorSplit {
  at::Tensor x;  // float32 [N, C, H, W]
  at::Tensor y;  // int64 [N]
  int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

// Both splits of a data set, preprocessed together (CIFAR-10's test split is centred
// on the training split's mean).
struct TensorDataset {
  TensorSplit train;
  TensorSplit test;
  int64_t classes = 10;  // the model's outputs: 10, or K for kind arrays
};

// Preprocesses a read split. Throws only what at::empty throws (out of memory).
TensorSplit ToTensors(const data::IdxSplit& split);

// The per-pixel mean of `train`'s float32 pixels (byte / 255): kCifarImageBytes values
// in the file's channel-major order. Zeros for an empty split.
std::vector<float> CifarPixelMean(const data::CifarSplit& train);

// `split`'s pixels as float32 byte / 255 - mean[pixel], with its labels.
TensorSplit ToTensors(const data::CifarSplit& split, const std::vector<float>& mean);

// A split of kind arrays: uint8 values as float32 / 255 (as ToTensors(IdxSplit)),
// float32 ones as they are, shaped [count, C, H, W] from `info`.
TensorSplit ToTensors(const data::ArraySplit& split, const data::ArrayInfo& info);

// Reads both splits of the spec's data set, keeping the first train_limit and
// test_limit samples (0 = all): for the directory kinds (dataset_kind fashion-mnist,
// mnist, cifar10) from dataset_path, for kind arrays from the files of `inputs` by
// role (train_x, train_y, test_x, test_y). INVALID_ARGUMENT naming the file or value
// for bad input. This is what a run uses.
absl::StatusOr<TensorDataset> LoadDataset(const RunSpec& spec);

// Reads split `split` of data set `kind` in `dir` (a directory kind), keeping the first
// `limit` samples (0 = all). For cifar10 the mean subtracted is that of the first
// `limit` training samples when `split` is kTrain, and of the whole training split when
// it is kTest (use LoadDataset to centre a test split on a limited training split).
// Kind arrays has no directory: INVALID_ARGUMENT (use LoadDataset).
absl::StatusOr<TensorSplit> LoadSplit(const std::string& kind, const std::string& dir,
                                      data::Split split, int64_t limit);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_TENSOR_DATASET_H_
