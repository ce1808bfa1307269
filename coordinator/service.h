// The coordinator's gRPC services: WorkerService (register, lease, heartbeat, epoch
// reports, complete, fail) and ControlService (status, report, workers, cancel), over
// gRPC's callback API so that many workers need no thread each. All state lives in the
// RunStore; the service adds leases' time-to-live, from an injected clock, so lease
// expiry is tested without sleeping.
//
// Thread safety: thread-safe; handlers run on gRPC's threads concurrently.
#ifndef REPRO_COORDINATOR_SERVICE_H_
#define REPRO_COORDINATOR_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/plan.h"
#include "common/security.h"
#include "coordinator/adaptive_rounds.h"
#include "coordinator/blob_streams.h"
#include "coordinator/reports.h"
#include "coordinator/worker_directory.h"
#include "store/blobs.h"
#include "store/store.h"
#include "repro/v1/repro.grpc.pb.h"

namespace repro {

struct ServiceOptions {
  int heartbeat_interval_ms = 2000;
  // A lease not renewed within this time returns its run to the queue: three missed
  // heartbeats, so one lost packet or a slow epoch report does not cost a run.
  int lease_ttl_ms = 6000;
  int idle_retry_ms = 500;  // how long an idle worker waits before asking again
  // The samples of the plan's splits a run reads, as the data check counted them (or the
  // plan's limits); 0 = not known. Results are held to them (coordinator/result_check.h).
  int64_t train_examples = 0;
  int64_t test_examples = 0;
  // The classes of the plan's data (10, or K for kind arrays) that predictions are held
  // to; 0 = not known (arrays without the data check): any class a byte holds.
  int64_t classes = 10;
  // The copies of the plan's input files that GetBlob serves, and where PutBlob keeps
  // the weights files workers upload (not owned; it must outlive the service). Null:
  // GetBlob and PutBlob answer UNAVAILABLE.
  const BlobStore* blobs = nullptr;
  // The largest weights file PutBlob takes (--max-upload-bytes).
  int64_t max_upload_bytes = int64_t{16} << 30;
};

class CoordinatorService final : public v1::WorkerService::CallbackService,
                                 public v1::ControlService::CallbackService {
 public:
  using Log = std::function<void(const std::string&)>;
  CoordinatorService(RunStore* store, Plan plan, Clock clock, ServiceOptions options, Log log,
                     Authenticator auth = Authenticator("", ""));

  // Returns expired leases' runs to the queue; the coordinator calls it periodically
  // (Lease also calls it, so idle workers pick up abandoned runs promptly).
  void ExpireLeases();
  // Marks gone the workers silent for longer than a lease lasts (and than an idle worker
  // waits between leases), plus a second: status shows them so, and placement no longer
  // counts on them. The coordinator calls it periodically.
  void NoteSilentWorkers();
  // Whether the experiment has finished: every run done or failed and, for an adaptive
  // run count, no round to come (AdaptiveRounds::Finished, which may take the next look
  // and add a round). The coordinator calls it periodically; so does Lease.
  absl::StatusOr<bool> ExperimentFinished() { return rounds_.Finished(); }

  // WorkerService
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const v1::RegisterRequest* req,
                                     v1::RegisterResponse* resp) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx, const v1::LeaseRequest* req,
                                  v1::LeaseResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* ReportEpoch(grpc::CallbackServerContext* ctx,
                                        const v1::ReportEpochRequest* req,
                                        v1::ReportEpochResponse* resp) override;
  grpc::ServerUnaryReactor* Complete(grpc::CallbackServerContext* ctx,
                                     const v1::CompleteRequest* req,
                                     v1::CompleteResponse* resp) override;
  grpc::ServerUnaryReactor* Fail(grpc::CallbackServerContext* ctx, const v1::FailRequest* req,
                                 v1::FailResponse* resp) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* ctx,
                                    const v1::ReleaseRequest* req,
                                    v1::ReleaseResponse* resp) override;
  // A worker on its way out: gone from now (a run it still holds expires as usual).
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* ctx, const v1::LeaveRequest* req,
                                  v1::LeaveResponse* resp) override;
  grpc::ServerUnaryReactor* SaveCheckpoint(grpc::CallbackServerContext* ctx,
                                           const v1::SaveCheckpointRequest* req,
                                           v1::SaveCheckpointResponse* resp) override;
  // A plan input's bytes from the blob store, in chunks of kBlobChunkBytes, each read on
  // the handler pool only once the one before has been written: a slow reader holds no
  // thread. Only the blobs the plan's inputs name: NOT_FOUND for any other name (and
  // nothing looked up on disk), INVALID_ARGUMENT for a name that is not 64 lower-case
  // hex digits, OUT_OF_RANGE for an offset beyond the blob's size.
  grpc::ServerWriteReactor<v1::BlobChunk>* GetBlob(grpc::CallbackServerContext* ctx,
                                                   const v1::GetBlobRequest* req) override;
  // A weights file into the blob store, about a lease of the caller's (the token checked
  // before any message is read, the rest on the first): refused over max_upload_bytes
  // (FAILED_PRECONDITION) before a byte is written, kept only when its bytes are the
  // declared size and SHA-256 (else INVALID_ARGUMENT), RESOURCE_EXHAUSTED when the
  // store's disk is full, so that the worker tries again.
  grpc::ServerReadReactor<v1::PutBlobRequest>* PutBlob(grpc::CallbackServerContext* ctx,
                                                       v1::PutBlobResponse* resp) override;
  // A localization's answer, from the worker that holds it (its secret).
  grpc::ServerUnaryReactor* CompleteLocalize(grpc::CallbackServerContext* ctx,
                                             const v1::CompleteLocalizeRequest* req,
                                             v1::CompleteLocalizeResponse* resp) override;

  // ControlService
  grpc::ServerUnaryReactor* Status(grpc::CallbackServerContext* ctx,
                                   const v1::StatusRequest* req,
                                   v1::StatusResponse* resp) override;
  grpc::ServerUnaryReactor* Report(grpc::CallbackServerContext* ctx,
                                   const v1::ReportRequest* req,
                                   v1::ReportResponse* resp) override;
  grpc::ServerWriteReactor<v1::ReportChunk>* ReportStream(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportRequest* req) override;
  grpc::ServerUnaryReactor* Workers(grpc::CallbackServerContext* ctx,
                                    const v1::WorkersRequest* req,
                                    v1::WorkersResponse* resp) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* ctx,
                                   const v1::CancelRequest* req,
                                   v1::CancelResponse* resp) override;
  // A finished run's weights files from the blob store, the ones its counted result
  // names; NOT_FOUND naming the run when it has none of those asked for.
  grpc::ServerWriteReactor<v1::BlobChunk>* FetchWeights(
      grpc::CallbackServerContext* ctx, const v1::FetchWeightsRequest* req) override;
  // Asks the workers where two finished runs part (the first call), and says how far
  // that is; the next Lease of any worker takes it before any run.
  grpc::ServerUnaryReactor* Localize(grpc::CallbackServerContext* ctx,
                                     const v1::LocalizeRequest* req,
                                     v1::LocalizeResponse* resp) override;

 private:
  grpc::Status DoRegister(const v1::RegisterRequest& req, v1::RegisterResponse* resp);
  grpc::Status DoLease(const v1::LeaseRequest& req, v1::LeaseResponse* resp);
  grpc::Status DoHeartbeat(const v1::HeartbeatRequest& req, v1::HeartbeatResponse* resp);
  grpc::Status DoReportEpoch(const v1::ReportEpochRequest& req, v1::ReportEpochResponse* resp);
  grpc::Status DoComplete(const v1::CompleteRequest& req, v1::CompleteResponse* resp);
  grpc::Status DoFail(const v1::FailRequest& req, v1::FailResponse* resp);
  grpc::Status DoRelease(const v1::ReleaseRequest& req, v1::ReleaseResponse* resp);
  grpc::Status DoLeave(const v1::LeaveRequest& req);
  grpc::Status DoSaveCheckpoint(const v1::SaveCheckpointRequest& req,
                                v1::SaveCheckpointResponse* resp);
  // A pending localization, or a side of one replayed apart, that `worker` may replay
  // (WorkerDirectory::ReplayerFor), into `resp` (true), when there is one.
  absl::StatusOr<bool> LeaseLocalization(const std::string& worker, v1::LeaseResponse* resp);
  // "arm#index" of a localization's run.
  static std::string Label(const LocalizeLease::Side& side);
  // A localization's run's spec, as it trained: what a worker replays.
  absl::StatusOr<v1::RunSpec> ReplaySpec(const LocalizeLease::Side& side) const;
  // The job a lease hands out: both runs, or one side for one stage.
  absl::StatusOr<v1::LocalizeJob> WholeJob(const LocalizeLease& lease, const std::string& secret) const;
  absl::StatusOr<v1::LocalizeSideJob> SideJob(const LocalizeLease& lease,
                                              const std::string& secret) const;
  // Whether `worker` may replay a run of a localization still open (and so is not told
  // the experiment has finished).
  absl::StatusOr<bool> NeededForLocalization(const std::string& worker);
  // That `worker` holds localization `id` (or its `side`, when not "") with `secret`.
  grpc::Status CheckLocalizationHolder(const std::string& worker, int64_t id,
                                       const std::string& side, const std::string& secret);
  grpc::Status DoCompleteLocalize(const v1::CompleteLocalizeRequest& req);
  // A side's answer for a stage (RunStore::CompleteLocalizationSide), its dump checked
  // to be in the blob store first.
  grpc::Status CompleteLocalizeSide(const v1::CompleteLocalizeRequest& req, const std::string& error);
  // What a PutBlob call uploads, in words: "a weights file of run arm#1" or "the dump of
  // side b of localization 3".
  std::string Uploaded(const v1::PutBlobRequest& first);
  // A side's dump, from the blob store (EncodeOpOutputs's bytes).
  absl::StatusOr<OpOutputs> LoadDump(const std::string& sha256) const;
  // A heartbeat of a worker replaying a localization it holds: its lease is renewed.
  grpc::Status RenewLocalization(const v1::HeartbeatRequest& req, v1::HeartbeatResponse* resp);
  // An arm that asks for it (localize: true) and has just finished: where its runs part
  // is asked of the workers, as reproctl localize would.
  void MaybeLocalize(const std::string& arm);
  // Asks (or finds asked before) where two runs part, and has Lease look for it.
  absl::StatusOr<LocalizationState> AskWhereRunsPart(const std::string& run_a,
                                                     const std::string& run_b);
  grpc::Status DoLocalize(const v1::LocalizeRequest& req, v1::LocalizeResponse* resp);
  // Why no worker that is here may take a pending localization ("" when one may): both
  // runs on one, or each side apart.
  absl::StatusOr<std::string> WhyNoWorkerReplays(const LocalizationState& state);
  grpc::Status CheckWorker(const std::string& worker);
  // The blob GetBlob asked for, open, once the call passes every check.
  absl::StatusOr<BlobFile> OpenBlob(const v1::GetBlobRequest& req);
  // The blob a PutBlob call's first message declares, to be written, once the call
  // passes every check.
  absl::StatusOr<IncomingBlob> ReceiveBlob(grpc::CallbackServerContext* ctx,
                                           const v1::PutBlobRequest& first);
  // The weights files FetchWeights asked for, open.
  absl::StatusOr<std::vector<OutgoingBlob>> OpenWeights(const v1::FetchWeightsRequest& req);
  // The caller's token allows `needed`; a refusal is logged with the peer, never the token.
  grpc::Status Authorize(grpc::CallbackServerContext* ctx, Role needed, const char* method);
  // A worker call: the token allows it and, with mutual TLS, `worker` is the name the
  // caller's certificate gives it.
  grpc::Status AuthorizeWorker(grpc::CallbackServerContext* ctx, const std::string& worker,
                               const char* method);
  // The second half of that, for a call whose worker is named only in its first message.
  grpc::Status CheckCallerName(grpc::CallbackServerContext* ctx, const std::string& worker,
                               const char* method);
  // The lease is the worker's own: the caller names the worker it was handed to and
  // presents its secret, so no worker may report for another's run.
  grpc::Status CheckLease(const std::string& worker, int64_t run_id, int64_t lease_id,
                          const std::string& secret);
  // The same for a request about a lease (AboutLease in proto/convert.h fills it).
  template <typename Request>
  grpc::Status CheckLease(const Request& req) {
    return CheckLease(req.worker(), req.run_id(), req.lease_id(), req.lease_secret());
  }
  const ArmSpec* FindArm(const std::string& name) const;
  std::string Label(int64_t run_id);

  RunStore* store_;
  const Plan plan_;
  Clock clock_;
  ServiceOptions options_;
  Log log_;
  const Authenticator auth_;
  const std::map<std::string, int64_t> blob_sizes_;  // the plan's inputs: SHA-256 -> size
  const bool any_arm_localizes_;  // some arm has localize: true
  WorkerDirectory directory_;     // which arms each worker may run
  AdaptiveRounds rounds_;         // an adaptive run count's looks and rounds
  // Whether a localization may be pending or running: Lease looks for one only then, so
  // that the lease of a run costs no more for them. Set by Localize, cleared by a Lease
  // that finds none open; localize_mu_ orders the two.
  absl::Mutex localize_mu_;
  bool localize_open_ ABSL_GUARDED_BY(localize_mu_) = true;
  ReportService reports_;  // Report and ReportStream, apart from every other call
};

// Turns a Status from the store or the analyses into the gRPC status a client sees.
grpc::Status ToGrpc(const absl::Status& status);
// And back, for a check that answers in gRPC's terms inside work that answers in absl's.
absl::Status FromGrpc(const grpc::Status& status);

}  // namespace repro

#endif  // REPRO_COORDINATOR_SERVICE_H_
