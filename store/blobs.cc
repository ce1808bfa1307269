#include "store/blobs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"

namespace repro {
namespace {

namespace fs = std::filesystem;

std::string Errno() { return std::strerror(errno); }

absl::Status BadName(const std::string& sha256) {
  return absl::InvalidArgumentError(absl::StrCat(
      "blob name \"", sha256.substr(0, 80), "\" is not 64 lower-case hex digits"));
}

// Closes `fd` when it goes out of scope.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

// Writes all of `data` to `fd`.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// fsync of a folder, so that a rename into it survives a crash.
void SyncFolder(const std::string& folder) {
  const int fd = open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

}  // namespace

BlobFile::BlobFile(BlobFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), size_(other.size_) {}

BlobFile& BlobFile::operator=(BlobFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    size_ = other.size_;
  }
  return *this;
}

BlobFile::~BlobFile() {
  if (fd_ >= 0) close(fd_);
}

absl::Status BlobFile::ReadAt(int64_t offset, size_t max, std::string* out) const {
  out->resize(max);
  size_t got = 0;
  while (got < max) {
    const ssize_t n = pread(fd_, out->data() + got, max - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("cannot read a blob: ", Errno()));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out->resize(got);
  return absl::OkStatus();
}

std::string BlobStore::PathOf(const std::string& sha256) const {
  return absl::StrCat(root_, "/sha256/", sha256.substr(0, 2), "/", sha256);
}

bool BlobStore::Has(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return false;
  struct stat st;
  return stat(PathOf(sha256).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::Status BlobStore::Add(const std::string& path, const std::string& expected_sha256) {
  if (!IsSha256Hex(expected_sha256)) return BadName(expected_sha256);
  const int in = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": ", Errno()));
  FdCloser close_in{in};
  struct stat source;
  if (fstat(in, &source) != 0 || !S_ISREG(source.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const std::string target = PathOf(expected_sha256);
  struct stat present;
  if (stat(target.c_str(), &present) == 0 && S_ISREG(present.st_mode) &&
      present.st_size == source.st_size) {
    return absl::OkStatus();  // content-addressed: the same name is the same bytes
  }
  const std::string folder = fs::path(target).parent_path().string();
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", folder, ": ", ec.message()));
  std::string temp = absl::StrCat(target, ".tmp.XXXXXX");
  const int out = mkstemp(temp.data());
  if (out < 0) return absl::InternalError(absl::StrCat("cannot create a file in ", folder, ": ", Errno()));
  bool keep = false;
  struct TempRemover {
    const std::string& path;
    const bool& keep;
    ~TempRemover() {
      if (!keep) unlink(path.c_str());
    }
  } remove_temp{temp, keep};
  FdCloser close_out{out};

  Sha256Hasher hasher;
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t n = read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InvalidArgumentError(absl::StrCat(path, ": read error: ", Errno()));
    }
    if (n == 0) break;
    hasher.Update(buffer.data(), static_cast<size_t>(n));
    if (!WriteAll(out, buffer.data(), static_cast<size_t>(n))) {
      return absl::InternalError(absl::StrCat("cannot write ", temp, ": ", Errno()));
    }
  }
  const std::string got = hasher.Finish();
  if (got != expected_sha256) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": its SHA-256 is ", got, ", not ", expected_sha256,
        " as hashed before; the file changed while the coordinator read it"));
  }
  if (fsync(out) != 0) return absl::InternalError(absl::StrCat("cannot sync ", temp, ": ", Errno()));
  if (rename(temp.c_str(), target.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", target, ": ", Errno()));
  }
  keep = true;
  SyncFolder(folder);
  return absl::OkStatus();
}

absl::StatusOr<BlobFile> BlobStore::Open(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return BadName(sha256);
  const std::string path = PathOf(sha256);
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return errno == ENOENT ? absl::NotFoundError(absl::StrCat("no blob ", sha256))
                           : absl::InternalError(absl::StrCat(path, ": ", Errno()));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InternalError(absl::StrCat(path, ": not a regular file"));
  }
  return BlobFile(fd, static_cast<int64_t>(st.st_size));
}

absl::StatusOr<BlobStats> BlobStore::Stats() const {
  BlobStats stats;
  const fs::path top = fs::path(root_) / "sha256";
  std::error_code ec;
  if (!fs::exists(top, ec)) return stats;
  for (fs::recursive_directory_iterator it(top, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!it->is_regular_file(ec) || !IsSha256Hex(name)) continue;  // temporaries
    ++stats.blobs;
    stats.bytes += static_cast<int64_t>(it->file_size(ec));
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", top.string(), ": ", ec.message()));
  return stats;
}

}  // namespace repro
