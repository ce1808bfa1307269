#include "store/status_view.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/placement.h"
#include "common/plan.h"
#include "common/status_macros.h"
#include "store/store_internal.h"

namespace repro {
namespace {

void Count(RunState state, RunCounts* counts) {
  switch (state) {
    case RunState::kPending: ++counts->pending; break;
    case RunState::kRunning: ++counts->running; break;
    case RunState::kDone: ++counts->done; break;
    case RunState::kFailed: ++counts->failed; break;
  }
}

nlohmann::json CountsJson(const RunCounts& c) {
  return {{"pending", c.pending}, {"running", c.running}, {"done", c.done},
          {"failed", c.failed}};
}

// The size of `path` in bytes; 0 when it does not exist (a WAL checkpointed away).
int64_t FileBytes(const std::string& path) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  return error ? 0 : static_cast<int64_t>(size);
}

// "8.1 MB": disk use in decimal megabytes, as `df -H` and `du --si` show it.
std::string Megabytes(int64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1e6); }

// How much of a running run is left, as a fraction of the whole run.
double FractionLeft(const RunView& run, int epochs) {
  double done_fraction = run.current_epoch;
  if (run.batches > 0) done_fraction += static_cast<double>(run.current_batch) / run.batches;
  return 1.0 - std::min(1.0, done_fraction / std::max(1, epochs));
}

// Why each arm with pending runs waits, when no worker that is here can run them.
absl::Status NoteWaitingArms(RunStore& store, ExperimentStatus* out) {
  if (std::none_of(out->arms.begin(), out->arms.end(),
                   [](const ArmProgress& a) { return a.runs.pending > 0; })) {
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(const std::string text, store.PlanText(out->experiment));
  absl::StatusOr<Plan> plan = ParsePlan(text, "the stored plan");
  if (!plan.ok()) return absl::OkStatus();  // a plan this build no longer reads: no reasons
  for (ArmProgress& progress : out->arms) {
    if (progress.runs.pending == 0) continue;
    for (const ArmSpec& arm : plan->arms) {
      if (arm.name == progress.name) progress.waiting = WhyNoWorker(arm, out->workers);
    }
  }
  return absl::OkStatus();
}

std::string DescribeWorker(const WorkerRecord& w, int64_t now_ms) {
  std::string out = absl::StrFormat("  %-24s %s, %s", w.name, w.host, w.device);
  // A GPU worker's GPU as placement reads it: name, memory, driver, CUDA.
  std::vector<std::string> gpu;
  for (const auto& [key, prefix, suffix] :
       {std::tuple{"gpu_name", "", ""}, std::tuple{"gpu_memory_mb", "", " MB"},
        std::tuple{"driver", "driver ", ""}, std::tuple{"cuda", "CUDA ", ""}}) {
    const auto it = w.capabilities.find(key);
    if (it != w.capabilities.end()) gpu.push_back(absl::StrCat(prefix, it->second, suffix));
  }
  if (!gpu.empty()) absl::StrAppend(&out, " (", absl::StrJoin(gpu, ", "), ")");
  absl::StrAppendFormat(&out, ", %d %s, LibTorch %s", w.threads, w.threads == 1 ? "thread" : "threads",
                        w.torch_version);
  for (const auto& [key, value] : w.labels) absl::StrAppend(&out, ", ", key, "=", value);
  if (w.gone()) {
    const double ago = (now_ms - w.gone_ms) / 1000.0;
    absl::StrAppend(&out, ", gone ", FormatDuration(std::max(0.0, ago)), " ago (", w.gone_reason, ")");
  } else {
    const double ago = (now_ms - w.last_seen_ms) / 1000.0;
    absl::StrAppend(&out, ", seen ", FormatDuration(std::max(0.0, ago)), " ago, ",
                    w.current_run.empty() ? "idle" : "running " + w.current_run);
  }
  return out + "\n";
}

// A figure of the adaptive status: three significant digits ("0.91", "0.0886", "180").
std::string Figure(double value) { return absl::StrFormat("%.3g", value); }

// One arm at the last look: "same_seed: ratio 0.91 [0.7, 1.18], width 0.48, runs per arm
// needed: about 180 (170 more)".
std::string AdaptiveArmLine(const AdaptiveArmLook& arm) {
  if (!arm.ratio || !arm.low || !arm.high) {
    return absl::StrCat(arm.arm, ": ratio undefined (fewer than 2 scores a side, or a "
                                 "reference without spread)");
  }
  std::string line = absl::StrCat(arm.arm, ": ratio ", Figure(*arm.ratio), " [",
                                  Figure(*arm.low), ", ", Figure(*arm.high), "], width ",
                                  Figure(*arm.width()));
  if (arm.settled) return line + ", settled";
  if (!arm.runs_needed) return absl::StrCat(line, ", runs per arm needed: ", RunsNeededText(arm));
  const int64_t more = *arm.runs_needed - std::max(arm.runs, arm.reference_runs);
  return absl::StrCat(line, ", runs per arm needed: about ", *arm.runs_needed,
                      more > 0 ? absl::StrCat(" (", more, " more)") : "");
}

}  // namespace

