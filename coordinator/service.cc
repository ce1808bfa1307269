#include "coordinator/service.h"

#include <algorithm>
#include <chrono>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/names.h"
#include "common/placement.h"
#include "common/run_spec.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "coordinator/handler_pool.h"
#include "coordinator/result_check.h"
#include "proto/convert.h"
#include "proto/limits.h"
#include "store/status_view.h"

namespace repro {
namespace {

// Every handler does its (SQLite-bound) work on the handler pool (handler_pool.h),
// where it may wait for its change to be committed, and finishes from there; a refused
// authorization finishes the call at once, before any work, and a call whose caller
// has gone by the time a thread takes it up is finished without it. `fn` captures by
// value: it runs after the handler method has returned.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const grpc::Status& auth, Fn&& fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!auth.ok()) {
    reactor->Finish(auth);
    return reactor;
  }
  HandlerPool::ForHandlers().Run([ctx, reactor, fn = std::forward<Fn>(fn)]() mutable {
    grpc::Status gone = CallerGone(*ctx);
    reactor->Finish(gone.ok() ? fn() : gone);
  });
  return reactor;
}

// OK when `message` fits what reproctl accepts (proto/limits.h); else the error that
// names the ceiling, rather than one from the client's transport.
grpc::Status WithinStatusCeiling(const google::protobuf::Message& message) {
  const size_t bytes = message.ByteSizeLong();
  if (bytes <= kMaxStatusMessageBytes) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      absl::StrCat("the status is ", bytes, " bytes, more than the ",
                                   kMaxStatusMessageBytes >> 20,
                                   " MiB a status answer may carry; reproctl --db PATH reads "
                                   "it from the store"));
}

constexpr size_t kMaxWorkerName = 128;
constexpr size_t kMaxWorkerText = 256;  // host, torch_version, device
constexpr size_t kMaxWorkerMapEntries = 64;  // capabilities, labels

// `line` with every byte that is not printable ASCII written as \xHH: what a peer sends
// reaches the log only through this, so no newline or terminal escape of its can forge
// or hide a line.
std::string PrintableLine(const std::string& line) {
  std::string out;
  out.reserve(line.size());
  for (const char c : line) {
    if (absl::ascii_isprint(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<unsigned char>(c));
    }
  }
  return out;
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
         c == ':' || c == '@';
}

// What Register takes: a name of kMaxWorkerName letters, digits and - _ . : @ at most,
// and printable, bounded descriptions; it is shown by reproctl and in the log.
grpc::Status CheckWorkerInfo(const v1::WorkerInfo& w) {
  const std::string& name = w.name();
  if (name.empty() || name.size() > kMaxWorkerName ||
      !std::all_of(name.begin(), name.end(), IsNameChar)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("worker name \"",
                                     absl::CHexEscape(name.substr(0, kMaxWorkerName)),
                                     "\" must be 1 to ", kMaxWorkerName,
                                     " letters, digits or - _ . : @"));
  }
  for (const auto& [field, text] : {std::pair{"worker host", &w.host()},
                                    std::pair{"worker torch_version", &w.torch_version()},
                                    std::pair{"worker device", &w.device()}}) {
    if (absl::Status s = CheckText(field, *text, 0, kMaxWorkerText); !s.ok()) return ToGrpc(s);
  }
  // Capabilities and labels: what placement matches against, by the plan's rules.
  for (const auto& [what, map] : {std::pair{"capabilities", &w.capabilities()},
                                  std::pair{"labels", &w.labels()}}) {
    if (map->size() > kMaxWorkerMapEntries) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("worker ", what, ": ", map->size(), " entries; at most ",
                                       kMaxWorkerMapEntries));
    }
    for (const auto& [key, value] : *map) {
      if (!IsValidName(key) || !IsValidLabelValue(value)) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            absl::StrCat("worker ", what, " \"", absl::CHexEscape(key.substr(0, 100)),
                                         "\": the key must be ", kNameRule, "; the value ",
                                         kLabelValueRule));
      }
    }
  }
  return grpc::Status::OK;
}

// What a worker's reports are held to: the plan, and its splits and classes as the data
// check counted them.
ResultCheck ResultsFor(const Plan& plan, const ServiceOptions& options) {
  return ResultCheck(plan, options.train_examples, options.test_examples, options.classes);
}

std::map<std::string, int64_t> BlobSizes(const Plan& plan) {
  std::map<std::string, int64_t> sizes;
  for (const InputFile& file : plan.inputs) {
    if (!file.sha256.empty()) sizes[file.sha256] = file.size;
  }
  return sizes;
}

