// Localization jobs (reproctl localize): both runs replayed on this worker under their
// own specs (worker/engine/localize.h), or one side of a pair replayed apart for one
// stage, its dump uploaded with PutBlob; the answer sent with CompleteLocalize.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "common/sha256.h"
#include "proto/convert.h"
#include "worker/daemon.h"
#include "worker/daemon_internal.h"

namespace repro {
namespace {

using daemon_internal::Backoff;
using daemon_internal::Catching;
using daemon_internal::Describe;
using daemon_internal::Transient;
using daemon_internal::Why;

}  // namespace

absl::StatusOr<RunSpec> WorkerDaemon::LocalizeSpec(const v1::RunSpec& wire) {
  RunSpec spec = WorkerSpec(wire);
  if (absl::Status s = FetchInputs(&spec, [this] { return Stopping(); }); !s.ok()) return s;
  if (absl::Status s = inputs_.Check(spec.inputs); !s.ok()) return s;
  return spec;
}

bool WorkerDaemon::HoldingJob(
    int64_t job_id, const std::string& secret, const std::string& side, const std::string& what,
    const std::function<void(const engine::Callbacks& callbacks)>& replay) {
  // Heartbeats hold the job while it is fetched and replayed, as a run's hold its lease.
  Progress progress;
  std::thread heartbeat([&] {
    Heartbeats(
        [&] {
          v1::HeartbeatRequest beat;
          beat.set_worker(options_.name);
          beat.set_localize_job_id(job_id);
          beat.set_job_secret(secret);
          beat.set_localize_side(side);
          return beat;
        },
        &progress);
  });
  engine::Callbacks callbacks;
  callbacks.should_stop = [this, &progress] { return Stopping() || progress.lease_lost.load(); };
  replay(callbacks);
  progress.done.store(true);
  sleeper_->Wake();
  heartbeat.join();
  if (Stopping()) {
    // Not answered: its lease expires and another worker takes it.
    cli::LogLine(absl::StrCat("stopping during ", what));
    return false;
  }
  if (progress.lease_lost.load()) {
    cli::LogLine(absl::StrCat(what, " was handed to another worker meanwhile; not answered"));
    return false;
  }
  return true;
}

void WorkerDaemon::Localize(const v1::LocalizeJob& job) {
  const std::string what = absl::StrCat("the localization of ", job.run_a(), " and ", job.run_b());
  cli::LogLine(absl::StrCat("replaying epoch ", job.epoch(), " of ", job.run_a(), " and ",
                            job.run_b(), " to find where they part"));
  absl::StatusOr<LocalizationResult> found = absl::UnknownError("not run");
  const bool answer = HoldingJob(job.job_id(), job.job_secret(), "", what,
                                 [&](const engine::Callbacks& callbacks) {
    absl::StatusOr<RunSpec> a = LocalizeSpec(job.spec_a());
    absl::StatusOr<RunSpec> b = a.ok() ? LocalizeSpec(job.spec_b()) : a;
    if (!a.ok() || !b.ok()) {
      found = a.ok() ? b.status() : a.status();
      return;
    }
    found = Catching<LocalizationResult>("the replay", [&] {
      return localizer_(engine::LocalizeRequest{*a, *b, job.epoch(), job.recorded_a(),
                                                job.recorded_b()},
                        callbacks);
    });
  });
  if (!answer) return;
  v1::CompleteLocalizeRequest req;
  req.set_worker(options_.name);
  req.set_job_id(job.job_id());
  req.set_job_secret(job.job_secret());
  if (found.ok()) {
    *req.mutable_result() = ToProto(*found);
    cli::LogLine(absl::StrFormat("%s: batch %d, op %s (%.2f s)", what, found->batch,
                                 found->op_name.empty() ? "-" : found->op_name, found->seconds));
  } else {
    req.set_error(std::string(found.status().message()));
    cli::LogLine(absl::StrCat(what, " failed: ", found.status().message()));
  }
  AnswerLocalize(req, what);
}

void WorkerDaemon::LocalizeSide(const v1::LocalizeSideJob& job) {
  const std::string what = absl::StrCat("side ", job.side(), " (", job.run(), ") of localization ",
                                        job.job_id(), ", stage ", job.stage());
  cli::LogLine(absl::StrCat("replaying epoch ", job.epoch(), " of ", job.run(), " for ", what));
  SideRequest request;
  request.epoch = job.epoch();
  if (job.trace_batch() >= 0) request.trace_batch = job.trace_batch();
  if (job.dump_op() >= 0) request.dump_op = job.dump_op();
  absl::StatusOr<SideReplay> replay = absl::UnknownError("not run");
  std::string dump_sha256;
  const bool answer = HoldingJob(job.job_id(), job.job_secret(), job.side(), what,
                                 [&](const engine::Callbacks& callbacks) {
    absl::StatusOr<RunSpec> spec = LocalizeSpec(job.spec());
    if (!spec.ok()) {
      replay = spec.status();
      return;
    }
    replay = Catching<SideReplay>(
        "the replay", [&] { return side_replayer_(*spec, request, callbacks); });
    if (replay.ok() && replay->dump) {
      // The dump goes up as a blob under this side's lease, while heartbeats still hold it.
      absl::StatusOr<std::string> sha = UploadDump(job, *replay->dump);
      if (sha.ok()) {
        dump_sha256 = *sha;
      } else {
        replay = sha.status();
      }
    }
  });
  if (!answer) return;
  v1::CompleteLocalizeRequest req;
  req.set_worker(options_.name);
  req.set_job_id(job.job_id());
  req.set_job_secret(job.job_secret());
  req.set_side(job.side());
  req.set_stage(job.stage());
  if (replay.ok()) {
    *req.mutable_replay() = ToProto(*replay, dump_sha256);
    cli::LogLine(absl::StrFormat("%s: %d batches replayed, %d ops traced%s (%.2f s)", what,
                                 replay->batch_hashes.size(), replay->trace.size(),
                                 dump_sha256.empty() ? "" : ", dump uploaded", replay->wall_seconds));
  } else {
    req.set_error(std::string(replay.status().message()));
    cli::LogLine(absl::StrCat(what, " failed: ", replay.status().message()));
  }
  AnswerLocalize(req, what);
}

absl::StatusOr<std::string> WorkerDaemon::UploadDump(const v1::LocalizeSideJob& job,
                                                     const OpOutputs& dump) {
  const std::string bytes = EncodeOpOutputs(dump);
  const std::filesystem::path dir = std::filesystem::path(options_.cache) / "dumps";
  const std::filesystem::path path = dir / absl::StrCat(job.job_id(), "-", job.side());
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
      return absl::InternalError(absl::StrCat("cannot write the dump to ", path.string()));
    }
  }
  absl::StatusOr<std::string> sha = Sha256OfFile(path.string());
  absl::Status sent = sha.status();
  if (sha.ok()) {
    v1::PutBlobRequest about;
    about.set_worker(options_.name);
    about.set_localize_job_id(job.job_id());
    about.set_localize_side(job.side());
    about.set_lease_secret(job.job_secret());
    sent = UploadBlob(about, absl::StrCat("the dump of ", dump.name, " for side ", job.side()),
                      path.string(), WeightsFile{"dump", *sha, static_cast<int64_t>(bytes.size())});
  }
  std::filesystem::remove(path, error);
  if (!sent.ok()) return sent;
  return *sha;
}

void WorkerDaemon::AnswerLocalize(const v1::CompleteLocalizeRequest& req, const std::string& what) {
  Backoff backoff(options_.max_backoff_ms);
  for (;;) {
    v1::CompleteLocalizeResponse resp;
    const grpc::Status s = stub_->CompleteLocalize(Context().get(), req, &resp);
    if (s.ok()) return;
    if (!Transient(s) || Stopping() || TlsGivesUp(s)) {
      cli::LogLine(absl::StrCat("the answer to ", what, " was not taken: ", Describe(s)));
      return;
    }
    const int ms = backoff.Next();
    cli::LogLine(absl::StrCat("cannot send the answer to ", what, " (", Why(s, options_),
                              "); retrying in ", ms, " ms"));
    Sleep(ms);
  }
}

}  // namespace repro
