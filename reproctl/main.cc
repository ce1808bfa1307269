// reproctl: the user's window on an experiment, over gRPC from a running coordinator or
// straight from its SQLite file.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/security.h"
#include "analysis/analysis.h"
#include "analysis/report.h"
#include "analysis/scores.h"
#include "store/status_view.h"
#include "store/store.h"
#include "proto/convert.h"
#include "repro/v1/repro.grpc.pb.h"

namespace repro {
namespace {

constexpr char kProgram[] = "reproctl";

const std::vector<cli::FlagSpec> kFlags = {
    {"coordinator", true, "coordinator address (default $REPRO_COORDINATOR)", "HOST:PORT"},
    {"db", true, "read this SQLite file directly instead of asking a coordinator", "PATH"},
    {"experiment", true, "with --db: which experiment (default: the only or latest one)", "NAME"},
    {"format", true, "status: text|json; report: text|json|csv|html (default text)", "FORMAT"},
    {"arm", true, "report: only this arm (csv needs it)", "NAME"},
    {"reference-arm", true, "report: compare every arm's spread with this arm (default different_seeds)", "NAME"},
    {"bootstrap", true, "report, analyze-scores: bootstrap resamples of the stdev ratio's 95% CI (default 10000; 0: none)", "N"},
    {"seed", true, "report, analyze-scores: seed of the bootstrap (default 0)", "S"},
    {"partial", false, "report: report an experiment that has not finished"},
    {"output", true, "write to this file instead of standard output", "FILE"},
    {"timeout-ms", true, "deadline of each call to the coordinator (default 10000)", "MS"},
    {"reason", true, "cancel: why, kept with every cancelled run", "TEXT"},
    {"token-file", true, "the coordinator's token (default $REPRO_TOKEN)", "PATH"},
    {"tls-ca", true, "connect with TLS, verifying the coordinator with this PEM CA", "PEM"},
    {"tls-cert", true, "client certificate for mutual TLS", "PEM"},
    {"tls-key", true, "its PEM private key", "PEM"},
};

constexpr char kSynopsis[] =
    "reproctl [--coordinator HOST:PORT | --db PATH] COMMAND [flags]\n\n"
    "commands:\n"
    "  status [--format text|json]                 runs pending/running/done/failed, workers, ETA\n"
    "  report [--format text|json|csv|html] [--arm NAME] [--partial] [--output FILE]\n"
    "         [--reference-arm NAME] [--bootstrap N] [--seed S]\n"
    "                                              equality, divergence and spread per arm\n"
    "  workers                                     the workers and what they run\n"
    "  cancel [--reason TEXT]                      stop handing out runs (coordinator only)\n"
    "  analyze-scores FILE.csv [FILE.csv ...] [--bootstrap N] [--seed S]\n"
    "                                              spread of score files like the study's";

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
  return absl::OkStatus();
}

absl::StatusOr<AnalysisOptions> ReportOptions(const cli::ParsedArgs& args) {
  AnalysisOptions options;
  options.reference_arm = args.Get("reference-arm");
  if (absl::Status s = ParseBootstrap(args, &options); !s.ok()) return s;
  return options;
}

Result ReportFromView(ExperimentView view, const cli::ParsedArgs& args) {
  auto options = ReportOptions(args);
  if (!options.ok()) return Error(options.status());
  if (absl::Status s = CheckAnalysisOptions(view, *options); !s.ok()) return Error(s);
  auto format = ParseReportFormat(args.Get("format", "text"));
  if (!format.ok()) return Error(format.status());
  const repro::Report report = Analyze(std::move(view), *options);
  if (!report.complete && !args.Has("partial")) {
    return Result{"", cli::kExitIncomplete,
                  absl::StrCat("experiment ", report.experiment, " has not finished: ", report.runs_remaining,
                               " run(s) remain; use --partial for a report so far")};
  }
  // Written as it is rendered, not held whole (a large JSON report is hundreds of MB);
  // the output file is opened with the first piece, so an error leaves none behind.
  const std::string output = args.Get("output");
  std::FILE* out = output.empty() ? stdout : nullptr;
  bool write_failed = false;
  absl::Status s = WriteReport(report, *format, args.Get("arm"), [&](std::string_view piece) {
    if (out == nullptr) out = std::fopen(output.c_str(), "wb");
    if (out == nullptr || std::fwrite(piece.data(), 1, piece.size(), out) != piece.size()) {
      write_failed = true;
    }
  });
  if (!s.ok()) return Error(s);
  if (out != nullptr && out != stdout && std::fclose(out) != 0) write_failed = true;
  if (write_failed) {
    return Result{"", cli::kExitError,
                  absl::StrCat(output.empty() ? "standard output" : output, ": cannot write")};
  }
  return Result{"", cli::kExitOk, "", /*written=*/true};
}

Result FromDb(const std::string& command, const cli::ParsedArgs& args) {
  const std::string path = args.Get("db");
  if (access(path.c_str(), R_OK) != 0) {
    return Result{"", cli::kExitUsage, absl::StrCat(path, ": no such database")};
  }
  auto store = RunStore::Open(path);
  if (!store.ok()) return Error(store.status());
  auto experiment = PickExperiment(**store, args);
  if (!experiment.ok()) return Error(experiment.status());
  if (command == "report") {
    auto view = (*store)->LoadView(*experiment);
    if (!view.ok()) return Error(view.status());
    return ReportFromView(std::move(*view), args);
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

Result FromCoordinator(const std::string& command, const cli::ParsedArgs& args,
                       const std::string& address) {
  auto timeout = args.GetInt("timeout-ms", 10000, 1, 3600000);
  if (!timeout.ok()) return Error(timeout.status());
  auto token = ClientToken(args.Get("token-file"));
  if (!token.ok()) return Error(token.status());
  auto credentials = MakeChannelCredentials({args.Get("tls-cert"), args.Get("tls-key"), args.Get("tls-ca")});
  if (!credentials.ok()) return Error(credentials.status());
  auto channel = grpc::CreateChannel(address, *credentials);
  auto stub = v1::ControlService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(*timeout));
  AttachToken(&ctx, *token);
  auto rpc_error = [&](const grpc::Status& s) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      return Result{"", cli::kExitError, absl::StrCat("cannot reach the coordinator at ", address, ": ",
                                                      s.error_message(), " (is it running? or use --db PATH)")};
    }
    const int code = s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ? cli::kExitUsage : cli::kExitError;
    return Result{"", code, s.error_message()};
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
  if (command == "report") {
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
    v1::ReportResponse resp;
    grpc::Status s = stub->Report(&ctx, req, &resp);
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      return Result{"", cli::kExitIncomplete, s.error_message()};
    }
    if (!s.ok()) return rpc_error(s);
    return Ok(resp.body());
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
    auto body = AnalyzeScores(files, options.bootstrap_resamples, options.seed);
    if (!body.ok()) return Emit(*args, Result{"", cli::kExitUsage, std::string(body.status().message())});
    return Emit(*args, Ok(*body));
  }
  if (command != "status" && command != "report" && command != "workers" && command != "cancel") {
    return cli::Fail(kProgram, absl::StrCat("unknown command \"", command, "\" (see --help)"), cli::kExitUsage);
  }
  if (args->positional.size() > 1) {
    return cli::Fail(kProgram, absl::StrCat("unexpected argument \"", args->positional[1], "\""), cli::kExitUsage);
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
