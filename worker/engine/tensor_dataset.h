// A data set split as the tensors the model is fed: the IDX bytes of idx_dataset.h,
// preprocessed (pixels as float32 / 255 in [0, 1], shape [N, 1, 28, 28]; labels
// int64 [N]), contiguous on the CPU. The preprocessing is plain C++ float division, not
// a LibTorch kernel, so the bytes (and data hashes) cannot change with LibTorch's
// vectorization (which divides by a scalar as a multiplication by its reciprocal).
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_WORKER_ENGINE_TENSOR_DATASET_H_
#define REPRO_WORKER_ENGINE_TENSOR_DATASET_H_

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "worker/engine/idx_dataset.h"

namespace repro::engine {

struct TensorSplit {
  at::Tensor x;  // float32 [N, C, H, W]
  at::Tensor y;  // int64 [N]
  int64_t size() const { return y.defined() ? y.size(0) : 0; }
};

// Preprocesses a read split. Throws only what at::empty throws (out of memory).
TensorSplit ToTensors(const IdxSplit& split);

// Reads split `split` of data set `kind` in `dir`, keeping the first `limit` samples
// (0 = all). INVALID_ARGUMENT naming the file or value for bad input.
absl::StatusOr<TensorSplit> LoadSplit(const std::string& kind, const std::string& dir,
                                      Split split, int64_t limit);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_TENSOR_DATASET_H_
