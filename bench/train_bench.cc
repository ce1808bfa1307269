// train_bench: the engine's side of bench/train-throughput.sh (CPU) and
// bench/gpu-throughput.sh (--device cuda). Trains one run with TrainRun (the worker's
// own code path) and prints one JSON line per epoch with the training throughput
// measured from the engine's own callbacks:
//   train_seconds: the epoch's training, timed whole: from the end of the previous
//     epoch's callback (for epoch 0, from before TrainRun: it includes the set-up, and
//     the drivers leave it out) to the end of the epoch's last batch, with
//     torch::cuda::synchronize() at both ends on a GPU (the device is idle at the
//     first already: the previous epoch's validation and weight hash read from it).
//     That is the order and its move to the device, every gather and step, the batch
//     digests and the finiteness checks; not the validation or the weight hash.
//     train_images_per_second = the epoch's images / train_seconds, mean_step_seconds
//     = train_seconds / steps. The Python side times the same span.
//   median_step_seconds: the median duration of the loop's iterations over full
//     batches, the first left out (it pays for one-time allocations), as on the Python
//     side; images_per_second = batch size / that median (the CPU's figure: on a GPU
//     the end of a step on the host is not the end of its work);
//   median_step_cpu_seconds, images_per_cpu_second: the same in the training thread's
//     CPU time (user + system), which other processes on a shared machine disturb less;
//   steady_seconds: the wall time from the end of batch 1 to the end of the last;
//   epoch_seconds: EpochRecord::seconds (the order, every step, the validation pass
//     and the per-epoch fingerprints).
// --no-fingerprints turns off the per-batch digests and per-epoch weight hashes
// (RunSpec::fingerprints, a benchmark-only switch). --device, --deterministic,
// --nondeterministic and --cudnn-benchmark are RunSpec's. --order prints the sample
// order of each epoch (shuffle.h's EpochOrder for --train-limit samples, shuffle seed
// 0, as the run uses) for checking the Python side's and exits. --shapes prints the model's
// parameter and buffer names and shapes (for checking the Python models against the
// engine's, layer for layer) and exits; --fingerprint-cost times one epoch's
// fingerprint work alone (the per-epoch weight hash and every per-batch digest).
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/hash.h"
#include "worker/engine/engine.h"
#include "worker/engine/fingerprint.h"
#include "worker/engine/models.h"
#include "worker/engine/shuffle.h"

