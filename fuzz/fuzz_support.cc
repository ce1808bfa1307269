#include "fuzz/fuzz_support.h"

#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace repro::fuzz {
namespace {

std::string* scratch = nullptr;

void RemoveScratch() {
  std::error_code ec;
  if (scratch != nullptr) std::filesystem::remove_all(*scratch, ec);
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fuzz harness: %s\n", what.c_str());
  std::abort();
}

}  // namespace

const std::string& ScratchDir() {
  if (scratch == nullptr) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/repro-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Die("cannot create " + pattern);
    scratch = new std::string(pattern);
    std::atexit(RemoveScratch);
  }
  return *scratch;
}

void WriteFile(const std::string& path, const uint8_t* data, size_t size, bool gzip) {
  if (gzip) {
    gzFile file = gzopen(path.c_str(), "wb1");
    if (file == nullptr) Die("cannot create " + path);
    if (size > 0 && gzwrite(file, data, static_cast<unsigned>(size)) != static_cast<int>(size)) {
      Die("cannot write " + path);
    }
    if (gzclose(file) != Z_OK) Die("cannot close " + path);
    return;
  }
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) Die("cannot create " + path);
  if (size > 0 && std::fwrite(data, 1, size, file) != size) Die("cannot write " + path);
  if (std::fclose(file) != 0) Die("cannot close " + path);
}

}  // namespace repro::fuzz
