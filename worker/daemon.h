// WorkerDaemon: the worker's life. Registers with the coordinator (name, host, LibTorch
// version, device, threads), leases runs one at a time, trains each with the engine,
// sends a heartbeat with progress and a record after every epoch, and completes or
// fails the run. When the coordinator is away it reconnects with exponential backoff,
// and a finished run's result is kept and resent until the coordinator takes it. What
// waiting cannot mend ends it with an error instead: a TLS mistake, and a reason of its
// own to fail runs (the engine's FAILED_PRECONDITION: no CUDA, an artifacts folder it
// cannot write), whose run it hands back at no cost. An assignment whose names would
// make no folder under --artifacts is failed, nothing written.
//
// Its seams, so that daemon_test drives it without processes, ports, LibTorch training
// or real waiting: the coordinator's stub (main.cc gives one on a real channel, tests
// one on a fake coordinator's in-process channel), the trainer (engine::TrainRun, or a
// test's lambda) and the Sleeper through which every pause goes.
//
// Thread safety: Run() on one thread; a heartbeat thread runs beside each training run.
// `stop` may be set from a signal handler.
#ifndef REPRO_WORKER_DAEMON_H_
#define REPRO_WORKER_DAEMON_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/records.h"
#include "common/run_spec.h"
#include "common/security.h"
#include "repro/v1/repro.grpc.pb.h"
#include "worker/blob_cache.h"
#include "worker/engine/engine.h"
#include "worker/engine/localize.h"
#include "worker/inputs.h"

namespace repro {

struct WorkerOptions {
  std::string coordinator;      // HOST:PORT, for the log (the stub is given)
  std::string name;             // unique per worker process
  int threads = 1;              // intra-op threads when a plan leaves them unset
  std::map<std::string, std::string> labels;  // --label KEY=VALUE, for placement
  std::string artifacts = "artifacts";  // exported weights go under DIR/experiment/arm/run-i
  bool stay = false;            // keep polling after the experiment finished
  // Azure Scheduled Events URL to poll for preemption notices; empty = none.
  std::string scheduled_events_url;
  int scheduled_events_interval_ms = 5000;
  std::string token;            // sent with every call ("" = none)
  TlsFiles tls;                 // the channel's TLS files, to explain a TLS failure
  int rpc_timeout_ms = 10000;   // deadline of every call (a blob's fetch: longer, by its size)
  // Where the runs' input files fetched from the coordinator (GetBlob) are kept, and how
  // many bytes of them at most (worker/blob_cache.h).
  std::string cache = "repro-cache";
  int64_t cache_max_bytes = BlobCache::kDefaultMaxBytes;
  int max_backoff_ms = 30000;
};

// Trains one run: engine::TrainRun in the worker. A trainer should not throw (the
// engine never does); one that does has its run failed with the exception's message.
using Trainer =
    std::function<absl::StatusOr<RunResult>(const RunSpec& spec, const engine::Callbacks& callbacks)>;

// Finds where two runs part (reproctl localize): engine::Localize in the worker. The
// callbacks' should_stop ends the replays early (the worker stops, or the job's lease
// was lost).
using Localizer = std::function<absl::StatusOr<LocalizationResult>(
    const engine::LocalizeRequest& request, const engine::Callbacks& callbacks)>;
// Replays one side of a localization for one stage: engine::ReplaySide in the worker.
using SideReplayer = std::function<absl::StatusOr<SideReplay>(
    const RunSpec& spec, const SideRequest& request, const engine::Callbacks& callbacks)>;

// Every pause of the daemon: the retry backoff, the wait between lease polls and the
// heartbeat interval. Tests give one that returns at once and records what was asked.
//
// Thread safety: SleepFor may be called from several threads at once.
class Sleeper {
 public:
  virtual ~Sleeper() = default;
  // Blocks until `wake()` is true or `ms` milliseconds have passed; returns wake().
  virtual bool SleepFor(int ms, const std::function<bool()>& wake) = 0;
  // Something a sleeping `wake` reads has changed: it is checked again now.
  virtual void Wake() = 0;
};

// The real one, on the steady clock. `wake` is also checked every 50 ms, for what cannot
// call Wake() (a signal handler's flag).
class SteadySleeper : public Sleeper {
 public:
  bool SleepFor(int ms, const std::function<bool()>& wake) override;
  void Wake() override;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

class WorkerDaemon {
 public:
  // `stub`: the coordinator's WorkerService. `sleeper` and `stop_signal` are not owned
  // and must outlive the daemon.
  WorkerDaemon(WorkerOptions options, std::unique_ptr<v1::WorkerService::StubInterface> stub,
               Trainer trainer, Sleeper* sleeper, const std::atomic<int>* stop_signal,
               Localizer localizer = engine::Localize,
               SideReplayer side_replayer = engine::ReplaySide);
  // Returns the process exit code: 0 when the experiment finished or a signal stopped it.
  int Run();

 private:
  struct Progress;  // a run's progress, shared with its heartbeat thread (daemon_internal.h)

  // How many failed connections in a row, each for a TLS reason, end the worker: a TLS
  // mistake does not mend by waiting, as a coordinator that is away does.
  static constexpr int kTlsAttempts = 5;

