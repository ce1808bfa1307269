#include "worker/engine/fingerprint.h"

#include <utility>

#include <c10/core/ScalarType.h>
#include <torch/nn/module.h>

#include "common/hash.h"

namespace repro::engine {

// The bytes are hashed as the host holds them; the fingerprint defines them as
// little-endian, which every platform LibTorch ships for is.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "tensor fingerprints assume a little-endian host");

std::string HashTensor(const at::Tensor& tensor) {
  TORCH_CHECK(tensor.layout() == at::kStrided,
              "HashTensor: only strided (dense) tensors can be fingerprinted");
  const at::Tensor canonical = tensor.detach().to(at::kCPU).contiguous();
  Hasher hasher;
  // c10's names ("Float", "Long", ...) are fixed strings, unlike typeid-based names.
  hasher.UpdateField(c10::toString(canonical.scalar_type()));
  hasher.UpdateU64(static_cast<uint64_t>(canonical.dim()));
  for (const int64_t size : canonical.sizes()) hasher.UpdateU64(static_cast<uint64_t>(size));
  if (canonical.numel() > 0) hasher.Update(canonical.data_ptr(), canonical.nbytes());
  return hasher.HexDigest();
}

ModelFingerprint FingerprintModel(const torch::nn::Module& model) {
  ModelFingerprint fingerprint;
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    fingerprint.tensors.push_back({item.key(), HashTensor(item.value())});
  }
  for (const auto& item : model.named_buffers(/*recurse=*/true)) {
    fingerprint.tensors.push_back({item.key(), HashTensor(item.value())});
  }
  named.reserve(fingerprint.tensors.size());
  for (const auto& t : fingerprint.tensors) named.emplace_back(t.name, t.hash);
  fingerprint.hash = HashNamed(named);
  return fingerprint;
}

}  // namespace repro::engine
