#include "data/array_dataset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/dataset_check.h"

namespace repro::data {
namespace {

// Labels are read in chunks of this many, so a check never holds a whole y file.
constexpr int64_t kLabelChunk = 1 << 16;

// One of the four files: its plan key and path.
struct File {
  const char* key;
  const std::string& path;
};

template <typename... Parts>
absl::Status Invalid(const File& f, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(f.key, ": ", f.path, ": ", parts...));
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), shape.size() == 1 ? ",)" : ")");
}

// The dtype without its byte order ("f4" for "<f4"), after checking that order.
absl::StatusOr<std::string> LittleEndianType(const File& f, const NpyHeader& h) {
  const char order = h.descr.empty() ? '\0' : h.descr[0];
  if (order == '>') {
    return Invalid(f, "dtype ", h.descr,
                   " is big-endian; only little-endian files ('<' or '|') are read "
                   "(NumPy: a.astype(a.dtype.newbyteorder('<')))");
  }
  if (order != '<' && order != '|') {
    return Invalid(f, "dtype ", h.descr, " has byte order '", std::string(1, order),
                   "'; only little-endian files ('<' or '|') are read");
  }
  if (h.fortran_order) {
    return Invalid(f, "is in Fortran order (fortran_order True); only C order is read "
                      "(NumPy: np.save(path, np.ascontiguousarray(a)))");
  }
  return h.descr.substr(1);
}

absl::StatusOr<NpyHeader> Header(const File& f) {
  if (f.path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.key, ": no file given (dataset kind arrays reads dataset.train.x, dataset.train.y, "
               "dataset.test.x and dataset.test.y)"));
  }
  auto header = ReadNpyHeader(f.path);
  if (!header.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(f.key, ": ", header.status().message()));
  }
  return header;
}

// An x file: uint8 or float32, (N, C, H, W) or (N, H, W), no dimension 0.
absl::Status CheckX(const File& f, const NpyHeader& h, bool* is_float, int64_t chw[3]) {
  auto type = LittleEndianType(f, h);
  if (!type.ok()) return type.status();
  if (*type != "u1" && *type != "f4") return Invalid(f, "dtype ", h.descr, " is not uint8 or float32");
  *is_float = *type == "f4";
  if (h.shape.size() != 3 && h.shape.size() != 4) {
    return Invalid(f, "shape ", ShapeText(h.shape),
                   " is not (N, C, H, W), or (N, H, W) for one channel");
  }
  if (h.shape[0] == 0) return Invalid(f, "holds no samples (shape ", ShapeText(h.shape), ")");
  if (h.Elements() == 0) return Invalid(f, "has empty images (shape ", ShapeText(h.shape), ")");
  const bool one_channel = h.shape.size() == 3;
  chw[0] = one_channel ? 1 : h.shape[1];
  chw[1] = h.shape[one_channel ? 1 : 2];
  chw[2] = h.shape[one_channel ? 2 : 3];
  return absl::OkStatus();
}

// A y file: int64, int32 or uint8 labels, (N,) with the N of its x file.
absl::Status CheckY(const File& f, const NpyHeader& h, const File& x, int64_t samples) {
  auto type = LittleEndianType(f, h);
  if (!type.ok()) return type.status();
  if (*type != "i8" && *type != "i4" && *type != "u1") {
    return Invalid(f, "dtype ", h.descr, " is not int64, int32 or uint8 (integer class labels)");
  }
  if (h.shape.size() != 1) return Invalid(f, "shape ", ShapeText(h.shape), " is not (N,)");
  if (h.shape[0] != samples) {
    return Invalid(f, "has ", h.shape[0], " labels but ", x.key, " (", x.path, ") has ", samples,
                   " samples");
  }
  return absl::OkStatus();
}

