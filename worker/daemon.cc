#include "worker/daemon.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/security.h"
#include "proto/convert.h"
#include "worker/scheduled_events.h"

namespace repro {
namespace {

std::string HostName() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

bool Transient(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_message(), " (gRPC code ", static_cast<int>(s.error_code()), ")");
}

}  // namespace

WorkerDaemon::WorkerDaemon(WorkerOptions options, const std::atomic<int>* stop_signal)
    : options_(std::move(options)), stop_signal_(stop_signal) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect promptly after the coordinator comes back, rather than gRPC's default of
  // up to two minutes between connection attempts.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);  // an assignment may carry a checkpoint
  auto credentials = options_.credentials ? options_.credentials : grpc::InsecureChannelCredentials();
  channel_ = grpc::CreateCustomChannel(options_.coordinator, credentials, args);
  stub_ = v1::WorkerService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> WorkerDaemon::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(options_.rpc_timeout_ms));
  AttachToken(ctx.get(), options_.token);
  return ctx;
}

void WorkerDaemon::Sleep(int ms) const {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (!Stopping() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(ms, 50)));
  }
}

bool WorkerDaemon::Register() {
  int backoff = 250;
  for (;;) {
    if (Stopping()) return false;
    v1::RegisterRequest req;
    v1::WorkerInfo* w = req.mutable_worker();
    w->set_name(options_.name);
    w->set_host(HostName());
    w->set_torch_version(engine::TorchVersion());
    w->set_cuda_available(engine::CudaAvailable());
    w->set_device(engine::CudaAvailable() ? "cuda" : "cpu");
    w->set_threads(options_.threads);
    w->set_pid(getpid());
    v1::RegisterResponse resp;
    grpc::Status s = stub_->Register(Context().get(), req, &resp);
    if (s.ok()) {
      heartbeat_interval_ms_ = std::max(50, resp.heartbeat_interval_ms());
      cli::LogLine(absl::StrCat("registered with ", options_.coordinator, " as ", options_.name,
                                " for experiment ", resp.experiment()));
      return true;
    }
    if (!Transient(s)) {
      cli::LogLine(absl::StrCat("registration refused: ", Describe(s)));
      return false;
    }
    cli::LogLine(absl::StrCat("coordinator ", options_.coordinator, " not reachable: ",
                              s.error_message(), "; retrying in ", backoff, " ms"));
    Sleep(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
}

int WorkerDaemon::Run() {
  std::unique_ptr<PreemptionWatcher> watcher;
  if (!options_.scheduled_events_url.empty()) {
    auto url = ParseHttpUrl(options_.scheduled_events_url);
    if (!url.ok()) {
      cli::LogLine(absl::StrCat("--scheduled-events: ", url.status().message()));
      return cli::kExitUsage;
    }
    watcher = std::make_unique<PreemptionWatcher>(
        *url, options_.scheduled_events_interval_ms,
        [this](const std::string& notice) {
          cli::LogLine(absl::StrCat("eviction announced (", notice, "); draining"));
          drain_.store(true);
        },
        [](const std::string& line) { cli::LogLine(line); });
  }
  if (!Register()) return Stopping() ? cli::kExitOk : cli::kExitError;
  int backoff = 250;
  while (!Stopping()) {
    v1::LeaseRequest req;
    req.set_worker(options_.name);
    v1::LeaseResponse resp;
    grpc::Status s = stub_->Lease(Context().get(), req, &resp);
    if (!s.ok()) {
      if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        // A coordinator restarted on a new database does not know us: register again.
        cli::LogLine(absl::StrCat("lease refused: ", s.error_message(), "; registering again"));
        if (!Register()) return Stopping() ? cli::kExitOk : cli::kExitError;
        continue;
      }
      if (!Transient(s)) {
        cli::LogLine(absl::StrCat("lease failed: ", Describe(s)));
        return cli::kExitError;
      }
      cli::LogLine(absl::StrCat("coordinator away (", s.error_message(), "); retrying in ",
                                backoff, " ms"));
      Sleep(backoff);
      backoff = std::min(backoff * 2, options_.max_backoff_ms);
      continue;
    }
    backoff = 250;
    switch (resp.outcome_case()) {
      case v1::LeaseResponse::kRun:
        Train(resp.run());
        break;
      case v1::LeaseResponse::kFinished:
        if (!options_.stay) {
          cli::LogLine("the experiment has finished; exiting");
          return cli::kExitOk;
        }
        Sleep(5000);
        break;
      default:
        Sleep(std::max(50, resp.retry_after_ms()));
        break;
    }
  }
  cli::LogLine(drain_.load() ? "drained after the eviction notice; exiting" : "stopping on signal");
  return cli::kExitOk;
}

void WorkerDaemon::Train(const v1::RunAssignment& run) {
  const std::string label = absl::StrCat(run.arm(), "#", run.index());
  cli::LogLine(absl::StrCat("training run ", label, " (init seed ", run.spec().init_seed(),
                            ", shuffle seed ", run.spec().shuffle_seed(), ", ", run.spec().epochs(),
                            " epochs)"));
  std::atomic<int> epoch{0};
  std::atomic<int64_t> batch{0}, batches{0};
  std::atomic<bool> lease_lost{false};
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;

  // Heartbeats renew the lease and carry progress, on their own thread so a long epoch
  // never lets the lease lapse.
  std::thread heartbeat([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (!done_cv.wait_for(lock, std::chrono::milliseconds(heartbeat_interval_ms_),
                             [&] { return done; })) {
      lock.unlock();
      v1::HeartbeatRequest req;
      req.set_worker(options_.name);
      req.set_run_id(run.run_id());
      req.set_lease_id(run.lease_id());
      req.set_epoch(epoch.load());
      req.set_batch(batch.load());
      req.set_batches(batches.load());
      v1::HeartbeatResponse resp;
      grpc::Status s = stub_->Heartbeat(Context().get(), req, &resp);
      if (s.ok() && !resp.lease_valid()) lease_lost.store(true);
      lock.lock();
    }
  });

  engine::Callbacks callbacks;
  callbacks.on_batch = [&](int e, int64_t b, int64_t n) {
    epoch.store(e);
    batch.store(b);
    batches.store(n);
  };
  callbacks.on_epoch = [&](const EpochRecord& record) {
    v1::ReportEpochRequest req;
    req.set_worker(options_.name);
    req.set_run_id(run.run_id());
    req.set_lease_id(run.lease_id());
    *req.mutable_epoch() = ToProto(record);
    v1::ReportEpochResponse resp;
    // Best effort: the completion carries every epoch again, so a lost report costs nothing.
    grpc::Status s = stub_->ReportEpoch(Context().get(), req, &resp);
    if (s.ok() && !resp.lease_valid()) lease_lost.store(true);
    cli::LogLine(absl::StrCat("run ", label, " epoch ", record.epoch, ": loss ", record.loss,
                              ", val_accuracy ", record.val_accuracy, ", ", record.seconds, " s"));
  };
  callbacks.should_stop = [&] { return Stopping() || lease_lost.load(); };
  callbacks.on_checkpoint = [&](int done_epoch, const std::string& state) {
    v1::SaveCheckpointRequest req;
    req.set_worker(options_.name);
    req.set_run_id(run.run_id());
    req.set_lease_id(run.lease_id());
    req.set_epoch(done_epoch);
    req.set_state(state);
    v1::SaveCheckpointResponse resp;
    // Best effort: without it a retry starts from the beginning, which costs time only.
    grpc::Status s = stub_->SaveCheckpoint(Context().get(), req, &resp);
    cli::LogLine(s.ok() ? absl::StrCat("run ", label, ": checkpoint after epoch ", done_epoch,
                                       " saved (", state.size(), " bytes)")
                        : absl::StrCat("run ", label, ": checkpoint not saved: ", s.error_message()));
  };

  RunSpec spec = FromProto(run.spec());
  if (spec.threads == 0) spec.threads = options_.threads;  // the plan leaves it to the worker
  spec.resume_state = run.checkpoint();
  if (!spec.resume_state.empty()) {
    cli::LogLine(absl::StrCat("run ", label, ": resuming from the checkpoint after epoch ",
                              run.checkpoint_epoch()));
  }
  if (spec.export_initial || spec.export_final || spec.export_every_epoch) {
    spec.export_dir = absl::StrCat(options_.artifacts, "/", run.experiment(), "/", run.arm(),
                                   "/run-", run.index());
  }
  absl::StatusOr<RunResult> result = engine::TrainRun(spec, callbacks);
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  done_cv.notify_all();
  heartbeat.join();

  if (result.ok()) {
    SendResult(run, *result);
  } else if (lease_lost.load()) {
    cli::LogLine(absl::StrCat("run ", label, " was taken back by the coordinator; dropped it"));
  } else if (Stopping()) {
    SendRelease(run, absl::StrCat("worker ", options_.name, " stopped during the run"));
  } else {
    cli::LogLine(absl::StrCat("run ", label, " failed: ", result.status().message()));
    SendFailure(run, std::string(result.status().message()));
  }
}

void WorkerDaemon::SendResult(const v1::RunAssignment& run, const RunResult& result) {
  v1::CompleteRequest req;
  req.set_worker(options_.name);
  req.set_run_id(run.run_id());
  req.set_lease_id(run.lease_id());
  *req.mutable_result() = ToProto(result);
  int backoff = 250;
  // A finished run is hours of GPU time: resend until the coordinator has it, even
  // across a coordinator restart; only a signal (with the result logged) gives up.
  for (;;) {
    v1::CompleteResponse resp;
    grpc::Status s = stub_->Complete(Context().get(), req, &resp);
    if (s.ok()) {
      cli::LogLine(absl::StrCat("run ", run.arm(), "#", run.index(), " done: test loss ",
                                result.test_loss, ", test accuracy ", result.test_accuracy,
                                ", final hash ", result.final_hash,
                                resp.counted() ? "" : " (the run already had a result)"));
      return;
    }
    if (!Transient(s)) {
      cli::LogLine(absl::StrCat("result of run ", run.arm(), "#", run.index(), " refused: ", Describe(s)));
      return;
    }
    if (Stopping()) {
      cli::LogLine(absl::StrCat("stopping with the result of run ", run.arm(), "#", run.index(),
                                " unsent (final hash ", result.final_hash, ")"));
      return;
    }
    cli::LogLine(absl::StrCat("cannot send the result (", s.error_message(), "); retrying in ",
                              backoff, " ms"));
    Sleep(backoff);
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
  }
}

void WorkerDaemon::SendRelease(const v1::RunAssignment& run, const std::string& reason) {
  v1::ReleaseRequest req;
  req.set_worker(options_.name);
  req.set_run_id(run.run_id());
  req.set_lease_id(run.lease_id());
  req.set_reason(reason);
  v1::ReleaseResponse resp;
  grpc::Status s = stub_->Release(Context().get(), req, &resp);
  if (s.ok()) {
    cli::LogLine(absl::StrCat("handed run ", run.arm(), "#", run.index(), " back to the coordinator"));
  } else {
    // The lease will expire and the run will be queued again anyway.
    cli::LogLine(absl::StrCat("cannot hand the run back: ", s.error_message()));
  }
}

void WorkerDaemon::SendFailure(const v1::RunAssignment& run, const std::string& error) {
  v1::FailRequest req;
  req.set_worker(options_.name);
  req.set_run_id(run.run_id());
  req.set_lease_id(run.lease_id());
  req.set_error(error);
  v1::FailResponse resp;
  grpc::Status s = stub_->Fail(Context().get(), req, &resp);
  if (!s.ok()) {
    // The lease will expire and the run will be retried anyway.
    cli::LogLine(absl::StrCat("cannot report the failure: ", s.error_message()));
  }
}

}  // namespace repro
