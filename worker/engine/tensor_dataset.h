// A data set split as the tensors the model is fed, contiguous on the CPU:
// - MNIST-like (IDX bytes of idx_dataset.h): pixels as float32 / 255 in [0, 1], shape
//   [N, 1, 28, 28]; labels int64 [N].
// - CIFAR-10 (cifar_dataset.h), as the study's Keras script: pixels as float32 / 255,
//   then minus the per-pixel mean of the training samples used (after train_limit),
//   one mean per channel, row and column ([3, 32, 32]), taken from both splits; shape
//   [N, 3, 32, 32] (NCHW); labels int64 [N].
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
};

// Preprocesses a read split. Throws only what at::empty throws (out of memory).
TensorSplit ToTensors(const data::IdxSplit& split);

// The per-pixel mean of `train`'s float32 pixels (byte / 255): kCifarImageBytes values
// in the file's channel-major order. Zeros for an empty split.
std::vector<float> CifarPixelMean(const data::CifarSplit& train);

// `split`'s pixels as float32 byte / 255 - mean[pixel], with its labels.
TensorSplit ToTensors(const data::CifarSplit& split, const std::vector<float>& mean);

// Reads both splits of data set `kind` in `dir`, keeping the first `train_limit` and
// `test_limit` samples (0 = all). INVALID_ARGUMENT naming the file or value for bad
// input. This is what a run uses.
absl::StatusOr<TensorDataset> LoadDataset(const std::string& kind, const std::string& dir,
                                          int64_t train_limit, int64_t test_limit);

// Reads split `split` of data set `kind` in `dir`, keeping the first `limit` samples
// (0 = all). For cifar10 the mean subtracted is that of the first `limit` training
// samples when `split` is kTrain, and of the whole training split when it is kTest
// (use LoadDataset to centre a test split on a limited training split).
absl::StatusOr<TensorSplit> LoadSplit(const std::string& kind, const std::string& dir,
                                      data::Split split, int64_t limit);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_TENSOR_DATASET_H_
