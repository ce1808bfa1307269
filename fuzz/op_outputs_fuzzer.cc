// Fuzzes DecodeOpOutputs and CompareOpOutputs (common/op_records.h): the bytes a worker
// uploads as a localization side's dump, which the coordinator reads from its blob store
// and compares. Any bytes must decode or give INVALID_ARGUMENT, never a crash or a read
// past the end; what decodes must encode and decode to itself, and compare with itself
// as equal in every value.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/op_records.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "op_outputs_fuzzer: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<repro::OpOutputs> decoded = repro::DecodeOpOutputs(bytes);
  if (!decoded.ok()) {
    if (decoded.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("error is not INVALID_ARGUMENT: " + decoded.status().ToString());
    }
    return 0;
  }
  const std::string again = repro::EncodeOpOutputs(*decoded);
  const absl::StatusOr<repro::OpOutputs> back = repro::DecodeOpOutputs(again);
  if (!back.ok() || repro::EncodeOpOutputs(*back) != again) Fail("an encoding does not decode to itself");
  int64_t elements = 0;
  for (const repro::TensorValues& t : decoded->tensors) {
    if (!t.defined) continue;
    const int element = repro::ElementBytes(t.dtype);
    if (element <= 0 || t.bytes.size() % static_cast<size_t>(element) != 0) {
      Fail("a tensor accepted whose bytes do not fit its dtype");
    }
    elements += static_cast<int64_t>(t.bytes.size() / static_cast<size_t>(element));
  }
  const absl::StatusOr<repro::OutputDifference> same = repro::CompareOpOutputs(*decoded, *decoded);
  if (!same.ok()) Fail("outputs cannot be compared with themselves: " + same.status().ToString());
  if (same->differing != 0 || same->max_ulps != 0 || same->elements != elements) {
    Fail("outputs differ from themselves");
  }
  return 0;
}
