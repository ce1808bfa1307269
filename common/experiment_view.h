// An experiment as the store holds it, in plain records: its runs and their results
// (ExperimentView, the input of every analysis), its workers, and the progress summary
// that `reproctl status` and the coordinator's progress line show (ExperimentStatus).
// The store (store/store.h) builds them from SQLite, tests build them directly, and
// proto/convert.h carries ExperimentStatus over the wire. No dependencies, so the store,
// the analyses and the wire share one definition (ARCHITECTURE.md, "Layers").
//
// Thread safety: plain structs; callers synchronize.
#ifndef REPRO_COMMON_EXPERIMENT_VIEW_H_
#define REPRO_COMMON_EXPERIMENT_VIEW_H_

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/records.h"

namespace repro {

enum class RunState { kPending, kRunning, kDone, kFailed };

// "pending", "running", "done", "failed".
inline const char* RunStateName(RunState state) {
  switch (state) {
    case RunState::kPending: return "pending";
    case RunState::kRunning: return "running";
    case RunState::kDone: return "done";
    case RunState::kFailed: return "failed";
  }
  return "unknown";
}

// A result that arrived for a run that already had one (a lease that expired while
// its worker went on training): kept as evidence, never counted in the statistics.
struct ExtraResult {
  std::string worker;
  std::string final_hash;
  double test_loss = 0;
  double test_accuracy = 0;
};

struct RunView {
  std::string arm;
  int index = 0;                // 0-based within the arm
  uint64_t init_seed = 0;
  uint64_t shuffle_seed = 0;
  uint64_t augment_seed = 0;
  RunState state = RunState::kPending;
  int attempts = 0;
  std::string worker;           // worker that holds/held the run
  std::string error;            // reason of the last failure
  int current_epoch = -1;       // running runs: the epoch in progress (0-based)
  int64_t current_batch = 0;    // running runs: batches done in that epoch
  int64_t batches = 0;          // running runs: batches per epoch (0 = not known yet)
  RunResult result;             // complete for kDone runs; epochs so far otherwise
  // Empty unless the stored result fails the checksum written with it (a bit flipped on
  // disk, a row edited by hand): then what does not match, and the analyses count the
  // run but neither compare nor score it. Results stored before schema 2 have no
  // checksum and are read unchecked.
  std::string corrupt;
  std::vector<ExtraResult> extra_results;
};

// The weights files an experiment's results name (every attempt's, extra results
// included), their bytes together, and the bytes of the distinct ones: what the blob
// store, which keeps each once, holds for them.
struct WeightsUsage {
  int64_t files = 0;
  int64_t bytes = 0;
  int64_t stored_bytes = 0;
};

// "Weights: 8 files, 3.2 MB; stored 0.8 MB, each distinct file once (saves 2.4 MB, 75 %)",
// as status and the text report say it.
inline std::string DescribeWeights(const WeightsUsage& w) {
  const double saved = static_cast<double>(w.bytes - w.stored_bytes);
  char line[160];
  std::snprintf(line, sizeof line,
                "Weights: %lld files, %.1f MB; stored %.1f MB, each distinct file once "
                "(saves %.1f MB, %.0f %%)",
                static_cast<long long>(w.files), static_cast<double>(w.bytes) / 1e6,
                static_cast<double>(w.stored_bytes) / 1e6, saved / 1e6,
                w.bytes > 0 ? 100.0 * saved / static_cast<double>(w.bytes) : 0.0);
  return line;
}

// A request for where two runs part (reproctl localize) and its answer, as the store
// keeps it.
struct LocalizationState {
  int64_t id = 0;
  std::string state;         // pending | running | done | failed
  std::string run_a, run_b;  // "arm#index"
  int epoch = 0;             // the epoch to replay
  std::string worker;        // running or done: who took it
  std::string error;         // failed: why
  std::optional<LocalizationResult> result;  // done
  // "" when one worker replays both runs; else each run replays on a worker like the one
  // it trained on (common/localize_stages.h), and this is the stage: epoch, trace, dump
  // or done.
  std::string stage;
};

// An adaptive experiment (the plan's `runs: {min, max, step, until}`, common/plan.h
// AdaptiveRuns) as the store keeps it: its rule, and every look the coordinator took at
// the scores once all runs so far had finished (analysis/adaptive.h TakeLook).
//
// One arm against the reference arm at a look.
struct AdaptiveArmLook {
  std::string arm;
  int runs = 0;            // its runs with a score (done, intact) at the look
  int reference_runs = 0;  // the reference arm's
  // The stdev ratio (ddof 0) of the rule's metric and its interval at the rule's level
  // (AdaptiveState::level); nullopt where undefined (fewer than 2 scores a side, or a
  // reference without spread). An arm without spread has ratio 0 and interval [0, 0].
  std::optional<double> ratio;
  std::optional<double> low;
  std::optional<double> high;
  bool settled = false;    // width() <= the rule's ratio_ci_width
  // Runs per arm (both arms) the interval would need at the same level, projected from
  // these scores (analysis/planning.h's delta method); nullopt: undefined, or over
  // kMaxPlannedRuns (RunsNeededText tells which).
  std::optional<int64_t> runs_needed;
  // high - low; nullopt where the interval is.
  std::optional<double> width() const {
    if (!low || !high) return std::nullopt;
    return *high - *low;
  }
};

// The most runs per arm a projection names (analysis/planning.h); beyond, "over" it.
inline constexpr int64_t kMaxPlannedRuns = 100000;

// An arm's projected runs as the report and status say them: "1246", "over 100000"
// (the ratio is known but the count beyond kMaxPlannedRuns) or "undefined".
inline std::string RunsNeededText(const AdaptiveArmLook& a) {
  if (a.runs_needed) return std::to_string(*a.runs_needed);
  return a.ratio ? "over " + std::to_string(kMaxPlannedRuns) : "undefined";
}

struct AdaptiveLook {
  std::vector<AdaptiveArmLook> arms;  // every arm but the reference, in plan order
  // What followed: "more" (a round: `added` runs to the arms named), "reached" (every
  // arm settled) or "max" (an arm not settled had reached the rule's max runs).
  std::string decision;
  std::map<std::string, int> added;  // arm -> runs added after this look
};

struct AdaptiveState {
  // The rule, as the plan gives it.
  int min = 0;
  int max = 0;
  int step = 0;
  double ratio_ci_width = 0;
  std::string metric;     // "accuracy" | "loss"
  std::string reference;  // the arm the others are compared with
  // Bonferroni over the looks the rule may take: level = 1 - 0.05 / looks_planned.
  int looks_planned = 0;
  double level = 0;
  std::vector<AdaptiveLook> looks;  // oldest first
  // "" while another round may come; else why it stopped: "reached" | "max".
  std::string stopped() const {
    if (looks.empty() || looks.back().decision == "more") return "";
    return looks.back().decision;
  }
};

// The level of each look's interval under Bonferroni over `looks_planned` looks.
inline double AdaptiveLevel(int looks_planned) {
  return 1 - 0.05 / (looks_planned > 1 ? looks_planned : 1);
}

// The looks a rule may take from `min` runs per arm: the first, then one per round of
// `step` (the last maybe smaller) until `max`.
inline int AdaptiveLooks(int min, int max, int step) { return 1 + (max - min + step - 1) / step; }

// A rule before any look, its looks and level worked out.
inline AdaptiveState AdaptiveRule(int min, int max, int step, double ratio_ci_width,
                                  std::string metric, std::string reference) {
  AdaptiveState s;
  s.min = min;
  s.max = max;
  s.step = step;
  s.ratio_ci_width = ratio_ci_width;
  s.metric = std::move(metric);
  s.reference = std::move(reference);
  s.looks_planned = AdaptiveLooks(min, max, step);
  s.level = AdaptiveLevel(s.looks_planned);
  return s;
}

struct ExperimentView {
  std::string name;
  std::vector<std::string> arms;  // in plan order
  int runs_per_arm = 0;
  int epochs = 0;
  std::vector<RunView> runs;      // ordered by arm (plan order), then index
  WeightsUsage weights;           // read with the results
  std::vector<LocalizationState> localizations;  // read with the results, oldest first
  // The true class of every test example a run predicts, in test-set order (the order of
  // RunResult::predictions): what the coordinator's data check read and the store kept
  // (schema 6). Empty when not known: a coordinator run with --skip-data-check, a noop
  // model, or an experiment no coordinator of schema 6 has started since.
  std::vector<uint8_t> test_labels;
  // The plan's adaptive run count and the looks taken so far; nullopt: a fixed count.
  std::optional<AdaptiveState> adaptive;
};

// A registered worker, as it registered and as last heard from.
struct WorkerRecord {
  std::string name;
  std::string host;
  std::string torch_version;
  std::string device;       // "cuda" when it has CUDA, else "cpu"
  int threads = 0;
  int64_t last_seen_ms = 0;
  std::string current_run;  // "arm#index", empty when idle
  // What it can run (worker/engine/environment.h WorkerCapabilities: host, cpu_model,
  // torch, compiler, device, threads; with CUDA gpu_name, gpu_memory_mb, gpu_uuid,
  // driver, cuda, cudnn) and its --label KEY=VALUE pairs: what placement reads.
  std::map<std::string, std::string> capabilities;
  std::map<std::string, std::string> labels;
  // When it left (said so on its way out) or was found silent for longer than a lease
  // lasts; 0 while it is here. A gone worker that calls again is back.
  int64_t gone_ms = 0;
  std::string gone_reason;  // "left: ..." or "silent"
  bool gone() const { return gone_ms != 0; }
};

struct RunCounts {
  int pending = 0, running = 0, done = 0, failed = 0;
  int total() const { return pending + running + done + failed; }
  bool finished() const { return pending == 0 && running == 0; }
};

struct RunTiming {
  int64_t done = 0;              // runs with a counted result
  double mean_run_seconds = 0;   // mean wall time of their counted attempts
};

// What `reproctl status` shows (store/status_view.h builds and renders it).
struct ArmProgress {
  std::string name;
  int total = 0;
  RunCounts runs;
  // Set while runs are pending and no worker that is here can run them
  // (common/placement.h WhyNoWorker): "needs device cuda; none of 2 workers can (...)".
  std::string waiting;
};

struct RunningRun {
  std::string arm;
  int index = 0;
  std::string worker;
  int epoch = 0;        // the epoch in progress, 0-based
  int epochs = 0;
  int64_t batch = 0;    // batches done in it
  int64_t batches = 0;  // batches per epoch; 0 = not known yet
};

struct ExperimentStatus {
  std::string experiment;
  int epochs = 0;
  bool complete = false;   // no run pending or running, and no adaptive round to come
  double eta_seconds = -1; // < 0: unknown
  RunCounts runs;
  std::vector<ArmProgress> arms;       // in plan order
  std::vector<RunningRun> running;
  std::vector<WorkerRecord> workers;
  // The store's disk use: the SQLite file and its write-ahead log, which the coordinator
  // checkpoints as it runs (store/sqlite.h says to what size).
  int64_t database_bytes = 0;
  int64_t wal_bytes = 0;
  WeightsUsage weights;
  // An adaptive experiment's rule and looks (the last one: the current interval and the
  // runs projected); nullopt: a fixed run count.
  std::optional<AdaptiveState> adaptive;
  // Where runs part, asked and not yet answered (pending or running), oldest first;
  // without their answers.
  std::vector<LocalizationState> localizing;
};

}  // namespace repro

#endif  // REPRO_COMMON_EXPERIMENT_VIEW_H_
