// Training-time augmentation as the Keras example's ImageDataGenerator(
// width_shift_range=0.1, height_shift_range=0.1, horizontal_flip=True,
// fill_mode="nearest"), with its own generator so that what each sample looks like
// depends only on (augment_seed, epoch, sample): not on LibTorch's generators, the
// shuffle seed, the thread count or the device. No LibTorch here.
//
// Keras draws, per image, tx = uniform(-0.1, 0.1) * height and ty = uniform(-0.1,
// 0.1) * width (real numbers), shifts with an affine transform and bilinear
// interpolation, fills what comes in from outside with the nearest edge pixel, then
// flips horizontally when random() < 0.5. This engine draws the same uniforms and
// rounds the shifts to whole pixels (half away from zero: |shift| <= 3 pixels on
// 32x32 and 28x28 images), so a shifted image is an exact copy of pixels (no
// interpolation), which keeps augmentation bit-exact on every machine. Output pixel
// (c, y, x) = input (c, clamp(y + dy), clamp(x' + dx)) with x' = width-1-x when
// flipped: Keras's sign convention (the output at i reads the input at i + t) and
// its order (shift, then flip).
//
// The draws are a stored fingerprint (batch digests mix them in): changing DrawAugment
// changes every augmented run's digests, as changing EpochOrder would (shuffle.h).
//
// Thread safety: free functions with no shared state.
#ifndef REPRO_WORKER_ENGINE_AUGMENT_H_
#define REPRO_WORKER_ENGINE_AUGMENT_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace repro::engine {

struct AugmentDraw {
  int64_t dy = 0;     // rows: the output row y reads input row y + dy (clamped)
  int64_t dx = 0;     // columns, likewise
  bool flip = false;  // horizontal flip after the shift
};

// The augmentation of training sample `sample` (its index in the data set, not its
// position in the epoch's order) in `epoch` (0-based). Keyed by the sample's index so
// that changing only the shuffle seed reorders the same augmented images, and
// changing only the augment seed changes the images but not their order: each source
// of variation stays separate, as Summers and Dinneen vary them.
// Per sample: a SplitMix64 seeded from (augment_seed, epoch, sample) draws, in Keras's
// order, u1 for the height shift, u2 for the width shift, u3 for the flip (each a
// 53-bit uniform in [0, 1)); dy = round((2 u1 - 1) * shift * height), dx likewise with
// width, flip = flip_enabled && u3 < 0.5. All three are drawn even when a shift is 0 or
// flips are off, so turning one off leaves the others' draws unchanged.
AugmentDraw DrawAugment(uint64_t augment_seed, int epoch, int64_t sample, double shift,
                        bool flip_enabled, int64_t height, int64_t width);

// Writes the augmented copy of one image (float [channels, height, width], contiguous)
// to `dst` (same shape; must not overlap `src`).
void AugmentImage(const float* src, float* dst, int64_t channels, int64_t height, int64_t width,
                  const AugmentDraw& draw);

// The digest of an augmented batch: XXH3-128 of its sample indices as 64-bit
// little-endian integers (exactly the bytes BatchDigest hashes), followed by each
// sample's (dy, dx, flip) as three 64-bit little-endian integers (two's complement).
// Runs without augmentation keep BatchDigest, so their digests are unchanged.
std::string AugmentedBatchDigest(const int64_t* indices, const AugmentDraw* draws, size_t count);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_AUGMENT_H_
