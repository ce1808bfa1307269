#include "coordinator/service.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/analysis.h"
#include "analysis/report.h"
#include "common/run_spec.h"
#include "common/status_macros.h"
#include "coordinator/handler_pool.h"
#include "proto/convert.h"
#include "store/status_view.h"

namespace repro {
namespace {

// Every handler does its (SQLite-bound) work on the handler pool (handler_pool.h),
// where it may wait for its change to be committed, and finishes from there; a refused
// authorization finishes the call at once, before any work. `fn` captures by value:
// it runs after the handler method has returned.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const grpc::Status& auth, Fn&& fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  HandlerPool::ForHandlers().Run(
      [reactor, fn = std::forward<Fn>(fn)]() mutable { reactor->Finish(fn()); });
  return reactor;
}

constexpr size_t kMaxTensors = 100000;

bool IsHash(const std::string& s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

CoordinatorService::CoordinatorService(RunStore* store, Plan plan, Clock clock,
                                       ServiceOptions options, Log log, Authenticator auth)
    : store_(store), plan_(std::move(plan)), clock_(std::move(clock)), options_(options),
      log_(std::move(log)), auth_(std::move(auth)) {}

grpc::Status CoordinatorService::Authorize(grpc::CallbackServerContext* ctx, Role needed,
                                           const char* method) {
  grpc::Status s = auth_.Check(*ctx, needed);
  if (!s.ok()) log_(absl::StrCat("refused ", method, " from ", ctx->peer(), ": ", s.error_message()));
  return s;
}

grpc::Status CoordinatorService::CheckLease(const std::string& worker, int64_t run_id,
                                            int64_t lease_id) {
  auto owner = store_->LeaseOwner(run_id, lease_id);
  if (!owner.ok()) return ToGrpc(owner.status());
  if (*owner != worker) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("lease ", lease_id, " of run ", run_id,
                                     " belongs to another worker"));
  }
  return grpc::Status::OK;
}

std::string CoordinatorService::Label(int64_t run_id) {
  auto label = store_->RunLabel(run_id);
  return label.ok() ? *label : absl::StrCat("id ", run_id);
}

const ArmSpec* CoordinatorService::FindArm(const std::string& name) const {
  for (const ArmSpec& arm : plan_.arms) {
    if (arm.name == name) return &arm;
  }
  return nullptr;
}

void CoordinatorService::ExpireLeases() {
  auto expired = store_->ExpireLeases(clock_());
  if (!expired.ok()) {
    log_(absl::StrCat("cannot expire leases: ", expired.status().message()));
  } else if (*expired > 0) {
    log_(absl::StrCat(*expired, " lease(s) expired without a heartbeat; their runs are queued "
                                "again"));
  }
}

