// Fingerprints of tensors and models (step 5 of the path of a run, ARCHITECTURE.md).
// A tensor's hash is XXH3-128 over its dtype name, its number of dimensions and each
// dimension, then its bytes in canonical form (contiguous, on the CPU, little-endian),
// so equal bytes under another shape or dtype hash differently. A model's hash is HashNamed over its
// (name, tensor hash) list: named_parameters() then named_buffers(), in registration
// order, so the per-tensor list can name the first tensor where two models differ.
//
// Thread safety: free functions; the tensors and module must not change meanwhile.
#ifndef REPRO_WORKER_ENGINE_FINGERPRINT_H_
#define REPRO_WORKER_ENGINE_FINGERPRINT_H_

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common/records.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace repro::engine {

// 32 lowercase hex digits. Copies to the CPU (and makes contiguous) when needed.
// Throws c10::Error for layouts with no plain bytes (sparse, quantized).
std::string HashTensor(const at::Tensor& tensor);

struct ModelFingerprint {
  std::string hash;                 // HashNamed over `tensors`
  std::vector<TensorHash> tensors;  // parameters, then buffers
};

ModelFingerprint FingerprintModel(const torch::nn::Module& model);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_FINGERPRINT_H_
