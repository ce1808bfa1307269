// Stable content hashes for fingerprints: XXH3-128, printed as 32 lowercase hex digits
// (high 64 bits first). Stable across processes, machines and releases of xxHash 0.8,
// unlike absl::Hash or std::hash, which are salted per process and must never be stored.
//
// Thread safety: Hasher is not thread-safe; free functions are.
#ifndef REPRO_COMMON_HASH_H_
#define REPRO_COMMON_HASH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace repro {

// Streaming XXH3-128.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void Update(const void* data, size_t size);
  void Update(std::string_view text) { Update(text.data(), text.size()); }
  // Integers are mixed in as 8 little-endian bytes, so the digest is platform-neutral.
  void UpdateU64(uint64_t value);
  // A length-prefixed string, so ("ab","c") and ("a","bc") hash differently.
  void UpdateField(std::string_view text);
  std::string HexDigest() const;

 private:
  void* state_;  // XXH3_state_t, kept opaque to keep xxhash.h out of this header
};

std::string HashBytes(const void* data, size_t size);
// Hash of an ordered list of digests (for example per-batch digests into an epoch's).
std::string HashSequence(const std::vector<std::string>& digests);
// Hash of an ordered list of (name, digest) pairs: a model's hash from its tensors'.
std::string HashNamed(const std::vector<std::pair<std::string, std::string>>& items);

}  // namespace repro

#endif  // REPRO_COMMON_HASH_H_
