#include "worker/engine/tensor_dataset.h"

#include <ATen/ops/empty.h>

#include "worker/engine/dataset.h"

namespace repro::engine {

TensorSplit ToTensors(const IdxSplit& split) {
  const IdxImages& images = split.images;
  TensorSplit out;
  out.x = at::empty({images.count, 1, images.rows, images.cols}, at::kFloat);
  out.y = at::empty({split.labels.count}, at::kLong);
  float* x = out.x.data_ptr<float>();
  const size_t pixels = static_cast<size_t>(images.count * images.rows * images.cols);
  for (size_t i = 0; i < pixels; ++i) x[i] = static_cast<float>(images.pixels[i]) / 255.0f;
  int64_t* y = out.y.data_ptr<int64_t>();
  for (int64_t i = 0; i < split.labels.count; ++i) y[i] = split.labels.labels[i];
  return out;
}

absl::StatusOr<TensorSplit> LoadSplit(const std::string& kind, const std::string& dir,
                                      Split split, int64_t limit) {
  if (absl::Status s = CheckDatasetKind(kind); !s.ok()) return s;
  auto read = ReadIdxSplit(dir, split, limit);
  if (!read.ok()) return read.status();
  return ToTensors(*read);
}

}  // namespace repro::engine
