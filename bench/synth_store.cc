// synth_store: writes a synthetic experiment into a new SQLite store through the
// RunStore API (the coordinator's own code path: EnsureExperiment, LeaseNext, Complete),
// for timing reports (issue 4: 10,000 runs x 200 epochs) and measuring the
// coordinator's memory (issue 7). The experiment looks like the README's default one
// at scale: arms same_seed and different_seeds, a small CNN (8 tensors), every run
// done with `epochs` epoch records and `predictions` test predictions.
// - same_seed: every run starts from the same weights and data; run i's weights part
//   from run #0's after epoch 100 + i % 100 (so the divergence analysis has work), and
//   its predictions differ from run #0's on i % 50 examples;
// - different_seeds: every run has its own initial weights, batches and predictions
//   (a deterministic function of the run).
// Scores are deterministic pseudo-random values around 0.3 (loss) and 0.9 (accuracy).
//
//   synth_store --db /tmp/big.db [--runs-per-arm 5000] [--epochs 200]
//               [--predictions 10000] [--threads 8]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/hash.h"
#include "common/plan.h"
#include "store/store.h"

namespace {

uint64_t Mix(uint64_t x) {  // SplitMix64's finalizer
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

double Unit(uint64_t x) { return static_cast<double>(Mix(x) >> 11) * 0x1.0p-53; }

std::string H(const std::string& what) { return repro::HashBytes(what.data(), what.size()); }

const char* const kTensors[] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                "fc1.weight",   "fc1.bias",   "fc2.weight",   "fc2.bias"};

repro::RunResult Result(const repro::LeasedRun& run, int epochs, int predictions) {
  const bool same = run.arm == "same_seed";
  const uint64_t key = (same ? 0u : 1u) << 20 | static_cast<uint64_t>(run.index);
  const int diverge = same ? (run.index == 0 ? epochs : 100 + run.index % 100) : 0;
  const std::string init = same ? "init-0" : absl::StrCat("init-", run.index);
  repro::RunResult r;
  r.data_x_hash = H("data-x");
  r.data_y_hash = H("data-y");
  for (const char* name : kTensors) {
    r.initial_tensors.push_back({name, H(absl::StrCat(init, name))});
    r.final_tensors.push_back(
        {name, H(absl::StrCat(run.index < 1 || !same ? init : absl::StrCat("final-", run.index),
                              name, "final"))});
  }
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& t : r.initial_tensors) named.emplace_back(t.name, t.hash);
  r.initial_hash = repro::HashNamed(named);
  named.clear();
  for (const auto& t : r.final_tensors) named.emplace_back(t.name, t.hash);
  r.final_hash = repro::HashNamed(named);
  for (int e = 0; e < epochs; ++e) {
    repro::EpochRecord rec;
    rec.epoch = e;
    const double progress = static_cast<double>(e + 1) / epochs;
    rec.loss = 0.3 + 0.7 * (1 - progress) + 0.01 * Unit(key * 1000 + e);
    rec.accuracy = 0.9 * progress + 0.01 * Unit(key * 1000 + e + 7);
    rec.val_loss = rec.loss + 0.02 * Unit(key * 1000 + e + 11);
    rec.val_accuracy = rec.accuracy - 0.01 * Unit(key * 1000 + e + 13);
    rec.seconds = 10 + Unit(key * 1000 + e + 17);
    rec.lr = 0.001;
    rec.batch_digest = H(absl::StrCat(same ? "order-0-" : absl::StrCat("order-", run.index, "-"), e));
    rec.weights_hash = H(absl::StrCat(e < diverge ? init : absl::StrCat(init, "-", run.index), "-", e));
    r.epochs.push_back(std::move(rec));
  }
  r.test_loss = r.epochs.back().val_loss;
  r.test_accuracy = r.epochs.back().val_accuracy;
  r.predictions.resize(static_cast<size_t>(predictions));
  for (int j = 0; j < predictions; ++j) {
    const uint64_t base = Mix(static_cast<uint64_t>(j)) % 10;
    const bool differs = same ? j < run.index % 50 : Unit(key * 100003 + j) < 0.1;
    r.predictions[static_cast<size_t>(j)] = static_cast<uint8_t>(differs ? (base + 1) % 10 : base);
  }
  r.environment = {{"device", "cpu"}, {"host", "synthetic"}, {"torch", "1.13.1"},
                   {"threads", "1"}, {"deterministic_algorithms", "true"}};
  return r;
}

int Main(int argc, char** argv) {
  const std::vector<repro::cli::FlagSpec> flags = {
      {"db", true, "the store to create (must not exist)", "PATH"},
      {"runs-per-arm", true, "runs per arm (default 5000; two arms)", "N"},
      {"epochs", true, "epochs per run (default 200)", "N"},
      {"predictions", true, "test predictions per run (default 10000)", "N"},
      {"threads", true, "writer threads (default 8)", "N"},
  };
  auto args = repro::cli::Parse(argc, argv, flags);
  if (!args.ok() || !args->Has("db")) {
    std::fputs(repro::cli::Usage("synth_store --db PATH [flags]", flags).c_str(), stderr);
    return 2;
  }
  const int runs = static_cast<int>(*args->GetInt("runs-per-arm", 5000, 1, 100000));
  const int epochs = static_cast<int>(*args->GetInt("epochs", 200, 1, 100000));
  const int predictions = static_cast<int>(*args->GetInt("predictions", 10000, 0, 1 << 24));
  const int threads = static_cast<int>(*args->GetInt("threads", 8, 1, 256));
  const std::string plan_text =
      absl::StrCat("experiment: synthetic\nruns: ", runs, "\nepochs: ", epochs,
                   "\nmodel: {kind: small-cnn}\n"
                   "dataset: {kind: fashion-mnist, path: /usr/share/datasets/fashion-mnist}\n");
  auto plan = repro::ParsePlan(plan_text, "synthetic plan");
  if (!plan.ok()) return repro::cli::Fail("synth_store", std::string(plan.status().message()), 1);
  auto store = repro::RunStore::Open(args->Get("db"));
  if (!store.ok()) return repro::cli::Fail("synth_store", std::string(store.status().message()), 1);
  auto created = (*store)->EnsureExperiment(*plan, plan_text);
  if (!created.ok() || !*created) {
    return repro::cli::Fail("synth_store", "the store must be new (or cannot create the experiment)", 1);
  }
  const auto start = std::chrono::steady_clock::now();
  std::atomic<int> done{0}, failed{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const std::string worker = absl::StrCat("synthetic-", t);
      repro::RunStore& s = **store;
      if (!s.UpsertWorker({worker, "synthetic", "1.13.1", "cpu", 1, 0, "", {}, {}, 0, ""}).ok()) ++failed;
      for (;;) {
        auto leased = s.LeaseNext("synthetic", worker, 0, 1LL << 50);
        if (!leased.ok()) { ++failed; return; }
        if (!leased->has_value()) return;
        const repro::LeasedRun& run = **leased;
        auto counted = s.Complete(run.run_id, run.lease_id, Result(run, epochs, predictions), 1);
        if (!counted.ok() || !*counted) { ++failed; return; }
        if (++done % 1000 == 0) std::fprintf(stderr, "synth_store: %d runs\n", done.load());
      }
    });
  }
  for (auto& t : pool) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("synth_store: %d runs x %d epochs written in %.1f s (%d failures)\n", done.load(),
              epochs, seconds, failed.load());
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
