// The files a run reads (RunSpec::inputs: arrays data, a TorchScript model), checked
// against the SHA-256 and size the coordinator took of them before the run trains: a
// worker whose copy differs (another version of the data, a half-copied file) must
// not train on it and report a result as if it had the plan's. A file's hash is
// computed once per process and kept while its size and modification time stay.
//
// Thread safety: one object per daemon, used from its training thread only.
#ifndef REPRO_WORKER_INPUTS_H_
#define REPRO_WORKER_INPUTS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/plan.h"

namespace repro {

class InputCheck {
 public:
  // OK when every file is there with the given size and SHA-256; FAILED_PRECONDITION
  // naming the role, the path and what differs otherwise (this worker's own reason:
  // the daemon hands the run back for another worker and stops taking runs).
  absl::Status Check(const std::vector<InputFile>& inputs);
  // Records that the file at `path`, as it is now, hashes to `sha256`: its bytes were
  // just hashed as they were written (a verified fetch), so Check need not read them
  // again.
  void Vouch(const std::string& path, const std::string& sha256);

 private:
  struct Known {
    int64_t size = 0;
    int64_t mtime_ns = 0;
    std::string sha256;
  };
  std::map<std::string, Known> known_;  // by path
};

}  // namespace repro

#endif  // REPRO_WORKER_INPUTS_H_
