#include "analysis/localization.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace repro {
namespace {

const char* YesNo(int known) { return known < 0 ? "not known" : known ? "yes" : "no"; }

void Known(JsonWriter& w, std::string_view key, int known) {
  w.Key(key);
  if (known < 0) {
    w.Null();
  } else {
    w.Bool(known == 1);
  }
}

std::string ModuleName(const std::string& module) {
  return module.empty() ? "the model itself" : absl::StrCat("module ", module);
}

// What the first differing operation was, and by how much.
void AppendOperation(const LocalizationResult& r, std::string* out) {
  if (r.op_kind == "ops") {
    absl::StrAppendFormat(out,
                          "The two sides ran different operations at #%d of the step: %s and "
                          "%s (%s, %s): their paths parted there.\n",
                          r.op_index, r.op_name, r.op_name_b.empty() ? "nothing" : r.op_name_b,
                          r.op_phase, ModuleName(r.op_module));
    return;
  }
  if (r.op_kind != "outputs") {
    absl::StrAppend(out, "Every traced operation's outputs were equal: the weights parted in "
                         "a step the trace does not see.\n");
    return;
  }
  absl::StrAppendFormat(out, "First operation whose outputs differ: #%d of %d, %s (%s) in %s.\n",
                        r.op_index, r.trace_ops, r.op_name, r.op_phase, ModuleName(r.op_module));
  absl::StrAppend(out, r.inputs_equal
                           ? "  Its inputs were equal on both sides: this operation is where "
                             "the runs part.\n"
                           : "  Its inputs already differed: the difference came in from "
                             "before it (an operation the trace does not see).\n");
  if (r.values > 0) {
    absl::StrAppendFormat(out, "  %d of %d output values differ; largest difference %.3g "
                               "(%d units in the last place).\n",
                          r.differing_values, r.values, r.max_abs, r.max_ulps);
  }
}

std::string AnswerText(const LocalizationState& s, const LocalizationResult& r) {
  const std::string where =
      r.worker_b.empty()
          ? absl::StrCat("on worker ", r.worker.empty() ? "-" : r.worker)
          : absl::StrCat("each on a worker like the one it trained on (", s.run_a, " on ",
                         r.worker, ", ", s.run_b, " on ", r.worker_b, ")");
  std::string out = absl::StrFormat(
      "Runs %s and %s part in epoch %d (their weights first differ after it).\n"
      "Replayed %s, each under its own run's spec: %d batches, %.2f s; the replays "
      "reproduced their runs' weights: %s and %s.\n",
      s.run_a, s.run_b, r.epoch, where, r.batches, r.replay_seconds,
      YesNo(r.a_reproduced), YesNo(r.b_reproduced));
  if (r.batch < 0) {
    absl::StrAppend(&out, "The two replays did not part in that epoch: what parted the runs "
                          "did not happen again here (another machine, or chance).\n");
    return out;
  }
  absl::StrAppendFormat(&out, "First batch after which the weights differ: %d (0-based).\n",
                        r.batch);
  AppendOperation(r, &out);
  absl::StrAppendFormat(&out, "The traced steps ended with the untraced steps' weights: %s.\n",
                        r.trace_changed_nothing ? "yes (the observer changed nothing)"
                                                : "NO: the observer changed the result");
  absl::StrAppendFormat(&out, "Cost: one step %.1f ms untraced, %.1f ms traced; trace of %d "
                              "operations, %.1f KB; %.2f s in all on the %s.\n",
                        r.step_seconds * 1e3, r.traced_step_seconds * 1e3, r.trace_ops,
                        r.trace_bytes / 1e3, r.seconds, r.worker_b.empty() ? "worker" : "workers");
  return out;
}

void WriteAnswer(JsonWriter& w, const LocalizationResult& r) {
  w.BeginObject();
  w.Field("batches", r.batches);
  w.Key("batch");
  if (r.batch < 0) {
    w.Null();
  } else {
    w.Int(r.batch);
  }
  w.Key("reproduced");
  w.BeginObject();
  Known(w, "a", r.a_reproduced);
  Known(w, "b", r.b_reproduced);
  w.EndObject();
  w.Key("op");
  if (r.op_kind == "none") {
    w.Null();
  } else {
    w.BeginObject();
    w.Field("kind", r.op_kind);
    w.Field("index", r.op_index);
    w.Field("name", r.op_name);
    w.Field("name_b", r.op_name_b);
    w.Field("module", r.op_module);
    w.Field("phase", r.op_phase);
    w.Field("inputs_equal", r.inputs_equal);
    w.Field("differing_outputs", r.differing_outputs);
    w.Field("values", r.values);
    w.Field("differing_values", r.differing_values);
    w.Field("max_abs", r.max_abs);
    w.Key("max_ulps");
    w.Uint(r.max_ulps);
    w.EndObject();
  }
  w.Field("trace_changed_nothing", r.trace_changed_nothing);
  w.Field("trace_ops", r.trace_ops);
  w.Field("trace_bytes", r.trace_bytes);
  w.Key("seconds");
  w.BeginObject();
  w.Field("replay", r.replay_seconds);
  w.Field("step", r.step_seconds);
  w.Field("traced_step", r.traced_step_seconds);
  w.Field("total", r.seconds);
  w.EndObject();
  w.EndObject();
}

}  // namespace

std::string LocalizationText(const LocalizationState& s) {
  if (s.result) return AnswerText(s, *s.result);
  if (s.state == "failed") {
    return absl::StrCat("Runs ", s.run_a, " and ", s.run_b, ": the localization failed: ",
                        s.error, "\n");
  }
  std::string doing = "no worker has taken the request yet";
  if (s.state == "running") {
    doing = s.stage.empty()
                ? absl::StrCat("worker ", s.worker, " is replaying it")
                : absl::StrCat("each run replays on a worker like the one it trained on, stage ",
                               s.stage, " (the last taken by worker ", s.worker, ")");
  }
  return absl::StrCat("Runs ", s.run_a, " and ", s.run_b, " part in epoch ", s.epoch, "; ",
                      doing, ".\n");
}

void WriteLocalization(JsonWriter& w, const LocalizationState& s) {
  w.BeginObject();
  w.Field("run_a", s.run_a);
  w.Field("run_b", s.run_b);
  w.Field("state", s.state);
  w.Field("error", s.error);
  w.Field("epoch", s.epoch);
  w.Field("worker", s.result ? s.result->worker : s.worker);
  // Each run on a worker of its own: run b's worker and the stage; null when one worker.
  w.Key("worker_b");
  if (s.result && !s.result->worker_b.empty()) {
    w.String(s.result->worker_b);
  } else {
    w.Null();
  }
  w.Key("stage");
  if (s.stage.empty()) {
    w.Null();
  } else {
    w.String(s.stage);
  }
  w.Key("answer");
  if (s.result) {
    WriteAnswer(w, *s.result);
  } else {
    w.Null();
  }
  w.EndObject();
}

std::string LocalizationJson(const LocalizationState& s) {
  std::string out;
  JsonWriter w(&out);
  WriteLocalization(w, s);
  return out + "\n";
}

}  // namespace repro
