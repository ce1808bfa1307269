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
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/cli.h"
#include "common/plan.h"
#include "common/plan_files.h"
#include "common/security.h"
#include "common/status_macros.h"
#include "coordinator/local_workers.h"
#include "coordinator/progress.h"
#include "coordinator/service.h"
#include "coordinator/token_gate.h"
#include "data/dataset_check.h"
#include "store/blobs.h"
#include "store/status_view.h"
#include "store/store.h"

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
    {"max-upload-bytes", true, "largest weights file a worker may upload (default 16 GiB)", "N"},
};

struct Options {
  std::string plan_path;
  std::string db_path;
  std::string listen = "127.0.0.1:7070";
  int local_workers = 0;
  bool exit_when_done = false;
  bool skip_data_check = false;
  int heartbeat_ms = 2000;
  int64_t max_upload_bytes = ServiceOptions().max_upload_bytes;
  std::string port_file;
  std::string admin_token;
  std::string worker_token;
  TlsFiles tls;
};

// The host part of --listen HOST:PORT.
std::string ListenHost(const Options& o) { return o.listen.substr(0, o.listen.rfind(':')); }

// A token from a file flag, else from an environment variable, else none; trimmed as
// the workers' copy is, or local workers would be locked out by a final newline.
absl::StatusOr<std::string> TokenFrom(const cli::ParsedArgs& args, const char* flag, const char* env) {
  if (args.Has(flag)) return ReadSecretFile(args.Get(flag));
  return TokenFromEnv(env);
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
  auto upload = args->GetInt("max-upload-bytes", o.max_upload_bytes, 1, int64_t{1} << 50);
  if (!upload.ok()) return upload.status();
  o.max_upload_bytes = *upload;
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
  if (!IsLoopbackHost(ListenHost(o)) && o.admin_token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen ", o.listen, " is reachable from other machines; give a token (--token-file or "
        "REPRO_TOKEN) so that only your workers can lease runs"));
  }
  if (o.plan_path.empty() && o.db_path.empty() && !*help) {
    return absl::InvalidArgumentError("give --plan PLAN.yaml (or --db PATH to resume a stored experiment)");
  }
  return o;
}

// The folder of `path` (".", for a bare file name).
std::string FolderOf(const std::string& path) {
  const std::string folder = std::filesystem::path(path).parent_path().string();
  return folder.empty() ? "." : folder;
}

// The plan's input files resolved (common/plan_files.h), errors naming the plan.
absl::StatusOr<std::pair<Plan, std::string>> WithFiles(absl::StatusOr<Plan> plan, std::string text,
                                                       const std::string& source,
                                                       const std::string& folder,
                                                       const CopyOfInput& copy_of = nullptr) {
  if (!plan.ok()) return plan.status();
  if (absl::Status s = ResolvePlanFiles(folder, &*plan, copy_of); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", s.message()));
  }
  return std::make_pair(*std::move(plan), std::move(text));
}

// The plan to run: from --plan, or the one stored in --db when --plan is left out. Its
// files are found relative to the plan file's folder, or for a stored plan to the
// database's.
absl::StatusOr<std::pair<Plan, std::string>> LoadPlan(const Options& o, RunStore* store) {
  if (!o.plan_path.empty()) {
    auto text = ReadPlanFile(o.plan_path);
    if (!text.ok()) return text.status();
    return WithFiles(ParsePlan(*text, o.plan_path), *text, o.plan_path, FolderOf(o.plan_path));
  }
  auto names = store->ExperimentNames();
  if (!names.ok()) return names.status();
  if (names->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.db_path, " holds ", names->size(), " experiments; name the one to run with --plan"));
  }
  auto text = store->PlanText(names->front());
  if (!text.ok()) return text.status();
  auto canonical = store->CanonicalPlanText(names->front());
  if (!canonical.ok()) return canonical.status();
  // A file gone from where the plan named it (a coordinator restarted on another
  // machine with its database and blob store) is read from the store's copy of it.
  const std::vector<InputFile> recorded = InputsOfCanonicalPlan(*canonical);
  const BlobStore blobs(BlobStore::RootFor(o.db_path));
  const CopyOfInput copy_of = [&](const std::string& role) -> std::string {
    for (const InputFile& file : recorded) {
      absl::StatusOr<int64_t> size = blobs.SizeOf(file.sha256);
      if (file.role == role && size.ok() && *size == file.size) {
        cli::LogLine(absl::StrCat(PlanKeyOfRole(role), ": not at the stored plan's path; using "
                                  "the blob store's copy (sha256 ", file.sha256, ")"));
        return blobs.PathOf(file.sha256);
      }
    }
    return "";
  };
  const std::string source = o.db_path + " (stored plan)";
  return WithFiles(ParsePlan(*text, source), *text, source, FolderOf(o.db_path), copy_of);
}

