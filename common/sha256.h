// SHA-256, the content address of files that runs read (plan inputs; later, blobs that
// travel between the coordinator and its workers): a worker must not be able to pass
// one file off as another, which a fast non-cryptographic hash (common/hash.h) allows.
// OpenSSL's implementation.
//
// Thread safety: free functions with no shared state.
#ifndef REPRO_COMMON_SHA256_H_
#define REPRO_COMMON_SHA256_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace repro {

// 64 lower-case hex digits.
std::string Sha256Hex(const void* data, size_t size);

// The SHA-256 of a file's bytes, read in chunks; NOT_FOUND or INVALID_ARGUMENT naming
// the file when it cannot be read.
absl::StatusOr<std::string> Sha256OfFile(const std::string& path);

// SHA-256 of bytes that arrive in pieces (a file as it is copied or fetched).
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(const void* data, size_t size);
  // 64 lower-case hex digits of everything given; the hasher is not used after it.
  std::string Finish();

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
};

// Whether `text` is 64 lower-case hex digits.
bool IsSha256Hex(const std::string& text);

}  // namespace repro

#endif  // REPRO_COMMON_SHA256_H_
