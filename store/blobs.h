// BlobStore: the coordinator's copies of the files a plan's runs read (Plan::inputs) and
// of the weights files its workers upload (WorkerService.PutBlob), addressed by content,
// so that a worker fetches inputs by SHA-256 (WorkerService.GetBlob) and needs no disk
// shared with the coordinator, and bit-identical weights are kept once. It lives beside the experiment's SQLite
// file: <db path>.blobs/sha256/<first 2 hex>/<64 hex>. A blob is written to a temporary
// file in its folder, hashed while copied, fsynced and renamed into place only when its
// SHA-256 is the one expected, so a blob present is always whole and right; one already
// present is not copied again. No gRPC, no SQLite.
//
// Thread safety: Add from one thread at a time (the coordinator's start); Receive, Open,
// Has, PathOf and Stats are thread-safe (each received blob has a temporary file of its
// own, and a rename into place is atomic). An IncomingBlob is used by one thread at a time.
#ifndef REPRO_STORE_BLOBS_H_
#define REPRO_STORE_BLOBS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace repro {

// An open blob for reading at any offset (pread): movable, closes on destruction.
class BlobFile {
 public:
  BlobFile() = default;
  BlobFile(int fd, int64_t size) : fd_(fd), size_(size) {}
  BlobFile(BlobFile&& other) noexcept;
  BlobFile& operator=(BlobFile&& other) noexcept;
  BlobFile(const BlobFile&) = delete;
  BlobFile& operator=(const BlobFile&) = delete;
  ~BlobFile();

  int64_t size() const { return size_; }
  // Up to `max` bytes from `offset` into `out` (fewer only at the end); an error when the
  // file cannot be read.
  absl::Status ReadAt(int64_t offset, size_t max, std::string* out) const;

 private:
  int fd_ = -1;
  int64_t size_ = 0;
};

class Sha256Hasher;

// A blob being written: bytes appended in order to a temporary file beside its place
// while they are hashed. Commit keeps them as the blob only when they are the size and
// SHA-256 it was begun with; destroyed without a Commit, it leaves nothing behind.
class IncomingBlob {
 public:
  IncomingBlob(IncomingBlob&& other) noexcept;
  IncomingBlob& operator=(IncomingBlob&&) = delete;
  IncomingBlob(const IncomingBlob&) = delete;
  ~IncomingBlob();

  int64_t received() const { return received_; }
  // Appends `data`. INVALID_ARGUMENT past the declared size; RESOURCE_EXHAUSTED when the
  // store's disk is full; INTERNAL for another write error.
  absl::Status Append(std::string_view data);
  // Keeps the bytes as the blob, fsynced, by rename: true when they are stored now, false
  // when the store held the blob already (the bytes were checked all the same).
  // INVALID_ARGUMENT when they are fewer than declared or hash to another name.
  absl::StatusOr<bool> Commit();

 private:
  friend class BlobStore;
  IncomingBlob(std::string sha256, int64_t size, std::string target, std::string temp, int fd);

  std::string sha256_;
  int64_t size_ = 0;
  int64_t received_ = 0;
  std::string target_;
  std::string temp_;  // empty once committed or moved from
  int fd_ = -1;
  std::unique_ptr<Sha256Hasher> hasher_;
};

struct BlobStats {
  int64_t blobs = 0;
  int64_t bytes = 0;
};

class BlobStore {
 public:
  // `root`: the store's folder (created on the first Add).
  explicit BlobStore(std::string root) : root_(std::move(root)) {}
  // The folder beside a database: "<db_path>.blobs".
  static std::string RootFor(const std::string& db_path) { return db_path + ".blobs"; }

  const std::string& root() const { return root_; }
  // Where the blob of `sha256` lives (whether it is there or not); `sha256` must be
  // 64 lower-case hex digits.
  std::string PathOf(const std::string& sha256) const;

  // Copies the file at `path` into the store as the blob `expected_sha256`, unless a
  // blob of that name and the file's size is there already. INVALID_ARGUMENT when the
  // name is not 64 lower-case hex digits, when the file cannot be read, or when its
  // bytes hash to something else (it changed since it was hashed): nothing is left then.
  // Other errors (the store's disk) are INTERNAL, naming the file.
  absl::Status Add(const std::string& path, const std::string& expected_sha256);
  // A blob of `size` bytes to be received (IncomingBlob). INVALID_ARGUMENT for a bad name
  // or a negative size; RESOURCE_EXHAUSTED when the disk is full; INTERNAL otherwise.
  absl::StatusOr<IncomingBlob> Receive(const std::string& sha256, int64_t size) const;
  // Whether the blob is present (a regular file).
  bool Has(const std::string& sha256) const;
  // The blob's size; NOT_FOUND when it is absent, INVALID_ARGUMENT for a bad name.
  absl::StatusOr<int64_t> SizeOf(const std::string& sha256) const;
  // The blob for reading; NOT_FOUND when it is absent, INVALID_ARGUMENT for a bad name.
  absl::StatusOr<BlobFile> Open(const std::string& sha256) const;
  // How many blobs the store holds and their bytes together.
  absl::StatusOr<BlobStats> Stats() const;

 private:
  std::string root_;
};

}  // namespace repro

#endif  // REPRO_STORE_BLOBS_H_
