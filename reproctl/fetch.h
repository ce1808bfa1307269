// `reproctl fetch RUN`: a finished run's weights files into a folder, from a running
// coordinator (ControlService.FetchWeights) or from the blob store beside --db. Each
// file is written to a temporary name, checked against the SHA-256 and size its result
// names, and renamed into place (<dir>/<name>.safetensors) only then: a file there is
// whole and right.
//
// Thread safety: one fetch at a time per WeightsWriter.
#ifndef REPRO_REPROCTL_FETCH_H_
#define REPRO_REPROCTL_FETCH_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/records.h"
#include "common/sha256.h"
#include "store/store.h"
#include "repro/v1/repro.grpc.pb.h"

namespace repro {

// Files arriving in pieces, in order, one after another, into `dir` (created).
class WeightsWriter {
 public:
  explicit WeightsWriter(std::string dir) : dir_(std::move(dir)) {}
  ~WeightsWriter();
  // A piece of file `file` (its name, SHA-256 and size) at `offset`: the first piece of a
  // file begins it, and ends the one before, which must be whole.
  absl::Status Piece(const WeightsFile& file, int64_t offset, std::string_view data);
  // Ends the last file; the paths written, in order.
  absl::StatusOr<std::vector<std::string>> Finish();

 private:
  absl::Status Begin(const WeightsFile& file);
  absl::Status EndFile();

  std::string dir_;
  WeightsFile current_;
  std::string temp_;
  std::FILE* out_ = nullptr;
  int64_t written_ = 0;
  std::unique_ptr<Sha256Hasher> hasher_;
  std::vector<std::string> done_;
};

// From the blob store of the database at `db_path` (its "<db>.blobs" folder).
absl::StatusOr<std::vector<std::string>> FetchFromStore(RunStore& store, const std::string& db_path,
                                                        const std::string& experiment,
                                                        const std::string& run,
                                                        const std::string& which,
                                                        const std::string& dir);

// Over FetchWeights; a failed call comes back as its gRPC status.
grpc::Status FetchFromCoordinator(v1::ControlService::Stub& stub, grpc::ClientContext& ctx,
                                  const std::string& run, const std::string& which,
                                  const std::string& dir, std::vector<std::string>* written,
                                  absl::Status* local_error);

}  // namespace repro

#endif  // REPRO_REPROCTL_FETCH_H_
