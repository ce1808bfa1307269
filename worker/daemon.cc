#include "worker/daemon.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/cli.h"
#include "common/names.h"
#include "common/security.h"
#include "proto/convert.h"
#include "worker/daemon_internal.h"
#include "worker/engine/environment.h"
#include "worker/scheduled_events.h"

namespace repro {
namespace {

using daemon_internal::Backoff;
using daemon_internal::Describe;
using daemon_internal::Label;
using daemon_internal::Transient;
using daemon_internal::Why;

// `status` with the cached copies of the run's inputs (`fetched`) named as the plan
// names them (`planned`, in the same order): "model file /exp/model.pt is not ...", not
// a path in this worker's cache. The code and payloads (engine::PlanError) are kept.
absl::Status AsPlanned(const absl::Status& status, const std::vector<InputFile>& fetched,
                       const std::vector<InputFile>& planned) {
  std::string message(status.message());
  for (size_t i = 0; i < fetched.size() && i < planned.size(); ++i) {
    if (!fetched[i].path.empty() && !planned[i].path.empty()) {
      message = absl::StrReplaceAll(message, {{fetched[i].path, planned[i].path}});
    }
  }
  absl::Status out(status.code(), message);
  status.ForEachPayload([&out](absl::string_view url, const absl::Cord& payload) {
    out.SetPayload(url, payload);
  });
  return out;
}

std::string HostName() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

}  // namespace

bool SteadySleeper::SleepFor(int ms, const std::function<bool()>& wake) {
  // A signal handler sets the stop flag and cannot notify: look at it this often.
  constexpr std::chrono::milliseconds kPoll(50);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) return false;
    cv_.wait_until(lock, std::min(until, now + kPoll));
  }
  return true;
}

void SteadySleeper::Wake() {
  { std::lock_guard<std::mutex> lock(mu_); }  // a sleeper between its check and its wait
  cv_.notify_all();
}

WorkerDaemon::WorkerDaemon(WorkerOptions options,
                           std::unique_ptr<v1::WorkerService::StubInterface> stub, Trainer trainer,
                           Sleeper* sleeper, const std::atomic<int>* stop_signal,
                           Localizer localizer, SideReplayer side_replayer)
    : options_(std::move(options)),
      stub_(std::move(stub)),
      trainer_(std::move(trainer)),
      localizer_(std::move(localizer)),
      side_replayer_(std::move(side_replayer)),
      cache_(options_.cache, options_.cache_max_bytes),
      sleeper_(sleeper),
      stop_signal_(stop_signal) {}

std::unique_ptr<grpc::ClientContext> WorkerDaemon::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(options_.rpc_timeout_ms));
  AttachToken(ctx.get(), options_.token);
  return ctx;
}

void WorkerDaemon::Sleep(int ms) const {
  sleeper_->SleepFor(ms, [this] { return Stopping(); });
}

bool WorkerDaemon::Register() {
  Backoff backoff(options_.max_backoff_ms);
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
    for (const auto& [key, value] : engine::WorkerCapabilities(options_.threads)) {
      // The coordinator takes printable ASCII only: a CPU named with a (R) sign still registers.
      std::string text = value.substr(0, kMaxLabelValueLength);
      for (char& c : text) {
        if (c < 0x20 || c > 0x7e) c = '?';
      }
      if (!text.empty()) (*w->mutable_capabilities())[key] = text;
    }
    w->mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
    v1::RegisterResponse resp;
    grpc::Status s = stub_->Register(Context().get(), req, &resp);
    if (s.ok()) {
      tls_failures_ = 0;
      heartbeat_interval_ms_ = std::max(50, resp.heartbeat_interval_ms());
      cli::LogLine(absl::StrCat("registered with ", options_.coordinator, " as ", options_.name,
                                " for experiment ", resp.experiment()));
      return true;
    }
    if (!Transient(s)) {
      cli::LogLine(absl::StrCat("registration refused: ", Describe(s)));
      return false;
    }
    if (TlsGivesUp(s)) return false;
    const int ms = backoff.Next();
    cli::LogLine(absl::StrCat("coordinator ", options_.coordinator, " not reachable: ",
                              Why(s, options_), "; retrying in ", ms, " ms"));
    Sleep(ms);
  }
}

