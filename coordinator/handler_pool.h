// HandlerPool: a fixed set of threads that run the coordinator's RPC handlers, so that
// gRPC's own few callback threads never wait on SQLite. A handler that changes the
// store waits until its change is on disk (a group commit, group_commit.h); run on
// gRPC's threads, only as many changes as those threads (three or four) could share a
// commit, and every other call would queue behind the fsync. On this pool as many
// handlers as it has threads can wait together and share one commit, while gRPC keeps
// reading requests. Many workers still need no thread each: the pool's threads serve
// all of them.
//
// Work for a caller who has gone is not done: a handler first asks CallerGone, so that
// calls abandoned in the queue (cancelled, or past their deadline) cost nothing.
//
// Thread safety: thread-safe.
#ifndef REPRO_COORDINATOR_HANDLER_POOL_H_
#define REPRO_COORDINATOR_HANDLER_POOL_H_

#include <grpcpp/server_context.h>

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace repro {

class HandlerPool {
 public:
  explicit HandlerPool(int threads);
  // Runs what is queued, then joins the threads.
  ~HandlerPool();
  HandlerPool(const HandlerPool&) = delete;
  HandlerPool& operator=(const HandlerPool&) = delete;

  void Run(std::function<void()> task);
  // Runs `task` unless `max_waiting` tasks already wait for a thread; false then.
  bool TryRun(std::function<void()> task, int max_waiting);

  // The process's pool for RPC handlers (kHandlerThreads threads, started on first
  // use and never stopped: a coordinator serves until it exits).
  static HandlerPool& ForHandlers();
  static constexpr int kHandlerThreads = 64;

 private:
  void Loop();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

// OK while the call's caller still waits for the answer; CANCELLED when it cancelled the
// call (or went away), DEADLINE_EXCEEDED once its deadline has passed: then nothing is
// to be done for it.
grpc::Status CallerGone(grpc::CallbackServerContext& ctx);

}  // namespace repro

#endif  // REPRO_COORDINATOR_HANDLER_POOL_H_
