#include "common/hash.h"

#include <cstdio>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace repro {

Hasher::Hasher() : state_(XXH3_createState()) {
  XXH3_128bits_reset(static_cast<XXH3_state_t*>(state_));
}

Hasher::~Hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Hasher::Update(const void* data, size_t size) {
  XXH3_128bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}

void Hasher::UpdateU64(uint64_t value) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
  Update(bytes, sizeof bytes);
}

void Hasher::UpdateField(std::string_view text) {
  UpdateU64(text.size());
  Update(text);
}

std::string Hasher::HexDigest() const {
  XXH128_hash_t h = XXH3_128bits_digest(static_cast<XXH3_state_t*>(state_));
  char out[33];
  std::snprintf(out, sizeof out, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return std::string(out, 32);
}

std::string HashBytes(const void* data, size_t size) {
  Hasher hasher;
  hasher.Update(data, size);
  return hasher.HexDigest();
}

std::string HashSequence(const std::vector<std::string>& digests) {
  Hasher hasher;
  hasher.UpdateU64(digests.size());
  for (const auto& d : digests) hasher.UpdateField(d);
  return hasher.HexDigest();
}

std::string HashNamed(const std::vector<std::pair<std::string, std::string>>& items) {
  Hasher hasher;
  hasher.UpdateU64(items.size());
  for (const auto& [name, digest] : items) {
    hasher.UpdateField(name);
    hasher.UpdateField(digest);
  }
  return hasher.HexDigest();
}

}  // namespace repro
