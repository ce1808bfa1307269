// What the worker daemon's files (daemon.cc: its life and runs; daemon_blobs.cc: the
// files that travel) share: which call failures are worth waiting out, how they read in
// the log, and the backoff between tries. Not for use outside worker/.
//
// Thread safety: pure functions; a Backoff is used by one thread.
#ifndef REPRO_WORKER_DAEMON_INTERNAL_H_
#define REPRO_WORKER_DAEMON_INTERNAL_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/security.h"
#include "worker/daemon.h"

namespace repro::daemon_internal {

inline bool Transient(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
         s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

inline std::string Describe(const grpc::Status& s) {
  return absl::StrCat(s.error_message(), " (gRPC code ", static_cast<int>(s.error_code()), ")");
}

inline std::string Label(const v1::RunAssignment& run) { return absl::StrCat(run.arm(), "#", run.index()); }

// Why a call failed, for the log: the TLS mistake when there is one, else gRPC's words.
inline std::string Why(const grpc::Status& s, const WorkerOptions& options) {
  const std::string cause = TlsFailureCause(s, options.coordinator, options.tls);
  return cause.empty() ? s.error_message() : cause;
}

// What `call` (the trainer's or a replay's, `who`) returns, or what it threw as an
// INTERNAL error: the engine never throws, but an exception escaping the daemon would
// end the worker with its heartbeat thread running and its job neither answered nor
// handed back.
template <typename T, typename Call>
absl::StatusOr<T> Catching(const char* who, Call&& call) {
  try {
    return call();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(who, " threw: ", e.what()));
  } catch (...) {
    return absl::InternalError(absl::StrCat(who, " threw something that is not a std::exception"));
  }
}

// Waits between retries: 250 ms, doubling up to the maximum.
class Backoff {
 public:
  explicit Backoff(int max_ms) : max_ms_(max_ms) {}
  int Next() {
    const int ms = next_ms_;
    next_ms_ = std::min(next_ms_ * 2, max_ms_);
    return ms;
  }
  void Reset() { next_ms_ = kFirstMs; }

 private:
  static constexpr int kFirstMs = 250;
  int max_ms_;
  int next_ms_ = kFirstMs;
};

}  // namespace repro::daemon_internal

namespace repro {

// One run's (or localization's) progress, shared with its heartbeat thread.
struct WorkerDaemon::Progress {
  std::atomic<int> epoch{0};
  std::atomic<int64_t> batch{0}, batches{0};
  std::atomic<bool> lease_lost{false};  // a heartbeat was told the lease is over
  std::atomic<bool> done{false};        // the work returned: the heartbeats end
};

}  // namespace repro

#endif  // REPRO_WORKER_DAEMON_INTERNAL_H_
