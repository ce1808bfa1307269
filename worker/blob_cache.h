// BlobCache: the worker's copies of the files runs read (RunSpec::inputs), fetched from
// the coordinator by SHA-256 (WorkerService.GetBlob) so that a worker needs only the
// coordinator's address, no shared disk. Laid out as the coordinator's blob store:
// <dir>/sha256/<first 2 hex>/<64 hex>; a fetch in progress is <that>.part, which a later
// fetch resumes from its size. Bounded: after a fetch the least recently used blobs
// (by modification time; a blob a run uses is touched) beyond max_bytes are deleted,
// never one the current run uses. The daemon (daemon.cc) fetches; this class only keeps
// the folder.
//
// Thread safety: one object per daemon, used from its training thread. Slot processes
// sharing a folder take a lock on the .part file while fetching (flock), so two never
// write one blob at once.
#ifndef REPRO_WORKER_BLOB_CACHE_H_
#define REPRO_WORKER_BLOB_CACHE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/sha256.h"

namespace repro {

class BlobCache {
 public:
  static constexpr int64_t kDefaultMaxBytes = int64_t{20} << 30;  // 20 GiB

  BlobCache(std::string dir, int64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}

  const std::string& dir() const { return dir_; }
  int64_t max_bytes() const { return max_bytes_; }
  // Where the blob `sha256` (64 lower-case hex digits, checked by the caller) lives, and
  // its partial fetch.
  std::string PathOf(const std::string& sha256) const;
  std::string PartOf(const std::string& sha256) const { return PathOf(sha256) + ".part"; }
  // Whether the blob is present with `size` bytes; if so it is marked used (its
  // modification time set to now, when older than kTouchAfterSeconds, so that the
  // worker's hash of it, kept while the time stays, is not taken again at every run).
  bool Ready(const std::string& sha256, int64_t size) const;
  // Deletes the least recently used blobs until the blobs together take at most
  // max_bytes, never one named in `keep`, and the .part files of fetches abandoned for
  // kStalePartSeconds that no process holds; returns how many files it deleted.
  int Evict(const std::set<std::string>& keep) const;

  static constexpr int64_t kTouchAfterSeconds = 600;
  static constexpr int64_t kStalePartSeconds = 24 * 3600;

 private:
  std::string dir_;
  int64_t max_bytes_;
};

// One blob being fetched into a cache: its .part file, locked (flock) for as long as
// this object lives so that another slot process fetching the same blob waits and then
// finds it ready, with what an earlier attempt left hashed again so the fetch resumes
// after it. Errors are FAILED_PRECONDITION naming the file (the worker's own reason).
class PartialBlob {
 public:
  // Opens (creating) and locks the .part file of blob `sha256` of `size` bytes.
  static absl::StatusOr<std::unique_ptr<PartialBlob>> Open(const BlobCache& cache,
                                                           const std::string& sha256,
                                                           int64_t size);
  ~PartialBlob();
  PartialBlob(const PartialBlob&) = delete;
  PartialBlob& operator=(const PartialBlob&) = delete;

  // Whether another process completed the blob while this one waited for the lock.
  bool ready() const { return ready_; }
  // The bytes held so far; the next chunk must start here.
  int64_t offset() const { return offset_; }
  // Writes `data` at offset() and hashes it.
  absl::Status Append(const std::string& data);
  // With every byte held: checks the hash (a mismatch deletes the bytes), makes the
  // file durable and moves it into place.
  absl::Status Keep();
  // Deletes the bytes held (the coordinator sent something that does not fit).
  void Discard();

 private:
  PartialBlob(std::string sha256, int64_t size, std::string final_path, std::string part_path,
              int fd)
      : sha256_(std::move(sha256)), size_(size), final_path_(std::move(final_path)),
        part_path_(std::move(part_path)), fd_(fd) {}
  absl::Status Resume();

  std::string sha256_;
  int64_t size_;
  std::string final_path_, part_path_;
  int fd_;
  bool ready_ = false;
  int64_t offset_ = 0;
  std::unique_ptr<Sha256Hasher> hasher_ = std::make_unique<Sha256Hasher>();
};

}  // namespace repro

#endif  // REPRO_WORKER_BLOB_CACHE_H_
