// NumPy's .npy format (numpy.lib.format), the files of dataset kind arrays: the magic
// "\x93NUMPY", a version byte pair (1.0, 2.0 or 3.0), the header's length (2 bytes
// little-endian for 1.0, 4 bytes for 2.0 and 3.0), then the header, a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, H, W), } padded with
// spaces to a newline, then the array's bytes. Only what np.save writes for a simple
// dtype is read: the header must be a dict of exactly those three keys with a string,
// True/False and a tuple of non-negative integers (whitespace, either quote and
// trailing commas as Python allows); anything else (a structured dtype's list, an
// expression, escapes in a string) is an error. The data is checked against the file's
// size before anything is allocated, so a hostile header can neither crash the reader
// nor make it allocate more than the file holds. No LibTorch: bytes out.
//
// Thread safety: free functions with no shared state; safe to call concurrently.
#ifndef REPRO_DATA_NPY_H_
#define REPRO_DATA_NPY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace repro::data {

// The longest header accepted, as NumPy's own reader (max_header_size): a simple
// array's header is under 128 bytes.
inline constexpr int64_t kMaxNpyHeader = 10000;
// The most dimensions accepted (NumPy's own limit is 32, then 64).
inline constexpr int64_t kMaxNpyDims = 32;

struct NpyHeader {
  int major = 1;                 // format version: 1, 2 or 3 (minor is 0)
  std::string descr;             // the dtype as the file gives it: "<f4", "|u1", ">i8"
  std::vector<int64_t> shape;    // () for a scalar
  bool fortran_order = false;
  int64_t data_offset = 0;       // bytes before the data: magic, version, length, header

  // The elements the shape holds (1 for a scalar); the shape's product is checked not
  // to overflow when the header is parsed.
  int64_t Elements() const;
  // The size of one element from descr's digits ("<f4": 4); 0 when descr is not of the
  // form <byte order><kind letter><size>.
  int64_t ItemSize() const;
};

// Parses the header of a .npy file from its first bytes (`bytes` holds at least the
// header: the first 12 + kMaxNpyHeader bytes, or the whole file when shorter).
// INVALID_ARGUMENT with one sentence (no path: callers prefix it): not an .npy file, a
// version other than 1.0, 2.0 or 3.0, a header over kMaxNpyHeader bytes or past the
// end of `bytes`, a header that is not a dict literal of the three keys, a shape whose
// element count overflows 2^62 or whose byte size does. Does not look at the data.
absl::StatusOr<NpyHeader> ParseNpyHeader(std::string_view bytes);

// Reads and parses the header of file `path` and checks that the file holds exactly the
// bytes its shape and dtype need: fewer is "truncated", more is an error too.
// INVALID_ARGUMENT naming the path: a missing or unreadable file, ParseNpyHeader's
// errors, a descr whose item size cannot be read.
absl::StatusOr<NpyHeader> ReadNpyHeader(const std::string& path);

// The raw bytes (in the file's byte order) of entries `first` .. `first + rows - 1`
// along the first axis of the array `header` describes, a header from
// ReadNpyHeader(path), so the file's size is checked already: each entry is
// Elements() / shape[0] items of ItemSize() bytes. The rows must lie within shape[0];
// INVALID_ARGUMENT naming the path otherwise, or if the file cannot be read or has
// changed size since.
absl::StatusOr<std::vector<uint8_t>> ReadNpyRows(const std::string& path,
                                                 const NpyHeader& header, int64_t first,
                                                 int64_t rows);

}  // namespace repro::data

#endif  // REPRO_DATA_NPY_H_
