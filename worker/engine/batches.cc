#include "worker/engine/batches.h"

#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/where.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "worker/engine/shuffle.h"

namespace repro::engine {

at::Tensor ToDevice(const at::Tensor& cpu, const at::Device& device) {
  if (device.is_cpu()) return cpu;
  return cpu.pin_memory().to(device, /*non_blocking=*/true);
}

at::Tensor AugmentOnDevice(const at::Tensor& images, const at::Tensor& dy, const at::Tensor& dx,
                           const at::Tensor& flip) {
  const int64_t count = images.size(0), channels = images.size(1);
  const int64_t height = images.size(2), width = images.size(3);
  const auto index_options = dy.options();
  // rows[b, y] = clamp(y + dy[b]); columns[b, x] = clamp(x' + dx[b]): integer arithmetic,
  // exact on every device.
  const at::Tensor ys = at::arange(height, index_options).unsqueeze(0);
  const at::Tensor xs = at::arange(width, index_options).unsqueeze(0);
  const at::Tensor rows = ys.add(dy.unsqueeze(1)).clamp(0, height - 1);
  const at::Tensor mirrored = at::where(flip.unsqueeze(1), xs.neg().add(width - 1), xs);
  const at::Tensor columns = mirrored.add(dx.unsqueeze(1)).clamp(0, width - 1);
  const at::Tensor shifted_rows =
      images.gather(2, rows.view({count, 1, height, 1}).expand({count, channels, height, width}));
  return shifted_rows.gather(
      3, columns.view({count, 1, 1, width}).expand({count, channels, height, width}));
}

EpochBatches::EpochBatches(const at::Tensor& x, const at::Tensor& y, const RunSpec& spec, int epoch)
    : x_(x), y_(y), spec_(spec), n_(y.size(0)) {
  count_ = (n_ + spec.batch_size - 1) / spec.batch_size;
  order_ = EpochOrder(n_, spec.shuffle_seed, epoch);
  const at::Device device = x.device();
  order_device_ = ToDevice(at::from_blob(order_.data(), {n_}, at::kLong), device);
  if (!spec.augment) return;
  const int64_t height = x.size(2), width = x.size(3);
  at::Tensor dy = at::empty({n_}, at::kLong), dx = at::empty({n_}, at::kLong);
  at::Tensor flip = at::empty({n_}, at::kBool);
  int64_t* dy_data = dy.data_ptr<int64_t>();
  int64_t* dx_data = dx.data_ptr<int64_t>();
  bool* flip_data = flip.data_ptr<bool>();
  draws_.resize(static_cast<size_t>(n_));
  for (int64_t i = 0; i < n_; ++i) {
    AugmentDraw& draw = draws_[static_cast<size_t>(i)];
    draw = DrawAugment(spec.augment_seed, epoch, order_[static_cast<size_t>(i)],
                       spec.augment_shift, spec.augment_flip, height, width);
    dy_data[i] = draw.dy;
    dx_data[i] = draw.dx;
    flip_data[i] = draw.flip;
  }
  dy_ = ToDevice(dy, device);
  dx_ = ToDevice(dx, device);
  flip_ = ToDevice(flip, device);
}

int64_t EpochBatches::size(int64_t batch) const {
  return std::min(spec_.batch_size, n_ - batch * spec_.batch_size);
}

EpochBatches::Batch EpochBatches::Get(int64_t batch) const {
  const int64_t start = batch * spec_.batch_size;
  const int64_t size = this->size(batch);
  const int64_t* indices = order_.data() + start;
  const at::Tensor index = order_device_.slice(0, start, start + size);
  Batch out;
  out.x = x_.index_select(0, index);
  out.y = y_.index_select(0, index);
  if (spec_.augment) {
    out.x = AugmentOnDevice(out.x, dy_.slice(0, start, start + size),
                            dx_.slice(0, start, start + size), flip_.slice(0, start, start + size));
  }
  if (spec_.fingerprints) {
    out.digest = spec_.augment ? AugmentedBatchDigest(indices, draws_.data() + start,
                                                      static_cast<size_t>(size))
                               : BatchDigest(indices, static_cast<size_t>(size));
  }
  return out;
}

BatchMetrics::BatchMetrics(int64_t batches, const at::Device& device)
    : losses_(at::empty({batches}, at::TensorOptions().dtype(at::kFloat).device(device))),
      correct_(at::empty({batches}, at::TensorOptions().dtype(at::kLong).device(device))) {}

void BatchMetrics::Record(int64_t batch, const at::Tensor& loss, const at::Tensor& correct) {
  losses_[batch].copy_(loss.detach(), /*non_blocking=*/true);
  correct_[batch].copy_(correct, /*non_blocking=*/true);
}

std::optional<std::pair<int64_t, double>> BatchMetrics::FirstNonFinite(int64_t from,
                                                                      int64_t to) const {
  const at::Tensor losses = losses_.slice(0, from, to).to(at::kCPU).contiguous();
  const float* data = losses.data_ptr<float>();
  for (int64_t i = 0; i < to - from; ++i) {
    if (!std::isfinite(data[i])) return std::pair{from + i, static_cast<double>(data[i])};
  }
  return std::nullopt;
}

void BatchMetrics::Totals(const EpochBatches& batches, double* loss_sum, int64_t* correct) const {
  const at::Tensor losses = losses_.to(at::kCPU).contiguous();
  const at::Tensor counts = correct_.to(at::kCPU).contiguous();
  const float* loss = losses.data_ptr<float>();
  const int64_t* right = counts.data_ptr<int64_t>();
  *loss_sum = 0;
  *correct = 0;
  for (int64_t b = 0; b < batches.count(); ++b) {
    *loss_sum += static_cast<double>(loss[b]) * static_cast<double>(batches.size(b));
    *correct += right[b];
  }
}

}  // namespace repro::engine