// Every weights file a result names is in the blob store, of the size it says: uploaded
// (PutBlob) before the run's Complete.
absl::Status CheckUploaded(const std::vector<WeightsFile>& weights, const BlobStore* blobs) {
  for (const WeightsFile& w : weights) {
    absl::StatusOr<int64_t> size =
        blobs == nullptr ? absl::NotFoundError("no blob store") : blobs->SizeOf(w.sha256);
    if (!size.ok() || *size != w.size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "its ", w.name, " weights (sha256 ", w.sha256, ", ", w.size,
          " bytes) were not uploaded before it completed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// absl and gRPC share the canonical code numbers.
grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status FromGrpc(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

CoordinatorService::CoordinatorService(RunStore* store, Plan plan, Clock clock,
                                       ServiceOptions options, Log log, Authenticator auth)
    : store_(store), plan_(std::move(plan)), clock_(std::move(clock)), options_(options),
      log_([log = std::move(log)](const std::string& line) { log(PrintableLine(line)); }),
      auth_(std::move(auth)), blob_sizes_(BlobSizes(plan_)),
      any_arm_localizes_(std::any_of(plan_.arms.begin(), plan_.arms.end(),
                                     [](const ArmSpec& arm) { return arm.localize; })),
      directory_(&plan_, store_),
      rounds_(store_, plan_, log_),
      reports_(store_, plan_.experiment) {}

grpc::Status CoordinatorService::Authorize(grpc::CallbackServerContext* ctx, Role needed,
                                           const char* method) {
  grpc::Status s = auth_.Check(*ctx, needed);
  if (!s.ok()) log_(absl::StrCat("refused ", method, " from ", ctx->peer(), ": ", s.error_message()));
  return s;
}

grpc::Status CoordinatorService::AuthorizeWorker(grpc::CallbackServerContext* ctx,
                                                 const std::string& worker, const char* method) {
  if (grpc::Status s = Authorize(ctx, Role::kWorker, method); !s.ok()) return s;
  return CheckCallerName(ctx, worker, method);
}

grpc::Status CoordinatorService::CheckCallerName(grpc::CallbackServerContext* ctx,
                                                 const std::string& worker, const char* method) {
  grpc::Status s = auth_.CheckName(*ctx, worker);
  if (!s.ok()) log_(absl::StrCat("refused ", method, " from ", ctx->peer(), ": ", s.error_message()));
  return s;
}

// The caller is the worker `holder` names and presents its secret; `what` names the
// lease in the refusal.
static grpc::Status CheckHolder(const absl::StatusOr<LeaseHolder>& holder, const std::string& worker,
                         const std::string& secret, const std::string& what) {
  if (!holder.ok()) return ToGrpc(holder.status());
  if (holder->worker != worker) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat(what, " belongs to another worker"));
  }
  // Only the worker the lease was handed to knows its secret; the store has its hash
  // (none for a lease of schema 1, which no secret opens).
  if (holder->secret_hash.empty() || !ConstantTimeEquals(SecretHash(secret), holder->secret_hash)) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("the lease secret given for ", what, " is missing or wrong"));
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::CheckLease(const std::string& worker, int64_t run_id,
                                            int64_t lease_id, const std::string& secret) {
  return CheckHolder(store_->LeaseOwner(run_id, lease_id), worker, secret,
                     absl::StrCat("lease ", lease_id, " of run ", run_id));
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

void CoordinatorService::NoteSilentWorkers() {
  // Longer than a lease lasts and than an idle worker waits between calls, plus what the
  // store's last_seen may lag behind.
  const int64_t silent_ms = std::max<int64_t>(options_.lease_ttl_ms, 2 * options_.idle_retry_ms) +
                            RunStore::kSeenGranularityMs;
  const int64_t now = clock_();
  auto silent = store_->MarkSilentWorkersGone(now - silent_ms, now);
  if (!silent.ok()) {
    log_(absl::StrCat("cannot note silent workers: ", silent.status().message()));
    return;
  }
  for (const std::string& name : *silent) {
    log_(absl::StrCat("worker ", name, " has been silent for more than ", silent_ms / 1000.0,
                      " s: gone"));
  }
}

grpc::Status CoordinatorService::DoLeave(const v1::LeaveRequest& req) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  const std::string reason = req.reason().empty() ? "no reason given" : req.reason().substr(0, 200);
  if (absl::Status s = store_->LeaveWorker(req.worker(), reason, clock_()); !s.ok()) return ToGrpc(s);
  log_(absl::StrCat("worker ", req.worker(), " left: ", reason));
  return grpc::Status::OK;
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
  if (grpc::Status s = CheckWorkerInfo(w); !s.ok()) return s;
  WorkerRecord record = FromProto(w);
  record.last_seen_ms = clock_();
  if (absl::Status s = store_->UpsertWorker(record); !s.ok()) return ToGrpc(s);
  const std::string placement = directory_.Register(record);
  std::string labels;
  for (const auto& [key, value] : record.labels) absl::StrAppend(&labels, ", ", key, "=", value);
  const auto gpu = record.capabilities.find("gpu_name");
  log_(absl::StrCat("worker ", w.name(), " registered (host ", w.host(), ", LibTorch ",
                    w.torch_version(), ", ", w.device(),
                    gpu == record.capabilities.end() ? "" : " " + gpu->second, ", ", w.threads(),
                    " threads", labels, ")", placement.empty() ? "" : "; " + placement));
  resp->set_experiment(plan_.experiment);
  resp->set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  return grpc::Status::OK;
}

absl::StatusOr<bool> CoordinatorService::LeaseLocalization(const std::string& worker,
                                                           v1::LeaseResponse* resp) {
  absl::MutexLock lock(&localize_mu_);
  if (!localize_open_) return false;
  ASSIGN_OR_RETURN(const std::string secret, NewLeaseSecret());
  ASSIGN_OR_RETURN(const ReplayerRule may_replay, directory_.ReplayerFor(worker));
  ASSIGN_OR_RETURN(const std::optional<LocalizeLease> lease,
                   store_->LeaseLocalization(plan_.experiment, worker, clock_(),
                                             options_.lease_ttl_ms, SecretHash(secret), may_replay));
  if (!lease) {
    ASSIGN_OR_RETURN(const int64_t open, store_->OpenLocalizations(plan_.experiment));
    localize_open_ = open > 0;  // one still running
    return false;
  }
  const std::string attempt = lease->attempt > 1 ? absl::StrCat(", attempt ", lease->attempt) : "";
  if (!lease->side.empty()) {  // one side, replayed apart
    ASSIGN_OR_RETURN(*resp->mutable_localize_side(), SideJob(*lease, secret));
    log_(absl::StrCat("worker ", worker, " took side ", lease->side, " (",
                      resp->localize_side().run(), ") of the localization of ", Label(lease->a),
                      " and ", Label(lease->b), ": stage ", resp->localize_side().stage(),
                      " of epoch ", lease->epoch, attempt));
    return true;
  }
  ASSIGN_OR_RETURN(*resp->mutable_localize(), WholeJob(*lease, secret));
  log_(absl::StrCat("worker ", worker, " took the localization of ", Label(lease->a), " and ",
                    Label(lease->b), " (epoch ", lease->epoch, attempt, ")"));
  return true;
}

std::string CoordinatorService::Label(const LocalizeLease::Side& side) {
  return absl::StrCat(side.arm, "#", side.index);
}

absl::StatusOr<v1::RunSpec> CoordinatorService::ReplaySpec(const LocalizeLease::Side& side) const {
  const ArmSpec* arm = FindArm(side.arm);
  if (arm == nullptr) return absl::InternalError(absl::StrCat("a run of unknown arm ", side.arm));
  RunSpec spec = RunSpecFor(plan_, *arm, side.seeds);
  // A spec that left the threads to its worker replays with those its run had.
  if (spec.threads == 0) spec.threads = side.threads;
  return ToProto(spec);
}

absl::StatusOr<v1::LocalizeJob> CoordinatorService::WholeJob(const LocalizeLease& lease,
                                                             const std::string& secret) const {
  v1::LocalizeJob job;
  job.set_job_id(lease.id);
  job.set_job_secret(secret);
  job.set_epoch(lease.epoch);
  job.set_run_a(Label(lease.a));
  job.set_run_b(Label(lease.b));
  ASSIGN_OR_RETURN(*job.mutable_spec_a(), ReplaySpec(lease.a));
  ASSIGN_OR_RETURN(*job.mutable_spec_b(), ReplaySpec(lease.b));
  job.set_recorded_a(lease.a.recorded);
  job.set_recorded_b(lease.b.recorded);
  return job;
}

absl::StatusOr<v1::LocalizeSideJob> CoordinatorService::SideJob(const LocalizeLease& lease,
                                                                const std::string& secret) const {
  const LocalizeLease::Side& side = lease.side == "a" ? lease.a : lease.b;
  const SideRequest request = RequestFor(lease.stage, lease.so_far);
  v1::LocalizeSideJob job;
  job.set_job_id(lease.id);
  job.set_job_secret(secret);
  job.set_side(lease.side);
  job.set_run(Label(side));
  ASSIGN_OR_RETURN(*job.mutable_spec(), ReplaySpec(side));
  job.set_stage(StageName(lease.stage));
  job.set_epoch(request.epoch);
  job.set_trace_batch(request.trace_batch.value_or(-1));
  job.set_dump_op(request.dump_op.value_or(-1));
  return job;
}

absl::StatusOr<bool> CoordinatorService::NeededForLocalization(const std::string& worker) {
  {
    absl::MutexLock lock(&localize_mu_);
    if (!localize_open_) return false;
  }
  ASSIGN_OR_RETURN(const ReplayerRule may_replay, directory_.ReplayerFor(worker));
  return store_->OpenLocalizationFor(plan_.experiment, may_replay);
}

grpc::Status CoordinatorService::CheckLocalizationHolder(const std::string& worker, int64_t id,
                                                         const std::string& side,
                                                         const std::string& secret) {
  if (side.empty()) {
    return CheckHolder(store_->LocalizationOwner(id), worker, secret,
                       absl::StrCat("localization ", id));
  }
  return CheckHolder(store_->LocalizationSideOwner(id, side), worker, secret,
                     absl::StrCat("side ", side.substr(0, 8), " of localization ", id));
}

grpc::Status CoordinatorService::RenewLocalization(const v1::HeartbeatRequest& req,
                                                   v1::HeartbeatResponse* resp) {
  const int64_t id = req.localize_job_id();
  const std::string& side = req.localize_side();
  if (grpc::Status s = CheckLocalizationHolder(req.worker(), id, side, req.job_secret()); !s.ok()) {
    return s;
  }
  auto valid = side.empty() ? store_->RenewLocalization(id, clock_(), options_.lease_ttl_ms)
                            : store_->RenewLocalizationSide(id, side, clock_(), options_.lease_ttl_ms);
  if (!valid.ok()) return ToGrpc(valid.status());
  resp->set_lease_valid(*valid);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoCompleteLocalize(const v1::CompleteLocalizeRequest& req) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLocalizationHolder(req.worker(), req.job_id(), req.side(),
                                               req.job_secret());
      !s.ok()) {
    return s;
  }
  const std::string error = req.error().substr(0, 4000);
  if (!req.side().empty()) return CompleteLocalizeSide(req, error);
  LocalizationResult result = FromProto(req.result());
  result.worker = req.worker();
  result.worker_b.clear();
  if (absl::Status s = store_->CompleteLocalization(req.job_id(), error, result); !s.ok()) {
    return ToGrpc(s);
  }
  log_(absl::StrCat("worker ", req.worker(), " localized ", req.job_id(), ": ",
                    error.empty() ? absl::StrCat("batch ", result.batch, ", ", result.op_name)
                                  : absl::StrCat("failed: ", error)));
  return grpc::Status::OK;
}

absl::StatusOr<OpOutputs> CoordinatorService::LoadDump(const std::string& sha256) const {
  if (options_.blobs == nullptr) return absl::UnavailableError("this coordinator keeps no blob store");
  ASSIGN_OR_RETURN(const BlobFile file, options_.blobs->Open(sha256));
  std::string bytes;
  RETURN_IF_ERROR(file.ReadAt(0, static_cast<size_t>(file.size()), &bytes));
  return DecodeOpOutputs(bytes);
}

grpc::Status CoordinatorService::CompleteLocalizeSide(const v1::CompleteLocalizeRequest& req,
                                                      const std::string& error) {
  const std::optional<LocalizeStage> stage = StageNamed(req.stage());
  if (!stage || *stage == LocalizeStage::kDone) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("stage \"", req.stage().substr(0, 40),
                                     "\" is none of epoch, trace, dump"));
  }
  absl::StatusOr<SideReplay> replay = FromProto(req.replay());
  if (!replay.ok()) return ToGrpc(replay.status());
  const std::string& dump = req.replay().dump_sha256();
  if (error.empty() && !dump.empty()) {
    // The dump must be in the blob store before its side is answered: read it now.
    if (absl::StatusOr<OpOutputs> outputs = LoadDump(dump); !outputs.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("the dump named, sha256 ", dump.substr(0, 64), ": ",
                                       outputs.status().message()));
    }
  }
  absl::StatusOr<LocalizationState> state = store_->CompleteLocalizationSide(
      req.job_id(), req.side(), *stage, error, *replay, dump,
      [this](const std::string& sha256) { return LoadDump(sha256); });
  if (!state.ok()) return ToGrpc(state.status());
  std::string what = absl::StrCat("stage ", req.stage(), " answered");
  if (!error.empty()) what = absl::StrCat("failed: ", error);
  if (state->state == "failed" && error.empty()) what = absl::StrCat("failed: ", state->error);
  if (state->state == "done" && state->result) {
    what = absl::StrCat("done, batch ", state->result->batch, ", ", state->result->op_name.empty()
                                                                      ? "no op" : state->result->op_name);
  } else if (state->state == "running" && state->stage != req.stage()) {
    absl::StrAppend(&what, "; both sides now replay stage ", state->stage);
  }
  log_(absl::StrCat("worker ", req.worker(), " replayed side ", req.side(), " of localization ",
                    req.job_id(), ": ", what));
  return grpc::Status::OK;
}

