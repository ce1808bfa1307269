#include "worker/engine/tensor_dataset.h"

#include <ATen/ops/empty.h>

#include <cstring>

#include "data/dataset_check.h"

namespace repro::engine {
namespace {

constexpr char kCifar10[] = "cifar10";
constexpr char kArrays[] = "arrays";

// x bytes / 255 into `x`: the same expression as ToTensors(IdxSplit), so the same images
// give the same bits whichever kind they come in.
void Uint8ToFloat(const uint8_t* bytes, size_t count, float* x) {
  for (size_t i = 0; i < count; ++i) x[i] = static_cast<float>(bytes[i]) / 255.0f;
}

}  // namespace

TensorSplit ToTensors(const data::IdxSplit& split) {
  const data::IdxImages& images = split.images;
  TensorSplit out;
  out.x = at::empty({images.count, 1, images.rows, images.cols}, at::kFloat);
  out.y = at::empty({split.labels.count}, at::kLong);
  float* x = out.x.data_ptr<float>();
  const size_t pixels = static_cast<size_t>(images.count * images.rows * images.cols);
  Uint8ToFloat(images.pixels.data(), pixels, x);
  int64_t* y = out.y.data_ptr<int64_t>();
  for (int64_t i = 0; i < split.labels.count; ++i) y[i] = split.labels.labels[i];
  return out;
}

std::vector<float> CifarPixelMean(const data::CifarSplit& train) {
  std::vector<double> sum(static_cast<size_t>(data::kCifarImageBytes), 0.0);
  for (int64_t n = 0; n < train.count; ++n) {
    const uint8_t* image = train.pixels.data() + n * data::kCifarImageBytes;
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += static_cast<float>(image[i]) / 255.0f;
  }
  std::vector<float> mean(sum.size(), 0.0f);
  if (train.count == 0) return mean;
  for (size_t i = 0; i < sum.size(); ++i) {
    mean[i] = static_cast<float>(sum[i] / static_cast<double>(train.count));
  }
  return mean;
}

TensorSplit ToTensors(const data::CifarSplit& split, const std::vector<float>& mean) {
  TensorSplit out;
  out.x = at::empty({split.count, data::kCifarChannels, data::kCifarSide, data::kCifarSide}, at::kFloat);
  out.y = at::empty({split.count}, at::kLong);
  float* x = out.x.data_ptr<float>();
  // The file's layout is already NCHW: each image is its R, G and B planes in turn.
  for (int64_t n = 0; n < split.count; ++n) {
    const uint8_t* image = split.pixels.data() + n * data::kCifarImageBytes;
    float* row = x + n * data::kCifarImageBytes;
    for (int64_t i = 0; i < data::kCifarImageBytes; ++i) {
      row[i] = static_cast<float>(image[i]) / 255.0f - mean[static_cast<size_t>(i)];
    }
  }
  int64_t* y = out.y.data_ptr<int64_t>();
  for (int64_t i = 0; i < split.count; ++i) y[i] = split.labels[static_cast<size_t>(i)];
  return out;
}

TensorSplit ToTensors(const data::ArraySplit& split, const data::ArrayInfo& info) {
  TensorSplit out;
  out.x = at::empty({split.count, info.channels, info.height, info.width}, at::kFloat);
  out.y = at::empty({split.count}, at::kLong);
  float* x = out.x.data_ptr<float>();
  const size_t values = static_cast<size_t>(out.x.numel());
  if (info.x_float) {
    // Little-endian float32, as the file holds it (data/array_dataset.h).
    for (size_t i = 0; i < values; ++i) {
      const uint8_t* p = split.x.data() + 4 * i;
      const uint32_t word = uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
                            (uint32_t{p[3]} << 24);
      std::memcpy(x + i, &word, sizeof word);
    }
  } else {
    Uint8ToFloat(split.x.data(), values, x);
  }
  std::memcpy(out.y.data_ptr<int64_t>(), split.labels.data(), split.labels.size() * sizeof(int64_t));
  return out;
}

absl::StatusOr<TensorDataset> LoadDataset(const RunSpec& spec) {
  const std::string& kind = spec.dataset_kind;
  const std::string& dir = spec.dataset_path;
  const int64_t train_limit = spec.train_limit, test_limit = spec.test_limit;
  if (absl::Status s = data::CheckDatasetKind(kind); !s.ok()) return s;
  TensorDataset out;
  if (kind == kArrays) {
    data::ArrayFiles files;
    for (const InputFile& file : spec.inputs) files.Set(file.role, file.path);
    auto read = data::ReadArrayDataset(files, train_limit, test_limit);
    if (!read.ok()) return read.status();
    out.train = ToTensors(read->train, read->info);
    out.test = ToTensors(read->test, read->info);
    out.classes = read->info.classes;
    return out;
  }
  if (kind == kCifar10) {
    auto train = data::ReadCifarSplit(dir, data::Split::kTrain, train_limit);
    if (!train.ok()) return train.status();
    auto test = data::ReadCifarSplit(dir, data::Split::kTest, test_limit);
    if (!test.ok()) return test.status();
    const std::vector<float> mean = CifarPixelMean(*train);
    out.train = ToTensors(*train, mean);
    out.test = ToTensors(*test, mean);
    return out;
  }
  auto train = data::ReadIdxSplit(dir, data::Split::kTrain, train_limit);
  if (!train.ok()) return train.status();
  auto test = data::ReadIdxSplit(dir, data::Split::kTest, test_limit);
  if (!test.ok()) return test.status();
  out.train = ToTensors(*train);
  out.test = ToTensors(*test);
  return out;
}

absl::StatusOr<TensorSplit> LoadSplit(const std::string& kind, const std::string& dir,
                                      data::Split split, int64_t limit) {
  if (absl::Status s = data::CheckDatasetKind(kind); !s.ok()) return s;
  if (kind == kArrays) {
    return absl::InvalidArgumentError(
        "dataset kind arrays is read from a run's files by role: use LoadDataset");
  }
  if (kind == kCifar10) {
    auto train = data::ReadCifarSplit(dir, data::Split::kTrain, split == data::Split::kTrain ? limit : 0);
    if (!train.ok()) return train.status();
    const std::vector<float> mean = CifarPixelMean(*train);
    if (split == data::Split::kTrain) return ToTensors(*train, mean);
    auto test = data::ReadCifarSplit(dir, data::Split::kTest, limit);
    if (!test.ok()) return test.status();
    return ToTensors(*test, mean);
  }
  auto read = data::ReadIdxSplit(dir, split, limit);
  if (!read.ok()) return read.status();
  return ToTensors(*read);
}

}  // namespace repro::engine
