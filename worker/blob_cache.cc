#include "worker/blob_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

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

namespace {

// Deletes `path` when it is a fetch's .part file that nobody holds (no process has it
// locked) and that nobody has written to for kStalePartSeconds: a fetch abandoned for
// good (its run went to another worker, the blob left the plan) would otherwise keep
// its bytes forever.
bool RemoveStalePart(const std::string& path, const std::string& name, int64_t now) {
  constexpr size_t kSuffix = 5;  // ".part"
  if (name.size() != 64 + kSuffix || name.compare(64, kSuffix, ".part") != 0 ||
      !IsSha256Hex(name.substr(0, 64))) {
    return false;
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || now - st.st_mtime < BlobCache::kStalePartSeconds) {
    return false;
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool unheld = flock(fd, LOCK_EX | LOCK_NB) == 0;
  const bool removed = unheld && unlink(path.c_str()) == 0;
  close(fd);
  return removed;
}

}  // namespace

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
  const int64_t now = std::time(nullptr);
  int deleted = 0;
  for (fs::recursive_directory_iterator it(top, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (RemoveStalePart(it->path().string(), name, now)) ++deleted;
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

namespace {

absl::Status Own(const std::string& path, const std::string& why) {
  return absl::FailedPreconditionError(absl::StrCat(path, ": ", why));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PartialBlob>> PartialBlob::Open(const BlobCache& cache,
                                                                const std::string& sha256,
                                                                int64_t size) {
  const std::string final_path = cache.PathOf(sha256), part_path = cache.PartOf(sha256);
  std::error_code ec;
  fs::create_directories(fs::path(final_path).parent_path(), ec);
  if (ec) return Own(final_path, absl::StrCat("cannot create the cache folder: ", ec.message()));
  // Lock the file that is at the path (not one another slot renamed or deleted meanwhile).
  int fd = -1;
  for (;;) {
    fd = open(part_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Own(part_path, absl::StrCat("cannot open: ", std::strerror(errno)));
    flock(fd, LOCK_EX);
    struct stat held, at_path;
    if (fstat(fd, &held) == 0 && stat(part_path.c_str(), &at_path) == 0 &&
        held.st_ino == at_path.st_ino && held.st_dev == at_path.st_dev) {
      break;
    }
    close(fd);
  }
  std::unique_ptr<PartialBlob> blob(new PartialBlob(sha256, size, final_path, part_path, fd));
  if (cache.Ready(sha256, size)) {  // another slot fetched it while we waited
    blob->ready_ = true;
    unlink(part_path.c_str());
    return blob;
  }
  if (absl::Status s = blob->Resume(); !s.ok()) return s;
  return blob;
}

PartialBlob::~PartialBlob() { close(fd_); }

absl::Status PartialBlob::Resume() {
  std::string buffer(1 << 20, '\0');
  for (;;) {
    const ssize_t n = pread(fd_, buffer.data(), buffer.size(), offset_);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || offset_ + n > size_) break;  // longer than the blob: start again below
    hasher_->Update(buffer.data(), static_cast<size_t>(n));
    offset_ += n;
  }
  struct stat st;
  if (fstat(fd_, &st) == 0 && st.st_size != offset_) {  // a partial file we cannot trust
    if (ftruncate(fd_, 0) != 0) return Own(part_path_, "cannot truncate");
    hasher_ = std::make_unique<Sha256Hasher>();
    offset_ = 0;
  }
  return absl::OkStatus();
}

absl::Status PartialBlob::Append(const std::string& data) {
  size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = pwrite(fd_, data.data() + written, data.size() - written,
                             offset_ + static_cast<int64_t>(written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Own(part_path_, absl::StrCat("cannot write: ", std::strerror(errno)));
    written += static_cast<size_t>(n);
  }
  hasher_->Update(data.data(), data.size());
  offset_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::Status PartialBlob::Keep() {
  const std::string got = hasher_->Finish();
  if (got != sha256_) {
    Discard();
    return absl::FailedPreconditionError(
        absl::StrCat("the bytes fetched from the coordinator hash to ", got, "; deleted them"));
  }
  if (fsync(fd_) != 0 || rename(part_path_.c_str(), final_path_.c_str()) != 0) {
    return Own(final_path_, absl::StrCat("cannot keep: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void PartialBlob::Discard() { unlink(part_path_.c_str()); }

}  // namespace repro