  bool Register();
  // Tells the coordinator this worker is leaving and why; one try, errors ignored.
  void Leave(const std::string& reason);
  // Leases runs and trains them until the experiment finishes or the worker stops.
  int LeaseLoop();
  // Trains one assignment and reports it (complete, fail, release or drop).
  void Train(const v1::RunAssignment& run);
  // Replays the two runs of a localization and sends its answer (daemon_localize.cc).
  void Localize(const v1::LocalizeJob& job);
  // Replays one side of a localization for one stage, uploads its dump (stage dump) and
  // sends its answer.
  void LocalizeSide(const v1::LocalizeSideJob& job);
  // Runs `replay` with heartbeats holding the job (`side` "" for a whole one); false when
  // the answer must not be sent: the worker is stopping or the job's lease was lost.
  // `replay` is given callbacks whose should_stop says so.
  bool HoldingJob(int64_t job_id, const std::string& secret, const std::string& side,
                  const std::string& what,
                  const std::function<void(const engine::Callbacks& callbacks)>& replay);
  // A side's dump, encoded (EncodeOpOutputs), uploaded as a blob under the side's lease;
  // its SHA-256.
  absl::StatusOr<std::string> UploadDump(const v1::LocalizeSideJob& job, const OpOutputs& dump);
  // Sends a localization's answer (or a side's), retrying while the coordinator is away.
  void AnswerLocalize(const v1::CompleteLocalizeRequest& req, const std::string& what);
  // A localization job's side as this worker trains it: its inputs fetched.
  absl::StatusOr<RunSpec> LocalizeSpec(const v1::RunSpec& wire);
  RunSpec SpecFor(const v1::RunAssignment& run) const;
  // A spec from the wire with what the plan leaves to this worker filled in (threads).
  RunSpec WorkerSpec(const v1::RunSpec& wire) const;
  // Makes every input of `spec` a file in the cache, fetching the missing ones from the
  // coordinator (transient failures retried with backoff, a partial fetch resumed), and
  // points spec->inputs at them. FAILED_PRECONDITION (this worker's own reason) when a
  // fetch is refused or its bytes do not hash to the name; CANCELLED when `stop` ends it.
  absl::Status FetchInputs(RunSpec* spec, const std::function<bool()>& stop);
  // One blob into the cache (FetchInputs).
  absl::Status FetchBlob(const InputFile& input, const std::function<bool()>& stop);
  // One GetBlob call from blob.offset(), appending what arrives; `wrong` says what the
  // coordinator sent that does not fit (then the call is cancelled). DATA_LOSS: this
  // side could not write.
  grpc::Status StreamBlob(const InputFile& input, PartialBlob& blob,
                          const std::function<bool()>& stop, std::string* wrong);
  // Uploads the files the run exported (PutBlob) and names them in result->weights, so
  // that the result names blobs of the coordinator's store, not paths here; transient
  // failures are retried as for the result itself. A file over the coordinator's limit
  // is the plan's error (engine::IsPlanError); CANCELLED when the worker stops meanwhile.
  absl::Status UploadWeights(const v1::RunAssignment& run, RunResult* result);
  // One file, `what` in words, under the lease `about` names (a run's, or a
  // localization side's), retried until it is taken or refused.
  absl::Status UploadBlob(const v1::PutBlobRequest& about, const std::string& what,
                          const std::string& path, const WeightsFile& file);
  // One PutBlob call with the whole file; DATA_LOSS when it cannot be read here.
  grpc::Status SendBlob(const v1::PutBlobRequest& about, const std::string& path,
                        const WeightsFile& file);
  static constexpr size_t kUploadPieceBytes = 1 << 20;  // the coordinator's most per piece
  engine::Callbacks CallbacksFor(const v1::RunAssignment& run, Progress* progress);
  // Sends request() every heartbeat interval until progress->done; sets lease_lost when
  // the coordinator answers that the lease is over.
  void Heartbeats(const std::function<v1::HeartbeatRequest()>& request, Progress* progress);
  // The trainer's answer, with an exception it throws turned into an error.
  absl::StatusOr<RunResult> CallTrainer(const RunSpec& spec, const engine::Callbacks& callbacks);
  void Report(const v1::RunAssignment& run, const absl::StatusOr<RunResult>& result,
              const Progress& progress);
  void SendResult(const v1::RunAssignment& run, const RunResult& result);
  // `plan_error`: the error is the plan's own (engine::IsPlanError).
  void SendFailure(const v1::RunAssignment& run, const std::string& error, bool plan_error = false);
  void SendRelease(const v1::RunAssignment& run, const std::string& reason);
  // Refuses an assignment whose names would not make a folder under --artifacts.
  absl::Status CheckAssignment(const v1::RunAssignment& run) const;
  // After a call failed to connect: true once TLS has been the reason kTlsAttempts
  // times in a row (the reason is then in `fatal_`); resets on any other failure.
  bool TlsGivesUp(const grpc::Status& s);
  // A signal or a preemption notice: finish nothing new, hand the current run back.
  bool Stopping() const { return stop_signal_->load() != 0 || drain_.load(); }
  // Sleeps up to ms, waking early on a stop signal.
  void Sleep(int ms) const;
  std::unique_ptr<grpc::ClientContext> Context() const;

  WorkerOptions options_;
  std::unique_ptr<v1::WorkerService::StubInterface> stub_;
  Trainer trainer_;
  Localizer localizer_;
  SideReplayer side_replayer_;
  InputCheck inputs_;  // the run's files against the plan's hashes, before training
  BlobCache cache_;    // the run's files, fetched from the coordinator
  Sleeper* sleeper_;
  const std::atomic<int>* stop_signal_;
  int heartbeat_interval_ms_ = 2000;
  std::atomic<bool> drain_{false};
  int tls_failures_ = 0;  // connections failed for a TLS reason in a row
  // Why this worker stops taking runs and exits with an error: its TLS set-up, or a
  // reason of its own to fail runs (no CUDA, an artifacts folder it cannot write).
  std::string fatal_;
};

}  // namespace repro

#endif  // REPRO_WORKER_DAEMON_H_
