#include "analysis/sample_experiment.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"

namespace repro {
namespace {

constexpr int kRuns = 5;
constexpr int kEpochs = 6;
constexpr int kBatches = 10;
constexpr int kExamples = 200;

// A deterministic value in [0, 1) from a few integers (a small integer hash).
double Noise(int a, int b, int c) {
  uint64_t h = static_cast<uint64_t>(a) * 0x9e3779b97f4a7c15ULL;
  h = (h ^ static_cast<uint64_t>(b) ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ static_cast<uint64_t>(c) ^ (h >> 32)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<double>(h % 10000) / 10000.0;
}

// Where a run trained, as a CPU worker records it (worker/engine/environment.h), with a
// model_* key, which is no part of the environment.
std::map<std::string, std::string> EnvironmentOn(const std::string& host, int threads) {
  return {{"host", host},
          {"cpu_model", "Sample CPU @ 2.0GHz"},
          {"torch", "2.1.0"},
          {"compiler", "gcc 12.2.0"},
          {"threads", absl::StrCat(threads)},
          {"deterministic_algorithms", "true"},
          {"cudnn_benchmark", "false"},
          {"device", "cpu"},
          {"model_type", "SampleNet"}};
}

RunView Run(const std::string& arm, int index, uint64_t seed) {
  RunView run;
  run.arm = arm;
  run.index = index;
  run.init_seed = run.shuffle_seed = run.augment_seed = seed;
  run.state = RunState::kDone;
  run.attempts = 1;
  run.worker = absl::StrCat("worker-", index % 2);
  RunResult& r = run.result;
  const std::string s = absl::StrCat(seed);
  r.data_x_hash = "x";
  r.data_y_hash = "y";
  r.initial_hash = absl::StrCat("init-", s);
  r.final_hash = absl::StrCat("final-", s);
  for (const char* name : {"conv1.weight", "conv1.bias", "fc.weight", "fc.bias"}) {
    r.initial_tensors.push_back({name, absl::StrCat("i-", name, "-", s)});
    r.final_tensors.push_back({name, absl::StrCat("f-", name, "-", s)});
  }
  // Runs with the same seed get the same curve unless made to differ below.
  const int key = static_cast<int>(seed);
  for (int e = 0; e < kEpochs; ++e) {
    EpochRecord epoch;
    epoch.epoch = e;
    epoch.loss = 1.2 / (e + 1) + 0.05 * Noise(key, e, 1);
    epoch.accuracy = 0.9 - 0.3 / (e + 1) + 0.01 * Noise(key, e, 2);
    epoch.val_loss = 1.3 / (e + 1) + 0.05 * Noise(key, e, 3);
    epoch.val_accuracy = 0.88 - 0.3 / (e + 1) + 0.02 * Noise(key, e, 4);
    epoch.seconds = 10 + Noise(key, e, 5);
    epoch.lr = 0.001;
    epoch.batch_digest = absl::StrCat("batches-", s, "-", e);
    epoch.weights_hash = absl::StrCat("weights-", s, "-", e);
    for (int b = 0; b < kBatches; ++b) {
      epoch.batch_digests.push_back(absl::StrCat("batch-", s, "-", e, "-", b));
    }
    r.epochs.push_back(epoch);
  }
  r.test_loss = r.epochs.back().val_loss;
  r.test_accuracy = r.epochs.back().val_accuracy;
  for (int j = 0; j < kExamples; ++j) {
    r.predictions.push_back(static_cast<uint8_t>(j % 10));
  }
  return run;
}

// Makes `run` part from its seed's trajectory after epoch `epoch`: new weights from
// there on, a different final model and different scores and predictions.
void Diverge(RunView* run, int epoch, int salt) {
  RunResult& r = run->result;
  for (EpochRecord& e : r.epochs) {
    if (e.epoch < epoch) continue;
    e.weights_hash += absl::StrCat("-diverged-", salt);
    e.val_accuracy += 0.01 * (Noise(salt, e.epoch, 6) - 0.5);
    e.val_loss += 0.02 * (Noise(salt, e.epoch, 7) - 0.5);
  }
  r.final_hash += absl::StrCat("-diverged-", salt);
  r.final_tensors[0].hash += absl::StrCat("-diverged-", salt);
  r.test_loss = r.epochs.back().val_loss;
  r.test_accuracy = r.epochs.back().val_accuracy;
  for (int j = 0; j < kExamples; ++j) {
    if (Noise(salt, j, 8) < 0.1) r.predictions[j] = static_cast<uint8_t>((j + salt) % 10);
  }
}

// A rule of 3 runs per arm, then 2 more per round to at most 9, until the accuracy's
// stdev ratio against different_seeds has an interval at most 0.1 wide; two looks.
AdaptiveState SampleAdaptive() {
  AdaptiveState a = AdaptiveRule(3, 9, 2, 0.1, "accuracy", "different_seeds");  // 3, 5, 7, 9
  // threads_2's runs agree with each other: no spread, ratio 0, settled from the first.
  const AdaptiveArmLook threads_2{"threads_2", 3, 3, 0.0, 0.0, 0.0, true, 3};
  AdaptiveLook first;
  first.arms = {{"same_seed", 3, 3, 0.11, 0.05, 0.24, false, 6}, threads_2};
  first.decision = "more";
  first.added = {{"same_seed", 2}, {"different_seeds", 2}};
  AdaptiveLook second;
  second.arms = {{"same_seed", 5, 5, 0.0886, 0.05, 0.14, true, 5}, threads_2};
  second.arms[1].reference_runs = 5;
  second.decision = "reached";
  a.looks = {first, second};
  return a;
}

}  // namespace

ExperimentView SampleExperiment() {
  ExperimentView view;
  view.name = "sample";
  view.arms = {"same_seed", "different_seeds", "threads_2"};
  view.runs_per_arm = kRuns;
  view.epochs = kEpochs;
  // True classes: the runs' class j % 10, but another for about one example in seven.
  for (int j = 0; j < kExamples; ++j) {
    view.test_labels.push_back(
        static_cast<uint8_t>(Noise(j, 0, 9) < 0.15 ? (j + 3) % 10 : j % 10));
  }
  for (int i = 0; i < kRuns; ++i) {
    view.runs.push_back(Run("same_seed", i, 0));
    view.runs.back().result.environment = EnvironmentOn("host-a", 1);
  }
  Diverge(&view.runs[4], 2, 104);
  Diverge(&view.runs[3], 4, 103);
  Diverge(&view.runs[2], 3, 102);
  EpochRecord& reordered = view.runs[2].result.epochs[3];
  reordered.batch_digest += "-reordered";
  for (int b = 7; b < kBatches; ++b) reordered.batch_digests[b] += "-reordered";

  for (int i = 0; i < kRuns; ++i) {
    RunView run = Run("different_seeds", i, static_cast<uint64_t>(i));
    if (i > 0) Diverge(&run, 0, 200 + i);  // a different seed: its own trajectory
    run.result.environment = EnvironmentOn("host-b", 1);
    view.runs.push_back(run);
  }
  for (int i = 0; i < kRuns; ++i) {
    // Deterministic at 2 threads too, so its runs agree with each other, but summed in
    // another order than at 1 thread: every run parts from same_seed's at epoch 0.
    RunView run = Run("threads_2", i, 0);
    Diverge(&run, 0, 300);
    run.result.environment = EnvironmentOn("host-a", 2);
    view.runs.push_back(run);
  }
  view.adaptive = SampleAdaptive();
  return view;
}

}  // namespace repro
