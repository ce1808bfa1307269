#include "data/idx_dataset.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/cifar_dataset.h"
#include "data/dataset_check.h"

namespace repro::data {
namespace {

constexpr uint32_t kImageMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // unsigned byte, 1 dimension

// Owns a gzFile and remembers how the last read ended.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    file_ = gzopen(path.c_str(), "rb");
    if (file_ != nullptr) gzbuffer(file_, 1 << 17);
  }
  ~GzReader() {
    if (file_ != nullptr) gzclose_r(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  bool is_open() const { return file_ != nullptr; }

  // Reads up to `size` bytes; fewer means the data ended (then `cut_short()` tells
  // whether the gzip stream itself ended early). A gzip error is an error status.
  absl::StatusOr<size_t> Read(void* buffer, size_t size) {
    size_t total = 0;
    auto* out = static_cast<unsigned char*>(buffer);
    while (total < size) {
      const unsigned chunk = static_cast<unsigned>(
          std::min<size_t>(size - total, std::numeric_limits<int>::max() / 2));
      const int got = gzread(file_, out + total, chunk);
      if (got < 0) {
        int errnum = 0;
        const char* message = gzerror(file_, &errnum);
        return absl::InvalidArgumentError(absl::StrCat(
            path_, ": corrupt gzip data (zlib: ", message ? message : "unknown error", ")"));
      }
      if (got == 0) break;
      total += static_cast<size_t>(got);
    }
    if (total < size) {
      int errnum = Z_OK;
      gzerror(file_, &errnum);
      cut_short_ = errnum == Z_BUF_ERROR;  // "unexpected end of file" in the gzip stream
    }
    return total;
  }

  bool cut_short() const { return cut_short_; }

 private:
  std::string path_;
  gzFile file_ = nullptr;
  bool cut_short_ = false;
};

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

absl::Status CheckFileExists(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": file does not exist"));
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is not a regular file"));
  }
  return absl::OkStatus();
}

absl::Status CheckKeep(int64_t keep, int64_t count, const std::string& limit_name,
                       const std::string& path, const char* what) {
  if (absl::Status s = CheckSplitLimit(limit_name, keep); !s.ok()) return s;
  if (keep > count) {
    return absl::InvalidArgumentError(absl::StrCat(limit_name, " ", keep, " is larger than the ",
                                                   count, " ", what, " in ", path));
  }
  return absl::OkStatus();
}

std::string TruncatedSuffix(const GzReader& reader) {
  return reader.cut_short() ? " (the gzip stream is cut short)" : "";
}

// Reads the `size`-byte IDX header of an opened file and checks its magic number.
absl::Status ReadHeader(GzReader& reader, const std::string& path, unsigned char* header,
                        size_t size, uint32_t expected_magic, const char* kind) {
  if (!reader.is_open()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot be opened for reading"));
  }
  auto got = reader.Read(header, size);
  if (!got.ok()) return got.status();
  if (*got < size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated: the file ends inside its ",
                                                   size, "-byte IDX header",
                                                   TruncatedSuffix(reader)));
  }
  const uint32_t magic = BigEndian32(header);
  if (magic != expected_magic) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad magic number 0x%08x (an IDX %s file starts with 0x%08x)", path, magic, kind,
        expected_magic));
  }
  return absl::OkStatus();
}

// After the declared records: the file must end there.
absl::Status CheckAtEnd(GzReader& reader, const std::string& path, int64_t count,
                        const char* what) {
  unsigned char extra[1];
  auto got = reader.Read(extra, sizeof extra);
  if (!got.ok()) return got.status();
  if (*got != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": has data after the ", count, " ", what, " its header declares"));
  }
  return absl::OkStatus();
}

}  // namespace

const char* SplitName(Split split) { return split == Split::kTrain ? "train" : "test"; }

