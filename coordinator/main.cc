// coordinator: reads an experiment plan, keeps it in SQLite, hands its runs to workers
// over gRPC, records their fingerprints and serves status and reports.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/plan.h"
#include "common/security.h"
#include "coordinator/local_workers.h"
#include "coordinator/progress.h"
#include "coordinator/service.h"
#include "store/status_view.h"
#include "store/store.h"
#include "data/dataset_check.h"

namespace repro {
namespace {

constexpr char kProgram[] = "coordinator";
std::atomic<int> g_signal{0};

void OnSignal(int sig) { g_signal.store(sig); }

const std::vector<cli::FlagSpec> kFlags = {
    {"plan", true, "experiment plan (YAML); optional when --db holds exactly one experiment", "PLAN.yaml"},
    {"db", true, "SQLite file of the experiment (default: EXPERIMENT.db here)", "PATH"},
    {"listen", true, "address to serve on (default 127.0.0.1:7070; port 0 picks a free one)", "HOST:PORT"},
    {"local-workers", true, "start N worker processes on this machine (default 0)", "N"},
    {"exit-when-done", false, "exit once every run is done or failed"},
    {"skip-data-check", false, "do not read the plan's dataset here (workers see other disks)"},
    {"heartbeat-ms", true, "heartbeat interval asked of workers (default 2000); leases expire after 3", "MS"},
    {"port-file", true, "write the port actually bound to this file (for scripts and tests)", "PATH"},
    {"token-file", true, "admin token: every call needs it or the worker token (default $REPRO_TOKEN)", "PATH"},
    {"worker-token-file", true, "a token for worker calls only (default $REPRO_WORKER_TOKEN)", "PATH"},
    {"tls-cert", true, "serve TLS with this PEM certificate", "PEM"},
    {"tls-key", true, "the certificate's PEM private key", "PEM"},
    {"tls-ca", true, "require client certificates signed by this PEM CA (mutual TLS)", "PEM"},
};

struct Options {
  std::string plan_path;
  std::string db_path;
  std::string listen = "127.0.0.1:7070";
  int local_workers = 0;
  bool exit_when_done = false;
  bool skip_data_check = false;
  int heartbeat_ms = 2000;
  std::string port_file;
  std::string admin_token;
  std::string worker_token;
  TlsFiles tls;
};

// A token from a file flag, else from an environment variable, else none.
absl::StatusOr<std::string> TokenFrom(const cli::ParsedArgs& args, const char* flag, const char* env) {
  if (args.Has(flag)) return ReadSecretFile(args.Get(flag));
  const char* value = std::getenv(env);
  return std::string(value != nullptr ? value : "");
}

absl::StatusOr<Options> ParseOptions(int argc, char** argv, bool* help) {
  auto args = cli::Parse(argc, argv, kFlags);
  if (!args.ok()) return args.status();
  *help = args->Has("help");
  if (!args->positional.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", args->positional[0],
                                                   "\" (flags start with --; see --help)"));
  }
  Options o;
  o.plan_path = args->Get("plan");
  o.db_path = args->Get("db");
  o.listen = args->Get("listen", o.listen);
  auto workers = args->GetInt("local-workers", 0, 0, 256);
  if (!workers.ok()) return workers.status();
  o.local_workers = static_cast<int>(*workers);
  auto heartbeat = args->GetInt("heartbeat-ms", 2000, 50, 600000);
  if (!heartbeat.ok()) return heartbeat.status();
  o.heartbeat_ms = static_cast<int>(*heartbeat);
  o.exit_when_done = args->Has("exit-when-done");
  o.skip_data_check = args->Has("skip-data-check");
  o.port_file = args->Get("port-file");
  auto admin = TokenFrom(*args, "token-file", "REPRO_TOKEN");
  if (!admin.ok()) return admin.status();
  o.admin_token = *admin;
  auto worker = TokenFrom(*args, "worker-token-file", "REPRO_WORKER_TOKEN");
  if (!worker.ok()) return worker.status();
  o.worker_token = *worker;
  if (!o.worker_token.empty() && o.admin_token.empty()) {
    return absl::InvalidArgumentError(
        "a worker token needs an admin token too (--token-file or REPRO_TOKEN), or nobody could read reports");
  }
  o.tls = TlsFiles{args->Get("tls-cert"), args->Get("tls-key"), args->Get("tls-ca")};
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  if (!IsLoopbackHost(host) && o.admin_token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen ", o.listen, " is reachable from other machines; give a token (--token-file or "
        "REPRO_TOKEN) so that only your workers can lease runs"));
  }
  if (o.plan_path.empty() && o.db_path.empty() && !*help) {
    return absl::InvalidArgumentError("give --plan PLAN.yaml (or --db PATH to resume a stored experiment)");
  }
  return o;
}

