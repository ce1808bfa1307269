// Fuzzes the safetensors reader. ParseSafetensors is what ReadSafetensors runs on a
// file's bytes, so the input is given to it directly (no file in between). Any bytes
// must give tensors or INVALID_ARGUMENT, never a crash, a loop or a large allocation.
// A file that parses is written again with EncodeSafetensorsHeader and must read back
// to the same tensors and metadata (the writer adds "format": "pt" when absent).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "worker/engine/safetensors.h"

namespace {

using namespace repro::engine;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "safetensors_fuzzer: %s\n", what.c_str());
  std::abort();
}

bool SameTensors(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const SafetensorsTensor& x = a.tensors[i];
    const SafetensorsTensor& y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<SafetensorsFile> file = ParseSafetensors(bytes);
  if (!file.ok()) {
    if (file.status().code() != absl::StatusCode::kInvalidArgument) {
      Fail("error is not INVALID_ARGUMENT: " + file.status().ToString());
    }
    return 0;
  }
  size_t total = 0;
  std::vector<SafetensorsTensorView> views;
  for (const SafetensorsTensor& t : file->tensors) {
    total += t.data.size();
    views.push_back({t.name, t.dtype, t.shape, t.data.data(), t.data.size()});
  }
  if (total > size) Fail("the tensors hold more bytes than the file");

  const absl::StatusOr<std::string> header = EncodeSafetensorsHeader(views, file->metadata);
  if (!header.ok()) Fail("a file that was read cannot be written again: " + header.status().ToString());
  std::string again_bytes = *header;
  for (const SafetensorsTensor& t : file->tensors) again_bytes += t.data;
  const absl::StatusOr<SafetensorsFile> again = ParseSafetensors(again_bytes);
  if (!again.ok()) Fail("a file written again does not read back: " + again.status().ToString());
  if (!SameTensors(*file, *again)) Fail("a file written again reads back different tensors");
  SafetensorsMetadata expected = file->metadata;
  bool has_format = false;
  for (const auto& [key, value] : expected) has_format = has_format || key == "format";
  if (!has_format) expected.insert(expected.begin(), {"format", "pt"});
  if (again->metadata != expected) Fail("a file written again reads back different metadata");
  return 0;
}
