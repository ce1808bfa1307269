#include "worker/scheduled_events.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace repro {
namespace {

constexpr size_t kMaxReply = 1 << 20;

// Closes a socket on every path out.
struct Socket {
  int fd = -1;
  ~Socket() {
    if (fd >= 0) close(fd);
  }
};

absl::Status WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return absl::DeadlineExceededError("timed out");
  pollfd p{fd, events, 0};
  const int r = poll(&p, 1, static_cast<int>(left.count()));
  if (r == 0) return absl::DeadlineExceededError("timed out");
  if (r < 0) return absl::UnavailableError(std::strerror(errno));
  return absl::OkStatus();
}

// Decodes a chunked transfer-encoded body.
absl::StatusOr<std::string> Unchunk(const std::string& body) {
  std::string out;
  size_t pos = 0;
  for (;;) {
    const size_t eol = body.find("\r\n", pos);
    if (eol == std::string::npos) return absl::DataLossError("malformed chunked body");
    const size_t size = std::strtoul(body.substr(pos, eol - pos).c_str(), nullptr, 16);
    pos = eol + 2;
    if (size == 0) return out;
    if (pos + size > body.size()) return absl::DataLossError("chunk runs past the reply");
    out.append(body, pos, size);
    pos += size + 2;
  }
}

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("\"", url, "\" is not an http:// URL"));
  }
  HttpUrl out;
  const std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  out.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    const std::string port = authority.substr(colon + 1);
    char* end = nullptr;
    const long value = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || value <= 0 || value > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("\"", url, "\" has a bad port"));
    }
    out.port = static_cast<int>(value);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return absl::InvalidArgumentError(absl::StrCat("\"", url, "\" has no host"));
  out.host = authority;
  return out;
}

absl::StatusOr<std::string> HttpGet(const HttpUrl& url,
                                    const std::vector<std::pair<std::string, std::string>>& headers,
                                    int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  if (int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", url.host, ": ", gai_strerror(rc)));
  }
  Socket sock;
  sock.fd = socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc = sock.fd < 0 ? -1 : connect(sock.fd, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  if (sock.fd < 0 || (rc < 0 && errno != EINPROGRESS)) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", url.host, ":", url.port, ": ",
                                               std::strerror(errno)));
  }
  if (absl::Status s = WaitFor(sock.fd, POLLOUT, deadline); !s.ok()) return s;
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(sock.fd, SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", url.host, ":", url.port, ": ",
                                               std::strerror(error)));
  }
  std::string request = absl::StrCat("GET ", url.path, " HTTP/1.1\r\nHost: ", url.host,
                                      "\r\nConnection: close\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  request += "\r\n";
  for (size_t sent = 0; sent < request.size();) {
    if (absl::Status s = WaitFor(sock.fd, POLLOUT, deadline); !s.ok()) return s;
    const ssize_t n = send(sock.fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) return absl::UnavailableError(std::strerror(errno));
    if (n > 0) sent += static_cast<size_t>(n);
  }
  std::string reply;
  char buffer[4096];
  for (;;) {
    if (absl::Status s = WaitFor(sock.fd, POLLIN, deadline); !s.ok()) return s;
    const ssize_t n = recv(sock.fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n < 0 && errno != EAGAIN) return absl::UnavailableError(std::strerror(errno));
    if (n > 0) reply.append(buffer, static_cast<size_t>(n));
    if (reply.size() > kMaxReply) return absl::ResourceExhaustedError("reply larger than 1 MiB");
  }
  const size_t head_end = reply.find("\r\n\r\n");
  if (head_end == std::string::npos || reply.compare(0, 5, "HTTP/") != 0) {
    return absl::DataLossError("malformed HTTP reply");
  }
  const std::string head = reply.substr(0, head_end);
  const size_t space = head.find(' ');
  const int status = space == std::string::npos ? 0 : std::atoi(head.c_str() + space + 1);
  std::string body = reply.substr(head_end + 4);
  std::string lower;
  for (char c : head) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.find("transfer-encoding: chunked") != std::string::npos) {
    auto unchunked = Unchunk(body);
    if (!unchunked.ok()) return unchunked.status();
    body = *unchunked;
  }
  if (status != 200) {
    return absl::UnavailableError(absl::StrCat("HTTP status ", status, " from ", url.host));
  }
  return body;
}

absl::StatusOr<std::optional<std::string>> EvictionNotice(const std::string& json) {
  const auto doc = nlohmann::json::parse(json, nullptr, false);
  if (!doc.is_object()) return absl::InvalidArgumentError("scheduled events: not a JSON object");
  const auto events = doc.find("Events");
  if (events == doc.end()) return std::optional<std::string>();
  if (!events->is_array()) return absl::InvalidArgumentError("scheduled events: Events is not a list");
  for (const auto& event : *events) {
    if (!event.is_object()) continue;
    const std::string type = event.value("EventType", "");
    if (type == "Preempt" || type == "Terminate" || type == "Reboot" || type == "Redeploy") {
      const std::string when = event.value("NotBefore", "");
      return std::optional<std::string>(
          absl::StrCat(type, when.empty() ? "" : absl::StrCat(" not before ", when)));
    }
  }
  return std::optional<std::string>();
}

PreemptionWatcher::PreemptionWatcher(HttpUrl url, int interval_ms, OnNotice on_notice, Log log)
    : url_(std::move(url)), interval_ms_(interval_ms), on_notice_(std::move(on_notice)),
      log_(std::move(log)) {
  thread_ = std::thread([this] { Loop(); });
}

void PreemptionWatcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PreemptionWatcher::Loop() {
  bool warned = false;
  for (;;) {
    auto body = HttpGet(url_, {{"Metadata", "true"}}, std::min(interval_ms_, 5000));
    if (body.ok()) {
      auto notice = EvictionNotice(*body);
      if (notice.ok() && notice->has_value()) {
        on_notice_(**notice);
        return;
      }
      if (!notice.ok()) log_(absl::StrCat("scheduled events: ", notice.status().message()));
      warned = false;
    } else if (!warned) {
      // Logged once per outage, not once per poll.
      log_(absl::StrCat("scheduled events endpoint not answering: ", body.status().message()));
      warned = true;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stopping_; })) {
      return;
    }
  }
}

}  // namespace repro