// The plan to run: from --plan, or the one stored in --db when --plan is left out.
absl::StatusOr<std::pair<Plan, std::string>> LoadPlan(const Options& o, RunStore* store) {
  if (!o.plan_path.empty()) {
    auto text = ReadPlanFile(o.plan_path);
    if (!text.ok()) return text.status();
    auto plan = ParsePlan(*text, o.plan_path);
    if (!plan.ok()) return plan.status();
    return std::make_pair(*plan, *text);
  }
  auto names = store->ExperimentNames();
  if (!names.ok()) return names.status();
  if (names->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.db_path, " holds ", names->size(), " experiments; name the one to run with --plan"));
  }
  auto text = store->PlanText(names->front());
  if (!text.ok()) return text.status();
  auto plan = ParsePlan(*text, o.db_path + " (stored plan)");
  if (!plan.ok()) return plan.status();
  return std::make_pair(*plan, *text);
}

int Run(int argc, char** argv) {
  bool help = false;
  auto options = ParseOptions(argc, argv, &help);
  if (!options.ok()) return cli::Fail(kProgram, std::string(options.status().message()), cli::kExitUsage);
  if (help) {
    std::fputs(cli::Usage("coordinator --plan PLAN.yaml [--db PATH] [--listen HOST:PORT] "
                          "[--local-workers N] [--exit-when-done]", kFlags).c_str(), stdout);
    return cli::kExitOk;
  }
  Options o = *options;

  // Validate everything before anything is written: the plan, then its data.
  Plan plan;
  std::string plan_text;
  if (!o.plan_path.empty()) {
    auto loaded = LoadPlan(o, nullptr);
    if (!loaded.ok()) return cli::Fail(kProgram, std::string(loaded.status().message()), cli::kExitUsage);
    std::tie(plan, plan_text) = *loaded;
    if (o.db_path.empty()) o.db_path = plan.experiment + ".db";
  } else if (access(o.db_path.c_str(), F_OK) != 0) {
    return cli::Fail(kProgram, absl::StrCat(o.db_path, ": no such database; give --plan to start an experiment"), cli::kExitUsage);
  }
  auto check_data = [&]() -> absl::Status {
    if (o.skip_data_check || plan.model.kind == "noop") return absl::OkStatus();  // noop reads no data
    absl::Status checked = data::CheckDataset(plan.dataset.kind, plan.dataset.path,
                                              plan.dataset.train_limit, plan.dataset.test_limit);
    if (checked.ok()) return checked;
    return absl::InvalidArgumentError(absl::StrCat(
        "plan ", o.plan_path.empty() ? o.db_path : o.plan_path, ": dataset: ", checked.message()));
  };
  // A new plan's data is checked before the database file is created.
  if (!o.plan_path.empty()) {
    if (absl::Status s = check_data(); !s.ok()) return cli::Fail(kProgram, std::string(s.message()), cli::kExitUsage);
  }
  auto store = RunStore::Open(o.db_path);
  if (!store.ok()) return cli::Fail(kProgram, std::string(store.status().message()), cli::kExitUsage);
  if (o.plan_path.empty()) {
    auto loaded = LoadPlan(o, store->get());
    if (!loaded.ok()) return cli::Fail(kProgram, std::string(loaded.status().message()), cli::kExitUsage);
    std::tie(plan, plan_text) = *loaded;
    if (absl::Status s = check_data(); !s.ok()) return cli::Fail(kProgram, std::string(s.message()), cli::kExitUsage);
  }
  auto created = (*store)->EnsureExperiment(plan, plan_text);
  if (!created.ok()) return cli::Fail(kProgram, std::string(created.status().message()), cli::kExitUsage);

  ProgressDisplay progress(stderr, isatty(STDERR_FILENO) && std::getenv("TERM") != nullptr &&
                                       std::string(std::getenv("TERM")) != "dumb");
  auto log = [&progress](const std::string& line) { progress.Log(line); };
  {
    auto counts = (*store)->Counts(plan.experiment);
    if (!counts.ok()) return cli::Fail(kProgram, std::string(counts.status().message()), cli::kExitError);
    if (*created) {
      log(absl::StrCat("experiment ", plan.experiment, ": ", counts->total(), " runs (",
                       plan.arms.size(), " arms x ", plan.runs, "), ", plan.epochs,
                       " epoch(s) each; store ", o.db_path));
    } else {
      log(absl::StrCat("resuming experiment ", plan.experiment, " from ", o.db_path, ": ",
                       counts->done, " done, ", counts->failed, " failed, ",
                       counts->pending + counts->running, " to run"));
    }
  }

  ServiceOptions service_options;
  service_options.heartbeat_interval_ms = o.heartbeat_ms;
  service_options.lease_ttl_ms = 3 * o.heartbeat_ms;
  CoordinatorService service(store->get(), plan, SystemClockMs, service_options, log,
                             Authenticator(o.admin_token, o.worker_token));
  auto credentials = MakeServerCredentials(o.tls);
  if (!credentials.ok()) return cli::Fail(kProgram, std::string(credentials.status().message()), cli::kExitUsage);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, *credentials, &port);
  builder.RegisterService(static_cast<v1::WorkerService::CallbackService*>(&service));
  builder.RegisterService(static_cast<v1::ControlService::CallbackService*>(&service));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return cli::Fail(kProgram, absl::StrCat("cannot listen on ", o.listen,
                                            " (address in use or not valid?)"), cli::kExitError);
  }
  for (const char* name : {"repro.v1.WorkerService", "repro.v1.ControlService"}) {
    server->GetHealthCheckService()->SetServingStatus(name, true);
  }
  const std::string host = o.listen.substr(0, o.listen.rfind(':'));
  const std::string address = absl::StrCat(host, ":", port);
  log(absl::StrCat("listening on ", address));
  if (!o.port_file.empty()) {
    std::FILE* f = std::fopen(o.port_file.c_str(), "w");
    if (f != nullptr) {
      std::fprintf(f, "%d\n", port);
      std::fclose(f);
    }
  }

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<LocalWorkers> local;
  if (o.local_workers > 0) {
    auto binary = FindWorkerBinary();
    if (!binary.ok()) return cli::Fail(kProgram, std::string(binary.status().message()), cli::kExitUsage);
    // Local workers dial this address with the coordinator's own secrets: the admin
    // token, and for TLS its CA (or its certificate, when self-signed) and, for mutual
    // TLS, its certificate and key.
    std::vector<std::string> extra;
    if (o.tls.enabled()) {
      extra = {"--tls-ca", o.tls.ca.empty() ? o.tls.cert : o.tls.ca};
      if (!o.tls.ca.empty()) extra.insert(extra.end(), {"--tls-cert", o.tls.cert, "--tls-key", o.tls.key});
    }
    if (!o.admin_token.empty()) setenv("REPRO_TOKEN", o.admin_token.c_str(), 1);
    local = std::make_unique<LocalWorkers>(*binary, address, o.db_path + ".", log, extra);
    if (absl::Status s = local->Start(o.local_workers); !s.ok()) {
      return cli::Fail(kProgram, std::string(s.message()), cli::kExitError);
    }
  }

  int exit_code = cli::kExitOk;
  auto last_show = std::chrono::steady_clock::time_point();
  for (;;) {
    if (int sig = g_signal.load(); sig != 0) {
      log(absl::StrCat("stopping on signal ", sig, "; finished results are kept in ", o.db_path,
                       " and the same command resumes the experiment"));
      // A service asked to stop has done its job; a run to the end that was cut short has
      // not (exit 1, so a script waiting for --exit-when-done notices).
      auto counts = (*store)->Counts(plan.experiment);
      const bool finished = counts.ok() && counts->finished();
      exit_code = o.exit_when_done && !finished ? cli::kExitError : cli::kExitOk;
      break;
    }
    service.ExpireLeases();
    if (local) local->Poll();
    auto counts = (*store)->Counts(plan.experiment);
    const auto now = std::chrono::steady_clock::now();
    const bool finished = counts.ok() && counts->finished();
    if (now - last_show > std::chrono::seconds(1) || finished) {
      last_show = now;
      if (auto status = BuildStatus(**store, plan.experiment); status.ok()) progress.Show(*status);
    }
    if (finished && o.exit_when_done) {
      progress.Finish();
      if (counts->failed > 0) {
        log(absl::StrCat("experiment ", plan.experiment, " finished with ", counts->failed,
                         " failed run(s); `reproctl --db ", o.db_path, " report --partial` lists why"));
        exit_code = cli::kExitError;
      } else {
        log(absl::StrCat("experiment ", plan.experiment, " finished: ", counts->done,
                         " runs done; `reproctl --db ", o.db_path, " report` shows the results"));
      }
      // Idle workers learn that the experiment finished on their next lease call.
      std::this_thread::sleep_for(std::chrono::milliseconds(2 * service_options.idle_retry_ms));
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  progress.Finish();
  if (local) local->StopAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return exit_code;
}

}  // namespace
}  // namespace repro

int main(int argc, char** argv) { return repro::Run(argc, argv); }
