// reproctl: the user's window on an experiment, over gRPC from a running coordinator or
// straight from its SQLite file.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <limits>
#include <thread>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/security.h"
#include "analysis/analysis.h"
#include "analysis/localization.h"
#include "analysis/planning.h"
#include "analysis/report.h"
#include "analysis/scores.h"
#include "reproctl/fetch.h"
#include "store/status_view.h"
#include "store/store.h"
#include "proto/convert.h"
#include "proto/limits.h"
#include "repro/v1/repro.grpc.pb.h"

namespace repro {
namespace {

constexpr char kProgram[] = "reproctl";

const std::vector<cli::FlagSpec> kFlags = {
    {"coordinator", true, "coordinator address (default $REPRO_COORDINATOR)", "HOST:PORT"},
    {"db", true, "read this SQLite file directly instead of asking a coordinator", "PATH"},
    {"experiment", true, "with --db: which experiment (default: the only or latest one)", "NAME"},
    {"format", true, "status, localize, analyze-scores: text|json; report: text|json|csv|html|csv-per-class (default text)", "FORMAT"},
    {"arm", true, "report: only this arm (csv needs it)", "NAME"},
    {"reference-arm", true, "report: compare every arm's spread with this arm (default different_seeds)", "NAME"},
    {"bootstrap", true, "report, analyze-scores: bootstrap resamples of the stdev ratio's 95% CI (default 10000; 0: none)", "N"},
    {"seed", true, "report, analyze-scores: seed of the bootstrap (default 0)", "S"},
    {"ci-width", true, "report, analyze-scores: the stdev ratio's 95% CI width the runs needed aim at (default 0.1)", "W"},
    {"power-ratio", true, "report, analyze-scores: the stdev ratio the runs for power 0.8 tell from 1 (default: each pilot's own)", "R"},
    {"partial", false, "report: report an experiment that has not finished"},
    {"output", true, "write to this file instead of standard output", "FILE"},
    {"timeout-ms", true, "deadline of each call to the coordinator (default 10000; report, fetch, localize: 600000)", "MS"},
    {"reason", true, "cancel: why, kept with every cancelled run", "TEXT"},
    {"weights", true, "fetch: initial|final|all (default final)", "WHICH"},
    {"o", true, "fetch: the folder to write the files to (default ./ARM-INDEX)", "DIR"},
    {"token-file", true, "the coordinator's token (default $REPRO_TOKEN)", "PATH"},
    {"tls-ca", true, "connect with TLS, verifying the coordinator with this PEM CA", "PEM"},
    {"tls-cert", true, "client certificate for mutual TLS", "PEM"},
    {"tls-key", true, "its PEM private key", "PEM"},
};

constexpr char kSynopsis[] =
    "reproctl [--coordinator HOST:PORT | --db PATH] COMMAND [flags]\n\n"
    "commands:\n"
    "  status [--format text|json]                 runs pending/running/done/failed, workers, ETA\n"
    "  report [--format text|json|csv|html|csv-per-class] [--arm NAME] [--partial] [--output FILE]\n"
    "         [--reference-arm NAME] [--bootstrap N] [--seed S] [--ci-width W] [--power-ratio R]\n"
    "                                              equality, divergence and spread per arm,\n"
    "                                              runs needed, noise floor, cost of determinism\n"
    "  workers                                     the workers and what they run\n"
    "  cancel [--reason TEXT]                      stop handing out runs (coordinator only)\n"
    "  localize RUN_A RUN_B [--format text|json]  where two runs that started alike part: the\n"
    "                                              batch, the operation, its module (a worker\n"
    "                                              replays them; --db shows a stored answer)\n"
    "  fetch RUN [--weights initial|final|all] [-o DIR]\n"
    "                                              a finished run's weights files (RUN as status\n"
    "                                              names it, e.g. same_seed#0), checked by SHA-256\n"
    "  analyze-scores FILE.csv [FILE.csv ...] [--bootstrap N] [--seed S] [--ci-width W] [--power-ratio R]\n"
    "                 [--format text|json]         spread of score files like the study's, and\n"
    "                                              the runs per arm a CI of width W needs";

struct Result {
  std::string body;
  int code = cli::kExitOk;
  std::string error;
  bool written = false;  // the body went out already (a streamed report)
};

int Emit(const cli::ParsedArgs& args, const Result& r) {
  if (!r.error.empty()) return cli::Fail(kProgram, r.error, r.code);
  if (r.written) return r.code;
  if (args.Has("output")) {
    std::ofstream out(args.Get("output"), std::ios::binary);
    out << r.body;
    if (!out) return cli::Fail(kProgram, absl::StrCat(args.Get("output"), ": cannot write"), cli::kExitError);
  } else {
    std::fwrite(r.body.data(), 1, r.body.size(), stdout);
  }
  return r.code;
}

int CodeFor(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument || s.code() == absl::StatusCode::kNotFound
             ? cli::kExitUsage
             : cli::kExitError;
}

Result Ok(std::string body) { return Result{std::move(body), cli::kExitOk, ""}; }

Result Error(const absl::Status& s) { return Result{"", CodeFor(s), std::string(s.message())}; }

// ------------------------------------------------------------------ from the file

absl::StatusOr<std::string> PickExperiment(RunStore& store, const cli::ParsedArgs& args) {
  auto names = store.ExperimentNames();
  if (!names.ok()) return names.status();
  if (names->empty()) return absl::InvalidArgumentError(absl::StrCat(store.path(), " holds no experiment"));
  if (!args.Has("experiment")) return names->back();
  for (const auto& n : *names) {
    if (n == args.Get("experiment")) return n;
  }
  return absl::InvalidArgumentError(absl::StrCat(store.path(), " has no experiment \"",
                                                 args.Get("experiment"), "\""));
}

// The bootstrap flags shared by report and analyze-scores.
absl::Status ParseBootstrap(const cli::ParsedArgs& args, AnalysisOptions* options) {
  auto resamples = args.GetInt("bootstrap", kDefaultBootstrapResamples, 0, kMaxBootstrapResamples);
  if (!resamples.ok()) return resamples.status();
  auto seed = args.GetInt("seed", 0, 0, std::numeric_limits<long long>::max());
  if (!seed.ok()) return seed.status();
  options->bootstrap_resamples = static_cast<int>(*resamples);
  options->seed = static_cast<uint64_t>(*seed);
  if (args.Has("ci-width")) {
    double width = 0;
    if (!absl::SimpleAtod(args.Get("ci-width"), &width) || !(width > 0) || !std::isfinite(width)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--ci-width: expected a number above 0, got \"", args.Get("ci-width"), "\""));
    }
    options->ci_width = width;
  }
  if (args.Has("power-ratio")) {
    double ratio = 0;
    if (!absl::SimpleAtod(args.Get("power-ratio"), &ratio) || ratio == 0 ||
        !CheckPowerRatio(ratio).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--power-ratio: expected a number above 0 other than 1, got \"", args.Get("power-ratio"),
          "\""));
    }
    options->power_ratio = ratio;
  }
  return absl::OkStatus();
}

