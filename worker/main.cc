// worker: a daemon that trains the runs a coordinator hands it (one per GPU or machine).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/names.h"
#include "common/security.h"
#include "worker/daemon.h"
#include "worker/engine/engine.h"
#include "worker/scheduled_events.h"
#include "worker/slots.h"

namespace {

constexpr char kProgram[] = "worker";
std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal.store(sig); }

const std::vector<repro::cli::FlagSpec> kFlags = {
    {"coordinator", true, "coordinator address (default $REPRO_COORDINATOR)", "HOST:PORT"},
    {"name", true, "worker name, unique per process (default HOST-PID)", "NAME"},
    {"slots", true, "train N runs at once, each in its own process named NAME:1..NAME:N (default 1)", "N"},
    {"threads", true, "intra-op threads when the plan leaves them unset (default: all cores, / N with --slots)", "N"},
    {"label", true, "a label for placement (an arm's placement.labels); repeat for more", "KEY=VALUE"},
    {"artifacts", true, "folder for exported weights (default ./artifacts)", "DIR"},
    {"cache", true, "folder for the runs' input files fetched from the coordinator (default ./repro-cache)", "DIR"},
    {"cache-max-bytes", true, "keep at most this many bytes there, least recently used deleted first (default 20 GiB)", "BYTES"},
    {"stay", false, "keep waiting for runs after the experiment finished"},
    {"token-file", true, "the coordinator's token (default $REPRO_TOKEN)", "PATH"},
    {"tls-ca", true, "connect with TLS, verifying the coordinator with this PEM CA", "PEM"},
    {"tls-cert", true, "client certificate for mutual TLS", "PEM"},
    {"tls-key", true, "its PEM private key", "PEM"},
    {"scheduled-events", true, "poll this Azure Scheduled Events URL and drain on a preemption notice", "URL"},
    {"scheduled-events-interval-ms", true, "how often to poll it (default 5000)", "MS"},
};

// The channel to the coordinator, with keepalive both ways and room for a checkpoint.
std::shared_ptr<grpc::Channel> CoordinatorChannel(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Reconnect promptly after the coordinator comes back, rather than gRPC's default of
  // up to two minutes between connection attempts.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);  // an assignment may carry a checkpoint
  if (!credentials) credentials = grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(address, credentials, args);
}

int Run(int argc, char** argv) {
  namespace cli = repro::cli;
  auto args = cli::Parse(argc, argv, kFlags);
  if (!args.ok()) return cli::Fail(kProgram, std::string(args.status().message()), cli::kExitUsage);
  if (args->Has("help")) {
    std::fputs(cli::Usage("worker --coordinator HOST:PORT [--name NAME] [--slots N] [--threads N] [--label KEY=VALUE]... [--artifacts DIR] [--cache DIR] [--stay]", kFlags).c_str(), stdout);
    return cli::kExitOk;
  }
  if (!args->positional.empty()) {
    return cli::Fail(kProgram, absl::StrCat("unexpected argument \"", args->positional[0], "\""), cli::kExitUsage);
  }
  repro::WorkerOptions options;
  const char* env = std::getenv("REPRO_COORDINATOR");
  options.coordinator = args->Get("coordinator", env != nullptr ? env : "");
  if (options.coordinator.empty()) {
    return cli::Fail(kProgram, "give --coordinator HOST:PORT or set REPRO_COORDINATOR", cli::kExitUsage);
  }
  std::string slot_error;
  const std::optional<repro::Slot> slot = repro::SlotFromEnvironment(&slot_error);
  if (!slot_error.empty()) return cli::Fail(kProgram, slot_error, cli::kExitUsage);
  auto slots = args->GetInt("slots", 1, 1, 64);
  if (!slots.ok()) return cli::Fail(kProgram, std::string(slots.status().message()), cli::kExitUsage);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  // A slot's default name is its supervisor's, so that all slots share one.
  options.name = args->Get("name", absl::StrCat(host, "-", slot ? getppid() : getpid()));
  if (slot) options.name = repro::SlotName(options.name, *slot);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int per_slot = std::max(1, cores / (slot ? slot->count : static_cast<int>(*slots)));
  auto threads = args->GetInt("threads", per_slot, 1, 1024);
  if (!threads.ok()) return cli::Fail(kProgram, std::string(threads.status().message()), cli::kExitUsage);
  options.threads = static_cast<int>(*threads);
  for (const std::string& label : args->GetAll("label")) {
    const size_t eq = label.find('=');
    const std::string key = label.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : label.substr(eq + 1);
    if (!repro::IsValidName(key) || !repro::IsValidLabelValue(value)) {
      return cli::Fail(kProgram, absl::StrCat("--label ", label, ": expected KEY=VALUE, the key ",
                                              repro::kNameRule, ", the value ",
                                              repro::kLabelValueRule), cli::kExitUsage);
    }
    if (!options.labels.emplace(key, value).second) {
      return cli::Fail(kProgram, absl::StrCat("--label ", key, " given twice"), cli::kExitUsage);
    }
  }
  options.stay = args->Has("stay");
  options.artifacts = args->Get("artifacts", "artifacts");
  options.cache = args->Get("cache", "repro-cache");
  auto cache_max = args->GetInt("cache-max-bytes", repro::BlobCache::kDefaultMaxBytes, 0,
                                int64_t{1} << 56);
  if (!cache_max.ok()) return cli::Fail(kProgram, std::string(cache_max.status().message()), cli::kExitUsage);
  options.cache_max_bytes = *cache_max;
  auto token = repro::ClientToken(args->Get("token-file"));
  if (!token.ok()) return cli::Fail(kProgram, std::string(token.status().message()), cli::kExitUsage);
  options.token = *token;
  options.tls = {args->Get("tls-cert"), args->Get("tls-key"), args->Get("tls-ca")};
  auto credentials = repro::MakeChannelCredentials(options.tls);
  if (!credentials.ok()) return cli::Fail(kProgram, std::string(credentials.status().message()), cli::kExitUsage);
  options.scheduled_events_url = args->Get("scheduled-events");
  auto interval = args->GetInt("scheduled-events-interval-ms", 5000, 100, 3600000);
  if (!interval.ok()) return cli::Fail(kProgram, std::string(interval.status().message()), cli::kExitUsage);
  options.scheduled_events_interval_ms = static_cast<int>(*interval);
  if (!options.scheduled_events_url.empty()) {
    if (auto url = repro::ParseHttpUrl(options.scheduled_events_url); !url.ok()) {
      return cli::Fail(kProgram, absl::StrCat("--scheduled-events: ", url.status().message()), cli::kExitUsage);
    }
  }
  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGPIPE, SIG_IGN);
  if (!slot && *slots > 1) return repro::RunSlots(argv, static_cast<int>(*slots), &g_signal);
  repro::SteadySleeper sleeper;
  repro::WorkerDaemon daemon(
      options, repro::v1::WorkerService::NewStub(CoordinatorChannel(options.coordinator, *credentials)),
      repro::engine::TrainRun, &sleeper, &g_signal);
  return daemon.Run();
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
