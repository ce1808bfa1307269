// WorkerDaemon: the worker's life. Registers with the coordinator (name, host, LibTorch
// version, device, threads), leases runs one at a time, trains each with the engine,
// sends a heartbeat with progress and a record after every epoch, and completes or
// fails the run. When the coordinator is away it reconnects with exponential backoff,
// and a finished run's result is kept and resent until the coordinator takes it.
//
// Thread safety: Run() on one thread; a heartbeat thread runs beside each training run.
// `stop` may be set from a signal handler.
#ifndef REPRO_WORKER_DAEMON_H_
#define REPRO_WORKER_DAEMON_H_

#include <atomic>
#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>

#include "repro/v1/repro.grpc.pb.h"
#include "worker/engine/engine.h"

namespace repro {

struct WorkerOptions {
  std::string coordinator;      // HOST:PORT
  std::string name;             // unique per worker process
  int threads = 1;              // intra-op threads when a plan leaves them unset
  std::string artifacts = "artifacts";  // exported weights go under DIR/experiment/arm/run-i
  bool stay = false;            // keep polling after the experiment finished
  // Azure Scheduled Events URL to poll for preemption notices; empty = none.
  std::string scheduled_events_url;
  int scheduled_events_interval_ms = 5000;
  std::string token;            // sent with every call ("" = none)
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // TLS or insecure
  int rpc_timeout_ms = 10000;   // deadline of every call
  int max_backoff_ms = 30000;
};

class WorkerDaemon {
 public:
  WorkerDaemon(WorkerOptions options, const std::atomic<int>* stop_signal);
  // Returns the process exit code: 0 when the experiment finished or a signal stopped it.
  int Run();

 private:
  bool Register();
  // Trains one assignment and reports it; returns false when the worker should stop.
  void Train(const v1::RunAssignment& run);
  void SendResult(const v1::RunAssignment& run, const RunResult& result);
  void SendFailure(const v1::RunAssignment& run, const std::string& error);
  void SendRelease(const v1::RunAssignment& run, const std::string& reason);
  // A signal or a preemption notice: finish nothing new, hand the current run back.
  bool Stopping() const { return stop_signal_->load() != 0 || drain_.load(); }
  // Sleeps up to ms, waking early on a stop signal.
  void Sleep(int ms) const;
  std::unique_ptr<grpc::ClientContext> Context() const;

  WorkerOptions options_;
  const std::atomic<int>* stop_signal_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  int heartbeat_interval_ms_ = 2000;
  std::atomic<bool> drain_{false};
};

}  // namespace repro

#endif  // REPRO_WORKER_DAEMON_H_
