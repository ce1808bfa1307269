// Fuzzes the IDX readers (ReadIdxImages, ReadIdxLabels). They take a path, so the input
// is written to a scratch file. The first byte picks the reader (bit 0: labels), whether
// the rest is gzip-compressed by the harness (bit 1; uncompressed input may itself be
// gzip, which the reader detects) and the number of records to keep (bits 2..7). Any
// bytes must give records or INVALID_ARGUMENT, never a crash or a huge allocation.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "fuzz/fuzz_support.h"
#include "data/idx_dataset.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "idx_fuzzer: %s\n", what.c_str());
  std::abort();
}

void CheckError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    Fail("error is not INVALID_ARGUMENT: " + status.ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const bool labels = control & 1;
  const bool gzip = control & 2;
  const int64_t keep = control >> 2;
  const std::string path = repro::fuzz::ScratchDir() + (gzip ? "/input.gz" : "/input");
  repro::fuzz::WriteFile(path, data + 1, size - 1, gzip);

  using namespace repro::data;
  if (labels) {
    const absl::StatusOr<IdxLabels> read = ReadIdxLabels(path, keep, "fuzz_limit");
    if (!read.ok()) return CheckError(read.status()), 0;
    if (read->count <= 0 || read->count > read->file_count ||
        read->labels.size() != static_cast<size_t>(read->count) ||
        (keep != 0 && read->count != keep)) {
      Fail("labels read back with inconsistent counts");
    }
    for (const uint8_t label : read->labels) {
      if (label >= kIdxClasses) Fail("a label outside 0..9 was accepted");
    }
  } else {
    const absl::StatusOr<IdxImages> read = ReadIdxImages(path, keep, "fuzz_limit");
    if (!read.ok()) return CheckError(read.status()), 0;
    if (read->count <= 0 || read->count > read->file_count || read->rows != kIdxImageSide ||
        read->cols != kIdxImageSide ||
        read->pixels.size() != static_cast<size_t>(read->count * read->rows * read->cols) ||
        (keep != 0 && read->count != keep)) {
      Fail("images read back with inconsistent counts");
    }
  }
  return 0;
}
