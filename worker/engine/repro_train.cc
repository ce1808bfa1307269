// repro-train: trains one run spec given by flags, without a coordinator, and prints
// its fingerprints: one line per epoch as it ends, then the initial, data and final
// hashes, the test score and the environment; with --json, the same as one JSON object
// at the end. For comparing runs by hand and for bench/gpu-determinism.sh on a GPU
// host that has only LibTorch (no gRPC, SQLite, YAML or JSON library needed: the JSON
// is written by hand).
//
// With --replay-epoch E it replays epoch E of the run the other flags describe (replay.h)
// and prints the weights hash after every batch instead (replay_output.h); with
// --trace-batch B also every op of batch B, to find where two settings part: replay both,
// compare the batch hashes, trace the first differing batch on both sides, compare the
// traces, dump the first differing op on both sides (--dump-op, --dump-out) and compare
// the dumps' outputs. --checkpoints DIR keeps a training run's state after every epoch, for
// --from-checkpoint.
//
// Exit codes (as every repro command): 0 done, 1 the run failed, 2 bad flags or input
// (a bad value, a missing or corrupt data set). Errors are one sentence on stderr.
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "common/cli.h"
#include "common/hash.h"
#include "worker/engine/engine.h"
#include "worker/engine/json_text.h"
#include "worker/engine/replay.h"
#include "worker/engine/replay_output.h"

