// The files that travel between the worker and its coordinator: a run's inputs fetched
// by SHA-256 into the cache (GetBlob), its exported weights uploaded (PutBlob).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "proto/convert.h"
#include "worker/daemon.h"
#include "worker/daemon_internal.h"

namespace repro {

using daemon_internal::Backoff;
using daemon_internal::Describe;
using daemon_internal::Label;
using daemon_internal::Transient;
using daemon_internal::Why;

absl::Status WorkerDaemon::FetchInputs(RunSpec* spec, const std::function<bool()>& stop) {
  if (spec->inputs.empty()) return absl::OkStatus();
  std::set<std::string> used;
  bool fetched = false;
  for (InputFile& input : spec->inputs) {
    // The name becomes a path in the cache: nothing but a hash may.
    if (!IsSha256Hex(input.sha256) || input.size < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "input ", input.role, ": the assignment names no valid SHA-256 (\"",
          absl::CHexEscape(input.sha256.substr(0, 80)), "\") to fetch it by"));
    }
    used.insert(input.sha256);
    if (!cache_.Ready(input.sha256, input.size)) {
      if (absl::Status s = FetchBlob(input, stop); !s.ok()) return s;
      fetched = true;
    }
    input.path = cache_.PathOf(input.sha256);
  }
  if (fetched) {
    if (const int n = cache_.Evict(used); n > 0) {
      cli::LogLine(absl::StrCat("cache ", cache_.dir(), ": deleted ", n,
                                " least recently used blob(s) to stay within ",
                                cache_.max_bytes(), " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status WorkerDaemon::FetchBlob(const InputFile& input, const std::function<bool()>& stop) {
  const std::string what = absl::StrCat("input ", input.role, " (", input.sha256, ")");
  const auto own = [&](const absl::Status& s) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": ", s.message()));
  };
  auto blob = PartialBlob::Open(cache_, input.sha256, input.size);
  if (!blob.ok()) return own(blob.status());
  if ((*blob)->ready()) return absl::OkStatus();
  if ((*blob)->offset() > 0) {
    cli::LogLine(absl::StrCat("fetching ", what, ": resuming after ", (*blob)->offset(), " of ",
                              input.size, " bytes"));
  }
  const auto started = std::chrono::steady_clock::now();
  const int64_t resumed_at = (*blob)->offset();
  Backoff backoff(options_.max_backoff_ms);
  for (;;) {
    if (stop()) return absl::CancelledError(absl::StrCat("stopped while fetching ", what));
    std::string wrong;  // what the coordinator sent that does not fit
    const grpc::Status s = StreamBlob(input, **blob, stop, &wrong);
    if (!wrong.empty()) {
      (*blob)->Discard();
      return own(absl::FailedPreconditionError(wrong));
    }
    if (!s.ok() && s.error_code() == grpc::StatusCode::DATA_LOSS) {  // cannot write here
      return own(absl::FailedPreconditionError(s.error_message()));
    }
    if (stop()) return absl::CancelledError(absl::StrCat("stopped while fetching ", what));
    if (s.ok() && (*blob)->offset() == input.size) break;
    if (!s.ok() && !Transient(s)) {
      return own(absl::FailedPreconditionError(
          absl::StrCat("the coordinator refused to send it: ", Describe(s))));
    }
    if (TlsGivesUp(s)) return own(absl::FailedPreconditionError(fatal_));
    const int ms = backoff.Next();
    cli::LogLine(absl::StrCat("fetching ", what, " stopped after ", (*blob)->offset(), " of ",
                              input.size, " bytes (",
                              s.ok() ? "the stream ended early" : Why(s, options_),
                              "); resuming in ", ms, " ms"));
    Sleep(ms);
  }
  if (absl::Status s = (*blob)->Keep(); !s.ok()) return own(s);
  inputs_.Vouch(cache_.PathOf(input.sha256), input.sha256);  // Keep checked every byte
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  cli::LogLine(absl::StrFormat("fetched %s: %d bytes in %.3f s (%.0f MB/s) into %s", what,
                               input.size, seconds,
                               static_cast<double>(input.size - resumed_at) / 1e6 /
                                   std::max(seconds, 1e-9),
                               cache_.PathOf(input.sha256)));
  return absl::OkStatus();
}

grpc::Status WorkerDaemon::StreamBlob(const InputFile& input, PartialBlob& blob,
                                      const std::function<bool()>& stop, std::string* wrong) {
  v1::GetBlobRequest req;
  req.set_worker(options_.name);
  req.set_sha256(input.sha256);
  req.set_offset(blob.offset());
  grpc::ClientContext ctx;
  // Long enough for the rest at 1 MB/s; a slower link resumes where it stopped.
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(options_.rpc_timeout_ms +
                                             (input.size - blob.offset()) / 1000));
  AttachToken(&ctx, options_.token);
  std::unique_ptr<grpc::ClientReaderInterface<v1::BlobChunk>> reader = stub_->GetBlob(&ctx, req);
  v1::BlobChunk chunk;
  while (reader->Read(&chunk)) {
    if (chunk.offset() != blob.offset() || chunk.total_size() != input.size ||
        blob.offset() + static_cast<int64_t>(chunk.data().size()) > input.size) {
      *wrong = absl::StrCat("the coordinator sent bytes ", chunk.offset(), "+",
                            chunk.data().size(), " of a blob of ", chunk.total_size(),
                            " bytes where bytes from ", blob.offset(), " of ", input.size,
                            " were expected");
      ctx.TryCancel();
      break;
    }
    if (absl::Status s = blob.Append(chunk.data()); !s.ok()) {
      ctx.TryCancel();
      reader->Finish();
      return grpc::Status(grpc::StatusCode::DATA_LOSS, std::string(s.message()));
    }
    if (stop()) {
      ctx.TryCancel();
      break;
    }
  }
  return reader->Finish();
}


