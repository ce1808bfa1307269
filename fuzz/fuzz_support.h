// Helpers shared by the fuzz targets: a private scratch directory (the readers under
// test take paths, not bytes) and file writing, plain or gzip-compressed.
//
// Thread safety: none; libFuzzer calls a target from one thread.
#ifndef REPRO_FUZZ_FUZZ_SUPPORT_H_
#define REPRO_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace repro::fuzz {

// A directory of this process's own under $TMPDIR (or /tmp), created on first use and
// removed at exit.
const std::string& ScratchDir();

// Writes `size` bytes to `path` (replacing it), gzip-compressed when `gzip`; aborts
// on an I/O error, which is the harness's fault, not the input's.
void WriteFile(const std::string& path, const uint8_t* data, size_t size, bool gzip = false);

}  // namespace repro::fuzz

#endif  // REPRO_FUZZ_FUZZ_SUPPORT_H_
