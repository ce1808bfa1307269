#include "data/cifar_dataset.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "data/dataset_check.h"

namespace repro::data {
namespace {

constexpr char kLayout[] =
    "a CIFAR-10 binary directory holds data_batch_1.bin .. data_batch_5.bin and test_batch.bin";

// The size of each file of the split, in order, after checking that each exists and
// holds a whole, non-zero number of records.
absl::StatusOr<std::vector<int64_t>> RecordCounts(const std::vector<std::string>& paths) {
  std::vector<int64_t> counts;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": file does not exist (", kLayout, ")"));
    }
    if (!std::filesystem::is_regular_file(path, ec)) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": is not a regular file"));
    }
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": cannot read its size (", ec.message(), ")"));
    }
    if (size == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": is empty (a CIFAR-10 file holds ", kCifarRecordBytes, "-byte records)"));
    }
    if (size % kCifarRecordBytes != 0) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", size,
                                                     " bytes is not a whole number of ",
                                                     kCifarRecordBytes,
                                                     "-byte records (truncated?)"));
    }
    counts.push_back(static_cast<int64_t>(size / kCifarRecordBytes));
  }
  return counts;
}

// Reads the `records` records of `path`, checking every label; appends the first `keep`
// of them to `out` (their pixels only with `pixels`).
absl::Status ReadFile(const std::string& path, int64_t records, int64_t keep, bool pixels,
                      CifarSplit* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot be opened for reading (", std::strerror(errno), ")"));
  }
  constexpr int64_t kChunkRecords = 1024;  // about 3 MB at a time
  std::vector<uint8_t> chunk;
  for (int64_t first = 0; first < records; first += kChunkRecords) {
    const int64_t n = std::min(kChunkRecords, records - first);
    chunk.resize(static_cast<size_t>(n * kCifarRecordBytes));
    in.read(reinterpret_cast<char*>(chunk.data()), static_cast<std::streamsize>(chunk.size()));
    if (in.gcount() != static_cast<std::streamsize>(chunk.size())) {
      // The size was checked a moment ago, so the file changed or the read failed.
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": ends after ", first + in.gcount() / kCifarRecordBytes, " of its ", records,
          " records although its size said more (was it changed while being read?)"));
    }
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* record = chunk.data() + i * kCifarRecordBytes;
      if (record[0] >= kCifarClasses) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": record ", first + i, " has label ", static_cast<int>(record[0]),
            ", outside 0..", kCifarClasses - 1));
      }
      if (first + i < keep) {
        out->labels.push_back(record[0]);
        if (pixels) out->pixels.insert(out->pixels.end(), record + 1, record + kCifarRecordBytes);
      }
    }
  }
  return absl::OkStatus();
}

// ReadCifarSplit, or with `keep_data` false the same checks without keeping any bytes;
// with `keep_labels` the labels all the same.
absl::StatusOr<CifarSplit> ReadOrCheck(const std::string& dir, Split split, int64_t limit,
                                       bool keep_data, bool keep_labels = false) {
  const std::string limit_name = absl::StrCat(SplitName(split), "_limit");
  if (absl::Status s = CheckSplitLimit(limit_name, limit); !s.ok()) return s;
  if (absl::Status s = CheckDatasetDirectory(dir); !s.ok()) return s;
  const std::filesystem::path directory(dir);

  CifarSplit out;
  const std::vector<std::string> names = CifarFileNames(split);
  for (const std::string& name : names) out.paths.push_back((directory / name).string());
  auto counts = RecordCounts(out.paths);
  if (!counts.ok()) return counts.status();
  for (const int64_t count : *counts) out.file_count += count;
  if (limit > out.file_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        limit_name, " ", limit, " is larger than the ", out.file_count, " samples in ",
        names.size() == 1 ? names.front() : absl::StrCat(names.front(), " .. ", names.back()),
        " of ", dir));
  }
  out.count = limit == 0 ? out.file_count : limit;
  const int64_t wanted = keep_data || keep_labels ? out.count : 0;
  out.labels.reserve(static_cast<size_t>(wanted));
  if (keep_data) out.pixels.reserve(static_cast<size_t>(wanted * kCifarImageBytes));

  int64_t kept = 0;
  for (size_t f = 0; f < out.paths.size(); ++f) {
    const int64_t keep = std::clamp<int64_t>(wanted - kept, 0, (*counts)[f]);
    if (absl::Status s = ReadFile(out.paths[f], (*counts)[f], keep, keep_data, &out); !s.ok()) return s;
    kept += keep;
  }
  return out;
}

}  // namespace

std::vector<std::string> CifarFileNames(Split split) {
  if (split == Split::kTest) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
          "data_batch_5.bin"};
}

absl::StatusOr<CifarSplit> ReadCifarSplit(const std::string& dir, Split split, int64_t limit) {
  return ReadOrCheck(dir, split, limit, /*keep_data=*/true);
}

absl::Status CheckCifarSplit(const std::string& dir, Split split, int64_t limit) {
  return CountCifarSplit(dir, split, limit).status();
}

absl::StatusOr<int64_t> CountCifarSplit(const std::string& dir, Split split, int64_t limit) {
  auto checked = ReadOrCheck(dir, split, limit, /*keep_data=*/false);
  if (!checked.ok()) return checked.status();
  return checked->count;
}

absl::StatusOr<std::vector<uint8_t>> ReadCifarLabels(const std::string& dir, Split split,
                                                     int64_t limit) {
  auto checked = ReadOrCheck(dir, split, limit, /*keep_data=*/false, /*keep_labels=*/true);
  if (!checked.ok()) return checked.status();
  return std::move(checked->labels);
}

}  // namespace repro::data