void CoordinatorService::MaybeLocalize(const std::string& arm_name) {
  const ArmSpec* arm = FindArm(arm_name);
  if (arm == nullptr || !arm->localize) return;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> pair =
      store_->PartedPair(plan_.experiment, arm_name);
  if (!pair.ok() || !pair->has_value()) return;
  const auto& [a, b] = **pair;
  absl::StatusOr<LocalizationState> state = AskWhereRunsPart(a, b);
  if (!state.ok()) {
    log_(absl::StrCat("arm ", arm_name, ": where ", a, " and ", b, " part cannot be asked: ",
                      state.status().message()));
    return;
  }
  log_(absl::StrCat("arm ", arm_name, " has finished and its runs ", a, " and ", b,
                    " part (localize: true): asked the workers where"));
}

absl::StatusOr<LocalizationState> CoordinatorService::AskWhereRunsPart(const std::string& run_a,
                                                                        const std::string& run_b) {
  // Asked before (reproctl asks again every half second): no need to read the workers.
  ASSIGN_OR_RETURN(std::optional<LocalizationState> known,
                   store_->FindLocalization(plan_.experiment, run_a, run_b));
  if (known) return *known;
  ASSIGN_OR_RETURN(const std::vector<WorkerRecord> workers, store_->Workers());
  // Each run replays on a worker of its own when they trained on machines unlike each
  // other, or when no worker here may run both arms.
  const ApartRule apart = [this, &workers](const ReplayedRun& a, const ReplayedRun& b) {
    if (!MachineDifferences(a.environment, b.environment).empty()) return true;
    const ArmSpec* arm_a = FindArm(a.arm);
    const ArmSpec* arm_b = FindArm(b.arm);
    if (arm_a == nullptr || arm_b == nullptr || arm_a == arm_b) return false;
    bool here = false;
    for (const WorkerRecord& w : workers) {
      if (w.gone()) continue;
      here = true;
      if (PlacementMismatch(*arm_a, w).empty() && PlacementMismatch(*arm_b, w).empty()) return false;
    }
    // With no worker here, arms that ask something of their workers replay apart: the
    // one way that cannot wait for a worker that may run both.
    return here || !DescribePlacement(*arm_a).empty() || !DescribePlacement(*arm_b).empty();
  };
  ASSIGN_OR_RETURN(LocalizationState state,
                   store_->RequestLocalization(plan_.experiment, run_a, run_b, clock_(), apart));
  if (state.state == "pending") {
    absl::MutexLock lock(&localize_mu_);
    localize_open_ = true;
  }
  return state;
}

