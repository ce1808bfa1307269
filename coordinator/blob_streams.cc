#include "coordinator/blob_streams.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/handler_pool.h"
#include "coordinator/service.h"

namespace repro {

void BlobSender::Start(std::vector<OutgoingBlob> files) {
  files_ = std::move(files);
  current_ = 0;
  if (files_.empty()) {
    Finish(grpc::Status::OK);
    return;
  }
  Next();
}

void BlobSender::OnWriteDone(bool ok) {
  if (!ok) {  // the caller went away
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the caller stopped reading"));
    return;
  }
  if (files_[current_].offset >= files_[current_].file.size() && ++current_ == files_.size()) {
    Finish(grpc::Status::OK);
    return;
  }
  HandlerPool::ForHandlers().Run([this] { Next(); });
}

void BlobSender::Next() {
  OutgoingBlob& out = files_[current_];
  std::string data;
  if (absl::Status s = out.file.ReadAt(out.offset, kBlobChunkBytes, &data); !s.ok()) {
    Finish(ToGrpc(s));
    return;
  }
  if (data.empty() && out.offset < out.file.size()) {
    Finish(grpc::Status(grpc::StatusCode::INTERNAL, "a blob in the store is shorter than its size"));
    return;
  }
  chunk_.set_offset(out.offset);
  chunk_.set_total_size(out.file.size());
  chunk_.set_name(out.name);
  chunk_.set_sha256(out.sha256);
  out.offset += static_cast<int64_t>(data.size());
  chunk_.set_data(std::move(data));
  StartWrite(&chunk_);
}

void BlobReceiver::OnReadDone(bool ok) {
  HandlerPool::ForHandlers().Run([this, ok] { ok ? Take() : End(); });
}

void BlobReceiver::Take() {
  if (!blob_) {
    absl::StatusOr<IncomingBlob> blob = open_(piece_);
    if (!blob.ok()) {
      Refuse(ToGrpc(blob.status()));
      return;
    }
    blob_.emplace(*std::move(blob));
    first_ = piece_;
    first_.clear_data();
  }
  if (piece_.data().size() > kBlobChunkBytes) {
    Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("a piece of ", piece_.data().size(), " bytes; at most ",
                                     kBlobChunkBytes, " are taken")));
    return;
  }
  if (piece_.offset() != blob_->received()) {
    Refuse(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("a piece at offset ", piece_.offset(), " where byte ",
                                     blob_->received(), " comes next")));
    return;
  }
  if (absl::Status s = blob_->Append(piece_.data()); !s.ok()) {
    Refuse(ToGrpc(s));
    return;
  }
  StartRead(&piece_);
}

void BlobReceiver::Refuse(const grpc::Status& status) {
  blob_.reset();  // its temporary file goes before the caller hears of the refusal
  Finish(status);
}

void BlobReceiver::End() {
  if (!blob_) {
    Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the upload sent no message"));
    return;
  }
  absl::StatusOr<bool> stored = blob_->Commit();
  if (!stored.ok()) {
    Refuse(ToGrpc(stored.status()));
    return;
  }
  response_->set_stored(*stored);
  kept_(first_, *stored);
  Finish(grpc::Status::OK);
}

}  // namespace repro