// Prints "coordinator: <what failed>" and returns `exit_code`, for `return Fail(...)`.
int Fail(const absl::Status& status, int exit_code) {
  return cli::Fail(kProgram, std::string(status.message()), exit_code);
}

void PrintUsage() {
  std::fputs(cli::Usage("coordinator --plan PLAN.yaml [--db PATH] [--listen HOST:PORT] "
                        "[--local-workers N] [--exit-when-done]", kFlags).c_str(), stdout);
}

// Checks the plan's data and sets `sizes` to its splits as a run reads them; without
// the check, to the plan's limits (0, not known, where it sets none).
// Kind arrays: the files of plan.inputs by role (absolute by now, ResolvePlanFiles), of
// which only the x files' headers and the y files' labels are read; its classes are
// not known without the check (0).
absl::Status CheckPlanData(const Options& o, const Plan& plan, data::DatasetSizes* sizes) {
  const bool arrays = plan.dataset.kind == "arrays";
  *sizes = {plan.dataset.train_limit, plan.dataset.test_limit, arrays ? 0 : 10, {}};
  if (o.skip_data_check || plan.model.kind == "noop") return absl::OkStatus();  // noop reads no data
  absl::StatusOr<data::DatasetSizes> checked;
  if (arrays) {
    data::ArrayFiles files;
    for (const InputFile& file : plan.inputs) files.Set(file.role, file.path);
    checked = data::CheckDatasetSizes(files, plan.dataset.train_limit, plan.dataset.test_limit);
  } else {
    checked = data::CheckDatasetSizes(plan.dataset.kind, plan.dataset.path,
                                      plan.dataset.train_limit, plan.dataset.test_limit);
  }
  if (checked.ok()) {
    *sizes = *checked;
    return absl::OkStatus();
  }
  // The arrays' errors name their plan key (dataset.train.x: ...) already.
  return absl::InvalidArgumentError(absl::StrCat("plan ", o.plan_path.empty() ? o.db_path : o.plan_path,
                                                 arrays ? ": " : ": dataset: ",
                                                 checked.status().message()));
}

