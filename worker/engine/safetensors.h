// Weight files in the safetensors format (https://github.com/huggingface/safetensors),
// which PyTorch, NumPy, JAX and TensorFlow users can load without this project:
//   8 bytes    N, the header's length, unsigned little-endian
//   N bytes    a JSON object: for every tensor "name": {"dtype": "F32", "shape": [..],
//              "data_offsets": [begin, end]}, and "__metadata__": {string: string};
//              padded with spaces so that the data starts at a multiple of 8
//   the rest   the tensors' bytes, little-endian, C order; offsets are relative to
//              the start of this part
// No LibTorch here (the engine's glue is in weights_export.h), so tools and fuzzers
// can read weight files without it.
//
// The reader is strict, as the reference implementation: the header length must fit
// the file and be at most 100,000,000 bytes; the header must be one valid JSON object
// (starting with '{', UTF-8, no duplicate keys, only trailing whitespace after it) of
// tensor entries with exactly the keys dtype, shape and data_offsets (non-negative
// integers) and at most one "__metadata__" object of strings; dtypes must be known;
// each tensor's byte count must be its element count times its dtype's size; and the
// tensors, sorted by offset, must tile the data exactly (no overlap, no gap, nothing
// after the last).
// Every violation is an INVALID_ARGUMENT naming what is wrong; no input makes it
// crash, loop or allocate more than the input's size and a small multiple of it.
//
// Thread safety: free functions with no shared state; safe to call concurrently (on
// different paths for the writer).
#ifndef REPRO_WORKER_ENGINE_SAFETENSORS_H_
#define REPRO_WORKER_ENGINE_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace repro::engine {

// Bytes per element of a safetensors dtype ("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3",
// "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "I64", "U64", "F64"); 0 if unknown.
size_t SafetensorsDtypeSize(std::string_view dtype);

// One tensor to write; `data` points at `nbytes` bytes (little-endian, C order) that
// must stay valid during the call.
struct SafetensorsTensorView {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// One tensor read back.
struct SafetensorsTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string data;  // the raw bytes, as in the file
};

struct SafetensorsFile {
  std::vector<SafetensorsTensor> tensors;  // in data order (the order they were written)
  std::vector<std::pair<std::string, std::string>> metadata;  // in header order
};

using SafetensorsMetadata = std::vector<std::pair<std::string, std::string>>;

// The 8-byte length and the padded JSON header for `tensors`, data laid out in the
// given order. "format": "pt" comes first in __metadata__ unless `metadata` sets
// "format". INVALID_ARGUMENT for an empty, repeated or reserved ("__metadata__") name,
// an unknown dtype, a negative dimension, a repeated metadata key, or a byte count
// that does not match the shape and dtype.
absl::StatusOr<std::string> EncodeSafetensorsHeader(
    const std::vector<SafetensorsTensorView>& tensors, const SafetensorsMetadata& metadata);

// Writes the file: to "<path>.tmp" first, then renamed over `path`, so a crash never
// leaves a partial file under the final name. The directory must exist.
absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<SafetensorsTensorView>& tensors,
                              const SafetensorsMetadata& metadata);

// Parses a whole file's bytes (see the rules at the top).
absl::StatusOr<SafetensorsFile> ParseSafetensors(std::string_view bytes);

// Reads and parses a file; errors start with the path. NOT_FOUND when it cannot be
// opened, INVALID_ARGUMENT when it is not a valid safetensors file.
absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_SAFETENSORS_H_
