// Preemption notices. On Azure, a spot or scale-set VM learns of its coming eviction
// from the Instance Metadata Service's Scheduled Events endpoint (plain HTTP, header
// "Metadata: true"); the worker polls it when `--scheduled-events URL` is given and
// drains when a Preempt, Terminate, Reboot or Redeploy event appears. The endpoint is
// never assumed: the URL is always given, and tests serve a fake on 127.0.0.1.
//
// Thread safety: the free functions are thread-safe; a PreemptionWatcher owns one
// polling thread and may be stopped from any thread.
#ifndef REPRO_WORKER_SCHEDULED_EVENTS_H_
#define REPRO_WORKER_SCHEDULED_EVENTS_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace repro {

struct HttpUrl {
  std::string host;
  int port = 80;
  std::string path = "/";
};

// "http://HOST[:PORT]/PATH?QUERY" only; https and anything else is INVALID_ARGUMENT.
absl::StatusOr<HttpUrl> ParseHttpUrl(const std::string& url);

// One HTTP/1.1 GET with the given headers; the body of a 200 response, an error for
// anything else (status, refused connection, timeout, malformed reply).
absl::StatusOr<std::string> HttpGet(const HttpUrl& url,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    int timeout_ms);

// The Scheduled Events document ({"DocumentIncarnation": n, "Events": [...]}): a
// description of the first event that means this VM goes away ("Preempt at ...";
// Freeze events do not count), nullopt when there is none, an error for bad JSON.
absl::StatusOr<std::optional<std::string>> EvictionNotice(const std::string& json);

class PreemptionWatcher {
 public:
  using OnNotice = std::function<void(const std::string& notice)>;
  using Log = std::function<void(const std::string&)>;
  // Polls `url` every `interval_ms` until a notice (then calls on_notice once and
  // stops) or Stop(). Failed polls are logged and retried: no notice is not an error.
  PreemptionWatcher(HttpUrl url, int interval_ms, OnNotice on_notice, Log log);
  ~PreemptionWatcher() { Stop(); }
  void Stop();

 private:
  void Loop();
  HttpUrl url_;
  int interval_ms_;
  OnNotice on_notice_;
  Log log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace repro

#endif  // REPRO_WORKER_SCHEDULED_EVENTS_H_
