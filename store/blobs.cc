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

// `what` failed for errno's reason: RESOURCE_EXHAUSTED when the disk is full (a caller
// may try again once there is room), else INTERNAL.
absl::Status WriteError(const std::string& what) {
  const int error = errno;
  const std::string message = absl::StrCat(what, ": ", std::strerror(error));
  return error == ENOSPC || error == EDQUOT ? absl::ResourceExhaustedError(message)
                                            : absl::InternalError(message);
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

IncomingBlob::IncomingBlob(std::string sha256, int64_t size, std::string target,
                           std::string temp, int fd)
    : sha256_(std::move(sha256)), size_(size), target_(std::move(target)),
      temp_(std::move(temp)), fd_(fd), hasher_(std::make_unique<Sha256Hasher>()) {}

IncomingBlob::IncomingBlob(IncomingBlob&& other) noexcept
    : sha256_(std::move(other.sha256_)), size_(other.size_), received_(other.received_),
      target_(std::move(other.target_)), temp_(std::exchange(other.temp_, "")),
      fd_(std::exchange(other.fd_, -1)), hasher_(std::move(other.hasher_)) {}

IncomingBlob::~IncomingBlob() {
  if (fd_ >= 0) close(fd_);
  if (!temp_.empty()) unlink(temp_.c_str());
}

absl::Status IncomingBlob::Append(std::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError("the blob is no longer being received");
  if (static_cast<int64_t>(data.size()) > size_ - received_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "more bytes than the ", size_, " declared for blob ", sha256_));
  }
  if (!WriteAll(fd_, data.data(), data.size())) {
    return WriteError(absl::StrCat("cannot write ", temp_));
  }
  hasher_->Update(data.data(), data.size());
  received_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::StatusOr<bool> IncomingBlob::Commit() {
  if (fd_ < 0) return absl::FailedPreconditionError("the blob is no longer being received");
  if (received_ != size_) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", sha256_, ": ", received_,
                                                   " bytes arrived of the ", size_, " declared"));
  }
  const std::string got = hasher_->Finish();
  if (got != sha256_) {
    return absl::InvalidArgumentError(
        absl::StrCat("the bytes hash to ", got, ", not to the declared ", sha256_));
  }
  struct stat present;
  if (stat(target_.c_str(), &present) == 0 && S_ISREG(present.st_mode) &&
      present.st_size == size_) {
    return false;  // content-addressed: the same name is the same bytes; the temp goes
  }
  if (fsync(fd_) != 0) return WriteError(absl::StrCat("cannot sync ", temp_));
  close(std::exchange(fd_, -1));
  if (rename(temp_.c_str(), target_.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", temp_, " to ", target_, ": ", Errno()));
  }
  temp_.clear();
  SyncFolder(fs::path(target_).parent_path().string());
  return true;
}

absl::StatusOr<IncomingBlob> BlobStore::Receive(const std::string& sha256, int64_t size) const {
  if (!IsSha256Hex(sha256)) return BadName(sha256);
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat("blob size ", size, " is negative"));
  const std::string target = PathOf(sha256);
  const std::string folder = fs::path(target).parent_path().string();
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) {
    return ec == std::errc::no_space_on_device
               ? absl::ResourceExhaustedError(absl::StrCat("cannot create ", folder, ": ", ec.message()))
               : absl::InternalError(absl::StrCat("cannot create ", folder, ": ", ec.message()));
  }
  std::string temp = absl::StrCat(target, ".tmp.XXXXXX");
  const int fd = mkstemp(temp.data());
  if (fd < 0) return WriteError(absl::StrCat("cannot create a file in ", folder));
  return IncomingBlob(sha256, size, target, std::move(temp), fd);
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
  absl::StatusOr<int64_t> present = SizeOf(expected_sha256);
  if (present.ok() && *present == source.st_size) {
    return absl::OkStatus();  // content-addressed: the same name is the same bytes
  }
  absl::StatusOr<IncomingBlob> blob = Receive(expected_sha256, source.st_size);
  if (!blob.ok()) return absl::InternalError(blob.status().message());
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t n = read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InvalidArgumentError(absl::StrCat(path, ": read error: ", Errno()));
    }
    if (n == 0) break;
    absl::Status s = blob->Append(std::string_view(buffer.data(), static_cast<size_t>(n)));
    if (s.code() == absl::StatusCode::kInvalidArgument) break;  // it grew: Commit says so
    if (!s.ok()) return absl::InternalError(s.message());
  }
  absl::StatusOr<bool> stored = blob->Commit();
  if (stored.status().code() == absl::StatusCode::kInvalidArgument) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", stored.status().message(),
        " as hashed before; the file changed while the coordinator read it"));
  }
  if (!stored.ok()) return absl::InternalError(stored.status().message());
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

absl::StatusOr<int64_t> BlobStore::SizeOf(const std::string& sha256) const {
  if (!IsSha256Hex(sha256)) return BadName(sha256);
  struct stat st;
  if (stat(PathOf(sha256).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("no blob ", sha256));
  }
  return static_cast<int64_t>(st.st_size);
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