absl::StatusOr<IdxImages> ReadIdxImages(const std::string& path, int64_t keep,
                                        const std::string& limit_name) {
  if (absl::Status s = CheckFileExists(path); !s.ok()) return s;
  GzReader reader(path);
  unsigned char header[16];
  if (absl::Status s = ReadHeader(reader, path, header, sizeof header, kImageMagic, "image");
      !s.ok()) {
    return s;
  }
  IdxImages images;
  images.path = path;
  images.file_count = BigEndian32(header + 4);
  images.count = images.file_count;
  images.rows = BigEndian32(header + 8);
  images.cols = BigEndian32(header + 12);
  if (images.rows != kIdxImageSide || images.cols != kIdxImageSide) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": images are ", images.rows, "x", images.cols, " but ", kIdxImageSide, "x",
        kIdxImageSide, " is expected"));
  }
  if (images.count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds no images"));
  }
  if (absl::Status s = CheckKeep(keep, images.count, limit_name, path, "images"); !s.ok()) {
    return s;
  }
  const int64_t kept = keep == 0 ? images.count : keep;
  const size_t image_bytes = static_cast<size_t>(images.rows * images.cols);

  // Read every image, so a truncated or corrupt file is caught even when only a prefix
  // is kept; images past the kept ones go through a scratch buffer. The buffer grows as
  // data arrives, so a header that claims billions of images cannot make us allocate.
  constexpr int64_t kChunkImages = 1024;
  images.pixels.reserve(static_cast<size_t>(std::min<int64_t>(kept, 1 << 12)) * image_bytes);
  std::vector<unsigned char> scratch;
  int64_t complete = 0;
  while (complete < images.count) {
    int64_t want = std::min(kChunkImages, images.count - complete);
    unsigned char* destination;
    if (complete < kept) {
      want = std::min(want, kept - complete);
      images.pixels.resize(static_cast<size_t>(complete + want) * image_bytes);
      destination = images.pixels.data() + static_cast<size_t>(complete) * image_bytes;
    } else {
      scratch.resize(static_cast<size_t>(want) * image_bytes);
      destination = scratch.data();
    }
    const size_t want_bytes = static_cast<size_t>(want) * image_bytes;
    auto got_images = reader.Read(destination, want_bytes);
    if (!got_images.ok()) return got_images.status();
    complete += static_cast<int64_t>(*got_images / image_bytes);
    if (*got_images < want_bytes) break;
  }
  if (complete < images.count) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": truncated: header says ", images.count, " images of ", images.rows, "x",
        images.cols, " but the file ends after ", complete, " of them", TruncatedSuffix(reader)));
  }
  if (absl::Status s = CheckAtEnd(reader, path, images.count, "images"); !s.ok()) return s;
  images.count = kept;
  return images;
}

absl::StatusOr<IdxLabels> ReadIdxLabels(const std::string& path, int64_t keep,
                                        const std::string& limit_name) {
  if (absl::Status s = CheckFileExists(path); !s.ok()) return s;
  GzReader reader(path);
  unsigned char header[8];
  if (absl::Status s = ReadHeader(reader, path, header, sizeof header, kLabelMagic, "label");
      !s.ok()) {
    return s;
  }
  IdxLabels labels;
  labels.path = path;
  labels.file_count = BigEndian32(header + 4);
  labels.count = labels.file_count;
  if (labels.count == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds no labels"));
  }
  if (absl::Status s = CheckKeep(keep, labels.count, limit_name, path, "labels"); !s.ok()) {
    return s;
  }
  // Read in chunks, growing the buffer as data arrives (see ReadIdxImages).
  constexpr size_t kChunk = 1 << 16;
  const size_t declared = static_cast<size_t>(labels.count);
  size_t have = 0;
  while (have < declared) {
    const size_t want = std::min(kChunk, declared - have);
    labels.labels.resize(have + want);
    auto got_labels = reader.Read(labels.labels.data() + have, want);
    if (!got_labels.ok()) return got_labels.status();
    have += *got_labels;
    if (*got_labels < want) break;
  }
  if (have < declared) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated: header says ", labels.count,
                                                   " labels but the file ends after ", have,
                                                   " of them", TruncatedSuffix(reader)));
  }
  if (absl::Status s = CheckAtEnd(reader, path, labels.count, "labels"); !s.ok()) return s;
  for (size_t i = 0; i < labels.labels.size(); ++i) {
    if (labels.labels[i] >= kIdxClasses) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": label ", static_cast<int>(labels.labels[i]),
                                                     " at index ", i, " is outside 0..",
                                                     kIdxClasses - 1));
    }
  }
  if (keep != 0) {
    labels.labels.resize(static_cast<size_t>(keep));
    labels.count = keep;
  }
  return labels;
}