absl::StatusOr<AnalysisOptions> ReportOptions(const cli::ParsedArgs& args) {
  AnalysisOptions options;
  options.reference_arm = args.Get("reference-arm");
  if (absl::Status s = ParseBootstrap(args, &options); !s.ok()) return s;
  return options;
}

// Where a report goes as it is rendered or received, not held whole (a large JSON
// report is hundreds of MB): --output FILE, opened with the first piece so that an
// error before it leaves no file behind, else standard output.
class ReportOutput {
 public:
  explicit ReportOutput(std::string path) : path_(std::move(path)) {}
  ~ReportOutput() {
    if (out_ != nullptr && out_ != stdout) std::fclose(out_);
  }
  void Write(std::string_view piece) {
    if (out_ == nullptr) out_ = path_.empty() ? stdout : std::fopen(path_.c_str(), "wb");
    if (out_ == nullptr || std::fwrite(piece.data(), 1, piece.size(), out_) != piece.size()) {
      failed_ = true;
    }
  }
  // The report was cut short: a partial file is no report, and is removed.
  void Abandon() {
    if (out_ == nullptr || out_ == stdout) return;
    std::fclose(out_);
    out_ = nullptr;
    std::remove(path_.c_str());
  }
  // Closes the file: the result of a report written whole.
  Result Close() {
    if (out_ != nullptr && out_ != stdout && std::fclose(out_) != 0) failed_ = true;
    if (out_ == stdout && std::fflush(stdout) != 0) failed_ = true;
    out_ = nullptr;
    if (failed_) {
      return Result{"", cli::kExitError,
                    absl::StrCat(path_.empty() ? "standard output" : path_, ": cannot write")};
    }
    return Result{"", cli::kExitOk, "", /*written=*/true};
  }