absl::Status CheckLimit(const char* limit_name, int64_t limit, const File& x, int64_t samples) {
  if (absl::Status s = CheckSplitLimit(limit_name, limit); !s.ok()) return s;
  if (limit > samples) {
    return absl::InvalidArgumentError(absl::StrCat(limit_name, " ", limit, " is larger than the ",
                                                   samples, " samples in ", x.key, " (", x.path, ")"));
  }
  return absl::OkStatus();
}

// Label `i` of little-endian integer bytes of `size` bytes each (signed for 4 and 8).
int64_t Label(const uint8_t* bytes, int64_t i, int64_t size) {
  const uint8_t* p = bytes + i * size;
  uint64_t value = 0;
  for (int64_t b = size - 1; b >= 0; --b) value = (value << 8) | p[b];
  if (size == 4) return static_cast<int32_t>(static_cast<uint32_t>(value));
  return static_cast<int64_t>(value);  // uint8, or int64's two's complement
}

// Reads every label of y file `f`, in chunks: each must be 0..max_label (`bound` names
// the rule in the error). Sets `*largest` to the largest; keeps the first `keep` in `kept`
// when it is not null.
absl::Status ScanLabels(const File& f, const NpyHeader& h, int64_t max_label,
                        const std::string& bound, int64_t* largest, int64_t keep,
                        std::vector<int64_t>* kept) {
  const int64_t n = h.shape[0];
  const int64_t size = h.ItemSize();
  *largest = -1;
  if (kept != nullptr) kept->reserve(static_cast<size_t>(keep));
  for (int64_t first = 0; first < n; first += kLabelChunk) {
    const int64_t rows = std::min(kLabelChunk, n - first);
    auto bytes = ReadNpyRows(f.path, h, first, rows);
    if (!bytes.ok()) return absl::InvalidArgumentError(absl::StrCat(f.key, ": ", bytes.status().message()));
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t label = Label(bytes->data(), i, size);
      if (label < 0 || label > max_label) {
        return Invalid(f, "label ", label, " at index ", first + i, " is outside 0..", max_label,
                       " (", bound, ")");
      }
      *largest = std::max(*largest, label);
      if (kept != nullptr && first + i < keep) kept->push_back(label);
    }
  }
  return absl::OkStatus();
}

// The checks of CheckArrayFiles, keeping the labels of the samples a run reads of each
// split whose `train_labels` or `test_labels` is not null.
absl::StatusOr<ArrayInfo> Check(const ArrayFiles& files, int64_t train_limit, int64_t test_limit,
                                std::vector<int64_t>* train_labels,
                                std::vector<int64_t>* test_labels) {
  const File train_x{"dataset.train.x", files.train_x}, train_y{"dataset.train.y", files.train_y};
  const File test_x{"dataset.test.x", files.test_x}, test_y{"dataset.test.y", files.test_y};
  ArrayInfo info;
  for (auto [file, header] : {std::pair{&train_x, &info.train_x}, std::pair{&train_y, &info.train_y},
                              std::pair{&test_x, &info.test_x}, std::pair{&test_y, &info.test_y}}) {
    auto read = Header(*file);
    if (!read.ok()) return read.status();
    *header = std::move(*read);
  }
  int64_t train_chw[3], test_chw[3];
  bool test_float = false;
  if (absl::Status s = CheckX(train_x, info.train_x, &info.x_float, train_chw); !s.ok()) return s;
  if (absl::Status s = CheckX(test_x, info.test_x, &test_float, test_chw); !s.ok()) return s;
  if (!std::equal(train_chw, train_chw + 3, test_chw)) {
    return Invalid(test_x, "images are ", absl::StrJoin(test_chw, "x"), " (C x H x W) but ",
                   train_x.key, "'s are ", absl::StrJoin(train_chw, "x"));
  }
  if (test_float != info.x_float) {
    return Invalid(test_x, "dtype ", info.test_x.descr, " is not ", train_x.key, "'s (",
                   info.train_x.descr, ")");
  }
  info.channels = train_chw[0];
  info.height = train_chw[1];
  info.width = train_chw[2];
  info.train_file = info.train_x.shape[0];
  info.test_file = info.test_x.shape[0];
  if (absl::Status s = CheckY(train_y, info.train_y, train_x, info.train_file); !s.ok()) return s;
  if (absl::Status s = CheckY(test_y, info.test_y, test_x, info.test_file); !s.ok()) return s;
  if (absl::Status s = CheckLimit("train_limit", train_limit, train_x, info.train_file); !s.ok()) return s;
  if (absl::Status s = CheckLimit("test_limit", test_limit, test_x, info.test_file); !s.ok()) return s;
  info.train = train_limit == 0 ? info.train_file : train_limit;
  info.test = test_limit == 0 ? info.test_file : test_limit;

  int64_t largest = 0;
  if (absl::Status s = ScanLabels(train_y, info.train_y, kMaxArrayClasses - 1,
                                  absl::StrCat("at most ", kMaxArrayClasses, " classes"), &largest,
                                  info.train, train_labels);
      !s.ok()) {
    return s;
  }
  info.classes = largest + 1;
  if (info.classes < 2) {
    return Invalid(train_y, "every label is 0; a classifier needs at least 2 classes (labels 0..K-1)");
  }
  int64_t test_largest = 0;
  if (absl::Status s = ScanLabels(test_y, info.test_y, info.classes - 1,
                                  absl::StrCat("the classes of ", train_y.key, ": its largest label + 1 = ",
                                               info.classes),
                                  &test_largest, info.test, test_labels);
      !s.ok()) {
    return s;
  }
  return info;
}