absl::Status WorkerDaemon::UploadWeights(const v1::RunAssignment& run, RunResult* result) {
  std::vector<std::string> paths;
  if (!result->initial_weights.empty()) paths.push_back(result->initial_weights);
  paths.insert(paths.end(), result->epoch_weights.begin(), result->epoch_weights.end());
  if (!result->final_weights.empty()) paths.push_back(result->final_weights);
  for (const std::string& path : paths) {
    // The engine names its files <name>.safetensors: "initial", "epoch-K", "final".
    WeightsFile file{std::filesystem::path(path).stem().string(), "", 0};
    absl::StatusOr<std::string> sha = Sha256OfFile(path);
    std::error_code error;
    const auto size = std::filesystem::file_size(path, error);
    if (!sha.ok() || error) {
      return absl::InternalError(absl::StrCat(
          "cannot read the exported ", file.name, " weights ", path, ": ",
          sha.ok() ? error.message() : std::string(sha.status().message())));
    }
    file.sha256 = *sha;
    file.size = static_cast<int64_t>(size);
    RETURN_IF_ERROR(UploadBlob(AboutLease<v1::PutBlobRequest>(options_.name, run),
                               absl::StrCat("the ", file.name, " weights of run ", Label(run)),
                               path, file));
    result->weights.push_back(std::move(file));
  }
  return absl::OkStatus();
}

absl::Status WorkerDaemon::UploadBlob(const v1::PutBlobRequest& about, const std::string& what,
                                      const std::string& path, const WeightsFile& file) {
  const auto started = std::chrono::steady_clock::now();
  Backoff backoff(options_.max_backoff_ms);
  for (;;) {
    const grpc::Status s = SendBlob(about, path, file);
    if (s.ok()) break;
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {  // over the coordinator's limit
      return engine::PlanError(absl::InvalidArgumentError(
          absl::StrCat("cannot upload ", what, ": ", s.error_message())));
    }
    if (s.error_code() == grpc::StatusCode::DATA_LOSS) {  // cannot read it here
      return absl::InternalError(absl::StrCat("cannot upload ", what, ": ", s.error_message()));
    }
    if (!Transient(s)) {
      return absl::InternalError(
          absl::StrCat("the coordinator refused ", what, ": ", Describe(s)));
    }
    // The run is trained: wait out a coordinator that is away or short of disk as for
    // its result (SendResult), unless the worker is stopping.
    if (Stopping() || TlsGivesUp(s)) {
      return absl::CancelledError(absl::StrCat("stopped before ", what, " were uploaded"));
    }
    const int ms = backoff.Next();
    cli::LogLine(absl::StrCat("cannot upload ", what, " (", Why(s, options_), "); retrying in ",
                              ms, " ms"));
    Sleep(ms);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  cli::LogLine(absl::StrFormat("uploaded %s: %d bytes in %.3f s (sha256 %s)", what, file.size,
                               seconds, file.sha256.substr(0, 12)));
  return absl::OkStatus();
}

grpc::Status WorkerDaemon::SendBlob(const v1::PutBlobRequest& about, const std::string& path,
                                    const WeightsFile& file) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat("cannot open ", path));
  grpc::ClientContext ctx;
  // Long enough at 1 MB/s; a slower link tries again.
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(options_.rpc_timeout_ms + file.size / 1000));
  AttachToken(&ctx, options_.token);
  v1::PutBlobResponse response;
  std::unique_ptr<grpc::ClientWriterInterface<v1::PutBlobRequest>> writer =
      stub_->PutBlob(&ctx, &response);
  v1::PutBlobRequest piece = about;
  piece.set_sha256(file.sha256);
  piece.set_size(file.size);
  std::string buffer(kUploadPieceBytes, '\0');
  int64_t offset = 0;
  do {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<size_t>(in.gcount());
    if (in.bad() || (got == 0 && offset < file.size)) {
      ctx.TryCancel();
      writer->Finish();
      return grpc::Status(grpc::StatusCode::DATA_LOSS, absl::StrCat(path, " changed while sent"));
    }
    piece.set_offset(offset);
    piece.set_data(buffer.data(), got);
    offset += static_cast<int64_t>(got);
    // A refusal (after the first piece, or later) ends the writes; Finish says why.
    if (!writer->Write(piece)) break;
    piece.clear_worker();  // the lease and the blob are named once
    piece.clear_lease_secret();
  } while (offset < file.size);
  writer->WritesDone();
  return writer->Finish();
}

}  // namespace repro