grpc::Status CoordinatorService::CheckWorker(const std::string& worker) {
  if (worker.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the worker name is empty");
  }
  auto known = store_->TouchWorker(worker, clock_());
  if (!known.ok()) return ToGrpc(known.status());
  if (!*known) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("worker \"", worker, "\" is not registered; register first"));
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoRegister(const v1::RegisterRequest& req,
                                            v1::RegisterResponse* resp) {
  const v1::WorkerInfo& w = req.worker();
  if (w.name().empty() || w.name().size() > 200) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a worker name must have 1 to 200 characters");
  }
  WorkerRecord record{w.name(), w.host(), w.torch_version(), w.device(), w.threads(), clock_(), ""};
  if (absl::Status s = store_->UpsertWorker(record); !s.ok()) return ToGrpc(s);
  log_(absl::StrCat("worker ", w.name(), " registered (host ", w.host(), ", LibTorch ",
                    w.torch_version(), ", ", w.device(), ", ", w.threads(), " threads)"));
  resp->set_experiment(plan_.experiment);
  resp->set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoLease(const v1::LeaseRequest& req, v1::LeaseResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  ExpireLeases();
  auto leased = store_->LeaseNext(plan_.experiment, req.worker(), clock_(), options_.lease_ttl_ms);
  if (!leased.ok()) return ToGrpc(leased.status());
  if (!leased->has_value()) {
    auto counts = store_->Counts(plan_.experiment);
    if (!counts.ok()) return ToGrpc(counts.status());
    if (counts->finished()) {
      resp->set_finished(true);
    } else {
      resp->set_retry_after_ms(options_.idle_retry_ms);
    }
    return grpc::Status::OK;
  }
  const LeasedRun& run = **leased;
  const ArmSpec* arm = FindArm(run.arm);
  if (arm == nullptr) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        absl::StrCat("run of unknown arm ", run.arm, " in the store"));
  }
  v1::RunAssignment* a = resp->mutable_run();
  a->set_run_id(run.run_id);
  a->set_lease_id(run.lease_id);
  a->set_experiment(plan_.experiment);
  a->set_arm(run.arm);
  a->set_index(run.index);
  *a->mutable_spec() = ToProto(RunSpecFor(plan_, *arm, run.seeds));
  a->set_lease_ttl_ms(options_.lease_ttl_ms);
  a->set_checkpoint(run.checkpoint);
  a->set_checkpoint_epoch(run.checkpoint_epoch);
  log_(absl::StrCat("worker ", req.worker(), " took run ", run.arm, "#", run.index,
                    run.attempt > 1 ? absl::StrCat(" (attempt ", run.attempt, ")") : "",
                    run.checkpoint_epoch >= 0
                        ? absl::StrCat(", resuming after epoch ", run.checkpoint_epoch)
                        : ""));
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoHeartbeat(const v1::HeartbeatRequest& req,
                                             v1::HeartbeatResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (req.run_id() == 0) return grpc::Status::OK;
  if (grpc::Status s = CheckLease(req.worker(), req.run_id(), req.lease_id()); !s.ok()) return s;
  if (req.epoch() < 0 || req.epoch() >= plan_.epochs || req.batch() < 0 || req.batches() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("heartbeat progress out of range: epoch ", req.epoch(),
                                     ", batch ", req.batch(), " of ", req.batches()));
  }
  auto valid = store_->Renew(req.run_id(), req.lease_id(), clock_(), options_.lease_ttl_ms,
                             req.epoch(), req.batch(), req.batches());
  if (!valid.ok()) return ToGrpc(valid.status());
  resp->set_lease_valid(*valid);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoReportEpoch(const v1::ReportEpochRequest& req,
                                               v1::ReportEpochResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req.worker(), req.run_id(), req.lease_id()); !s.ok()) return s;
  if (req.epoch().epoch() < 0 || req.epoch().epoch() >= plan_.epochs) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("epoch ", req.epoch().epoch(), " is outside the plan's ",
                                     plan_.epochs, " epochs"));
  }
  auto valid = store_->RecordEpoch(req.run_id(), req.lease_id(), FromProto(req.epoch()));
  if (!valid.ok()) return ToGrpc(valid.status());
  resp->set_lease_valid(*valid);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoComplete(const v1::CompleteRequest& req,
                                            v1::CompleteResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req.worker(), req.run_id(), req.lease_id()); !s.ok()) return s;
  const v1::RunResult& r = req.result();
  // A result is checked against the plan before anything is stored.
  std::string problem;
  if (r.epochs_size() != plan_.epochs) {
    problem = absl::StrCat("has ", r.epochs_size(), " epochs, the plan has ", plan_.epochs);
  } else if (!IsHash(r.initial_hash()) || !IsHash(r.final_hash()) || !IsHash(r.data_x_hash()) ||
             !IsHash(r.data_y_hash())) {
    problem = "has a malformed hash";
  } else if (r.initial_tensors_size() == 0 || r.initial_tensors_size() > static_cast<int>(kMaxTensors) ||
             r.final_tensors_size() != r.initial_tensors_size()) {
    problem = absl::StrCat("has ", r.initial_tensors_size(), " initial and ",
                           r.final_tensors_size(), " final tensors");
  } else {
    for (int i = 0; i < r.epochs_size(); ++i) {
      if (r.epochs(i).epoch() != i) problem = absl::StrCat("lists epoch ", r.epochs(i).epoch(), " at position ", i);
    }
  }
  if (!problem.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("result of run ", req.run_id(), " ", problem));
  }
  auto counted = store_->Complete(req.run_id(), req.lease_id(), FromProto(r), clock_());
  if (!counted.ok()) return ToGrpc(counted.status());
  resp->set_counted(*counted);
  log_(absl::StrCat("worker ", req.worker(), " finished run ", Label(req.run_id()),
                    *counted ? "" : " (a result was already in; kept as an extra attempt)",
                    absl::StrFormat(": test loss %.4f, accuracy %.4f", r.test_loss(), r.test_accuracy())));
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoFail(const v1::FailRequest& req, v1::FailResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req.worker(), req.run_id(), req.lease_id()); !s.ok()) return s;
  const std::string error = req.error().substr(0, 4000);
  auto retry = store_->Fail(req.run_id(), req.lease_id(), error, clock_());
  if (!retry.ok()) return ToGrpc(retry.status());
  resp->set_will_retry(*retry);
  log_(absl::StrCat("worker ", req.worker(), " failed run ", Label(req.run_id()), ": ", error,
                    *retry ? " (will retry)" : ""));
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoRelease(const v1::ReleaseRequest& req,
                                           v1::ReleaseResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req.worker(), req.run_id(), req.lease_id()); !s.ok()) return s;
  const std::string reason = req.reason().substr(0, 4000);
  auto released = store_->Release(req.run_id(), req.lease_id(), reason, clock_());
  if (!released.ok()) return ToGrpc(released.status());
  resp->set_released(*released);
  if (*released) {
    log_(absl::StrCat("worker ", req.worker(), " handed back run ", Label(req.run_id()), " (",
                      reason, "); it is queued again"));
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoSaveCheckpoint(const v1::SaveCheckpointRequest& req,
                                                  v1::SaveCheckpointResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req.worker(), req.run_id(), req.lease_id()); !s.ok()) return s;
  if (plan_.checkpoint_every <= 0 || req.epoch() < 0 || req.epoch() + 1 >= plan_.epochs ||
      req.state().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("no checkpoint is expected after epoch ", req.epoch()));
  }
  auto saved = store_->SaveCheckpoint(req.run_id(), req.lease_id(), req.epoch(), req.state(), clock_());
  if (!saved.ok()) return ToGrpc(saved.status());
  resp->set_saved(*saved);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoReport(const v1::ReportRequest& req, v1::ReportResponse* resp) {
  auto format = ParseReportFormat(req.format().empty() ? "text" : req.format());
  if (!format.ok()) return ToGrpc(format.status());
  auto view = store_->LoadView(plan_.experiment);
  if (!view.ok()) return ToGrpc(view.status());
  AnalysisOptions options;
  options.reference_arm = req.reference_arm();
  if (req.has_bootstrap_resamples()) options.bootstrap_resamples = req.bootstrap_resamples();
  options.seed = req.seed();
  if (absl::Status s = CheckAnalysisOptions(*view, options); !s.ok()) return ToGrpc(s);
  const repro::Report report = Analyze(std::move(*view), options);
  resp->set_complete(report.complete);
  resp->set_runs_remaining(report.runs_remaining);
  if (!report.complete && !req.partial()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("experiment ", plan_.experiment, " has not finished: ",
                                     report.runs_remaining,
                                     " run(s) remain; use --partial for a report so far"));
  }
  auto body = RenderReport(report, *format, req.arm());
  if (!body.ok()) return ToGrpc(body.status());
  resp->set_body(*body);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* CoordinatorService::Register(grpc::CallbackServerContext* ctx,
                                                       const v1::RegisterRequest* req,
                                                       v1::RegisterResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "Register"), [=] { return DoRegister(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Lease(grpc::CallbackServerContext* ctx,
                                                    const v1::LeaseRequest* req,
                                                    v1::LeaseResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "Lease"), [=] { return DoLease(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* req,
                                                        v1::HeartbeatResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "Heartbeat"), [=] { return DoHeartbeat(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::ReportEpoch(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportEpochRequest* req,
                                                          v1::ReportEpochResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "ReportEpoch"), [=] { return DoReportEpoch(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Complete(grpc::CallbackServerContext* ctx,
                                                       const v1::CompleteRequest* req,
                                                       v1::CompleteResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "Complete"), [=] { return DoComplete(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Fail(grpc::CallbackServerContext* ctx,
                                                   const v1::FailRequest* req,
                                                   v1::FailResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "Fail"), [=] { return DoFail(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Release(grpc::CallbackServerContext* ctx,
                                                      const v1::ReleaseRequest* req,
                                                      v1::ReleaseResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "Release"), [=] { return DoRelease(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::SaveCheckpoint(grpc::CallbackServerContext* ctx,
                                                             const v1::SaveCheckpointRequest* req,
                                                             v1::SaveCheckpointResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kWorker, "SaveCheckpoint"),
               [=] { return DoSaveCheckpoint(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Status(grpc::CallbackServerContext* ctx,
                                                     const v1::StatusRequest*,
                                                     v1::StatusResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Status"), [=] {
    auto status = BuildStatus(*store_, plan_.experiment);
    if (!status.ok()) return ToGrpc(status.status());
    *resp = ToProto(*status);
    return grpc::Status::OK;
  });
}
grpc::ServerUnaryReactor* CoordinatorService::Report(grpc::CallbackServerContext* ctx,
                                                     const v1::ReportRequest* req,
                                                     v1::ReportResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Report"), [=] { return DoReport(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Workers(grpc::CallbackServerContext* ctx,
                                                      const v1::WorkersRequest*,
                                                      v1::WorkersResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Workers"), [=] {
    auto status = BuildStatus(*store_, plan_.experiment);
    if (!status.ok()) return ToGrpc(status.status());
    for (const WorkerRecord& w : status->workers) *resp->add_workers() = ToProto(w);
    return grpc::Status::OK;
  });
}
grpc::ServerUnaryReactor* CoordinatorService::Cancel(grpc::CallbackServerContext* ctx,
                                                     const v1::CancelRequest* req,
                                                     v1::CancelResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Cancel"), [=] {
    const std::string reason = req->reason().empty() ? "by reproctl" : req->reason().substr(0, 500);
    auto n = store_->Cancel(plan_.experiment, reason);
    if (!n.ok()) return ToGrpc(n.status());
    resp->set_runs_cancelled(*n);
    log_(absl::StrCat("experiment cancelled (", reason, "): ", *n, " run(s) will not run"));
    return grpc::Status::OK;
  });
}

}  // namespace repro