// The kept samples of x file `f` as the file holds them; float32 values must be finite.
absl::Status ReadX(const File& f, const NpyHeader& h, bool is_float, int64_t count,
                   std::vector<uint8_t>* out) {
  auto bytes = ReadNpyRows(f.path, h, 0, count);
  if (!bytes.ok()) return absl::InvalidArgumentError(absl::StrCat(f.key, ": ", bytes.status().message()));
  *out = std::move(*bytes);
  if (!is_float) return absl::OkStatus();
  const size_t values = out->size() / 4;
  const int64_t per_sample = h.Elements() / h.shape[0];
  for (size_t i = 0; i < values; ++i) {
    const uint8_t* p = out->data() + 4 * i;
    const uint32_t word = uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) |
                          (uint32_t{p[3]} << 24);
    float value;
    std::memcpy(&value, &word, sizeof value);
    if (!std::isfinite(value)) {
      return Invalid(f, "value ", value, " of sample ", static_cast<int64_t>(i) / per_sample,
                     " is not finite");
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ArrayFiles::Set(const std::string& role, const std::string& path) {
  std::string* file = role == "train_x"   ? &train_x
                      : role == "train_y" ? &train_y
                      : role == "test_x"  ? &test_x
                      : role == "test_y"  ? &test_y
                                          : nullptr;
  if (file == nullptr) return false;
  *file = path;
  return true;
}

absl::StatusOr<ArrayInfo> CheckArrayFiles(const ArrayFiles& files, int64_t train_limit,
                                          int64_t test_limit, std::vector<int64_t>* test_labels) {
  return Check(files, train_limit, test_limit, nullptr, test_labels);
}

absl::StatusOr<ArrayDataset> ReadArrayDataset(const ArrayFiles& files, int64_t train_limit,
                                              int64_t test_limit) {
  ArrayDataset out;
  auto info = Check(files, train_limit, test_limit, &out.train.labels, &out.test.labels);
  if (!info.ok()) return info.status();
  out.info = std::move(*info);
  out.train.count = out.info.train;
  out.test.count = out.info.test;
  if (absl::Status s = ReadX({"dataset.train.x", files.train_x}, out.info.train_x, out.info.x_float,
                             out.train.count, &out.train.x);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadX({"dataset.test.x", files.test_x}, out.info.test_x, out.info.x_float,
                             out.test.count, &out.test.x);
      !s.ok()) {
    return s;
  }
  return out;
}

}  // namespace repro::data
