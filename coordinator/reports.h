// ReportService: the Report and ReportStream calls, kept apart from every other call.
// A report is the coordinator's one heavy call: for a large experiment, seconds of CPU
// and hundreds of MB (bench/README.md). On the handler pool, 100 reports abandoned by
// their callers once kept Status unanswered for half a minute and SIGTERM waiting as
// long. So reports run on a thread of their own (kReportThreads), at most
// kMaxWaitingReports more wait for it and further ones are refused at once
// (RESOURCE_EXHAUSTED, which says to ask again later); a report whose caller has gone
// (cancelled, or past its deadline) is not computed, and one being computed stops at its
// next step (loading, analysing, sending) once its caller goes. Status and the workers'
// calls never wait behind a report, only for the store's lock while one loads.
//
// Report answers in one message, of at most kMaxReportMessageBytes: the 4 MiB that
// gRPC clients accept by default. ReportStream sends a report of any size, in pieces of
// kReportChunkBytes as it is rendered, each written before the next is made.
//
// Thread safety: thread-safe.
#ifndef REPRO_COORDINATOR_REPORTS_H_
#define REPRO_COORDINATOR_REPORTS_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "coordinator/handler_pool.h"
#include "store/store.h"
#include "repro/v1/repro.grpc.pb.h"

namespace repro {

class ReportService {
 public:
  static constexpr int kReportThreads = 1;
  static constexpr int kMaxWaitingReports = 8;
  static constexpr size_t kMaxReportMessageBytes = (4 << 20) - (64 << 10);
  static constexpr size_t kReportChunkBytes = 1 << 20;

  ReportService(RunStore* store, std::string experiment);

  // The handlers of ControlService's Report and ReportStream; `auth` is the caller's
  // authorization, already checked: a refusal ends the call at once.
  grpc::ServerUnaryReactor* Report(grpc::CallbackServerContext* ctx, const grpc::Status& auth,
                                   const v1::ReportRequest* req, v1::ReportResponse* resp);
  grpc::ServerWriteReactor<v1::ReportChunk>* Stream(grpc::CallbackServerContext* ctx,
                                                    const grpc::Status& auth,
                                                    const v1::ReportRequest* req);

 private:
  // Takes each piece of the report's body in order; a status other than OK stops the
  // report (the caller has gone, the body outgrew one message) and is the call's.
  using Sink = std::function<grpc::Status(std::string_view)>;

  // Loads the experiment, analyses it as `req` asks and hands the body to `sink`,
  // checking between the steps that the caller still waits. `meta` gets whether the
  // experiment finished and how many runs remain.
  grpc::Status Compute(const v1::ReportRequest& req, grpc::CallbackServerContext& ctx,
                       const Sink& sink, v1::ReportResponse* meta);
  // Queues `task` on the report thread; false (and nothing queued) when the queue is full.
  bool Queue(std::function<void()> task);

  RunStore* const store_;
  const std::string experiment_;
  HandlerPool pool_;
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_REPORTS_H_
