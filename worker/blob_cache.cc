#include "worker/blob_cache.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <system_error>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace repro {
namespace fs = std::filesystem;

std::string BlobCache::PathOf(const std::string& sha256) const {
  return absl::StrCat(dir_, "/sha256/", sha256.substr(0, 2), "/", sha256);
}

bool BlobCache::Ready(const std::string& sha256, int64_t size) const {
  const std::string path = PathOf(sha256);
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != size) return false;
  if (std::time(nullptr) - st.st_mtime > kTouchAfterSeconds) {
    utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // now: used
  }
  return true;
}

int BlobCache::Evict(const std::set<std::string>& keep) const {
  struct Blob {
    int64_t mtime_ns;
    int64_t size;
    std::string path;
    std::string name;
  };
  std::vector<Blob> blobs;
  int64_t total = 0;
  std::error_code ec;
  const fs::path top = fs::path(dir_) / "sha256";
  for (fs::recursive_directory_iterator it(top, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!IsSha256Hex(name)) continue;  // .part files and anything else
    struct stat st;
    if (stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    blobs.push_back({int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
                     static_cast<int64_t>(st.st_size), it->path().string(), name});
    total += st.st_size;
  }
  std::sort(blobs.begin(), blobs.end(), [](const Blob& a, const Blob& b) {
    return std::tie(a.mtime_ns, a.path) < std::tie(b.mtime_ns, b.path);
  });
  int deleted = 0;
  for (const Blob& blob : blobs) {
    if (total <= max_bytes_) break;
    if (keep.count(blob.name) > 0) continue;
    if (fs::remove(blob.path, ec)) {
      total -= blob.size;
      ++deleted;
    }
  }
  return deleted;
}

}  // namespace repro
