// A fake HTTP endpoint on 127.0.0.1 for tests: answers every GET with a settable JSON
// body and counts the requests that carried "Metadata: true", as Azure's Instance
// Metadata Service requires. Tests never contact a real metadata address.
//
// Thread safety: set_body and the counters may be used from any thread.
#ifndef REPRO_TESTS_FAKE_HTTP_H_
#define REPRO_TESTS_FAKE_HTTP_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

namespace repro::testing {

class FakeEndpoint {
 public:
  explicit FakeEndpoint(std::string body) : body_(std::move(body)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(fd_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeEndpoint() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int metadata_requests() const { return metadata_requests_; }
  void set_body(std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = std::move(body);
  }

 private:
  void Serve() {
    while (!stop_) {
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      char buf[4096];
      const ssize_t n = recv(client, buf, sizeof buf, 0);
      if (n > 0 && std::string(buf, n).find("Metadata: true") != std::string::npos) ++metadata_requests_;
      std::string body;
      {
        std::lock_guard<std::mutex> lock(mu_);
        body = body_;
      }
      const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
      send(client, reply.data(), reply.size(), MSG_NOSIGNAL);
      close(client);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> metadata_requests_{0};
  std::mutex mu_;
  std::string body_;
  std::thread thread_;
};

}  // namespace repro::testing

#endif  // REPRO_TESTS_FAKE_HTTP_H_
