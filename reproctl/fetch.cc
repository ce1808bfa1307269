#include "reproctl/fetch.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "store/blobs.h"

namespace repro {

WeightsWriter::~WeightsWriter() {
  if (out_ != nullptr) {
    std::fclose(out_);
    std::remove(temp_.c_str());
  }
}

absl::Status WeightsWriter::Begin(const WeightsFile& file) {
  // The name becomes a file name: only the names a result may hold (coordinator's
  // ResultCheck), never a path.
  if (file.name.empty() || file.name.find_first_of("/\\") != std::string::npos ||
      file.name[0] == '.' || !IsSha256Hex(file.sha256)) {
    return absl::DataLossError(absl::StrCat("the coordinator named a file \"", file.name.substr(0, 80),
                                            "\" that is no weights file"));
  }
  std::error_code error;
  std::filesystem::create_directories(dir_, error);
  if (error) return absl::InternalError(absl::StrCat("cannot create ", dir_, ": ", error.message()));
  current_ = file;
  temp_ = absl::StrCat(dir_, "/.", file.name, ".safetensors.part");
  out_ = std::fopen(temp_.c_str(), "wb");
  if (out_ == nullptr) return absl::InternalError(absl::StrCat(temp_, ": ", std::strerror(errno)));
  written_ = 0;
  hasher_ = std::make_unique<Sha256Hasher>();
  return absl::OkStatus();
}

absl::Status WeightsWriter::EndFile() {
  if (out_ == nullptr) return absl::OkStatus();
  const bool closed = std::fclose(out_) == 0;
  out_ = nullptr;
  const std::string got = hasher_->Finish();
  absl::Status s;
  if (!closed) {
    s = absl::InternalError(absl::StrCat(temp_, ": cannot write: ", std::strerror(errno)));
  } else if (written_ != current_.size || got != current_.sha256) {
    s = absl::DataLossError(absl::StrCat("the ", current_.name, " weights arrived as ", written_,
                                         " bytes with SHA-256 ", got, ", not the ", current_.size,
                                         " bytes with SHA-256 ", current_.sha256, " of the result"));
  }
  const std::string path = absl::StrCat(dir_, "/", current_.name, ".safetensors");
  if (s.ok() && std::rename(temp_.c_str(), path.c_str()) != 0) {
    s = absl::InternalError(absl::StrCat("cannot rename ", temp_, " to ", path, ": ", std::strerror(errno)));
  }
  if (!s.ok()) {
    std::remove(temp_.c_str());
    return s;
  }
  done_.push_back(path);
  return absl::OkStatus();
}

absl::Status WeightsWriter::Piece(const WeightsFile& file, int64_t offset, std::string_view data) {
  if (out_ == nullptr || file.name != current_.name) {
    RETURN_IF_ERROR(EndFile());
    RETURN_IF_ERROR(Begin(file));
  }
  if (offset != written_ || written_ + static_cast<int64_t>(data.size()) > current_.size) {
    return absl::DataLossError(absl::StrCat("bytes ", offset, "+", data.size(), " of the ",
                                            current_.name, " weights arrived where byte ",
                                            written_, " of ", current_.size, " was next"));
  }
  if (std::fwrite(data.data(), 1, data.size(), out_) != data.size()) {
    return absl::InternalError(absl::StrCat(temp_, ": cannot write: ", std::strerror(errno)));
  }
  hasher_->Update(data.data(), data.size());
  written_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> WeightsWriter::Finish() {
  RETURN_IF_ERROR(EndFile());
  return done_;
}

absl::StatusOr<std::vector<std::string>> FetchFromStore(RunStore& store, const std::string& db_path,
                                                        const std::string& experiment,
                                                        const std::string& run,
                                                        const std::string& which,
                                                        const std::string& dir) {
  ASSIGN_OR_RETURN(std::vector<WeightsFile> files, store.RunWeights(experiment, run, which));
  const BlobStore blobs(BlobStore::RootFor(db_path));
  WeightsWriter writer(dir);
  for (const WeightsFile& w : files) {
    absl::StatusOr<BlobFile> blob = blobs.Open(w.sha256);
    if (!blob.ok()) {
      return absl::NotFoundError(absl::StrCat("the ", w.name, " weights of run ", run, " (sha256 ",
                                              w.sha256, ") are not in ", blobs.root(), ": ",
                                              blob.status().message()));
    }
    int64_t offset = 0;
    std::string data;
    do {
      RETURN_IF_ERROR(blob->ReadAt(offset, 1 << 20, &data));
      RETURN_IF_ERROR(writer.Piece(w, offset, data));
      offset += static_cast<int64_t>(data.size());
    } while (!data.empty() && offset < blob->size());
  }
  return writer.Finish();
}

grpc::Status FetchFromCoordinator(v1::ControlService::Stub& stub, grpc::ClientContext& ctx,
                                  const std::string& run, const std::string& which,
                                  const std::string& dir, std::vector<std::string>* written,
                                  absl::Status* local_error) {
  v1::FetchWeightsRequest req;
  req.set_run(run);
  req.set_which(which);
  WeightsWriter writer(dir);
  std::unique_ptr<grpc::ClientReader<v1::BlobChunk>> reader = stub.FetchWeights(&ctx, req);
  v1::BlobChunk chunk;
  while (reader->Read(&chunk)) {
    *local_error = writer.Piece(WeightsFile{chunk.name(), chunk.sha256(), chunk.total_size()},
                                chunk.offset(), chunk.data());
    if (!local_error->ok()) {
      ctx.TryCancel();
      reader->Finish();
      return grpc::Status::OK;
    }
  }
  grpc::Status s = reader->Finish();
  if (!s.ok()) return s;
  absl::StatusOr<std::vector<std::string>> files = writer.Finish();
  if (!files.ok()) {
    *local_error = files.status();
  } else {
    *written = *std::move(files);
  }
  return grpc::Status::OK;
}

}  // namespace repro
