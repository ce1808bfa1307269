// A localization job (reproctl localize): both runs replayed on this worker under their
// own specs (worker/engine/localize.h), the answer sent with CompleteLocalize.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "proto/convert.h"
#include "worker/daemon.h"
#include "worker/daemon_internal.h"

namespace repro {
namespace {

using daemon_internal::Backoff;
using daemon_internal::Describe;
using daemon_internal::Transient;
using daemon_internal::Why;

int Known(const std::optional<bool>& value) { return value ? (*value ? 1 : 0) : -1; }

// What the engine found, as the wire carries it.
LocalizationResult ToRecord(const engine::Localization& l) {
  LocalizationResult out;
  out.epoch = l.epoch;
  out.batches = l.batches;
  out.batch = l.batch.value_or(-1);
  out.a_reproduced = Known(l.a_reproduced);
  out.b_reproduced = Known(l.b_reproduced);
  switch (l.op.kind) {
    case engine::OpDivergence::Kind::kNone: out.op_kind = "none"; break;
    case engine::OpDivergence::Kind::kOutputs: out.op_kind = "outputs"; break;
    case engine::OpDivergence::Kind::kOps: out.op_kind = "ops"; break;
  }
  out.op_index = l.op.index;
  out.op_name = l.op.name;
  out.op_name_b = l.op.name_b;
  out.op_module = l.op.module;
  out.op_phase = l.op.kind == engine::OpDivergence::Kind::kNone ? "" : engine::PhaseName(l.op.phase);
  out.inputs_equal = l.op.inputs_equal;
  out.differing_outputs = l.op.differing_outputs;
  if (l.difference) {
    out.values = l.difference->elements;
    out.differing_values = l.difference->differing;
    out.max_abs = l.difference->max_abs;
    out.max_ulps = l.difference->max_ulps;
  }
  out.trace_changed_nothing = l.trace_changed_nothing;
  out.trace_ops = l.trace_ops;
  out.trace_bytes = l.trace_bytes;
  out.replay_seconds = l.replay_seconds;
  out.step_seconds = l.step_seconds;
  out.traced_step_seconds = l.traced_step_seconds;
  out.seconds = l.seconds;
  return out;
}

}  // namespace

absl::StatusOr<RunSpec> WorkerDaemon::LocalizeSpec(const v1::RunSpec& wire) {
  RunSpec spec = WorkerSpec(wire);
  if (absl::Status s = FetchInputs(&spec, [this] { return Stopping(); }); !s.ok()) return s;
  if (absl::Status s = inputs_.Check(spec.inputs); !s.ok()) return s;
  return spec;
}

void WorkerDaemon::Localize(const v1::LocalizeJob& job) {
  const std::string what = absl::StrCat("the localization of ", job.run_a(), " and ", job.run_b());
  cli::LogLine(absl::StrCat("replaying epoch ", job.epoch(), " of ", job.run_a(), " and ",
                            job.run_b(), " to find where they part"));
  v1::CompleteLocalizeRequest req;
  req.set_worker(options_.name);
  req.set_job_id(job.job_id());
  req.set_job_secret(job.job_secret());
  absl::StatusOr<engine::Localization> found = absl::UnknownError("not run");
  // Heartbeats hold the job while it is fetched and replayed, as a run's hold its lease.
  Progress progress;
  std::thread heartbeat([&] {
    Heartbeats(
        [&] {
          v1::HeartbeatRequest beat;
          beat.set_worker(options_.name);
          beat.set_localize_job_id(job.job_id());
          beat.set_job_secret(job.job_secret());
          return beat;
        },
        &progress);
  });
  absl::StatusOr<RunSpec> a = LocalizeSpec(job.spec_a());
  absl::StatusOr<RunSpec> b = a.ok() ? LocalizeSpec(job.spec_b()) : a;
  if (!a.ok() || !b.ok()) {
    found = a.ok() ? b.status() : a.status();
  } else {
    try {
      found = localizer_(engine::LocalizeRequest{*a, *b, job.epoch(), job.recorded_a(),
                                                 job.recorded_b()});
    } catch (const std::exception& e) {
      found = absl::InternalError(absl::StrCat("the replay threw: ", e.what()));
    }
  }
  progress.done.store(true);
  sleeper_->Wake();
  heartbeat.join();
  if (Stopping()) {
    // Not answered: its lease expires and another worker takes it.
    cli::LogLine(absl::StrCat("stopping during ", what));
    return;
  }
  if (progress.lease_lost.load()) {
    cli::LogLine(absl::StrCat(what, " was handed to another worker meanwhile; not answered"));
    return;
  }
  if (found.ok()) {
    *req.mutable_result() = ToProto(ToRecord(*found));
    cli::LogLine(absl::StrFormat("%s: batch %d, op %s (%.2f s)", what, found->batch.value_or(-1),
                                 found->op.name.empty() ? "-" : found->op.name, found->seconds));
  } else {
    req.set_error(std::string(found.status().message()));
    cli::LogLine(absl::StrCat(what, " failed: ", found.status().message()));
  }
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
