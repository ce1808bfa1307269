#include "analysis/localization.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace repro {
namespace {

const char* YesNo(int known) { return known < 0 ? "not known" : known ? "yes" : "no"; }

nlohmann::json Known(int known) {
  return known < 0 ? nlohmann::json(nullptr) : nlohmann::json(known == 1);
}

std::string ModuleName(const std::string& module) {
  return module.empty() ? "the model itself" : absl::StrCat("module ", module);
}

}  // namespace

std::string LocalizationText(const std::string& run_a, const std::string& run_b,
                             const LocalizationResult& r) {
  std::string out = absl::StrFormat(
      "Runs %s and %s part in epoch %d (their weights first differ after it).\n"
      "Replayed on worker %s, each under its own run's spec: %d batches, %.2f s; the replays "
      "reproduced their runs' weights: %s and %s.\n",
      run_a, run_b, r.epoch, r.worker.empty() ? "-" : r.worker, r.batches, r.replay_seconds,
      YesNo(r.a_reproduced), YesNo(r.b_reproduced));
  if (r.batch < 0) {
    absl::StrAppend(&out, "The two replays did not part in that epoch: what parted the runs "
                          "did not happen again here (another machine, or chance).\n");
    return out;
  }
  absl::StrAppendFormat(&out, "First batch after which the weights differ: %d (0-based).\n",
                        r.batch);
  if (r.op_kind == "ops") {
    absl::StrAppendFormat(&out,
                          "The two sides ran different operations at #%d of the step: %s and "
                          "%s (%s, %s): their paths parted there.\n",
                          r.op_index, r.op_name, r.op_name_b.empty() ? "nothing" : r.op_name_b,
                          r.op_phase, ModuleName(r.op_module));
  } else if (r.op_kind == "outputs") {
    absl::StrAppendFormat(&out, "First operation whose outputs differ: #%d of %d, %s (%s) in %s.\n",
                          r.op_index, r.trace_ops, r.op_name, r.op_phase, ModuleName(r.op_module));
    absl::StrAppend(&out, r.inputs_equal
                              ? "  Its inputs were equal on both sides: this operation is where "
                                "the runs part.\n"
                              : "  Its inputs already differed: the difference came in from "
                                "before it (an operation the trace does not see).\n");
    if (r.values > 0) {
      absl::StrAppendFormat(&out, "  %d of %d output values differ; largest difference %.3g "
                                  "(%d units in the last place).\n",
                            r.differing_values, r.values, r.max_abs, r.max_ulps);
    }
  } else {
    absl::StrAppend(&out, "Every traced operation's outputs were equal: the weights parted in "
                          "a step the trace does not see.\n");
  }
  absl::StrAppendFormat(&out, "The traced steps ended with the untraced steps' weights: %s.\n",
                        r.trace_changed_nothing ? "yes (the observer changed nothing)"
                                                : "NO: the observer changed the result");
  absl::StrAppendFormat(&out, "Cost: one step %.1f ms untraced, %.1f ms traced; trace of %d "
                              "operations, %.1f KB; %.2f s in all on the worker.\n",
                        r.step_seconds * 1e3, r.traced_step_seconds * 1e3, r.trace_ops,
                        r.trace_bytes / 1e3, r.seconds);
  return out;
}

std::string LocalizationJson(const std::string& run_a, const std::string& run_b,
                             const LocalizationResult& r) {
  nlohmann::json j;
  j["run_a"] = run_a;
  j["run_b"] = run_b;
  j["epoch"] = r.epoch;
  j["batches"] = r.batches;
  j["batch"] = r.batch < 0 ? nlohmann::json(nullptr) : nlohmann::json(r.batch);
  j["reproduced"] = {{"a", Known(r.a_reproduced)}, {"b", Known(r.b_reproduced)}};
  if (r.op_kind == "none") {
    j["op"] = nullptr;
  } else {
    j["op"] = {{"kind", r.op_kind}, {"index", r.op_index}, {"name", r.op_name},
               {"name_b", r.op_name_b}, {"module", r.op_module}, {"phase", r.op_phase},
               {"inputs_equal", r.inputs_equal}, {"differing_outputs", r.differing_outputs},
               {"values", r.values}, {"differing_values", r.differing_values},
               {"max_abs", r.max_abs}, {"max_ulps", r.max_ulps}};
  }
  j["trace_changed_nothing"] = r.trace_changed_nothing;
  j["trace_ops"] = r.trace_ops;
  j["trace_bytes"] = r.trace_bytes;
  j["seconds"] = {{"replay", r.replay_seconds}, {"step", r.step_seconds},
                  {"traced_step", r.traced_step_seconds}, {"total", r.seconds}};
  j["worker"] = r.worker;
  return j.dump(2) + "\n";
}

}  // namespace repro
