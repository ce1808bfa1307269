// The training batches of one epoch, assembled on the run's device so that the step is
// not host-bound on a GPU (issue 13): the training set is on the device once per run
// (DeviceSplit), and per epoch only the sample order and the augmentation draws cross,
// once, pinned and without blocking; each batch is then a gather on the device, and
// augmentation is a gather too (AugmentOnDevice): the same pixels as augment.h's
// AugmentImage, copied, never interpolated, so a batch is bit-identical on every
// device and to the CPU loop it replaced. Batch digests are computed on the host from
// the same order and draws, as before: they keep their meaning.
//
// What a batch trains to (its loss and correct count) stays on the device too
// (BatchMetrics): read once per epoch, plus a finiteness check of the losses every
// `check_every` batches (every batch on the CPU, where reading a number is no
// synchronization, so a diverged CPU run stops exactly where it did).
//
// Thread safety: an object is used by one thread (the run's).
#ifndef REPRO_WORKER_ENGINE_BATCHES_H_
#define REPRO_WORKER_ENGINE_BATCHES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "common/run_spec.h"
#include "worker/engine/augment.h"

namespace repro::engine {

// A CPU tensor on `device`: as it is on the CPU; on a GPU copied from pinned memory
// without blocking the host (the copy is ordered before later work on the stream).
at::Tensor ToDevice(const at::Tensor& cpu, const at::Device& device);

// images [B, C, H, W] shifted and flipped per image as augment.h says: output (b, c, y,
// x) = images (b, c, clamp(y + dy[b]), clamp(x' + dx[b])), x' = W-1-x where flip[b].
// dy, dx: int64 [B]; flip: bool [B]; all on the images' device.
at::Tensor AugmentOnDevice(const at::Tensor& images, const at::Tensor& dy, const at::Tensor& dx,
                           const at::Tensor& flip);

// One epoch's batches of the training set `x` [N, C, H, W] / `y` [N] (on the device).
class EpochBatches {
 public:
  EpochBatches(const at::Tensor& x, const at::Tensor& y, const RunSpec& spec, int epoch);

  int64_t count() const { return count_; }
  int64_t size(int64_t batch) const;  // samples in `batch` (the last may be partial)

  struct Batch {
    at::Tensor x, y;     // on the device
    std::string digest;  // the batch digest (shuffle.h / augment.h); empty without fingerprints
  };
  Batch Get(int64_t batch) const;

 private:
  const at::Tensor& x_;
  const at::Tensor& y_;
  const RunSpec& spec_;
  int64_t n_ = 0, count_ = 0;
  std::vector<int64_t> order_;     // on the host, for the digests
  std::vector<AugmentDraw> draws_;  // per position in order_, when augmenting
  at::Tensor order_device_;         // int64 [N]
  at::Tensor dy_, dx_, flip_;       // per position, on the device, when augmenting
};

// Each batch's loss and correct count, kept on the device.
class BatchMetrics {
 public:
  BatchMetrics(int64_t batches, const at::Device& device);
  // Records batch `batch`'s mean loss (a scalar tensor) and correct count (an integer
  // scalar tensor); no synchronization.
  void Record(int64_t batch, const at::Tensor& loss, const at::Tensor& correct);
  // The first batch in [from, to) whose loss is not finite, and that loss; reads the
  // losses of those batches (one synchronization).
  std::optional<std::pair<int64_t, double>> FirstNonFinite(int64_t from, int64_t to) const;
  // Read once: the per-sample loss summed over batches [0, batches) (each batch's mean
  // loss, as a double, times its size, added in batch order) and the correct count.
  void Totals(const EpochBatches& batches, double* loss_sum, int64_t* correct) const;

 private:
  at::Tensor losses_;   // float [batches]
  at::Tensor correct_;  // int64 [batches]
};

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_BATCHES_H_