 private:
  std::string path_;
  std::FILE* out_ = nullptr;
  bool failed_ = false;
};

Result ReportFromView(ExperimentView view, const cli::ParsedArgs& args) {
  auto options = ReportOptions(args);
  if (!options.ok()) return Error(options.status());
  if (absl::Status s = CheckAnalysisOptions(view, *options); !s.ok()) return Error(s);
  auto format = ParseReportFormat(args.Get("format", "text"));
  if (!format.ok()) return Error(format.status());
  const repro::Report report = Analyze(std::move(view), *options);
  if (!report.complete && !args.Has("partial")) {
    return Result{"", cli::kExitIncomplete,
                  absl::StrCat("experiment ", report.experiment, " has not finished: ",
                               IncompleteReason(report), "; use --partial for a report so far")};
  }
  ReportOutput output(args.Get("output"));
  absl::Status s = WriteReport(report, *format, args.Get("arm"),
                               [&](std::string_view piece) { output.Write(piece); });
  if (!s.ok()) return Error(s);
  return output.Close();
}

// What fetch was asked: the run, which files and the folder.
struct FetchArgs {
  std::string run;
  std::string which;
  std::string dir;
};

FetchArgs FetchArgsOf(const cli::ParsedArgs& args) {
  FetchArgs f;
  f.run = args.positional.size() > 1 ? args.positional[1] : "";
  f.which = args.Get("weights", "final");
  std::string fallback = f.run;
  std::replace(fallback.begin(), fallback.end(), '#', '-');
  f.dir = args.Get("o", args.Get("output", fallback));
  return f;
}

// A localization's answer as --format asks.
Result Localized(const cli::ParsedArgs& args, const LocalizationState& localization) {
  const std::string format = args.Get("format", "text");
  if (format == "json") return Ok(LocalizationJson(localization));
  if (format != "text") {
    return Result{"", cli::kExitUsage, absl::StrCat("--format: expected text or json, got \"", format, "\"")};
  }
  return Ok(LocalizationText(localization));
}

// A localization that has not been answered: what it waits for.
std::string Waiting(const std::string& state, const std::string& stage, const std::string& worker,
                    int epoch) {
  if (state == "running" && !stage.empty()) {
    return absl::StrCat("each run replays epoch ", epoch, " on a worker like the one it trained "
                        "on; stage ", stage, " (the last taken by worker ", worker, ")");
  }
  return state == "running"
             ? absl::StrCat("worker ", worker, " is replaying epoch ", epoch, " of both runs")
             : "waiting for a worker to take it (workers leave once the experiment has finished: "
               "start one, or run them with --stay)";
}

// "wrote DIR/final.safetensors" per file.
Result Fetched(const std::vector<std::string>& paths) {
  std::string body;
  for (const std::string& path : paths) absl::StrAppend(&body, "wrote ", path, "\n");
  return Ok(body);
}

