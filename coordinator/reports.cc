#include "coordinator/reports.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "analysis/analysis.h"
#include "analysis/report.h"
#include "coordinator/service.h"

namespace repro {
namespace {

// ReportStream's reactor. The report's thread hands it one piece at a time and waits
// until gRPC has written it, so a report is rendered no faster than its caller reads
// and never held whole. Deletes itself when gRPC is done with the call.
class ReportWriter final : public grpc::ServerWriteReactor<v1::ReportChunk> {
 public:
  // Writes `piece`; CANCELLED when the call ended first (the caller went away).
  grpc::Status Write(std::string_view piece) {
    {
      absl::MutexLock lock(&mu_);
      if (failed_) return Cancelled();
      chunk_.set_body(piece.data(), piece.size());
      writing_ = true;
    }
    StartWrite(&chunk_);  // not under mu_: OnWriteDone may run on this thread
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* writing) { return !*writing; }, &writing_));
    return failed_ ? Cancelled() : grpc::Status::OK;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) failed_ = true;  // a cancelled call fails its pending write
  }
  void OnDone() override { delete this; }

 private:
  static grpc::Status Cancelled() {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the caller stopped reading the report");
  }

  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool failed_ ABSL_GUARDED_BY(mu_) = false;
  v1::ReportChunk chunk_;
};

grpc::Status Busy() {
  return grpc::Status(
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      absl::StrCat("the coordinator is computing a report and ", ReportService::kMaxWaitingReports,
                   " more are waiting for it; ask again later (reproctl --db PATH reads the "
                   "store without the coordinator)"));
}

}  // namespace

ReportService::ReportService(RunStore* store, std::string experiment)
    : store_(store), experiment_(std::move(experiment)), pool_(kReportThreads) {}

bool ReportService::Queue(std::function<void()> task) {
  return pool_.TryRun(std::move(task), kMaxWaitingReports);
}

grpc::Status ReportService::Compute(const v1::ReportRequest& req, grpc::CallbackServerContext& ctx,
                                    const Sink& sink, v1::ReportResponse* meta) {
  auto format = ParseReportFormat(req.format().empty() ? "text" : req.format());
  if (!format.ok()) return ToGrpc(format.status());
  if (grpc::Status gone = CallerGone(ctx); !gone.ok()) return gone;
  auto view = store_->LoadView(experiment_);
  if (!view.ok()) return ToGrpc(view.status());
  AnalysisOptions options;
  options.reference_arm = req.reference_arm();
  if (req.has_bootstrap_resamples()) options.bootstrap_resamples = req.bootstrap_resamples();
  options.seed = req.seed();
  if (req.has_ci_width()) options.ci_width = req.ci_width();
  options.power_ratio = req.power_ratio();
  if (absl::Status s = CheckAnalysisOptions(*view, options); !s.ok()) return ToGrpc(s);
  if (grpc::Status gone = CallerGone(ctx); !gone.ok()) return gone;
  const repro::Report report = Analyze(std::move(*view), options);
  meta->set_complete(report.complete);
  meta->set_runs_remaining(report.runs_remaining);
  if (!report.complete && !req.partial()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("experiment ", experiment_, " has not finished: ",
                                     IncompleteReason(report),
                                     "; use --partial for a report so far"));
  }
  if (grpc::Status gone = CallerGone(ctx); !gone.ok()) return gone;
  // The renderer takes no answer back: once a piece fails, the rest goes nowhere.
  grpc::Status sent = grpc::Status::OK;
  absl::Status rendered = WriteReport(report, *format, req.arm(), [&](std::string_view piece) {
    if (sent.ok()) sent = sink(piece);
  });
  return rendered.ok() ? sent : ToGrpc(rendered);
}

grpc::ServerUnaryReactor* ReportService::Report(grpc::CallbackServerContext* ctx,
                                                const grpc::Status& auth,
                                                const v1::ReportRequest* req,
                                                v1::ReportResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  const bool queued = Queue([this, ctx, reactor, req, resp] {
    std::string body;
    grpc::Status s = Compute(*req, *ctx, [&body](std::string_view piece) {
      if (body.size() + piece.size() > kMaxReportMessageBytes) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            absl::StrCat("the report is larger than the ", kMaxReportMessageBytes,
                                         " bytes one Report answer may carry; ReportStream "
                                         "(what reproctl report calls) sends it in pieces"));
      }
      body.append(piece);
      return grpc::Status::OK;
    }, resp);
    if (s.ok()) resp->set_body(std::move(body));
    reactor->Finish(s);
  });
  if (!queued) reactor->Finish(Busy());
  return reactor;
}

grpc::ServerWriteReactor<v1::ReportChunk>* ReportService::Stream(
    grpc::CallbackServerContext* ctx, const grpc::Status& auth, const v1::ReportRequest* req) {
  auto* writer = new ReportWriter();
  if (!auth.ok()) {
    writer->Finish(auth);
    return writer;
  }
  const bool queued = Queue([this, ctx, writer, req] {
    v1::ReportResponse meta;
    const grpc::Status s = Compute(*req, *ctx, [writer](std::string_view piece) {
      for (size_t at = 0; at < piece.size(); at += kReportChunkBytes) {
        if (grpc::Status w = writer->Write(piece.substr(at, kReportChunkBytes)); !w.ok()) return w;
      }
      return grpc::Status::OK;
    }, &meta);
    writer->Finish(s);
  });
  if (!queued) writer->Finish(Busy());
  return writer;
}

}  // namespace repro
