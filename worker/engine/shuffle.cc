#include "worker/engine/shuffle.h"

#include <numeric>
#include <utility>

#include "common/hash.h"

namespace repro::engine {

uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Next() {
  state_ += 0x9e3779b97f4a7c15ULL;
  return Mix64(state_);
}

uint64_t SplitMix64::Below(uint64_t bound) {
  // Values below 2^64 mod bound would make the low residues more likely: reject them.
  const uint64_t threshold = (0 - bound) % bound;
  for (;;) {
    const uint64_t r = Next();
    if (r >= threshold) return r % bound;
  }
}

std::vector<int64_t> EpochOrder(int64_t n, uint64_t shuffle_seed, int epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n > 0 ? n : 0));
  std::iota(order.begin(), order.end(), int64_t{0});
  // Two mixing rounds, so that (seed, epoch) pairs map to unrelated streams; a plain
  // seed + epoch would make seed s, epoch 1 replay seed s + 1, epoch 0.
  SplitMix64 rng(Mix64(Mix64(shuffle_seed ^ 0x7265'7072'6f2e'7368ULL) +
                       static_cast<uint64_t>(epoch)));
  for (size_t i = order.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.Below(i));
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

std::string BatchDigest(const int64_t* indices, size_t count) {
  Hasher hasher;
  for (size_t i = 0; i < count; ++i) hasher.UpdateU64(static_cast<uint64_t>(indices[i]));
  return hasher.HexDigest();
}

}  // namespace repro::engine