Result FromDb(const std::string& command, const cli::ParsedArgs& args) {
  const std::string path = args.Get("db");
  if (access(path.c_str(), R_OK) != 0) {
    return Result{"", cli::kExitUsage, absl::StrCat(path, ": no such database")};
  }
  // Read-only: reproctl never writes to a database, and refuses one that is not repro's
  // without touching it.
  auto store = RunStore::OpenReadOnly(path);
  if (!store.ok()) return Error(store.status());
  auto experiment = PickExperiment(**store, args);
  if (!experiment.ok()) return Error(experiment.status());
  if (command == "report") {
    auto view = (*store)->LoadView(*experiment);
    if (!view.ok()) return Error(view.status());
    return ReportFromView(std::move(*view), args);
  }
  if (command == "localize") {
    auto found = (*store)->FindLocalization(*experiment, args.positional[1], args.positional[2]);
    if (!found.ok()) return Error(found.status());
    if (!found->has_value()) {
      return Result{"", cli::kExitUsage,
                    absl::StrCat(path, " holds no localization of ", args.positional[1], " and ",
                                 args.positional[2], "; ask the coordinator for one "
                                 "(reproctl --coordinator HOST:PORT localize ...)")};
    }
    const LocalizationState& state = **found;
    if (state.result) return Localized(args, state);
    if (state.state == "failed") return Result{"", cli::kExitError, state.error};
    return Result{"", cli::kExitIncomplete, absl::StrCat("not answered yet: ",
                                                         Waiting(state.state, state.stage, state.worker, state.epoch))};
  }
  if (command == "fetch") {
    const FetchArgs f = FetchArgsOf(args);
    auto written = FetchFromStore(**store, path, *experiment, f.run, f.which, f.dir);
    if (!written.ok()) return Error(written.status());
    return Fetched(*written);
  }
  if (command == "status" || command == "workers") {
    auto status = BuildStatus(**store, *experiment);
    if (!status.ok()) return Error(status.status());
    if (command == "workers") status->running.clear();
    auto body = RenderStatus(*status, args.Get("format", "text"), SystemClockMs());
    if (!body.ok()) return Error(body.status());
    return Ok(*body);
  }
  return Result{"", cli::kExitUsage, absl::StrCat(command, " needs a running coordinator (--coordinator)")};
}

// ------------------------------------------------------------------ over gRPC

// The report over ReportStream, written as its pieces arrive: a report of any size.
// `rpc_error` turns a failed call into what reproctl says.
Result ReportFromCoordinator(v1::ControlService::Stub& stub, grpc::ClientContext& ctx,
                             const cli::ParsedArgs& args,
                             const std::function<Result(const grpc::Status&)>& rpc_error) {
  auto format = ParseReportFormat(args.Get("format", "text"));
  if (!format.ok()) return Error(format.status());
  v1::ReportRequest req;
  req.set_format(ReportFormatName(*format));
  req.set_arm(args.Get("arm"));
  req.set_partial(args.Has("partial"));
  auto options = ReportOptions(args);
  if (!options.ok()) return Error(options.status());
  req.set_reference_arm(options->reference_arm);
  req.set_bootstrap_resamples(options->bootstrap_resamples);
  req.set_seed(options->seed);
  if (args.Has("ci-width")) req.set_ci_width(options->ci_width);
  req.set_power_ratio(options->power_ratio);
  ReportOutput output(args.Get("output"));
  std::unique_ptr<grpc::ClientReader<v1::ReportChunk>> reader = stub.ReportStream(&ctx, req);
  v1::ReportChunk chunk;
  while (reader->Read(&chunk)) output.Write(chunk.body());
  const grpc::Status s = reader->Finish();
  if (!s.ok()) output.Abandon();
  if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    return Result{"", cli::kExitIncomplete, s.error_message()};
  }
  if (!s.ok()) return rpc_error(s);
  return output.Close();
}

