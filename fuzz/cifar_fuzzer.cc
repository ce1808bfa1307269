// Fuzzes the CIFAR-10 binary reader (ReadCifarSplit, CheckCifarSplit). It reads a
// directory, so the input becomes one batch file in a scratch directory. The first
// byte picks the split (bit 0: train) and whether the data is kept (bit 1: only
// checked); the second is the limit, as a signed byte so negative limits are tried
// too. Test split: the rest of the input is test_batch.bin. Train split: it is
// data_batch_3.bin, the other four batches hold one valid record each. Any bytes must
// give samples or INVALID_ARGUMENT, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fuzz/fuzz_support.h"
#include "data/cifar_dataset.h"

namespace {

using namespace repro::data;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "cifar_fuzzer: %s\n", what.c_str());
  std::abort();
}

void CheckError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    Fail("error is not INVALID_ARGUMENT: " + status.ToString());
  }
}

// The scratch directory, with the four fixed train batches written once.
const std::string& Directory() {
  static const std::string* dir = [] {
    const std::string& scratch = repro::fuzz::ScratchDir();
    std::vector<uint8_t> record(kCifarRecordBytes);
    for (size_t i = 0; i < record.size(); ++i) record[i] = static_cast<uint8_t>(i % 10);
    for (const char* name : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_4.bin",
                             "data_batch_5.bin"}) {
      repro::fuzz::WriteFile(scratch + "/" + name, record.data(), record.size());
    }
    return new std::string(scratch);
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool train = data[0] & 1;
  const bool check_only = data[0] & 2;
  const int64_t limit = static_cast<int8_t>(data[1]);
  const std::string& dir = Directory();
  repro::fuzz::WriteFile(dir + (train ? "/data_batch_3.bin" : "/test_batch.bin"), data + 2,
                         size - 2);
  const Split split = train ? Split::kTrain : Split::kTest;
  const int64_t fixed = train ? 4 : 0;  // records in the four fixed train batches
  if (check_only) {
    const absl::Status status = CheckCifarSplit(dir, split, limit);
    if (!status.ok()) CheckError(status);
    return 0;
  }
  const absl::StatusOr<CifarSplit> read = ReadCifarSplit(dir, split, limit);
  if (!read.ok()) return CheckError(read.status()), 0;
  const int64_t in_input = static_cast<int64_t>(size - 2) / kCifarRecordBytes;
  if (read->file_count != fixed + in_input || read->count != (limit == 0 ? read->file_count : limit) ||
      read->labels.size() != static_cast<size_t>(read->count) ||
      read->pixels.size() != static_cast<size_t>(read->count * kCifarImageBytes)) {
    Fail("samples read back with inconsistent counts");
  }
  for (const uint8_t label : read->labels) {
    if (label >= kCifarClasses) Fail("a label outside 0..9 was accepted");
  }
  return 0;
}
