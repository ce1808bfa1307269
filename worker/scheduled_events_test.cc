#include "worker/scheduled_events.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "absl/strings/match.h"
#include "tests/fake_http.h"

namespace repro {
namespace {

using namespace std::chrono_literals;
using testing::FakeEndpoint;

constexpr char kNoEvents[] = R"({"DocumentIncarnation": 1, "Events": []})";
constexpr char kPreempt[] = R"({"DocumentIncarnation": 2, "Events": [
  {"EventId": "A1", "EventType": "Freeze", "NotBefore": ""},
  {"EventId": "B2", "EventType": "Preempt", "ResourceType": "VirtualMachine",
   "Resources": ["worker_3"], "EventStatus": "Scheduled",
   "NotBefore": "Mon, 19 Sep 2016 18:29:47 GMT"}]})";

TEST(ScheduledEventsTest, ParsesUrls) {
  auto url = ParseHttpUrl("http://127.0.0.1:8080/metadata/scheduledevents?api-version=2020-07-01");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(url->path, "/metadata/scheduledevents?api-version=2020-07-01");
  EXPECT_FALSE(ParseHttpUrl("https://127.0.0.1/").ok());
  EXPECT_FALSE(ParseHttpUrl("http://127.0.0.1:99999/").ok());
}

TEST(ScheduledEventsTest, OnlyEventsThatEndTheVmCount) {
  EXPECT_FALSE(EvictionNotice(kNoEvents)->has_value());
  EXPECT_FALSE(EvictionNotice(R"({"Events": [{"EventType": "Freeze"}]})")->has_value());
  auto notice = EvictionNotice(kPreempt);
  ASSERT_TRUE(notice.ok() && notice->has_value());
  EXPECT_EQ(**notice, "Preempt not before Mon, 19 Sep 2016 18:29:47 GMT");
  EXPECT_FALSE(EvictionNotice("not json").ok());
}

TEST(ScheduledEventsTest, GetsTheDocumentWithTheMetadataHeader) {
  FakeEndpoint endpoint(kNoEvents);
  auto body = HttpGet({"127.0.0.1", endpoint.port(), "/metadata/scheduledevents"},
                      {{"Metadata", "true"}}, 2000);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, kNoEvents);
  EXPECT_EQ(endpoint.metadata_requests(), 1);
}

TEST(ScheduledEventsTest, AnUnreachableEndpointIsAnErrorNotAHang) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nothing listens on this port now
  auto body = HttpGet({"127.0.0.1", ntohs(addr.sin_port), "/"}, {}, 2000);
  EXPECT_FALSE(body.ok());
}

TEST(ScheduledEventsTest, TheWatcherCallsBackOnceWhenAPreemptionIsAnnounced) {
  FakeEndpoint endpoint(kNoEvents);
  std::atomic<int> notices{0};
  std::string seen;
  std::mutex mu;
  PreemptionWatcher watcher({"127.0.0.1", endpoint.port(), "/"}, 50,
                            [&](const std::string& notice) {
                              std::lock_guard<std::mutex> lock(mu);
                              seen = notice;
                              ++notices;
                            },
                            [](const std::string&) {});
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(notices.load(), 0);
  endpoint.set_body(kPreempt);
  for (int i = 0; i < 200 && notices.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(notices.load(), 1);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_TRUE(absl::StartsWith(seen, "Preempt")) << seen;
}

}  // namespace
}  // namespace repro
