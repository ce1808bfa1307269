#include "coordinator/handler_pool.h"

#include <chrono>
#include <utility>

namespace repro {

HandlerPool::HandlerPool(int threads) {
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

HandlerPool::~HandlerPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void HandlerPool::Run(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  tasks_.push_back(std::move(task));
}

bool HandlerPool::TryRun(std::function<void()> task, int max_waiting) {
  absl::MutexLock lock(&mu_);
  if (tasks_.size() >= static_cast<size_t>(max_waiting)) return false;
  tasks_.push_back(std::move(task));
  return true;
}

void HandlerPool::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](HandlerPool* p) ABSL_NO_THREAD_SAFETY_ANALYSIS { return p->stopping_ || !p->tasks_.empty(); },
          this));
      if (tasks_.empty()) return;  // stopping, nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

grpc::Status CallerGone(grpc::CallbackServerContext& ctx) {
  if (ctx.IsCancelled()) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "the caller cancelled the call");
  }
  if (ctx.deadline() <= std::chrono::system_clock::now()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "the call's deadline passed before it could be answered");
  }
  return grpc::Status::OK;
}

HandlerPool& HandlerPool::ForHandlers() {
  static HandlerPool* const pool = new HandlerPool(kHandlerThreads);  // never destroyed
  return *pool;
}

}  // namespace repro