std::string DescribeAdaptive(const AdaptiveState& a) {
  const std::string target = absl::StrCat("target width ", Figure(a.ratio_ci_width));
  if (a.looks.empty()) {
    return absl::StrFormat("  adaptive: first look once the %d runs per arm are done (%s of "
                           "the stdev ratio of test %s against %s, at most %d runs)\n",
                           a.min, target, a.metric, a.reference, a.max);
  }
  const size_t look = a.looks.size();
  const std::string stopped = a.stopped();
  if (stopped == "reached") {
    return absl::StrFormat("  adaptive: stopped, every arm settled at look %d (%s)\n", look,
                           target);
  }
  if (stopped == "max") {
    std::vector<std::string> wide;
    for (const AdaptiveArmLook& arm : a.looks.back().arms) {
      if (arm.settled) continue;
      wide.push_back(absl::StrCat(arm.width() ? Figure(*arm.width())
                                                      : std::string("undefined"),
                                  " for ", arm.arm));
    }
    return absl::StrFormat("  adaptive: stopped at max runs (%d) at look %d; width still %s "
                           "(target %s)\n",
                           a.max, look, absl::StrJoin(wide, ", "), Figure(a.ratio_ci_width));
  }
  std::string out = absl::StrFormat("  adaptive: look %d of at most %d, level %s %%, %s\n",
                                    look, a.looks_planned,
                                    absl::StrFormat("%.6g", 100 * a.level), target);
  for (const AdaptiveArmLook& arm : a.looks.back().arms) {
    absl::StrAppend(&out, "    ", AdaptiveArmLine(arm), "\n");
  }
  return out;
}

std::string FormatDuration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "unknown";
  const long long s = std::llround(seconds);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

std::string DescribeLocalizing(const std::vector<LocalizationState>& localizing) {
  std::string out;
  for (const LocalizationState& l : localizing) {
    absl::StrAppendFormat(&out, "  localizing %s and %s (epoch %d): ", l.run_a, l.run_b, l.epoch);
    if (l.state == "pending") {
      absl::StrAppend(&out, "waiting for a worker",
                      l.stage.empty() ? "" : " (each run on a worker like its own)", "\n");
    } else if (l.stage.empty()) {
      absl::StrAppend(&out, "worker ", l.worker, " replays both runs\n");
    } else {
      absl::StrAppend(&out, "each run on a worker like its own, stage ", l.stage,
                      " (the last taken by worker ", l.worker, ")\n");
    }
  }
  return out;
}

absl::StatusOr<ExperimentStatus> BuildStatus(RunStore& store, const std::string& experiment) {
  // The runs' states only: the coordinator builds this every second for its progress line.
  ASSIGN_OR_RETURN(ExperimentView view, store.LoadView(experiment, /*with_results=*/false));
  ASSIGN_OR_RETURN(RunTiming timing, store.Timing(experiment));
  ExperimentStatus out;
  ASSIGN_OR_RETURN(out.workers, store.Workers());
  out.database_bytes = FileBytes(store.path());
  out.wal_bytes = FileBytes(store.path() + "-wal");
  ASSIGN_OR_RETURN(out.weights, store.Weights(experiment));
  out.experiment = view.name;
  out.epochs = view.epochs;
  for (const std::string& arm : view.arms) out.arms.push_back(ArmProgress{arm, 0, {}, ""});
  double running_fraction_left = 0;
  for (const RunView& run : view.runs) {
    Count(run.state, &out.runs);
    for (ArmProgress& arm : out.arms) {
      if (arm.name == run.arm) {
        ++arm.total;
        Count(run.state, &arm.runs);
      }
    }
    if (run.state == RunState::kRunning) {
      out.running.push_back(RunningRun{run.arm, run.index, run.worker, run.current_epoch,
                                       view.epochs, run.current_batch, run.batches});
      running_fraction_left += FractionLeft(run, view.epochs);
    }
  }
  RETURN_IF_ERROR(NoteWaitingArms(store, &out));
  const RunCounts& c = out.runs;
  out.adaptive = std::move(view.adaptive);
  ASSIGN_OR_RETURN(out.localizing, store.OpenLocalizationStates(experiment));
  out.complete = c.finished() && (!out.adaptive || !out.adaptive->stopped().empty());
  // ETA: the work left (pending runs plus what running runs still have to do) at the
  // mean time of a finished run, spread over the runs in flight.
  if (out.complete) {
    out.eta_seconds = 0;
  } else if (timing.done > 0) {
    const double parallel = std::max(1, c.running);
    out.eta_seconds = timing.mean_run_seconds * (c.pending + running_fraction_left) / parallel;
  } else {
    out.eta_seconds = -1;
  }
  return out;
}