grpc::Status CoordinatorService::DoLocalize(const v1::LocalizeRequest& req,
                                            v1::LocalizeResponse* resp) {
  absl::StatusOr<LocalizationState> state = AskWhereRunsPart(req.run_a(), req.run_b());
  if (!state.ok()) return ToGrpc(state.status());
  resp->set_state(state->state);
  resp->set_error(state->error);
  resp->set_epoch(state->epoch);
  resp->set_worker(state->worker);
  resp->set_stage(state->stage);
  if (state->result) *resp->mutable_result() = ToProto(*state->result);
  // A side apart needs a worker at every stage, so the reason stays while one runs.
  if (state->state == "pending" || (state->state == "running" && !state->stage.empty())) {
    absl::StatusOr<std::string> waiting = WhyNoWorkerReplays(*state);
    if (!waiting.ok()) return ToGrpc(waiting.status());
    resp->set_waiting(*waiting);
  }
  return grpc::Status::OK;
}

absl::StatusOr<std::string> CoordinatorService::WhyNoWorkerReplays(const LocalizationState& state) {
  ASSIGN_OR_RETURN(const ReplayedRun a, store_->RunToReplay(plan_.experiment, state.run_a));
  ASSIGN_OR_RETURN(const ReplayedRun b, store_->RunToReplay(plan_.experiment, state.run_b));
  ASSIGN_OR_RETURN(const std::vector<WorkerRecord> workers, store_->Workers());
  // Why `w` may not replay `run` ("" when it may).
  auto refuses = [this](const ReplayedRun& run, const WorkerRecord& w) -> std::string {
    const ArmSpec* arm = FindArm(run.arm);
    return arm == nullptr ? absl::StrCat("the plan has no arm ", run.arm)
                          : ReplayRefusal(*arm, run.environment, w);
  };
  WorkerRefusals r;
  if (state.stage.empty()) {  // one worker replays both runs
    r = RefusalsOf(workers, [&](const WorkerRecord& w) {
      const std::string why = refuses(a, w);
      if (!why.empty()) return absl::StrCat(state.run_a, ": ", why);
      const std::string why_b = refuses(b, w);
      return why_b.empty() ? why_b : absl::StrCat(state.run_b, ": ", why_b);
    });
    if (r.one_may) return std::string();
    if (r.here == 0) return std::string("no worker is here");
    return absl::StrCat("no worker here may replay both runs (one of its arm, on a machine like "
                        "the one the run trained on): ", r.Joined());
  }
  for (const auto& [run, label] : {std::pair{&a, &state.run_a}, std::pair{&b, &state.run_b}}) {
    r = RefusalsOf(workers, [&](const WorkerRecord& w) { return refuses(*run, w); });
    if (r.one_may) continue;
    if (r.here == 0) return std::string("no worker is here");
    return absl::StrCat("no worker here may replay ", *label, " (one of its arm, on a machine "
                        "like the one the run trained on): ", r.Joined());
  }
  return std::string();
}

