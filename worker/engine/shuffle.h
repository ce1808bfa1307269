// The engine's own sample order and batch digests. The order of an epoch depends only
// on (shuffle_seed, epoch), through a PRNG written here rather than LibTorch's
// generators, so it is the same on every LibTorch version, device and thread count,
// and initialization (LibTorch's generator) and shuffling never share a stream.
//
// The orders and digests are stored fingerprints: changing SplitMix64, EpochOrder or
// BatchDigest changes every batch digest, so any change must come with a new version
// in the records (the golden test in engine_test.cc pins them).
//
// Thread safety: SplitMix64 is not thread-safe; the free functions are.
#ifndef REPRO_WORKER_ENGINE_SHUFFLE_H_
#define REPRO_WORKER_ENGINE_SHUFFLE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace repro::engine {

// SplitMix64 (Steele, Lea and Flood 2014; the seeding generator of xoshiro).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, bound), bound > 0, without modulo bias (rejection sampling).
  uint64_t Below(uint64_t bound);

 private:
  uint64_t state_;
};

// The SplitMix64 finalizer: a bijection on 64-bit values with good avalanche.
uint64_t Mix64(uint64_t value);

// The order of samples 0..n-1 in `epoch` (0-based): a Fisher-Yates shuffle driven by a
// SplitMix64 seeded from (shuffle_seed, epoch).
std::vector<int64_t> EpochOrder(int64_t n, uint64_t shuffle_seed, int epoch);

// The digest of one batch: XXH3-128 of its sample indices as 64-bit little-endian
// integers, in batch order.
std::string BatchDigest(const int64_t* indices, size_t count);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_SHUFFLE_H_