// Asks the coordinator where two runs part, then asks again every half second until a
// worker has answered or `timeout_ms` has passed (the coordinator keeps the request).
Result LocalizeFromCoordinator(v1::ControlService::Stub& stub, const std::string& token,
                               const cli::ParsedArgs& args, int64_t timeout_ms,
                               const std::function<Result(const grpc::Status&)>& rpc_error) {
  v1::LocalizeRequest req;
  req.set_run_a(args.positional[1]);
  req.set_run_b(args.positional[2]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string told;
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    AttachToken(&ctx, token);
    v1::LocalizeResponse resp;
    const grpc::Status s = stub.Localize(&ctx, req, &resp);
    if (!s.ok()) return rpc_error(s);
    if (resp.state() == "done") {
      LocalizationState done;
      done.state = "done";
      done.run_a = req.run_a();
      done.run_b = req.run_b();
      done.epoch = resp.epoch();
      done.worker = resp.worker();
      done.stage = resp.stage();
      done.result = FromProto(resp.result());
      return Localized(args, done);
    }
    if (resp.state() == "failed") {
      return Result{"", cli::kExitError, absl::StrCat("the localization failed: ", resp.error())};
    }
    const std::string waiting = resp.waiting().empty()
                                    ? Waiting(resp.state(), resp.stage(), resp.worker(), resp.epoch())
                                    : resp.waiting();
    if (waiting != told) std::fprintf(stderr, "reproctl: %s\n", waiting.c_str());
    told = waiting;
    if (std::chrono::steady_clock::now() > deadline) {
      return Result{"", cli::kExitIncomplete,
                    absl::StrCat("no answer within --timeout-ms ", timeout_ms,
                                 "; the coordinator keeps the request: ask again later")};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Result FromCoordinator(const std::string& command, const cli::ParsedArgs& args,
                       const std::string& address) {
  // A report of a large experiment takes a while to compute and send: its default
  // deadline is longer than the other calls'.
  const bool long_call = command == "report" || command == "fetch" || command == "localize";
  auto timeout = args.GetInt("timeout-ms", long_call ? 600000 : 10000, 1, 24 * 3600000LL);
  if (!timeout.ok()) return Error(timeout.status());
  auto token = ClientToken(args.Get("token-file"));
  if (!token.ok()) return Error(token.status());
  const TlsFiles tls{args.Get("tls-cert"), args.Get("tls-key"), args.Get("tls-ca")};
  auto credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) return Error(credentials.status());
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(static_cast<int>(kMaxStatusMessageBytes));
  auto channel = grpc::CreateCustomChannel(address, *credentials, channel_args);
  auto stub = v1::ControlService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(*timeout));
  AttachToken(&ctx, *token);
  auto rpc_error = [&](const grpc::Status& s) {
    if (std::string cause = TlsFailureCause(s, address, tls); !cause.empty()) {
      return Result{"", cli::kExitError, cause};
    }
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return Result{"", cli::kExitError, absl::StrCat("cannot reach the coordinator at ", address, ": ",
                                                      s.error_message(), " (is it running? or use --db PATH)")};
    }
    return Result{"", CodeFor(absl::Status(static_cast<absl::StatusCode>(s.error_code()), "")),
                  s.error_message()};
  };
  if (command == "status" || command == "workers") {
    v1::StatusResponse response;
    grpc::Status s = stub->Status(&ctx, v1::StatusRequest(), &response);
    if (!s.ok()) return rpc_error(s);
    ExperimentStatus status = FromProto(response);
    if (command == "workers") status.running.clear();
    auto body = RenderStatus(status, args.Get("format", "text"), SystemClockMs());
    if (!body.ok()) return Error(body.status());
    return Ok(*body);
  }
  if (command == "report") return ReportFromCoordinator(*stub, ctx, args, rpc_error);
  if (command == "localize") return LocalizeFromCoordinator(*stub, *token, args, *timeout, rpc_error);
  if (command == "fetch") {
    const FetchArgs f = FetchArgsOf(args);
    std::vector<std::string> written;
    absl::Status local;
    grpc::Status s = FetchFromCoordinator(*stub, ctx, f.run, f.which, f.dir, &written, &local);
    if (!s.ok()) return rpc_error(s);
    if (!local.ok()) return Error(local);
    return Fetched(written);
  }
  if (command == "cancel") {
    v1::CancelRequest req;
    req.set_reason(args.Get("reason"));
    v1::CancelResponse resp;
    grpc::Status s = stub->Cancel(&ctx, req, &resp);
    if (!s.ok()) return rpc_error(s);
    return Ok(absl::StrCat("cancelled ", resp.runs_cancelled(), " run(s)\n"));
  }
  return Result{"", cli::kExitUsage, absl::StrCat("unknown command \"", command, "\" (see --help)")};
}