namespace {

using Clock = std::chrono::steady_clock;

// CPU time of the calling thread: with one intra-op thread the training thread does
// all of a step's work, so this does not count time the core spent on other processes.
double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Minor page faults of the process so far (fresh memory from the kernel).
long MinorFaults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

const std::vector<repro::cli::FlagSpec>& Flags() {
  static const std::vector<repro::cli::FlagSpec> flags = {
      {"dataset-kind", true, "fashion-mnist (default) or cifar10", "KIND"},
      {"dataset", true, "data set directory", "DIR"},
      {"train-limit", true, "first N training samples (0 = all)", "N"},
      {"test-limit", true, "first N test samples (0 = all)", "N"},
      {"model", true, "small-cnn (default) or resnet", "KIND"},
      {"version", true, "resnet version (default 2)", "V"},
      {"depth", true, "resnet depth (default 29)", "D"},
      {"l2", true, "L2 on conv kernels (default 1e-4 for resnet, else 0)", "X"},
      {"batch-size", true, "batch size (default 128)", "N"},
      {"threads", true, "intra-op threads (default 1)", "N"},
      {"epochs", true, "epochs (default 2)", "N"},
      {"device", true, "cpu (default) or cuda", "D"},
      {"deterministic", false, "deterministic algorithms (the default)"},
      {"nondeterministic", false, "allow non-deterministic algorithms"},
      {"cudnn-benchmark", false, "let cuDNN benchmark and pick algorithms"},
      {"no-fingerprints", false, "no per-batch digests, no per-epoch weight hashes"},
      {"order", false, "print each epoch's sample order (JSON), then exit"},
      {"shapes", false, "print parameter and buffer names and shapes, then exit"},
      {"fingerprint-cost", false,
       "time one epoch's fingerprint work alone (the weight hash, every batch digest and "
       "the epoch digest) on this model and batch count, then exit"},
  };
  return flags;
}

std::string ShapesJson(repro::engine::ClassifierImpl& model) {
  std::string out = "[";
  auto add = [&](const std::string& name, const at::Tensor& t) {
    absl::StrAppend(&out, out.size() > 1 ? "," : "", "[\"", name, "\",[");
    for (int64_t d = 0; d < t.dim(); ++d) absl::StrAppend(&out, d ? "," : "", t.size(d));
    absl::StrAppend(&out, "]]");
  };
  for (const auto& p : model.named_parameters()) add(p.key(), p.value());
  for (const auto& b : model.named_buffers()) add(b.key(), b.value());
  return out + "]";
}

// --order: the engine's sample order of every epoch, as JSON (train_throughput.py
// checks its own against it).
int PrintOrder(const repro::RunSpec& spec) {
  std::string out = "[";
  for (int e = 0; e < spec.epochs; ++e) {
    absl::StrAppend(&out, e ? "," : "", "[");
    const std::vector<int64_t> order =
        repro::engine::EpochOrder(spec.train_limit, spec.shuffle_seed, e);
    for (size_t i = 0; i < order.size(); ++i) absl::StrAppend(&out, i ? "," : "", order[i]);
    absl::StrAppend(&out, "]");
  }
  std::printf("%s]\n", out.c_str());
  return 0;
}

// The spec's model, built for its data set's shape (the built-in kinds only).
absl::StatusOr<std::shared_ptr<repro::engine::ClassifierImpl>> SpecModel(
    const repro::RunSpec& spec) {
  repro::engine::InputShape shape;
  if (spec.dataset_kind == "cifar10") shape = {3, 32, 32, 10};
  return repro::engine::MakeModel(
      repro::engine::ModelOptions{spec.model_kind, spec.model_version, spec.model_depth}, shape);
}

// --shapes: the model's (name, shape) list, which train_throughput.py compares with its own.
int PrintShapes(const repro::RunSpec& spec) {
  auto model = SpecModel(spec);
  if (!model.ok()) return repro::cli::Fail("train_bench", std::string(model.status().message()), 2);
  std::printf("%s\n", ShapesJson(**model).c_str());
  return 0;
}

// --fingerprint-cost: what fingerprints add to an epoch, timed alone: FingerprintModel
// once (the weights after the epoch), BatchDigest of every batch and HashSequence of
// their digests.
int FingerprintCost(const repro::RunSpec& spec) {
  auto model = SpecModel(spec);
  if (!model.ok()) return repro::cli::Fail("train_bench", std::string(model.status().message()), 2);
  const int64_t n = spec.train_limit;
  const std::vector<int64_t> order = repro::engine::EpochOrder(n, 0, 0);
  std::vector<double> weights, batches;
  size_t bytes = 0;
  for (const auto& p : (*model)->parameters()) bytes += p.nbytes();
  for (const auto& b : (*model)->buffers()) bytes += b.nbytes();
  for (int rep = 0; rep < 21; ++rep) {
    auto t0 = Clock::now();
    const std::string hash = repro::engine::FingerprintModel(**model).hash;
    auto t1 = Clock::now();
    std::vector<std::string> digests;
    for (int64_t start = 0; start < n; start += spec.batch_size) {
      digests.push_back(repro::engine::BatchDigest(
          order.data() + start, static_cast<size_t>(std::min(spec.batch_size, n - start))));
    }
    const std::string epoch_digest = repro::HashSequence(digests);
    auto t2 = Clock::now();
    weights.push_back(std::chrono::duration<double>(t1 - t0).count());
    batches.push_back(std::chrono::duration<double>(t2 - t1).count());
    if (hash.empty() || epoch_digest.empty()) return 1;
  }
  const double w = Median(weights), b = Median(batches);
  std::printf(
      "{\"side\":\"fingerprint-cost\",\"weight_bytes\":%zu,\"weights_hash_seconds\":%.9f,"
      "\"batch_digests_seconds\":%.9f,\"batches\":%lld,\"per_epoch_seconds\":%.9f}\n",
      bytes, w, b, static_cast<long long>((n + spec.batch_size - 1) / spec.batch_size), w + b);
  return 0;
}

// The epochs of one run, timed from its callbacks (see the top of the file).
int TimeTraining(const repro::RunSpec& spec) {
  const bool cuda = spec.device == "cuda";
  if (spec.train_limit <= 0) {
    // The figures are per image: the count must be known (the data must have that many).
    return repro::cli::Fail("train_bench", "give --train-limit N (N > 0): the epoch's images", 2);
  }
  std::vector<Clock::time_point> ends;  // end of each batch of the current epoch
  std::vector<double> cpu_ends;          // the training thread's CPU time then
  std::vector<long> faults;              // the process's minor page faults then
  int64_t batches_per_epoch = 0;
  // The epoch's training, timed whole (see the top of the file).
  Clock::time_point epoch_start = Clock::now(), train_end = epoch_start;
  repro::engine::Callbacks callbacks;
  callbacks.on_batch = [&](int, int64_t batch, int64_t batches) {
    if (batch == 1) ends.clear(), cpu_ends.clear(), faults.clear();
    faults.push_back(MinorFaults());
    ends.push_back(Clock::now());
    cpu_ends.push_back(ThreadCpuSeconds());
    batches_per_epoch = batches;
    if (batch == batches) {
      if (cuda) torch::cuda::synchronize();
      train_end = Clock::now();
    }
  };
  callbacks.on_epoch = [&](const repro::EpochRecord& e) {
    // Full batches after the first: the durations of loop iterations 2..N (the last,
    // partial batch left out). Their median is the figure: robust to other processes
    // taking the core now and then, which a mean is not.
    const int64_t n = spec.train_limit;  // the data sets used here have at least that many
    const int64_t full = n / spec.batch_size;
    std::vector<double> steps, cpu_steps;
    for (int64_t b = 1; b < full && b < static_cast<int64_t>(ends.size()); ++b) {
      steps.push_back(std::chrono::duration<double>(ends[b] - ends[b - 1]).count());
      cpu_steps.push_back(cpu_ends[b] - cpu_ends[b - 1]);
    }
    const double median = Median(steps), cpu_median = Median(cpu_steps);
    const double faults_per_step =
        faults.size() > 1 ? static_cast<double>(faults.back() - faults.front()) /
                                static_cast<double>(faults.size() - 1)
                          : 0.0;
    const double steady = std::chrono::duration<double>(ends.back() - ends.front()).count();
    const double train_seconds = std::chrono::duration<double>(train_end - epoch_start).count();
    const auto images = static_cast<double>(spec.train_limit);
    std::printf(
        "{\"side\":\"engine\",\"fingerprints\":%s,\"epoch\":%d,\"steps\":%lld,"
        "\"device\":\"%s\",\"deterministic\":%s,\"images\":%lld,\"train_seconds\":%.6f,"
        "\"train_images_per_second\":%.3f,\"mean_step_seconds\":%.9f,"
        "\"median_step_seconds\":%.6f,\"images_per_second\":%.3f,\"median_step_cpu_seconds\":%.6f,"
        "\"images_per_cpu_second\":%.3f,\"page_faults_per_step\":%.1f,\"steady_seconds\":%.6f,"
        "\"epoch_seconds\":%.6f,\"loss\":%.9g,\"batch_digest\":\"%s\",\"weights_hash\":\"%s\"}\n",
        spec.fingerprints ? "true" : "false", e.epoch,
        static_cast<long long>(batches_per_epoch), spec.device.c_str(),
        spec.deterministic_algorithms ? "true" : "false",
        static_cast<long long>(spec.train_limit),
        train_seconds, train_seconds > 0 ? images / train_seconds : 0.0,
        batches_per_epoch > 0 ? train_seconds / static_cast<double>(batches_per_epoch) : 0.0,
        median,
        median > 0 ? static_cast<double>(spec.batch_size) / median : 0.0, cpu_median,
        cpu_median > 0 ? static_cast<double>(spec.batch_size) / cpu_median : 0.0, faults_per_step,
        steady, e.seconds,
        e.loss, e.batch_digest.c_str(), e.weights_hash.c_str());
    std::fflush(stdout);
    if (cuda) torch::cuda::synchronize();  // idle already (see the top of the file)
    epoch_start = Clock::now();
  };
  auto result = repro::engine::TrainRun(spec, callbacks);
  if (!result.ok()) return repro::cli::Fail("train_bench", std::string(result.status().message()), 1);
  return 0;
}

int Main(int argc, char** argv) {
  auto args = repro::cli::Parse(argc, argv, Flags());
  if (!args.ok()) return repro::cli::Fail("train_bench", std::string(args.status().message()), 2);
  if (args->Has("help")) {
    std::fputs(repro::cli::Usage("train_bench [flags]", Flags()).c_str(), stdout);
    return 0;
  }
  repro::RunSpec spec;
  spec.dataset_kind = args->Get("dataset-kind", "fashion-mnist");
  spec.dataset_path = args->Get("dataset", "/usr/share/datasets/fashion-mnist");
  spec.model_kind = args->Get("model", "small-cnn");
  spec.train_limit = *args->GetInt("train-limit", 0, 0, 1 << 30);
  spec.test_limit = *args->GetInt("test-limit", 0, 0, 1 << 30);
  spec.model_version = static_cast<int>(*args->GetInt("version", 2, 1, 2));
  spec.model_depth = static_cast<int>(*args->GetInt("depth", 29, 8, 1001));
  spec.l2 = spec.model_kind == "resnet" ? 1e-4 : 0.0;
  if (args->Has("l2")) spec.l2 = std::stod(args->Get("l2"));
  spec.batch_size = *args->GetInt("batch-size", 128, 1, 1 << 20);
  spec.threads = static_cast<int>(*args->GetInt("threads", 1, 1, 1024));
  spec.epochs = static_cast<int>(*args->GetInt("epochs", 2, 1, 1000));
  spec.fingerprints = !args->Has("no-fingerprints");
  spec.keep_predictions = true;
  spec.device = args->Get("device", "cpu");
  if (args->Has("deterministic") && args->Has("nondeterministic")) {
    return repro::cli::Fail("train_bench",
                            "--deterministic and --nondeterministic exclude each other", 2);
  }
  spec.deterministic_algorithms = !args->Has("nondeterministic");
  spec.cudnn_benchmark = args->Has("cudnn-benchmark");
  if (args->Has("order")) return PrintOrder(spec);
  if (args->Has("shapes")) return PrintShapes(spec);
  if (args->Has("fingerprint-cost")) return FingerprintCost(spec);
  return TimeTraining(spec);
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
