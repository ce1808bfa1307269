// The reactors of the calls that carry blobs: BlobSender streams files of the blob store
// to a caller (GetBlob, a plan input; FetchWeights, a run's weights files), BlobReceiver
// takes one uploaded file into it (PutBlob). Both do their disk work on the handler pool
// (handler_pool.h), one piece at a time and the next only once gRPC is done with the
// last, so that a slow peer holds no thread and no more than one piece of memory.
//
// Thread safety: gRPC and the handler pool call a reactor one step at a time; each
// deletes itself when gRPC is done with its call.
#ifndef REPRO_COORDINATOR_BLOB_STREAMS_H_
#define REPRO_COORDINATOR_BLOB_STREAMS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/blobs.h"
#include "repro/v1/repro.grpc.pb.h"

namespace repro {

// The most bytes of one piece either way.
inline constexpr size_t kBlobChunkBytes = 1 << 20;

// One file BlobSender sends: `name` and `sha256` go into its pieces (empty: not set).
struct OutgoingBlob {
  std::string name;
  std::string sha256;
  BlobFile file;
  int64_t offset = 0;  // the first byte sent, within the file
};

class BlobSender final : public grpc::ServerWriteReactor<v1::BlobChunk> {
 public:
  // Sends the files one after another (a file of no bytes as one empty piece); called on
  // the handler pool.
  void Start(std::vector<OutgoingBlob> files);
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void Next();

  std::vector<OutgoingBlob> files_;
  size_t current_ = 0;
  v1::BlobChunk chunk_;
};

class BlobReceiver final : public grpc::ServerReadReactor<v1::PutBlobRequest> {
 public:
  // Called on the handler pool with the call's first message: every check of the caller
  // and the declared blob, and the blob to write into; an error ends the call with it.
  using Open = std::function<absl::StatusOr<IncomingBlob>(const v1::PutBlobRequest& first)>;
  // Called once the blob is kept (stored: written now; false: the store had it).
  using Kept = std::function<void(const v1::PutBlobRequest& first, bool stored)>;

  BlobReceiver(Open open, Kept kept, v1::PutBlobResponse* response)
      : open_(std::move(open)), kept_(std::move(kept)), response_(response) {}
  // Reads the first piece.
  void Start() { StartRead(&piece_); }
  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  // A piece arrived: opens the blob on the first, appends the data, reads the next.
  void Take();
  // The caller finished sending: the blob is checked and kept, or the call fails.
  void End();
  // Ends the call with an error, nothing of the blob left behind.
  void Refuse(const grpc::Status& status);

  Open open_;
  Kept kept_;
  v1::PutBlobResponse* response_;
  v1::PutBlobRequest piece_;
  v1::PutBlobRequest first_;  // the first piece, without its data
  std::optional<IncomingBlob> blob_;
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_BLOB_STREAMS_H_