absl::StatusOr<std::string> RenderStatus(const ExperimentStatus& s, const std::string& format,
                                         int64_t now_ms) {
  if (format == "json") {
    nlohmann::json j;
    j["experiment"] = s.experiment;
    j["complete"] = s.complete;
    j["epochs"] = s.epochs;
    j["runs"] = CountsJson(s.runs);
    j["eta_seconds"] = s.eta_seconds < 0 ? nlohmann::json(nullptr) : nlohmann::json(s.eta_seconds);
    j["arms"] = nlohmann::json::array();
    for (const auto& a : s.arms) {
      j["arms"].push_back({{"name", a.name}, {"total", a.total}, {"runs", CountsJson(a.runs)},
                           {"waiting", a.waiting.empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(a.waiting)}});
    }
    j["running"] = nlohmann::json::array();
    for (const auto& r : s.running) {
      j["running"].push_back({{"arm", r.arm}, {"index", r.index}, {"worker", r.worker},
                              {"epoch", r.epoch}, {"epochs", r.epochs},
                              {"batch", r.batch}, {"batches", r.batches}});
    }
    j["workers"] = nlohmann::json::array();
    for (const auto& w : s.workers) {
      j["workers"].push_back({{"name", w.name}, {"host", w.host}, {"device", w.device},
                              {"threads", w.threads}, {"torch_version", w.torch_version},
                              {"last_seen_unix_ms", w.last_seen_ms},
                              {"current_run", w.current_run},
                              {"capabilities", w.capabilities}, {"labels", w.labels},
                              {"gone", w.gone()},
                              {"gone_unix_ms", w.gone() ? nlohmann::json(w.gone_ms) : nlohmann::json(nullptr)},
                              {"gone_reason", w.gone_reason}});
    }
    j["store"] = {{"database_bytes", s.database_bytes}, {"wal_bytes", s.wal_bytes}};
    j["weights"] = {{"files", s.weights.files}, {"bytes", s.weights.bytes},
                    {"stored_bytes", s.weights.stored_bytes}};
    j["adaptive"] = s.adaptive ? AdaptiveStateJson(*s.adaptive) : nlohmann::json(nullptr);
    j["localizing"] = nlohmann::json::array();
    for (const LocalizationState& l : s.localizing) {
      j["localizing"].push_back({{"run_a", l.run_a}, {"run_b", l.run_b}, {"state", l.state},
                                 {"epoch", l.epoch},
                                 {"worker", l.worker.empty() ? nlohmann::json(nullptr) : nlohmann::json(l.worker)},
                                 {"stage", l.stage.empty() ? nlohmann::json(nullptr) : nlohmann::json(l.stage)}});
    }
    return j.dump(2) + "\n";
  }
  if (format != "text") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format: expected text or json, got \"", format, "\""));
  }
  const RunCounts& c = s.runs;
  const int total = c.total();
  std::string out = absl::StrFormat(
      "Experiment %s: %s, %d of %d runs done, %d running, %d pending, %d failed\n",
      s.experiment, s.complete ? "complete" : "in progress", c.done, total, c.running,
      c.pending, c.failed);
  if (!s.complete) absl::StrAppend(&out, "ETA: ", FormatDuration(s.eta_seconds), "\n");
  absl::StrAppend(&out, "Store: ", Megabytes(s.database_bytes + s.wal_bytes), " on disk (database ",
                  Megabytes(s.database_bytes), ", write-ahead log ", Megabytes(s.wal_bytes), ")\n");
  if (s.weights.files > 0) absl::StrAppend(&out, DescribeWeights(s.weights), "\n");
  for (const auto& a : s.arms) {
    absl::StrAppendFormat(&out, "  %-20s %d/%d done", a.name, a.runs.done, a.total);
    if (a.runs.failed > 0) absl::StrAppendFormat(&out, ", %d failed", a.runs.failed);
    absl::StrAppend(&out, "\n");
    if (!a.waiting.empty()) absl::StrAppend(&out, "    waiting: ", a.waiting, "\n");
  }
  if (s.adaptive) absl::StrAppend(&out, DescribeAdaptive(*s.adaptive));
  absl::StrAppend(&out, DescribeLocalizing(s.localizing));
  for (const auto& r : s.running) {
    absl::StrAppendFormat(&out, "  running %s#%d on %s: epoch %d/%d", r.arm, r.index,
                          r.worker, r.epoch + 1, r.epochs);
    if (r.batches > 0) absl::StrAppendFormat(&out, ", batch %d/%d", r.batch, r.batches);
    absl::StrAppend(&out, "\n");
  }
  if (!s.workers.empty()) absl::StrAppend(&out, "Workers:\n");
  for (const auto& w : s.workers) absl::StrAppend(&out, DescribeWorker(w, now_ms));
  return out;
}

}  // namespace repro
