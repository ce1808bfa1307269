// The engine's weight exports: a model's parameters and buffers as a safetensors file
// (safetensors.h), named and ordered as its fingerprint (fingerprint.h), so that a
// tensor read back hashes (HashTensor) to the fingerprint's hash of that tensor.
//
// Thread safety: free functions; the module must not change meanwhile.
#ifndef REPRO_WORKER_ENGINE_WEIGHTS_EXPORT_H_
#define REPRO_WORKER_ENGINE_WEIGHTS_EXPORT_H_

#include <c10/core/ScalarType.h>

#include <string>

#include "absl/status/status.h"
#include "worker/engine/safetensors.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace repro::engine {

// The safetensors dtype of a LibTorch scalar type ("F32" for Float, "I64" for Long,
// ...); empty when safetensors has none (complex, quantized types).
std::string SafetensorsDtype(at::ScalarType type);
// The inverse; at::ScalarType::Undefined for a dtype LibTorch has no type for.
at::ScalarType ScalarTypeOfSafetensorsDtype(const std::string& dtype);

// Writes model.named_parameters() then model.named_buffers() (copied to the CPU and
// made contiguous) to `path`, atomically (see WriteSafetensors). The directory must
// exist. FAILED_PRECONDITION for I/O errors, INVALID_ARGUMENT for a tensor that cannot
// be stored. May throw c10::Error (LibTorch), as any LibTorch call.
absl::Status ExportModelWeights(const torch::nn::Module& model, const std::string& path,
                                const SafetensorsMetadata& metadata);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_WEIGHTS_EXPORT_H_
