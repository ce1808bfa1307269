// dispatch_bench: the load generator of bench/dispatch.sh. N worker clients, each a
// thread with its own gRPC channel (its own TCP connection, as separate worker
// processes would have) and stub, against a real coordinator serving a plan with
// `model: {kind: noop}`. Each client registers once, then loops: Lease; when it gets a
// run, Complete with the noop result (worker/engine/noop.h, what a real worker sends
// for such a run); when told to retry, waits as asked; when told the experiment has
// finished, stops. (A real worker also sends one ReportEpoch per epoch and a heartbeat
// every 2 s: with epochs: 1 that is one call more per run, left out here.) With
// --run-ms, each run takes that long (a sleep) between its Lease and its Complete: an
// open load, where latency is not just the queue that clients calling back to back make.
//
// Prints one JSON line: runs completed, the wall time from the first Lease to the last
// Complete, runs/s, and percentiles of the Lease and Complete latencies (client side,
// over loopback) in milliseconds, and the calls that failed.
//
//   dispatch_bench --coordinator 127.0.0.1:PORT --workers 64
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/security.h"
#include "proto/convert.h"
#include "repro/v1/repro.grpc.pb.h"
#include "worker/engine/noop.h"

namespace {

using Clock = std::chrono::steady_clock;

struct ClientStats {
  std::vector<double> lease_ms;     // Lease calls that returned a run
  std::vector<double> idle_ms;      // Lease calls that returned retry_after or finished
  std::vector<double> complete_ms;
  int64_t completed = 0;
  int64_t errors = 0;
  Clock::time_point last_complete{};
  std::string first_error;
};

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  repro::AttachToken(ctx.get(), token);
  return ctx;
}

void Worker(const std::string& target, const std::string& token, const std::string& name,
            int run_ms, std::atomic<int>* registered, const std::atomic<bool>* go,
            ClientStats* stats) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = repro::v1::WorkerService::NewStub(channel);
  repro::v1::RegisterRequest reg;
  reg.mutable_worker()->set_name(name);
  reg.mutable_worker()->set_host("dispatch-bench");
  reg.mutable_worker()->set_torch_version("none");
  reg.mutable_worker()->set_device("cpu");
  reg.mutable_worker()->set_threads(1);
  repro::v1::RegisterResponse reg_resp;
  grpc::Status s = stub->Register(Context(token).get(), reg, &reg_resp);
  registered->fetch_add(1);
  if (!s.ok()) {
    ++stats->errors;
    stats->first_error = absl::StrCat("Register: ", s.error_message());
    return;
  }
  while (!go->load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
  std::map<std::string, std::string> environment = {{"device", "cpu"}, {"host", "dispatch-bench"}};
  for (;;) {
    repro::v1::LeaseRequest lease;
    lease.set_worker(name);
    repro::v1::LeaseResponse lease_resp;
    const auto t0 = Clock::now();
    s = stub->Lease(Context(token).get(), lease, &lease_resp);
    const auto t1 = Clock::now();
    if (!s.ok()) {
      if (stats->first_error.empty()) stats->first_error = absl::StrCat("Lease: ", s.error_message());
      if (++stats->errors > 1000) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    if (lease_resp.has_run()) {
      stats->lease_ms.push_back(Ms(t0, t1));
      const repro::v1::RunAssignment& run = lease_resp.run();
      if (run_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(run_ms));
      repro::RunResult result = repro::engine::NoopResult(run.spec().epochs(), run.spec().lr());
      result.environment = environment;
      // Worker, run, lease and the lease's secret, as the worker daemon sends them.
      auto complete = repro::AboutLease<repro::v1::CompleteRequest>(name, run);
      *complete.mutable_result() = repro::ToProto(result);
      for (;;) {  // resent until the coordinator has it, as the worker does
        repro::v1::CompleteResponse complete_resp;
        const auto c0 = Clock::now();
        s = stub->Complete(Context(token).get(), complete, &complete_resp);
        const auto c1 = Clock::now();
        if (s.ok()) {
          stats->complete_ms.push_back(Ms(c0, c1));
          ++stats->completed;
          stats->last_complete = c1;
          break;
        }
        if (stats->first_error.empty()) stats->first_error = absl::StrCat("Complete: ", s.error_message());
        if (++stats->errors > 1000) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    } else {
      stats->idle_ms.push_back(Ms(t0, t1));
      if (lease_resp.finished()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::max(1, lease_resp.retry_after_ms())));
    }
  }
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

int Main(int argc, char** argv) {
  const std::vector<repro::cli::FlagSpec> flags = {
      {"coordinator", true, "HOST:PORT", "ADDR"},
      {"workers", true, "concurrent worker clients (default 64)", "N"},
      {"token", true, "the workers' token, if the coordinator wants one", "TOKEN"},
      {"run-ms", true, "how long each run takes before its Complete (default 0: at once)", "MS"},
  };
  auto args = repro::cli::Parse(argc, argv, flags);
  if (!args.ok() || !args->Has("coordinator")) {
    std::fputs(repro::cli::Usage("dispatch_bench --coordinator HOST:PORT [--workers N]", flags).c_str(),
               stderr);
    return 2;
  }
  const std::string target = args->Get("coordinator");
  const int workers = static_cast<int>(*args->GetInt("workers", 64, 1, 4096));
  const std::string token = args->Get("token");
  const int run_ms = static_cast<int>(*args->GetInt("run-ms", 0, 0, 3600000));
  std::vector<ClientStats> stats(static_cast<size_t>(workers));
  std::vector<std::thread> threads;
  std::atomic<int> registered{0};
  std::atomic<bool> go{false};
  for (int i = 0; i < workers; ++i) {
    threads.emplace_back(Worker, target, token, absl::StrCat("bench-", i), run_ms, &registered,
                         &go, &stats[static_cast<size_t>(i)]);
  }
  while (registered.load() < workers) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const auto start = Clock::now();
  go.store(true);
  for (auto& t : threads) t.join();
  ClientStats all;
  Clock::time_point last = start;
  for (ClientStats& s : stats) {
    all.lease_ms.insert(all.lease_ms.end(), s.lease_ms.begin(), s.lease_ms.end());
    all.idle_ms.insert(all.idle_ms.end(), s.idle_ms.begin(), s.idle_ms.end());
    all.complete_ms.insert(all.complete_ms.end(), s.complete_ms.begin(), s.complete_ms.end());
    all.completed += s.completed;
    all.errors += s.errors;
    if (s.completed > 0) last = std::max(last, s.last_complete);
    if (all.first_error.empty()) all.first_error = s.first_error;
  }
  const double seconds = std::chrono::duration<double>(last - start).count();
  std::printf(
      "{\"workers\":%d,\"run_ms\":%d,\"runs\":%lld,\"seconds\":%.3f,\"runs_per_second\":%.1f,"
      "\"lease_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
      "\"complete_ms\":{\"p50\":%.3f,\"p99\":%.3f},\"idle_leases\":%zu,\"errors\":%lld,"
      "\"first_error\":\"%s\"}\n",
      workers, run_ms, static_cast<long long>(all.completed), seconds,
      seconds > 0 ? static_cast<double>(all.completed) / seconds : 0.0,
      Percentile(all.lease_ms, 0.5), Percentile(all.lease_ms, 0.9), Percentile(all.lease_ms, 0.99),
      Percentile(all.lease_ms, 1.0), Percentile(all.complete_ms, 0.5),
      Percentile(all.complete_ms, 0.99), all.idle_ms.size(), static_cast<long long>(all.errors),
      all.first_error.c_str());
  return all.errors > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