// Loads and checks the plan, opens the store and records the experiment in it; every
// failure is bad input (exit 2). Everything is validated before anything is written: a
// new plan and its data are checked before the database file is created. Without --db,
// sets o->db_path from the plan; `created` says whether the experiment is new, `sizes`
// what its data check counted (CheckPlanData), whose test labels the store keeps.
absl::StatusOr<std::unique_ptr<RunStore>> OpenExperiment(Options* o, Plan* plan, bool* created,
                                                         data::DatasetSizes* sizes) {
  std::string plan_text;
  // The plan from its file, or from the store that recorded it; then its data checked.
  auto load_plan = [&](RunStore* from) -> absl::Status {
    ASSIGN_OR_RETURN(std::tie(*plan, plan_text), LoadPlan(*o, from));
    if (o->db_path.empty()) o->db_path = plan->experiment + ".db";
    return CheckPlanData(*o, *plan, sizes);
  };
  if (!o->plan_path.empty()) {
    RETURN_IF_ERROR(load_plan(nullptr));
  } else if (access(o->db_path.c_str(), F_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(o->db_path, ": no such database; give --plan to start an experiment"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<RunStore> store, RunStore::Open(o->db_path));
  if (o->plan_path.empty()) RETURN_IF_ERROR(load_plan(store.get()));
  ASSIGN_OR_RETURN(*created, store->EnsureExperiment(*plan, plan_text));
  // The test labels the data check read, for the report's per-class figures: kept once
  // (an experiment started with --skip-data-check gets them from a later start).
  RETURN_IF_ERROR(store->SetTestLabels(plan->experiment, sizes->test_labels).status());
  return store;
}

// Copies the plan's input files into the blob store beside the database (store/blobs.h),
// each checked against the SHA-256 taken when the plan was loaded: from here on the
// plan's own paths are not read again (workers fetch the files by hash, GetBlob); they
// still name the files in what workers say about them.
absl::Status StoreInputs(BlobStore& blobs, const Plan& plan) {
  for (const InputFile& file : plan.inputs) {
    if (absl::Status s = blobs.Add(file.path, file.sha256); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(PlanKeyOfRole(file.role), ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

// What the service holds workers to: the heartbeat, the data check's counts, the blobs.
ServiceOptions ServiceOptionsFor(const Options& o, const data::DatasetSizes& sizes,
                                 BlobStore* blobs) {
  ServiceOptions options;
  options.heartbeat_interval_ms = o.heartbeat_ms;
  options.lease_ttl_ms = 3 * o.heartbeat_ms;
  options.train_examples = sizes.train;
  options.test_examples = sizes.test;
  options.classes = sizes.classes;
  options.blobs = blobs;
  options.max_upload_bytes = o.max_upload_bytes;
  return options;
}

// Redraw the progress block in place only on a terminal that can take it.
bool StderrIsLiveTerminal() {
  return isatty(STDERR_FILENO) && std::getenv("TERM") != nullptr &&
         std::string(std::getenv("TERM")) != "dumb";
}

// One line on what this start does: a new experiment's size, or how far a resumed one got.
absl::Status AnnounceExperiment(const Options& o, const Plan& plan, bool created, RunStore& store,
                                ProgressDisplay& progress) {
  auto counts = store.Counts(plan.experiment);
  if (!counts.ok()) return counts.status();
  if (created) {
    const std::string adaptive =
        plan.adaptive ? absl::StrCat(" to start; rounds of ", plan.adaptive->step, " up to ",
                                     plan.adaptive->max, " per arm until the stdev ratio's interval is ",
                                     plan.adaptive->ratio_ci_width, " wide")
                      : "";
    progress.Log(absl::StrCat("experiment ", plan.experiment, ": ", counts->total(), " runs (",
                              plan.arms.size(), " arms x ", plan.runs, adaptive, "), ", plan.epochs,
                              " epoch(s) each; store ", o.db_path));
  } else {
    progress.Log(absl::StrCat("resuming experiment ", plan.experiment, " from ", o.db_path, ": ",
                              counts->done, " done, ", counts->failed, " failed, ",
                              counts->pending + counts->running, " to run"));
  }
  return absl::OkStatus();
}

// Serves `service` on `listen`; `*port` is the port actually bound.
absl::StatusOr<std::unique_ptr<grpc::Server>> StartServer(
    const std::string& listen, const std::shared_ptr<grpc::ServerCredentials>& credentials,
    CoordinatorService* service, int* port) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, credentials, port);
  builder.RegisterService(static_cast<v1::WorkerService::CallbackService*>(service));
  builder.RegisterService(static_cast<v1::ControlService::CallbackService*>(service));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // gRPC sets SO_REUSEPORT by default, and a second coordinator on the same port would
  // start and take half the workers into another experiment: a port in use is refused.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || *port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", listen,
        ": the port is in use (by another coordinator?) or the address is not one of this machine's"));
  }
  for (const char* name : {"repro.v1.WorkerService", "repro.v1.ControlService"}) {
    server->GetHealthCheckService()->SetServingStatus(name, true);
  }
  return server;
}

void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f != nullptr) {
    std::fprintf(f, "%d\n", port);
    std::fclose(f);
  }
}