grpc::Status CoordinatorService::DoLease(const v1::LeaseRequest& req, v1::LeaseResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  ExpireLeases();
  // Only runs this worker can run (placement); nullopt: any.
  absl::StatusOr<std::optional<std::vector<std::string>>> arms = directory_.ArmsFor(req.worker());
  if (!arms.ok()) return ToGrpc(arms.status());
  const std::vector<std::string>* only = arms->has_value() ? &**arms : nullptr;
  // Where runs part is asked while a user waits: before any run.
  absl::StatusOr<bool> localizing = LeaseLocalization(req.worker(), resp);
  if (!localizing.ok()) return ToGrpc(localizing.status());
  if (*localizing) return grpc::Status::OK;
  auto secret = NewLeaseSecret();
  if (!secret.ok()) return ToGrpc(secret.status());
  auto lease = [&] {
    return store_->LeaseNext(plan_.experiment, req.worker(), clock_(), options_.lease_ttl_ms,
                             SecretHash(*secret), only);
  };
  auto leased = lease();
  if (!leased.ok()) return ToGrpc(leased.status());
  if (!leased->has_value()) {
    // An adaptive experiment whose runs have all finished takes its next look here (or in
    // the coordinator's loop), and this worker leases from the round it adds.
    bool added = false;
    absl::StatusOr<bool> finished = rounds_.Finished(&added);
    if (!finished.ok()) return ToGrpc(finished.status());
    if (added) leased = lease();
    if (!leased.ok()) return ToGrpc(leased.status());
    if (!leased->has_value()) {
      // A worker that may replay a run of an open localization stays for it: replayed
      // apart, each stage needs both sides' workers again.
      absl::StatusOr<bool> wanted = *finished ? NeededForLocalization(req.worker()) : false;
      if (!wanted.ok()) return ToGrpc(wanted.status());
      if (*finished && !*wanted) {
        resp->set_finished(true);
      } else {
        resp->set_retry_after_ms(options_.idle_retry_ms);
      }
      return grpc::Status::OK;
    }
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
  a->set_lease_secret(*secret);
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
  if (req.run_id() == 0 && req.localize_job_id() != 0) return RenewLocalization(req, resp);
  if (req.run_id() == 0) return grpc::Status::OK;
  if (grpc::Status s = CheckLease(req); !s.ok()) return s;
  const absl::Status progress =
      ResultsFor(plan_, options_).CheckProgress(req.epoch(), req.batch(), req.batches());
  if (!progress.ok()) return ToGrpc(progress);
  auto valid = store_->Renew(req.run_id(), req.lease_id(), clock_(), options_.lease_ttl_ms,
                             req.epoch(), req.batch(), req.batches());
  if (!valid.ok()) return ToGrpc(valid.status());
  resp->set_lease_valid(*valid);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoReportEpoch(const v1::ReportEpochRequest& req,
                                               v1::ReportEpochResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req); !s.ok()) return s;
  const EpochRecord epoch = FromProto(req.epoch());
  if (absl::Status s = ResultsFor(plan_, options_).CheckEpoch(epoch); !s.ok()) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("epoch report of run ", req.run_id(), ": ", s.message())));
  }
  auto valid = store_->RecordEpoch(req.run_id(), req.lease_id(), epoch);
  if (!valid.ok()) return ToGrpc(valid.status());
  resp->set_lease_valid(*valid);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoComplete(const v1::CompleteRequest& req,
                                            v1::CompleteResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req); !s.ok()) return s;
  // A result is checked against the plan before anything is stored.
  const RunResult r = FromProto(req.result());
  absl::Status checked = ResultsFor(plan_, options_).CheckResult(r);
  if (checked.ok()) checked = CheckUploaded(r.weights, options_.blobs);
  if (!checked.ok()) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("result of run ", req.run_id(), ": ", checked.message())));
  }
  auto counted = store_->Complete(req.run_id(), req.lease_id(), r, clock_());
  if (!counted.ok()) return ToGrpc(counted.status());
  resp->set_counted(*counted);
  if (*counted && any_arm_localizes_) {  // else no query more per result
    if (auto label = store_->RunLabel(req.run_id()); label.ok()) {
      MaybeLocalize(label->substr(0, label->rfind('#')));
    }
  }
  log_(absl::StrCat("worker ", req.worker(), " finished run ", Label(req.run_id()),
                    *counted ? "" : " (not counted: the run already had a result or had ended, "
                                    "or the attempt had; kept as an extra attempt)",
                    r.diverged.empty()
                        ? absl::StrFormat(": test loss %.4f, accuracy %.4f", r.test_loss, r.test_accuracy)
                        : absl::StrCat(": ", r.diverged)));
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoFail(const v1::FailRequest& req, v1::FailResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req); !s.ok()) return s;
  const std::string error = req.error().substr(0, 4000);
  auto outcome = store_->Fail(req.run_id(), req.lease_id(), error, clock_());
  if (!outcome.ok()) return ToGrpc(outcome.status());
  resp->set_will_retry(*outcome == FailOutcome::kRetry);
  if (*outcome == FailOutcome::kStale) {
    log_(absl::StrCat("worker ", req.worker(), " reported a failure of run ", Label(req.run_id()),
                      " after its lease ended; recorded, the run is unchanged: ", error));
  } else if (req.plan_error()) {
    // Every run would fail alike: one clear error, not max_attempts failures per run. A
    // worker could lie, but one holding the worker token can fail every run anyway.
    auto cancelled = store_->Cancel(plan_.experiment, absl::StrCat("the plan cannot be trained "
                                                                   "(worker ", req.worker(),
                                                                   "): ", error),
                                    clock_());
    if (!cancelled.ok()) return ToGrpc(cancelled.status());
    resp->set_will_retry(false);
    log_(absl::StrCat("worker ", req.worker(), " failed run ", Label(req.run_id()),
                      " for a reason of the plan's own: ", error, "; experiment cancelled (",
                      *cancelled, " run(s) not done ended with it)"));
  } else {
    const std::string label = Label(req.run_id());
    log_(absl::StrCat("worker ", req.worker(), " failed run ", label, ": ", error,
                      *outcome == FailOutcome::kRetry ? " (will retry)" : ""));
    // A run that failed for good may be its arm's last.
    if (*outcome == FailOutcome::kFailed) MaybeLocalize(label.substr(0, label.rfind('#')));
  }
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::DoRelease(const v1::ReleaseRequest& req,
                                           v1::ReleaseResponse* resp) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return s;
  if (grpc::Status s = CheckLease(req); !s.ok()) return s;
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
  if (grpc::Status s = CheckLease(req); !s.ok()) return s;
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