namespace repro::engine {
namespace {

constexpr char kProgram[] = "repro-train";

const std::vector<cli::FlagSpec>& Flags() {
  static const std::vector<cli::FlagSpec> flags = {
      {"dataset-kind", true, "fashion-mnist (default), mnist, cifar10 or arrays", "KIND"},
      {"dataset", true, "data set directory (default /usr/share/datasets/fashion-mnist)", "DIR"},
      {"train-x", true, "arrays: training images, .npy (N, C, H, W) or (N, H, W)", "FILE"},
      {"train-y", true, "arrays: training labels, .npy (N,) of 0..K-1", "FILE"},
      {"test-x", true, "arrays: test images, .npy", "FILE"},
      {"test-y", true, "arrays: test labels, .npy", "FILE"},
      {"train-limit", true, "first N training samples (default 0 = all)", "N"},
      {"test-limit", true, "first N test samples (default 0 = all)", "N"},
      {"model", true, "small-cnn (default), resnet or torchscript (with --model-file)", "KIND"},
      {"model-file", true, "a TorchScript module's file (torch.jit.script(m).save): --model "
                           "torchscript", "PATH"},
      {"model-init", true, "torchscript: file (default: the file's weights) or seeded (drawn "
                           "from the init seed)", "INIT"},
      {"version", true, "resnet version, 1 or 2 (default 2)", "V"},
      {"depth", true, "resnet depth: 6n+2 for v1, 9n+2 for v2 (default 20 for v1, 29 for v2)", "D"},
      {"l2", true, "L2 penalty on conv kernels (default 1e-4 for resnet, else 0)", "X"},
      {"epochs", true, "epochs (default 1)", "N"},
      {"batch-size", true, "batch size (default 128)", "N"},
      {"optimizer", true, "adam (default, LibTorch's), adam-keras (Keras 2.2.4's) or sgd", "NAME"},
      {"lr", true, "learning rate (default 0.001)", "X"},
      {"momentum", true, "sgd momentum (default 0.9)", "X"},
      {"lr-schedule", true, "constant (default) or keras-cifar10", "NAME"},
      {"plateau", false, "ReduceLROnPlateau(factor sqrt(0.1), patience 5, min_lr 0.5e-6)"},
      {"augment", false, "shifts of 0.1 and horizontal flips, as Keras's example"},
      {"seed", true, "init, shuffle and augment seeds at once (default 0)", "S"},
      {"init-seed", true, "initialization seed (overrides --seed)", "S"},
      {"shuffle-seed", true, "shuffle seed (overrides --seed)", "S"},
      {"augment-seed", true, "augmentation seed (overrides --seed)", "S"},
      {"threads", true, "LibTorch intra-op threads (default 1; 0 = LibTorch's default)", "N"},
      {"device", true, "cpu (default) or cuda", "DEVICE"},
      {"deterministic", false, "deterministic algorithms (the default)"},
      {"nondeterministic", false, "allow non-deterministic algorithms"},
      {"cudnn-benchmark", false, "let cuDNN benchmark and pick algorithms"},
      {"export", true, "write initial and final weights (safetensors) into DIR", "DIR"},
      {"export-epochs", false, "with --export, also the weights after every epoch"},
      {"batch-digests", false, "print every batch's digest"},
      {"checkpoints", true, "write the state after every epoch but the last to "
                            "DIR/checkpoint-E (E: the epoch it follows)", "DIR"},
      {"replay-epoch", true, "replay epoch E of the run batch by batch (--epochs must "
                             "include it): the weights hash after every batch", "E"},
      {"from-checkpoint", true, "with --replay-epoch: start from this checkpoint of the run "
                                "(one from before E) instead of from epoch 0", "FILE"},
      {"trace-batch", true, "with --replay-epoch: also trace every op of batch B", "B"},
      {"trace-out", true, "with --trace-batch: write the trace to FILE, not stdout", "FILE"},
      {"dump-op", true, "with --trace-batch and --dump-out: dump op N of the trace whole", "N"},
      {"dump-out", true, "the dumped op's input and output tensors (safetensors)", "FILE"},
      {"json", false, "print one JSON object instead of text"},
  };
  return flags;
}

// Flag values into a spec; INVALID_ARGUMENT naming the flag.
absl::Status ParseDouble(const cli::ParsedArgs& args, const std::string& name, double* out) {
  if (!args.Has(name)) return absl::OkStatus();
  const std::string text = args.Get(name);
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(value)) {
    return absl::InvalidArgumentError("--" + name + ": expected a number, got \"" + text + "\"");
  }
  *out = value;
  return absl::OkStatus();
}

absl::Status ParseInt(const cli::ParsedArgs& args, const std::string& name, long long lo,
                      long long hi, long long* out) {
  absl::StatusOr<long long> value = args.GetInt(name, *out, lo, hi);
  if (!value.ok()) return value.status();
  *out = *value;
  return absl::OkStatus();
}

// --train-x .. --test-y (dataset kind arrays) and --model-file / --model-init (model kind
// torchscript): the run's input files by role, as a plan's would be.
absl::Status InputFlags(const cli::ParsedArgs& args, RunSpec* spec) {
  for (const char* role : {"train_x", "train_y", "test_x", "test_y"}) {
    std::string flag = role;
    flag[flag.find('_')] = '-';
    if (args.Has(flag)) spec->inputs.push_back(InputFile{role, args.Get(flag), "", 0});
  }
  spec->model_kind = args.Get("model", args.Has("model-file") ? "torchscript" : spec->model_kind);
  if (spec->model_kind != "torchscript") {
    for (const char* flag : {"model-file", "model-init"}) {
      if (args.Has(flag)) {
        return absl::InvalidArgumentError(std::string("--") + flag +
                                          " applies to --model torchscript only");
      }
    }
    return absl::OkStatus();
  }
  if (!args.Has("model-file")) {
    return absl::InvalidArgumentError("--model torchscript needs --model-file PATH");
  }
  std::error_code error;
  const std::filesystem::path file = std::filesystem::absolute(args.Get("model-file"), error);
  if (error || args.Get("model-file").empty()) {
    return absl::InvalidArgumentError("--model-file: expected a file, got \"" +
                                      args.Get("model-file") + "\"");
  }
  spec->inputs.push_back(InputFile{"model", file.string(), "", 0});
  spec->model_init = args.Get("model-init", spec->model_init);
  return absl::OkStatus();
}

// The integer and real-valued flags: sizes, limits, seeds, rates.
absl::Status NumberFlags(const cli::ParsedArgs& args, RunSpec* spec) {
  const long long kMaxSeed = std::numeric_limits<int64_t>::max();
  long long train_limit = 0, test_limit = 0, version = 2, depth = 0, epochs = 1, batch_size = 128,
            threads = 1, seed = 0;
  for (absl::Status s :
       {ParseInt(args, "train-limit", 0, kMaxSeed, &train_limit),
        ParseInt(args, "test-limit", 0, kMaxSeed, &test_limit),
        ParseInt(args, "version", 1, 2, &version), ParseInt(args, "depth", 0, 1001, &depth),
        ParseInt(args, "epochs", 1, 100000, &epochs),
        ParseInt(args, "batch-size", 1, 1 << 20, &batch_size),
        ParseInt(args, "threads", 0, 1024, &threads), ParseInt(args, "seed", 0, kMaxSeed, &seed)}) {
    if (!s.ok()) return s;
  }
  long long init_seed = seed, shuffle_seed = seed, augment_seed = seed;
  for (absl::Status s : {ParseInt(args, "init-seed", 0, kMaxSeed, &init_seed),
                         ParseInt(args, "shuffle-seed", 0, kMaxSeed, &shuffle_seed),
                         ParseInt(args, "augment-seed", 0, kMaxSeed, &augment_seed)}) {
    if (!s.ok()) return s;
  }
  spec->train_limit = train_limit;
  spec->test_limit = test_limit;
  spec->model_version = static_cast<int>(version);
  // As the plan: ResNet20v1 and ResNet29v2 by default, and Keras's L2 1e-4 for resnet.
  spec->model_depth = depth > 0 ? static_cast<int>(depth) : (version == 1 ? 20 : 29);
  spec->l2 = spec->model_kind == "resnet" ? 1e-4 : 0.0;
  spec->epochs = static_cast<int>(epochs);
  spec->batch_size = batch_size;
  spec->threads = static_cast<int>(threads);
  spec->init_seed = static_cast<uint64_t>(init_seed);
  spec->shuffle_seed = static_cast<uint64_t>(shuffle_seed);
  spec->augment_seed = static_cast<uint64_t>(augment_seed);
  for (absl::Status s : {ParseDouble(args, "l2", &spec->l2), ParseDouble(args, "lr", &spec->lr),
                         ParseDouble(args, "momentum", &spec->momentum)}) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ToSpec(const cli::ParsedArgs& args, RunSpec* spec, bool* json, bool* batch_digests) {
  if (!args.positional.empty()) {
    return absl::InvalidArgumentError("unexpected argument \"" + args.positional[0] +
                                      "\" (all settings are flags; see --help)");
  }
  if (args.Has("deterministic") && args.Has("nondeterministic")) {
    return absl::InvalidArgumentError("--deterministic and --nondeterministic exclude each other");
  }
  spec->dataset_kind = args.Get("dataset-kind", spec->dataset_kind);
  spec->dataset_path = args.Get("dataset", spec->dataset_path);
  if (absl::Status s = InputFlags(args, spec); !s.ok()) return s;
  spec->optimizer = args.Get("optimizer", spec->optimizer);
  spec->lr_schedule = args.Get("lr-schedule", spec->lr_schedule);
  spec->device = args.Get("device", spec->device);
  if (absl::Status s = NumberFlags(args, spec); !s.ok()) return s;
  spec->plateau = args.Has("plateau");
  spec->augment = args.Has("augment");
  spec->deterministic_algorithms = !args.Has("nondeterministic");
  spec->cudnn_benchmark = args.Has("cudnn-benchmark");
  spec->keep_batch_digests = args.Has("batch-digests");
  spec->keep_predictions = true;
  if (args.Has("export")) {
    spec->export_dir = args.Get("export");
    if (spec->export_dir.empty()) return absl::InvalidArgumentError("--export needs a directory");
    spec->export_initial = spec->export_final = true;
    spec->export_every_epoch = args.Has("export-epochs");
  } else if (args.Has("export-epochs")) {
    return absl::InvalidArgumentError("--export-epochs needs --export DIR");
  }
  *json = args.Has("json");
  *batch_digests = args.Has("batch-digests");
  return absl::OkStatus();
}

std::string PredictionsHash(const RunResult& r) {
  return HashBytes(r.predictions.data(), r.predictions.size());
}

void PrintEpoch(const EpochRecord& e, bool batch_digests) {
  std::printf(
      "epoch %d  loss %.6f  acc %.4f  val_loss %.6f  val_acc %.4f  lr %.6g  %.2f s"
      "  batches %s  weights %s\n",
      e.epoch, e.loss, e.accuracy, e.val_loss, e.val_accuracy, e.lr, e.seconds,
      e.batch_digest.c_str(), e.weights_hash.c_str());
  if (batch_digests) {
    for (size_t b = 0; b < e.batch_digests.size(); ++b) {
      std::printf("  batch %zu %s\n", b, e.batch_digests[b].c_str());
    }
  }
  std::fflush(stdout);
}

void PrintText(const RunResult& r) {
  std::printf("initial      %s\n", r.initial_hash.c_str());
  std::printf("data x       %s\n", r.data_x_hash.c_str());
  std::printf("data y       %s\n", r.data_y_hash.c_str());
  std::printf("final        %s\n", r.final_hash.c_str());
  if (!r.diverged.empty()) std::printf("%s\n", r.diverged.c_str());
  std::printf("test         loss %.6f  accuracy %.4f\n", r.test_loss, r.test_accuracy);
  std::printf("predictions  %s (%zu)\n", PredictionsHash(r).c_str(), r.predictions.size());
  if (!r.initial_weights.empty()) std::printf("weights      %s\n", r.initial_weights.c_str());
  for (const std::string& path : r.epoch_weights) std::printf("weights      %s\n", path.c_str());
  if (!r.final_weights.empty()) std::printf("weights      %s\n", r.final_weights.c_str());
  std::printf("environment\n");
  for (const auto& [key, value] : r.environment) {
    std::printf("  %-25s %s\n", key.c_str(), value.c_str());
  }
}

std::string JsonStrings(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + JsonQuote(items[i]);
  return out + "]";
}

std::string JsonTensors(const std::vector<TensorHash>& tensors) {
  std::string out = "[";
  for (size_t i = 0; i < tensors.size(); ++i) {
    out += (i ? ",{\"name\":" : "{\"name\":") + JsonQuote(tensors[i].name) +
           ",\"hash\":" + JsonQuote(tensors[i].hash) + "}";
  }
  return out + "]";
}

std::string JsonSpec(const RunSpec& s) {
  auto b = [](bool v) { return std::string(v ? "true" : "false"); };
  return "{\"dataset_kind\":" + JsonQuote(s.dataset_kind) +
         ",\"dataset_path\":" + JsonQuote(s.dataset_path) +
         ",\"train_limit\":" + std::to_string(s.train_limit) +
         ",\"test_limit\":" + std::to_string(s.test_limit) +
         ",\"model_kind\":" + JsonQuote(s.model_kind) +
         ",\"model_version\":" + std::to_string(s.model_version) +
         ",\"model_depth\":" + std::to_string(s.model_depth) +
         ",\"model_init\":" + JsonQuote(s.model_init) +
         ",\"model_file\":" + JsonQuote(s.inputs.empty() ? "" : s.inputs[0].path) +
         ",\"l2\":" + JsonNumber(s.l2) +
         ",\"epochs\":" + std::to_string(s.epochs) +
         ",\"batch_size\":" + std::to_string(s.batch_size) +
         ",\"optimizer\":" + JsonQuote(s.optimizer) + ",\"lr\":" + JsonNumber(s.lr) +
         ",\"momentum\":" + JsonNumber(s.momentum) +
         ",\"lr_schedule\":" + JsonQuote(s.lr_schedule) + ",\"plateau\":" + b(s.plateau) +
         ",\"augment\":" + b(s.augment) + ",\"init_seed\":" + std::to_string(s.init_seed) +
         ",\"shuffle_seed\":" + std::to_string(s.shuffle_seed) +
         ",\"augment_seed\":" + std::to_string(s.augment_seed) +
         ",\"threads\":" + std::to_string(s.threads) + ",\"device\":" + JsonQuote(s.device) +
         ",\"deterministic_algorithms\":" + b(s.deterministic_algorithms) +
         ",\"cudnn_benchmark\":" + b(s.cudnn_benchmark) + "}";
}

void PrintJson(const RunSpec& spec, const RunResult& r) {
  std::string out = "{\"spec\":" + JsonSpec(spec) + ",\"epochs\":[";
  for (size_t i = 0; i < r.epochs.size(); ++i) {
    const EpochRecord& e = r.epochs[i];
    out += (i ? ",{" : "{");
    out += "\"epoch\":" + std::to_string(e.epoch) + ",\"loss\":" + JsonNumber(e.loss) +
           ",\"accuracy\":" + JsonNumber(e.accuracy) + ",\"val_loss\":" + JsonNumber(e.val_loss) +
           ",\"val_accuracy\":" + JsonNumber(e.val_accuracy) + ",\"lr\":" + JsonNumber(e.lr) +
           ",\"seconds\":" + JsonNumber(e.seconds) +
           ",\"batch_digest\":" + JsonQuote(e.batch_digest) +
           ",\"weights_hash\":" + JsonQuote(e.weights_hash);
    if (spec.keep_batch_digests) out += ",\"batch_digests\":" + JsonStrings(e.batch_digests);
    out += "}";
  }
  out += "],\"initial_hash\":" + JsonQuote(r.initial_hash) +
         ",\"data_x_hash\":" + JsonQuote(r.data_x_hash) +
         ",\"data_y_hash\":" + JsonQuote(r.data_y_hash) +
         ",\"final_hash\":" + JsonQuote(r.final_hash) +
         ",\"diverged\":" + JsonQuote(r.diverged) +
         ",\"test_loss\":" + JsonNumber(r.test_loss) +
         ",\"test_accuracy\":" + JsonNumber(r.test_accuracy) +
         ",\"predictions_hash\":" + JsonQuote(PredictionsHash(r)) +
         ",\"predictions_count\":" + std::to_string(r.predictions.size()) +
         ",\"initial_tensors\":" + JsonTensors(r.initial_tensors) +
         ",\"final_tensors\":" + JsonTensors(r.final_tensors) +
         ",\"weights\":{\"initial\":" + JsonQuote(r.initial_weights) +
         ",\"final\":" + JsonQuote(r.final_weights) +
         ",\"epochs\":" + JsonStrings(r.epoch_weights) + "},\"environment\":{";
  bool first = true;
  for (const auto& [key, value] : r.environment) {
    out += (first ? "" : ",") + JsonQuote(key) + ":" + JsonQuote(value);
    first = false;
  }
  out += "}}\n";
  std::fputs(out.c_str(), stdout);
}

// What --replay-epoch and its flags ask for.
struct ReplayFlags {
  ReplayRequest request;
  std::string checkpoint_file, trace_out, dump_out;
};

absl::StatusOr<std::string> ReadFile(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError("--" + flag + ": cannot open " + path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::InvalidArgumentError("--" + flag + ": cannot read " + path);
  return bytes;
}

// The flags that apply to a replay only need --replay-epoch, and each needs the one it
// refines; a replay writes neither exports nor checkpoints.
absl::Status CheckReplayFlags(const cli::ParsedArgs& args) {
  const bool replay = args.Has("replay-epoch");
  for (const char* flag : {"from-checkpoint", "trace-batch"}) {
    if (args.Has(flag) && !replay) {
      return absl::InvalidArgumentError(std::string("--") + flag + " needs --replay-epoch E");
    }
  }
  for (const char* flag : {"trace-out", "dump-op"}) {
    if (args.Has(flag) && !args.Has("trace-batch")) {
      return absl::InvalidArgumentError(std::string("--") + flag + " needs --trace-batch B");
    }
  }
  if (args.Has("dump-op") != args.Has("dump-out")) {
    return absl::InvalidArgumentError("--dump-op and --dump-out go together");
  }
  for (const char* flag : {"checkpoints", "export"}) {
    if (args.Has(flag) && replay) {
      return absl::InvalidArgumentError(std::string("--") + flag +
                                        " applies to a training run, not to --replay-epoch");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ReplayFlags> ParseReplayFlags(const cli::ParsedArgs& args) {
  ReplayFlags flags;
  long long epoch = 0, batch = 0, op = 0;
  for (absl::Status s : {ParseInt(args, "replay-epoch", 0, 100000, &epoch),
                         ParseInt(args, "trace-batch", 0, 1LL << 40, &batch),
                         ParseInt(args, "dump-op", 0, 1LL << 40, &op)}) {
    if (!s.ok()) return s;
  }
  flags.request.epoch = static_cast<int>(epoch);
  if (args.Has("trace-batch")) flags.request.trace_batch = batch;
  if (args.Has("dump-op")) flags.request.dump_op = op;
  if (args.Has("from-checkpoint")) {
    flags.checkpoint_file = args.Get("from-checkpoint");
    absl::StatusOr<std::string> bytes = ReadFile("from-checkpoint", flags.checkpoint_file);
    if (!bytes.ok()) return bytes.status();
    flags.request.checkpoint = *std::move(bytes);
  }
  flags.trace_out = args.Get("trace-out");
  flags.dump_out = args.Get("dump-out");
  return flags;
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::FailedPreconditionError("cannot write " + path);
  return absl::OkStatus();
}

// --replay-epoch: replays, prints (text or JSON) and writes the trace and dump files.
int ReplayMain(const cli::ParsedArgs& args, const RunSpec& spec, bool json) {
  absl::StatusOr<ReplayFlags> flags = ParseReplayFlags(args);
  if (!flags.ok()) {
    return cli::Fail(kProgram, std::string(flags.status().message()), cli::kExitUsage);
  }
  absl::StatusOr<ReplayResult> result = ReplayEpoch(spec, flags->request);
  if (!result.ok()) {
    const bool input = result.status().code() == absl::StatusCode::kInvalidArgument;
    return cli::Fail(kProgram, std::string(result.status().message()),
                     input ? cli::kExitUsage : cli::kExitError);
  }
  const bool trace_here = flags->request.trace_batch && flags->trace_out.empty();
  absl::Status written;
  if (!flags->trace_out.empty()) {
    written = WriteText(flags->trace_out,
                        json ? TraceJson(result->trace) + "\n" : TraceText(result->trace));
  }
  if (written.ok() && !flags->dump_out.empty()) {
    written = result->dump ? WriteOpDump(*result->dump, flags->dump_out)
                           : absl::InvalidArgumentError(absl::StrCat(
                                 "--dump-op: the trace has ", result->trace.size(),
                                 " ops, so no op ", *flags->request.dump_op));
  }
  if (!written.ok()) {
    const bool input = written.code() == absl::StatusCode::kInvalidArgument;
    return cli::Fail(kProgram, std::string(written.message()),
                     input ? cli::kExitUsage : cli::kExitError);
  }
  if (json) {
    std::printf("{\"spec\":%s,\"replay\":%s}\n", JsonSpec(spec).c_str(),
                ReplayJson(flags->request, *result, trace_here).c_str());
  } else {
    if (!flags->checkpoint_file.empty()) {
      std::printf("checkpoint   %s\n", flags->checkpoint_file.c_str());
    }
    std::fputs(ReplayText(flags->request, *result, trace_here).c_str(), stdout);
  }
  return std::fflush(stdout) == 0 ? cli::kExitOk : cli::kExitError;
}

// --checkpoints DIR: each checkpoint the run hands over goes to DIR/checkpoint-E; the
// first error is kept for the end of the run.
decltype(Callbacks::on_checkpoint) CheckpointWriter(const std::string& dir, absl::Status* error) {
  return [dir, error](int epoch, const std::string& state) {
    std::error_code made;
    std::filesystem::create_directories(dir, made);
    absl::Status s = made ? absl::FailedPreconditionError("cannot create " + dir + ": " +
                                                          made.message())
                          : WriteText(absl::StrCat(dir, "/checkpoint-", epoch), state);
    if (error->ok()) *error = std::move(s);
  };
}

int Main(int argc, char** argv) {
  absl::StatusOr<cli::ParsedArgs> args = cli::Parse(argc, argv, Flags());
  if (!args.ok()) return cli::Fail(kProgram, std::string(args.status().message()), cli::kExitUsage);
  if (args->Has("help")) {
    std::fputs(cli::Usage("repro-train [flags]", Flags()).c_str(), stdout);
    return cli::kExitOk;
  }
  RunSpec spec;
  bool json = false, batch_digests = false;
  if (absl::Status s = ToSpec(*args, &spec, &json, &batch_digests); !s.ok()) {
    return cli::Fail(kProgram, std::string(s.message()), cli::kExitUsage);
  }
  if (absl::Status s = CheckReplayFlags(*args); !s.ok()) {
    return cli::Fail(kProgram, std::string(s.message()), cli::kExitUsage);
  }
  if (args->Has("replay-epoch")) return ReplayMain(*args, spec, json);
  Callbacks callbacks;
  if (!json) {
    callbacks.on_epoch = [&](const EpochRecord& e) { PrintEpoch(e, batch_digests); };
  }
  absl::Status checkpoint_error;
  if (args->Has("checkpoints")) {
    spec.checkpoint_every = 1;
    callbacks.on_checkpoint = CheckpointWriter(args->Get("checkpoints"), &checkpoint_error);
  }
  absl::StatusOr<RunResult> result = TrainRun(spec, callbacks);
  if (!result.ok()) {
    const bool input = result.status().code() == absl::StatusCode::kInvalidArgument;
    return cli::Fail(kProgram, std::string(result.status().message()),
                     input ? cli::kExitUsage : cli::kExitError);
  }
  if (!checkpoint_error.ok()) {
    return cli::Fail(kProgram, std::string(checkpoint_error.message()), cli::kExitError);
  }
  if (json) {
    PrintJson(spec, *result);
  } else {
    PrintText(*result);
  }
  return std::fflush(stdout) == 0 ? cli::kExitOk : cli::kExitError;
}

}  // namespace
}  // namespace repro::engine

int main(int argc, char** argv) { return repro::engine::Main(argc, argv); }