absl::Status CheckDatasetDirectory(const std::string& dir) {
  std::error_code ec;
  const std::filesystem::path directory(dir);
  if (!std::filesystem::exists(directory, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": dataset directory does not exist"));
  }
  if (!std::filesystem::is_directory(directory, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": dataset path is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status CheckSplitLimit(const std::string& limit_name, int64_t limit) {
  if (limit < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(limit_name, " must be 0 (all) or positive, got ", limit));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& base_name) {
  if (absl::Status s = CheckDatasetDirectory(dir); !s.ok()) return s;
  std::error_code ec;
  const std::filesystem::path directory(dir);
  const std::filesystem::path gz = directory / (base_name + ".gz");
  if (std::filesystem::exists(gz, ec)) return gz.string();
  const std::filesystem::path plain = directory / base_name;
  if (std::filesystem::exists(plain, ec)) return plain.string();
  return absl::InvalidArgumentError(absl::StrCat(dir, ": dataset directory has neither ",
                                                 base_name, ".gz nor ", base_name));
}

absl::StatusOr<IdxSplit> ReadIdxSplit(const std::string& dir, Split split, int64_t limit) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  const std::string limit_name = absl::StrCat(SplitName(split), "_limit");
  if (absl::Status s = CheckSplitLimit(limit_name, limit); !s.ok()) return s;
  auto images_path = FindIdxFile(dir, prefix + "-images-idx3-ubyte");
  if (!images_path.ok()) return images_path.status();
  auto labels_path = FindIdxFile(dir, prefix + "-labels-idx1-ubyte");
  if (!labels_path.ok()) return labels_path.status();

  // All labels first (tiny), then the images keeping only the limit, then compare the
  // counts the two files declare.
  auto labels = ReadIdxLabels(*labels_path, 0, limit_name);
  if (!labels.ok()) return labels.status();
  auto images = ReadIdxImages(*images_path, limit, limit_name);
  if (!images.ok()) return images.status();
  if (images->file_count != labels->file_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        *labels_path, ": has ", labels->file_count, " labels but ", *images_path, " has ",
        images->file_count, " images"));
  }
  if (limit != 0) {
    labels->labels.resize(static_cast<size_t>(limit));
    labels->count = limit;
  }
  IdxSplit out;
  out.images = std::move(*images);
  out.labels = std::move(*labels);
  return out;
}

absl::Status CheckDatasetKind(const std::string& kind) {
  if (kind == "fashion-mnist" || kind == "mnist" || kind == "cifar10" || kind == "arrays") {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dataset kind \"", kind,
      "\" (this engine reads fashion-mnist, mnist, cifar10 and arrays)"));
}

absl::Status CheckDataset(const std::string& kind, const std::string& path, int64_t train_limit,
                          int64_t test_limit) {
  return CheckDatasetSizes(kind, path, train_limit, test_limit).status();
}

absl::StatusOr<DatasetSizes> CheckDatasetSizes(const std::string& kind, const std::string& path,
                                               int64_t train_limit, int64_t test_limit) {
  if (absl::Status s = CheckDatasetKind(kind); !s.ok()) return s;
  if (kind == "arrays") {
    return absl::InvalidArgumentError(
        "dataset kind arrays has no directory: its files are checked by role "
        "(dataset.train.x, .train.y, .test.x, .test.y)");
  }
  if (kind == "cifar10") {
    auto train = CountCifarSplit(path, Split::kTrain, train_limit);
    if (!train.ok()) return train.status();
    auto test = ReadCifarLabels(path, Split::kTest, test_limit);
    if (!test.ok()) return test.status();
    const auto count = static_cast<int64_t>(test->size());
    return DatasetSizes{*train, count, 10, std::move(*test)};
  }
  auto train = ReadIdxSplit(path, Split::kTrain, train_limit);
  if (!train.ok()) return train.status();
  auto test = ReadIdxSplit(path, Split::kTest, test_limit);
  if (!test.ok()) return test.status();
  return DatasetSizes{train->labels.count, test->labels.count, 10, std::move(test->labels.labels)};
}

absl::StatusOr<DatasetSizes> CheckDatasetSizes(const ArrayFiles& files, int64_t train_limit,
                                               int64_t test_limit) {
  std::vector<int64_t> labels;
  auto info = CheckArrayFiles(files, train_limit, test_limit, &labels);
  if (!info.ok()) return info.status();
  // Classes are below kMaxArrayClasses (256): each fits in a byte, as predictions do.
  return DatasetSizes{info->train, info->test, info->classes,
                      std::vector<uint8_t>(labels.begin(), labels.end())};
}

}  // namespace repro::data