grpc::ServerUnaryReactor* CoordinatorService::Register(grpc::CallbackServerContext* ctx,
                                                       const v1::RegisterRequest* req,
                                                       v1::RegisterResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker().name(), "Register"),
               [=] { return DoRegister(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Lease(grpc::CallbackServerContext* ctx,
                                                    const v1::LeaseRequest* req,
                                                    v1::LeaseResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "Lease"),
               [=] { return DoLease(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Leave(grpc::CallbackServerContext* ctx,
                                                    const v1::LeaveRequest* req,
                                                    v1::LeaveResponse*) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "Leave"), [=] { return DoLeave(*req); });
}
grpc::ServerUnaryReactor* CoordinatorService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                        const v1::HeartbeatRequest* req,
                                                        v1::HeartbeatResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "Heartbeat"),
               [=] { return DoHeartbeat(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::ReportEpoch(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportEpochRequest* req,
                                                          v1::ReportEpochResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "ReportEpoch"),
               [=] { return DoReportEpoch(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Complete(grpc::CallbackServerContext* ctx,
                                                       const v1::CompleteRequest* req,
                                                       v1::CompleteResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "Complete"),
               [=] { return DoComplete(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Fail(grpc::CallbackServerContext* ctx,
                                                   const v1::FailRequest* req,
                                                   v1::FailResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "Fail"),
               [=] { return DoFail(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Release(grpc::CallbackServerContext* ctx,
                                                      const v1::ReleaseRequest* req,
                                                      v1::ReleaseResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "Release"),
               [=] { return DoRelease(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::SaveCheckpoint(grpc::CallbackServerContext* ctx,
                                                             const v1::SaveCheckpointRequest* req,
                                                             v1::SaveCheckpointResponse* resp) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "SaveCheckpoint"),
               [=] { return DoSaveCheckpoint(*req, resp); });
}
absl::StatusOr<BlobFile> CoordinatorService::OpenBlob(const v1::GetBlobRequest& req) {
  if (grpc::Status s = CheckWorker(req.worker()); !s.ok()) return FromGrpc(s);
  const std::string& sha = req.sha256();
  if (!IsSha256Hex(sha)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "blob name \"", absl::CHexEscape(sha.substr(0, 80)), "\" is not 64 lower-case hex digits"));
  }
  // No name from the wire reaches the file system unless the plan names it.
  const auto planned = blob_sizes_.find(sha);
  if (planned == blob_sizes_.end()) {
    return absl::NotFoundError(absl::StrCat("blob ", sha, " is not an input of this plan"));
  }
  if (req.offset() < 0 || req.offset() > planned->second) {
    return absl::OutOfRangeError(absl::StrCat("offset ", req.offset(), " is outside blob ", sha,
                                              " of ", planned->second, " bytes"));
  }
  if (options_.blobs == nullptr) {
    return absl::UnavailableError("this coordinator keeps no blob store");
  }
  absl::StatusOr<BlobFile> file = options_.blobs->Open(sha);
  if (!file.ok()) {
    log_(absl::StrCat("cannot serve blob ", sha, ": ", file.status().message()));
    return absl::InternalError(absl::StrCat("blob ", sha, " cannot be read from the store"));
  }
  if (file->size() != planned->second) {
    log_(absl::StrCat("blob ", sha, " in the store has ", file->size(), " bytes, not ",
                      planned->second));
    return absl::InternalError(absl::StrCat("blob ", sha, " in the store is damaged"));
  }
  return file;
}

grpc::ServerWriteReactor<v1::BlobChunk>* CoordinatorService::GetBlob(
    grpc::CallbackServerContext* ctx, const v1::GetBlobRequest* req) {
  auto* writer = new BlobSender();
  if (grpc::Status auth = AuthorizeWorker(ctx, req->worker(), "GetBlob"); !auth.ok()) {
    writer->Finish(auth);
    return writer;
  }
  HandlerPool::ForHandlers().Run([this, ctx, writer, req] {
    if (grpc::Status gone = CallerGone(*ctx); !gone.ok()) {
      writer->Finish(gone);
      return;
    }
    absl::StatusOr<BlobFile> file = OpenBlob(*req);
    if (!file.ok()) {
      writer->Finish(ToGrpc(file.status()));
      return;
    }
    std::vector<OutgoingBlob> files;
    files.push_back(OutgoingBlob{"", "", *std::move(file), req->offset()});
    writer->Start(std::move(files));
  });
  return writer;
}

absl::StatusOr<IncomingBlob> CoordinatorService::ReceiveBlob(grpc::CallbackServerContext* ctx,
                                                             const v1::PutBlobRequest& first) {
  if (grpc::Status s = CheckCallerName(ctx, first.worker(), "PutBlob"); !s.ok()) return FromGrpc(s);
  if (grpc::Status s = CheckWorker(first.worker()); !s.ok()) return FromGrpc(s);
  if (first.localize_job_id() != 0) {  // a side's dump, under its localization's lease
    if (grpc::Status s = CheckLocalizationHolder(first.worker(), first.localize_job_id(),
                                                 first.localize_side(), first.lease_secret());
        !s.ok() || first.localize_side().empty()) {
      return s.ok() ? absl::InvalidArgumentError("a dump names the side it is of") : FromGrpc(s);
    }
  } else if (grpc::Status s = CheckLease(first); !s.ok()) {
    return FromGrpc(s);
  }
  if (options_.blobs == nullptr) return absl::UnavailableError("this coordinator keeps no blob store");
  if (first.size() > options_.max_upload_bytes) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "a %s of %.1f MB is over this coordinator's limit of %.1f MB "
        "(coordinator --max-upload-bytes)", first.localize_job_id() != 0 ? "dump" : "weights file",
        first.size() / 1e6, options_.max_upload_bytes / 1e6));
  }
  absl::StatusOr<IncomingBlob> blob = options_.blobs->Receive(first.sha256(), first.size());
  if (!blob.ok() && blob.status().code() != absl::StatusCode::kInvalidArgument) {
    log_(absl::StrCat("cannot take ", Uploaded(first), ": ", blob.status().message()));
  }
  return blob;
}

std::string CoordinatorService::Uploaded(const v1::PutBlobRequest& first) {
  if (first.localize_job_id() != 0) {
    return absl::StrCat("the dump of side ", first.localize_side().substr(0, 8),
                        " of localization ", first.localize_job_id());
  }
  return absl::StrCat("a weights file of run ", Label(first.run_id()));
}

grpc::ServerReadReactor<v1::PutBlobRequest>* CoordinatorService::PutBlob(
    grpc::CallbackServerContext* ctx, v1::PutBlobResponse* resp) {
  auto* receiver = new BlobReceiver(
      [this, ctx](const v1::PutBlobRequest& first) { return ReceiveBlob(ctx, first); },
      [this](const v1::PutBlobRequest& first, bool stored) {
        log_(absl::StrCat("worker ", first.worker(), " uploaded ", Uploaded(first), " (",
                          first.size(), " bytes, sha256 ",
                          first.sha256().substr(0, 12), stored ? ")" : ", kept once already)"));
      },
      resp);
  if (grpc::Status auth = Authorize(ctx, Role::kWorker, "PutBlob"); !auth.ok()) {
    receiver->Finish(auth);
    return receiver;
  }
  receiver->Start();
  return receiver;
}

absl::StatusOr<std::vector<OutgoingBlob>> CoordinatorService::OpenWeights(
    const v1::FetchWeightsRequest& req) {
  ASSIGN_OR_RETURN(std::vector<WeightsFile> files,
                   store_->RunWeights(plan_.experiment, req.run(),
                                      req.which().empty() ? "final" : req.which()));
  if (options_.blobs == nullptr) return absl::UnavailableError("this coordinator keeps no blob store");
  std::vector<OutgoingBlob> out;
  for (WeightsFile& w : files) {
    absl::StatusOr<BlobFile> file = options_.blobs->Open(w.sha256);
    if (!file.ok() || file->size() != w.size) {
      log_(absl::StrCat("weights file ", w.name, " of run ", req.run(), " (sha256 ", w.sha256,
                        ") is missing or damaged in the blob store"));
      return absl::DataLossError(absl::StrCat("the ", w.name, " weights of run ", req.run(),
                                              " are missing or damaged in the blob store"));
    }
    out.push_back(OutgoingBlob{w.name, w.sha256, *std::move(file), 0});
  }
  return out;
}

grpc::ServerWriteReactor<v1::BlobChunk>* CoordinatorService::FetchWeights(
    grpc::CallbackServerContext* ctx, const v1::FetchWeightsRequest* req) {
  auto* writer = new BlobSender();
  if (grpc::Status auth = Authorize(ctx, Role::kAdmin, "FetchWeights"); !auth.ok()) {
    writer->Finish(auth);
    return writer;
  }
  HandlerPool::ForHandlers().Run([this, ctx, writer, req] {
    if (grpc::Status gone = CallerGone(*ctx); !gone.ok()) {
      writer->Finish(gone);
      return;
    }
    absl::StatusOr<std::vector<OutgoingBlob>> files = OpenWeights(*req);
    if (!files.ok()) {
      writer->Finish(ToGrpc(files.status()));
      return;
    }
    writer->Start(*std::move(files));
  });
  return writer;
}

grpc::ServerUnaryReactor* CoordinatorService::Status(grpc::CallbackServerContext* ctx,
                                                     const v1::StatusRequest*,
                                                     v1::StatusResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Status"), [=] {
    auto status = BuildStatus(*store_, plan_.experiment);
    if (!status.ok()) return ToGrpc(status.status());
    *resp = ToProto(*status);
    return WithinStatusCeiling(*resp);
  });
}
grpc::ServerUnaryReactor* CoordinatorService::Report(grpc::CallbackServerContext* ctx,
                                                     const v1::ReportRequest* req,
                                                     v1::ReportResponse* resp) {
  return reports_.Report(ctx, Authorize(ctx, Role::kAdmin, "Report"), req, resp);
}
grpc::ServerWriteReactor<v1::ReportChunk>* CoordinatorService::ReportStream(
    grpc::CallbackServerContext* ctx, const v1::ReportRequest* req) {
  return reports_.Stream(ctx, Authorize(ctx, Role::kAdmin, "ReportStream"), req);
}
grpc::ServerUnaryReactor* CoordinatorService::Workers(grpc::CallbackServerContext* ctx,
                                                      const v1::WorkersRequest*,
                                                      v1::WorkersResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Workers"), [=] {
    auto status = BuildStatus(*store_, plan_.experiment);
    if (!status.ok()) return ToGrpc(status.status());
    for (const WorkerRecord& w : status->workers) *resp->add_workers() = ToProto(w);
    return WithinStatusCeiling(*resp);
  });
}
grpc::ServerUnaryReactor* CoordinatorService::CompleteLocalize(
    grpc::CallbackServerContext* ctx, const v1::CompleteLocalizeRequest* req,
    v1::CompleteLocalizeResponse*) {
  return Unary(ctx, AuthorizeWorker(ctx, req->worker(), "CompleteLocalize"),
               [=] { return DoCompleteLocalize(*req); });
}
grpc::ServerUnaryReactor* CoordinatorService::Localize(grpc::CallbackServerContext* ctx,
                                                       const v1::LocalizeRequest* req,
                                                       v1::LocalizeResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Localize"), [=] { return DoLocalize(*req, resp); });
}
grpc::ServerUnaryReactor* CoordinatorService::Cancel(grpc::CallbackServerContext* ctx,
                                                     const v1::CancelRequest* req,
                                                     v1::CancelResponse* resp) {
  return Unary(ctx, Authorize(ctx, Role::kAdmin, "Cancel"), [=] {
    const std::string reason = req->reason().empty() ? "by reproctl" : req->reason().substr(0, 500);
    auto n = store_->Cancel(plan_.experiment, reason, clock_());
    if (!n.ok()) return ToGrpc(n.status());
    resp->set_runs_cancelled(*n);
    log_(absl::StrCat("experiment cancelled (", reason, "): ", *n, " run(s) will not run"));
    return grpc::Status::OK;
  });
}

}  // namespace repro