bool WorkerDaemon::TlsGivesUp(const grpc::Status& s) {
  const std::string cause = TlsFailureCause(s, options_.coordinator, options_.tls);
  tls_failures_ = cause.empty() ? 0 : tls_failures_ + 1;
  if (tls_failures_ < kTlsAttempts) return false;
  fatal_ = absl::StrCat(cause, " (", tls_failures_, " connections in a row failed so)");
  return true;
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
  int code = cli::kExitError;
  if (Register()) {
    code = LeaseLoop();
    Leave(!fatal_.empty()        ? absl::StrCat("cannot work: ", fatal_)
          : drain_.load()        ? "drained after an eviction notice"
          : Stopping()           ? "stopped on a signal"
          : code == cli::kExitOk ? "the experiment has finished"
                                 : "exiting with an error");
  } else if (Stopping()) {
    code = cli::kExitOk;
  }
  if (!fatal_.empty()) {
    cli::LogLine(absl::StrCat("exiting with an error: ", fatal_));
    return cli::kExitCannotWork;
  }
  return code;
}

void WorkerDaemon::Leave(const std::string& reason) {
  v1::LeaveRequest req;
  req.set_worker(options_.name);
  req.set_reason(reason);
  v1::LeaveResponse resp;
  auto ctx = Context();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::Status s = stub_->Leave(ctx.get(), req, &resp);
  if (!s.ok()) cli::LogLine(absl::StrCat("could not say goodbye to the coordinator: ", Describe(s)));
}

int WorkerDaemon::LeaseLoop() {
  Backoff backoff(options_.max_backoff_ms);
  while (!Stopping()) {
    if (!fatal_.empty()) return cli::kExitCannotWork;  // Run says why
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
      if (TlsGivesUp(s)) return cli::kExitError;
      const int ms = backoff.Next();
      cli::LogLine(absl::StrCat("coordinator away (", Why(s, options_), "); retrying in ", ms,
                                " ms"));
      Sleep(ms);
      continue;
    }
    backoff.Reset();
    tls_failures_ = 0;
    switch (resp.outcome_case()) {
      case v1::LeaseResponse::kRun:
        Train(resp.run());
        break;
      case v1::LeaseResponse::kLocalize:
        Localize(resp.localize());
        break;
      case v1::LeaseResponse::kLocalizeSide:
        LocalizeSide(resp.localize_side());
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
  if (absl::Status s = CheckAssignment(run); !s.ok()) {
    cli::LogLine(absl::StrCat("refused run ", run.run_id(), ": ", s.message()));
    SendFailure(run, std::string(s.message()));
    return;
  }
  cli::LogLine(absl::StrCat("training run ", Label(run), " (init seed ", run.spec().init_seed(),
                            ", shuffle seed ", run.spec().shuffle_seed(), ", ", run.spec().epochs(),
                            " epochs)"));
  Progress progress;
  // Heartbeats renew the lease and carry progress, on their own thread so a long epoch
  // never lets the lease lapse.
  std::thread heartbeat([&] {
    Heartbeats(
        [&] {
          auto req = AboutLease<v1::HeartbeatRequest>(options_.name, run);
          req.set_epoch(progress.epoch.load());
          req.set_batch(progress.batch.load());
          req.set_batches(progress.batches.load());
          return req;
        },
        &progress);
  });
  const engine::Callbacks callbacks = CallbacksFor(run, &progress);
  RunSpec spec = SpecFor(run);
  const std::vector<InputFile> planned = spec.inputs;
  absl::Status inputs = FetchInputs(
      &spec, [this, &progress] { return Stopping() || progress.lease_lost.load(); });
  if (inputs.ok()) inputs = inputs_.Check(spec.inputs);
  absl::StatusOr<RunResult> result =
      inputs.ok() ? CallTrainer(spec, callbacks) : absl::StatusOr<RunResult>(inputs);
  // The engine names the files it read; the inputs' own checks name the cached copies.
  if (inputs.ok() && !result.ok()) result = AsPlanned(result.status(), spec.inputs, planned);
  // While the heartbeats still hold the lease: the upload of a large file takes time.
  if (result.ok()) {
    if (absl::Status s = UploadWeights(run, &*result); !s.ok()) result = s;
  }
  progress.done.store(true);
  sleeper_->Wake();
  heartbeat.join();
  Report(run, result, progress);
}

absl::Status WorkerDaemon::CheckAssignment(const v1::RunAssignment& run) const {
  // The names become folders under --artifacts: "../x" or "a/b" from a coordinator
  // (hostile, or not this version) would write outside it.
  const auto check = [](const char* what, const std::string& name) {
    if (IsValidName(name)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        "the assignment's ", what, " name \"", absl::CHexEscape(name.substr(0, kMaxNameLength)),
        "\" is not a valid name (", kNameRule, "); this worker writes nothing for it"));
  };
  if (absl::Status s = check("experiment", run.experiment()); !s.ok()) return s;
  return check("arm", run.arm());
}