int Run(int argc, char** argv) {
  auto args = cli::Parse(argc, argv, kFlags);
  if (!args.ok()) return cli::Fail(kProgram, std::string(args.status().message()), cli::kExitUsage);
  if (args->Has("help") || args->positional.empty()) {
    std::fputs(cli::Usage(kSynopsis, kFlags).c_str(), args->Has("help") ? stdout : stderr);
    return args->Has("help") ? cli::kExitOk : cli::kExitUsage;
  }
  const std::string command = args->positional[0];
  if (command == "analyze-scores") {
    std::vector<std::string> files(args->positional.begin() + 1, args->positional.end());
    if (files.empty()) return cli::Fail(kProgram, "analyze-scores needs at least one FILE.csv", cli::kExitUsage);
    AnalysisOptions options;
    if (absl::Status s = ParseBootstrap(*args, &options); !s.ok()) {
      return cli::Fail(kProgram, std::string(s.message()), cli::kExitUsage);
    }
    const std::string format = args->Get("format", "text");
    if (format != "text" && format != "json") {
      return cli::Fail(kProgram, absl::StrCat("--format: expected text or json, got \"", format, "\""),
                       cli::kExitUsage);
    }
    ScoresOptions scores;
    scores.bootstrap_resamples = options.bootstrap_resamples;
    scores.seed = options.seed;
    scores.ci_width = options.ci_width;
    scores.power_ratio = options.power_ratio;
    scores.json = format == "json";
    auto body = AnalyzeScores(files, scores);
    if (!body.ok()) return Emit(*args, Result{"", cli::kExitUsage, std::string(body.status().message())});
    return Emit(*args, Ok(*body));
  }
  if (command != "status" && command != "report" && command != "workers" && command != "cancel" &&
      command != "fetch" && command != "localize") {
    return cli::Fail(kProgram, absl::StrCat("unknown command \"", command, "\" (see --help)"), cli::kExitUsage);
  }
  const size_t arguments = command == "fetch" ? 2 : command == "localize" ? 3 : 1;
  if (args->positional.size() < arguments) {
    return cli::Fail(kProgram, absl::StrCat(command, " needs ", arguments - 1, " run(s), as status "
                                            "names them (e.g. same_seed#0)"),
                     cli::kExitUsage);
  }
  if (args->positional.size() > arguments) {
    return cli::Fail(kProgram, absl::StrCat("unexpected argument \"", args->positional[arguments], "\""),
                     cli::kExitUsage);
  }
  if (args->Has("db")) return Emit(*args, FromDb(command, *args));
  const char* env = std::getenv("REPRO_COORDINATOR");
  const std::string address = args->Get("coordinator", env != nullptr ? env : "");
  if (address.empty()) {
    return cli::Fail(kProgram, "give --coordinator HOST:PORT (or REPRO_COORDINATOR) or --db PATH", cli::kExitUsage);
  }
  return Emit(*args, FromCoordinator(command, *args, address));
}

}  // namespace
}  // namespace repro

int main(int argc, char** argv) { return repro::Run(argc, argv); }