// Local workers dial this address with the coordinator's own secrets: the admin token,
// and for TLS its CA (or its certificate, when self-signed) and, for mutual TLS, its
// certificate and key.
std::unique_ptr<LocalWorkers> MakeLocalWorkers(const Options& o, const std::string& binary,
                                               const std::string& address,
                                               const CoordinatorService::Log& log) {
  std::vector<std::string> extra;
  if (o.tls.enabled()) {
    extra = {"--tls-ca", o.tls.ca.empty() ? o.tls.cert : o.tls.ca};
    if (!o.tls.ca.empty()) extra.insert(extra.end(), {"--tls-cert", o.tls.cert, "--tls-key", o.tls.key});
  }
  if (!o.admin_token.empty()) setenv("REPRO_TOKEN", o.admin_token.c_str(), 1);
  return std::make_unique<LocalWorkers>(binary, address, o.db_path + ".", log, extra);
}

// What the wait loop polls and reports on; all of it outlives the loop.
struct Serving {
  const Options& options;
  const Plan& plan;
  RunStore& store;
  CoordinatorService& service;
  const ServiceOptions& service_options;
  LocalWorkers* local;  // null without --local-workers
  ProgressDisplay& progress;
};

int ExitCodeOnSignal(const Serving& s, int sig) {
  s.progress.Log(absl::StrCat("stopping on signal ", sig, "; finished results are kept in ",
                              s.options.db_path, " and the same command resumes the experiment"));
  // A service asked to stop has done its job; a run to the end that was cut short has
  // not (exit 1, so a script waiting for --exit-when-done notices).
  auto finished = s.service.ExperimentFinished();
  return s.options.exit_when_done && !(finished.ok() && *finished) ? cli::kExitError : cli::kExitOk;
}

// --exit-when-done and every run is done or failed: says how it went, returns the exit code.
int ReportFinished(const Serving& s, const RunCounts& counts) {
  s.progress.Finish();
  int exit_code = cli::kExitOk;
  if (counts.failed > 0) {
    s.progress.Log(absl::StrCat("experiment ", s.plan.experiment, " finished with ", counts.failed,
                                " failed run(s); `reproctl --db ", s.options.db_path,
                                " report --partial` lists why"));
    exit_code = cli::kExitError;
  } else {
    s.progress.Log(absl::StrCat("experiment ", s.plan.experiment, " finished: ", counts.done,
                                " runs done; `reproctl --db ", s.options.db_path,
                                " report` shows the results"));
  }
  // Idle workers learn that the experiment finished on their next lease call.
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * s.service_options.idle_retry_ms));
  return exit_code;
}