RunSpec WorkerDaemon::WorkerSpec(const v1::RunSpec& wire) const {
  RunSpec spec = FromProto(wire);
  if (spec.threads == 0) spec.threads = options_.threads;  // the plan leaves it to the worker
  return spec;
}

RunSpec WorkerDaemon::SpecFor(const v1::RunAssignment& run) const {
  RunSpec spec = WorkerSpec(run.spec());
  spec.resume_state = run.checkpoint();
  if (!spec.resume_state.empty()) {
    cli::LogLine(absl::StrCat("run ", Label(run), ": resuming from the checkpoint after epoch ",
                              run.checkpoint_epoch()));
  }
  if (spec.export_initial || spec.export_final || spec.export_every_epoch) {
    spec.export_dir = absl::StrCat(options_.artifacts, "/", run.experiment(), "/", run.arm(),
                                   "/run-", run.index());
  }
  return spec;
}

void WorkerDaemon::Heartbeats(const std::function<v1::HeartbeatRequest()>& request,
                              Progress* progress) {
  while (!sleeper_->SleepFor(heartbeat_interval_ms_, [progress] { return progress->done.load(); })) {
    v1::HeartbeatResponse resp;
    grpc::Status s = stub_->Heartbeat(Context().get(), request(), &resp);
    // Refused as not the holder: another worker has it (a localization's side is handed
    // on to the next worker under the same name, so no longer this one's).
    if ((s.ok() && !resp.lease_valid()) || s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      progress->lease_lost.store(true);
    }
  }
}

engine::Callbacks WorkerDaemon::CallbacksFor(const v1::RunAssignment& run, Progress* progress) {
  const std::string label = Label(run);
  engine::Callbacks callbacks;
  callbacks.on_batch = [progress](int e, int64_t b, int64_t n) {
    progress->epoch.store(e);
    progress->batch.store(b);
    progress->batches.store(n);
  };
  callbacks.on_epoch = [this, &run, progress, label](const EpochRecord& record) {
    auto req = AboutLease<v1::ReportEpochRequest>(options_.name, run);
    *req.mutable_epoch() = ToProto(record);
    v1::ReportEpochResponse resp;
    // Best effort: the completion carries every epoch again, so a lost report costs nothing.
    grpc::Status s = stub_->ReportEpoch(Context().get(), req, &resp);
    if (s.ok() && !resp.lease_valid()) progress->lease_lost.store(true);
    cli::LogLine(absl::StrCat("run ", label, " epoch ", record.epoch, ": loss ", record.loss,
                              ", val_accuracy ", record.val_accuracy, ", ", record.seconds, " s"));
  };
  callbacks.should_stop = [this, progress] { return Stopping() || progress->lease_lost.load(); };
  callbacks.on_checkpoint = [this, &run, label](int done_epoch, const std::string& state) {
    auto req = AboutLease<v1::SaveCheckpointRequest>(options_.name, run);
    req.set_epoch(done_epoch);
    req.set_state(state);
    v1::SaveCheckpointResponse resp;
    // Best effort: without it a retry starts from the beginning, which costs time only.
    grpc::Status s = stub_->SaveCheckpoint(Context().get(), req, &resp);
    cli::LogLine(s.ok() ? absl::StrCat("run ", label, ": checkpoint after epoch ", done_epoch,
                                       " saved (", state.size(), " bytes)")
                        : absl::StrCat("run ", label, ": checkpoint not saved: ", s.error_message()));
  };
  return callbacks;
}

absl::StatusOr<RunResult> WorkerDaemon::CallTrainer(const RunSpec& spec,
                                                    const engine::Callbacks& callbacks) {
  return daemon_internal::Catching<RunResult>("the trainer",
                                              [&] { return trainer_(spec, callbacks); });
}

