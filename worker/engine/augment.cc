#include "worker/engine/augment.h"

#include <algorithm>
#include <cmath>

#include "common/hash.h"
#include "worker/engine/shuffle.h"

namespace repro::engine {
namespace {

// "augment." in ASCII: keeps augmentation streams apart from the shuffle's streams
// (shuffle.cc mixes its seed with "repro.sh") even when the two seeds are equal.
constexpr uint64_t kAugmentTag = 0x6175'676d'656e'742eULL;

// A uniform double in [0, 1) from the top 53 bits.
double Uniform(SplitMix64& rng) { return static_cast<double>(rng.Next() >> 11) * 0x1.0p-53; }

int64_t Shift(double u, double shift, int64_t size) {
  // Keras: np.random.uniform(-r, r) = -r + 2r * u, times the image side.
  return static_cast<int64_t>(std::lround((-shift + 2.0 * shift * u) * static_cast<double>(size)));
}

int64_t Clamp(int64_t v, int64_t size) { return std::min(std::max(v, int64_t{0}), size - 1); }

}  // namespace

AugmentDraw DrawAugment(uint64_t augment_seed, int epoch, int64_t sample, double shift,
                        bool flip_enabled, int64_t height, int64_t width) {
  // Nested mixing, as EpochOrder: (seed, epoch) pairs and then samples map to
  // unrelated streams; Mix64 is a bijection, so within an epoch no two samples share one.
  SplitMix64 rng(Mix64(Mix64(Mix64(augment_seed ^ kAugmentTag) + static_cast<uint64_t>(epoch)) +
                       static_cast<uint64_t>(sample)));
  const double u_height = Uniform(rng);
  const double u_width = Uniform(rng);
  const double u_flip = Uniform(rng);
  AugmentDraw draw;
  draw.dy = Shift(u_height, shift, height);
  draw.dx = Shift(u_width, shift, width);
  draw.flip = flip_enabled && u_flip < 0.5;
  return draw;
}

void AugmentImage(const float* src, float* dst, int64_t channels, int64_t height, int64_t width,
                  const AugmentDraw& draw) {
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = src + c * height * width;
    float* out = dst + c * height * width;
    for (int64_t y = 0; y < height; ++y) {
      const float* row = plane + Clamp(y + draw.dy, height) * width;
      for (int64_t x = 0; x < width; ++x) {
        const int64_t xs = draw.flip ? width - 1 - x : x;
        out[y * width + x] = row[Clamp(xs + draw.dx, width)];
      }
    }
  }
}

std::string AugmentedBatchDigest(const int64_t* indices, const AugmentDraw* draws, size_t count) {
  Hasher hasher;
  for (size_t i = 0; i < count; ++i) hasher.UpdateU64(static_cast<uint64_t>(indices[i]));
  for (size_t i = 0; i < count; ++i) {
    hasher.UpdateU64(static_cast<uint64_t>(draws[i].dy));
    hasher.UpdateU64(static_cast<uint64_t>(draws[i].dx));
    hasher.UpdateU64(draws[i].flip ? 1 : 0);
  }
  return hasher.HexDigest();
}

}  // namespace repro::engine