// Expires leases, watches local workers and shows progress until a signal or, with
// --exit-when-done, until every run is done or failed; returns the exit code.
int WaitUntilDone(const Serving& s) {
  auto last_show = std::chrono::steady_clock::time_point();
  for (;;) {
    if (int sig = g_signal.load(); sig != 0) return ExitCodeOnSignal(s, sig);
    s.service.ExpireLeases();
    s.service.NoteSilentWorkers();
    if (s.local != nullptr) s.local->Poll();
    // An adaptive experiment whose runs have all finished takes its next look here.
    auto all_done = s.service.ExperimentFinished();
    if (!all_done.ok()) s.progress.Log(absl::StrCat("cannot tell whether the experiment has finished: ",
                                                    all_done.status().message()));
    const auto now = std::chrono::steady_clock::now();
    // Where runs part, when an arm asked (localize: true), is part of the work.
    auto localizing = s.store.OpenLocalizations(s.plan.experiment);
    const bool finished = all_done.ok() && *all_done && localizing.ok() && *localizing == 0;
    if (now - last_show > std::chrono::seconds(1) || finished) {
      last_show = now;
      if (auto status = BuildStatus(s.store, s.plan.experiment); status.ok()) s.progress.Show(*status);
    }
    if (finished && s.options.exit_when_done) {
      auto counts = s.store.Counts(s.plan.experiment);
      if (counts.ok()) return ReportFinished(s, *counts);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// Stops serving: calls still running after a 2 s grace are cancelled, and gRPC waits
// for their handlers. A call whose caller has gone is not computed, but a report being
// analysed finishes its step first, and a bootstrap of millions of resamples over a
// large experiment takes minutes. So the wait is bounded: false when the server did not
// stop within kShutdownLimit. Exiting then loses nothing: every change the coordinator
// acknowledged is on disk, and no call still running was acknowledged.
constexpr auto kShutdownLimit = std::chrono::seconds(6);
bool Shutdown(ProgressDisplay& progress, LocalWorkers* local, grpc::Server& server) {
  progress.Finish();
  if (local != nullptr) local->StopAll();
  auto stopped = std::make_shared<std::promise<void>>();  // shared: it may outlive this call
  std::future<void> done = stopped->get_future();
  std::thread stopper([&server, stopped] {
    server.Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    stopped->set_value();
  });
  if (done.wait_for(kShutdownLimit) != std::future_status::ready) {
    stopper.detach();  // the process ends before it does
    return false;
  }
  stopper.join();
  return true;
}

int Run(int argc, char** argv) {
  bool help = false;
  auto options = ParseOptions(argc, argv, &help);
  if (!options.ok()) return Fail(options.status(), cli::kExitUsage);
  if (help) {
    PrintUsage();
    return cli::kExitOk;
  }
  Options o = *options;

  Plan plan;
  bool created = false;
  data::DatasetSizes sizes;
  auto store = OpenExperiment(&o, &plan, &created, &sizes);
  if (!store.ok()) return Fail(store.status(), cli::kExitUsage);
  ProgressDisplay progress(stderr, StderrIsLiveTerminal());
  auto log = [&progress](const std::string& line) { progress.Log(line); };
  if (absl::Status s = AnnounceExperiment(o, plan, created, **store, progress); !s.ok()) {
    return Fail(s, cli::kExitError);
  }
  BlobStore blobs(BlobStore::RootFor(o.db_path));
  if (absl::Status s = StoreInputs(blobs, plan); !s.ok()) return Fail(s, cli::kExitError);

  const ServiceOptions service_options = ServiceOptionsFor(o, sizes, &blobs);
  auto credentials = MakeServerCredentials(o.tls);
  if (!credentials.ok()) return Fail(credentials.status(), cli::kExitUsage);
  auto auth = MakeAuthenticator(o.admin_token, o.worker_token, o.tls);
  if (!auth.ok()) return Fail(auth.status(), cli::kExitUsage);
  CoordinatorService service(store->get(), plan, SystemClockMs, service_options, log, *auth);
  // With tokens, a call without one is refused before its message is read.
  if (auth->enabled()) {
    *credentials = GatedServerCredentials(*credentials, o.tls.enabled(),
                                          std::make_shared<TokenGate>(*auth, log));
  }
  int port = 0;
  auto server = StartServer(o.listen, *credentials, &service, &port);
  if (!server.ok()) return Fail(server.status(), cli::kExitError);
  const std::string address = absl::StrCat(ListenHost(o), ":", port);
  log(absl::StrCat("listening on ", address));
  WritePortFile(o.port_file, port);

  signal(SIGINT, OnSignal);
  signal(SIGTERM, OnSignal);
  signal(SIGPIPE, SIG_IGN);

  std::unique_ptr<LocalWorkers> local;
  if (o.local_workers > 0) {
    auto binary = FindWorkerBinary();
    if (!binary.ok()) return Fail(binary.status(), cli::kExitUsage);
    local = MakeLocalWorkers(o, *binary, address, log);
    if (absl::Status s = local->Start(o.local_workers); !s.ok()) return Fail(s, cli::kExitError);
  }

  const int exit_code =
      WaitUntilDone(Serving{o, plan, **store, service, service_options, local.get(), progress});
  if (!Shutdown(progress, local.get(), **server)) {
    log(absl::StrCat("a report was still being computed ", kShutdownLimit.count(),
                     " s after the signal; exiting without it"));
    std::_Exit(exit_code);  // not waiting for it in the destructors either
  }
  return exit_code;
}

}  // namespace
}  // namespace repro

int main(int argc, char** argv) {
  // Debian's Abseil checks every Mutex acquisition for lock-order cycles, gRPC's own
  // included: a graph update per lock on the dispatch path, for a check no release
  // build needs.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return repro::Run(argc, argv);
}