void WorkerDaemon::Report(const v1::RunAssignment& run, const absl::StatusOr<RunResult>& result,
                          const Progress& progress) {
  if (result.ok()) {
    SendResult(run, *result);
  } else if (progress.lease_lost.load()) {
    cli::LogLine(absl::StrCat("run ", Label(run), " was taken back by the coordinator; dropped it"));
  } else if (Stopping()) {
    SendRelease(run, absl::StrCat("worker ", options_.name, " stopped during the run"));
  } else if (result.status().code() == absl::StatusCode::kFailedPrecondition) {
    // The engine's word for a reason of this worker's own (no CUDA, an artifacts folder
    // it cannot write): it would fail every run it takes within seconds, using up their
    // attempts. Hand the run back at no cost and stop taking runs.
    fatal_ = absl::StrCat("this worker cannot train runs: ", result.status().message());
    cli::LogLine(absl::StrCat("run ", Label(run), ": ", fatal_, "; handing it back"));
    SendRelease(run, absl::StrCat("worker ", options_.name, " cannot train it: ",
                                  result.status().message()));
  } else if (engine::IsPlanError(result.status())) {
    cli::LogLine(absl::StrCat("run ", Label(run), " failed for a reason of the plan's own, which "
                              "every run would meet: ", result.status().message()));
    SendFailure(run, std::string(result.status().message()), /*plan_error=*/true);
  } else {
    cli::LogLine(absl::StrCat("run ", Label(run), " failed: ", result.status().message()));
    SendFailure(run, std::string(result.status().message()));
  }
}

void WorkerDaemon::SendResult(const v1::RunAssignment& run, const RunResult& result) {
  auto req = AboutLease<v1::CompleteRequest>(options_.name, run);
  *req.mutable_result() = ToProto(result);
  Backoff backoff(options_.max_backoff_ms);
  // A finished run is hours of GPU time: resend until the coordinator has it, even
  // across a coordinator restart; only a signal (with the result logged) gives up.
  for (;;) {
    v1::CompleteResponse resp;
    grpc::Status s = stub_->Complete(Context().get(), req, &resp);
    if (s.ok()) {
      cli::LogLine(absl::StrCat("run ", Label(run), " done: ",
                                result.diverged.empty()
                                    ? absl::StrCat("test loss ", result.test_loss,
                                                   ", test accuracy ", result.test_accuracy)
                                    : result.diverged,
                                ", final hash ", result.final_hash,
                                resp.counted() ? "" : " (the run already had a result)"));
      return;
    }
    if (!Transient(s)) {
      cli::LogLine(absl::StrCat("result of run ", Label(run), " refused: ", Describe(s)));
      return;
    }
    if (Stopping() || TlsGivesUp(s)) {
      cli::LogLine(absl::StrCat("stopping with the result of run ", Label(run),
                                " unsent (final hash ", result.final_hash, ")"));
      return;
    }
    const int ms = backoff.Next();
    cli::LogLine(absl::StrCat("cannot send the result (", Why(s, options_), "); retrying in ",
                              ms, " ms"));
    Sleep(ms);
  }
}

void WorkerDaemon::SendRelease(const v1::RunAssignment& run, const std::string& reason) {
  auto req = AboutLease<v1::ReleaseRequest>(options_.name, run);
  req.set_reason(reason);
  v1::ReleaseResponse resp;
  grpc::Status s = stub_->Release(Context().get(), req, &resp);
  if (s.ok()) {
    cli::LogLine(absl::StrCat("handed run ", Label(run), " back to the coordinator"));
  } else {
    // The lease will expire and the run will be queued again anyway.
    cli::LogLine(absl::StrCat("cannot hand the run back: ", s.error_message()));
  }
}

void WorkerDaemon::SendFailure(const v1::RunAssignment& run, const std::string& error,
                               bool plan_error) {
  auto req = AboutLease<v1::FailRequest>(options_.name, run);
  req.set_error(error);
  req.set_plan_error(plan_error);
  v1::FailResponse resp;
  grpc::Status s = stub_->Fail(Context().get(), req, &resp);
  if (!s.ok()) {
    // The lease will expire and the run will be retried anyway.
    cli::LogLine(absl::StrCat("cannot report the failure: ", s.error_message()));
  }
}

}  // namespace repro
