#include "common/plan.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/names.h"

namespace repro {
namespace {

constexpr size_t kMaxPlanBytes = 1 << 20;
// The store holds a row per run and the report compares every pair of arms, so a small
// plan must not ask for billions of runs (plans are also bounded by kMaxPlanBytes, and
// yaml-cpp shares an alias's node instead of copying it, so aliases cannot blow up).
constexpr size_t kMaxArms = 100;
constexpr int64_t kMaxTotalRuns = 1000000;

// Thrown inside this file only, caught in ParsePlan: keeps the validators linear.
struct PlanError {
  std::string message;
};

class Validator {
 public:
  explicit Validator(std::string_view source) : source_(source) {}

  [[noreturn]] void Fail(const YAML::Node& at, const std::string& key, const std::string& what) const {
    const YAML::Mark mark = at.Mark();
    std::string where = source_;
    if (mark.line >= 0) absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
    throw PlanError{absl::StrCat(where, ": ", key, ": ", what)};
  }

  // Checks that `node` is a mapping whose keys are all in `allowed`, with no repeats.
  void CheckMap(const YAML::Node& node, const std::string& key,
                const std::vector<std::string>& allowed) const {
    if (!node.IsMap()) Fail(node, key, "expected a mapping of keys to values");
    std::set<std::string> seen;
    for (const auto& item : node) {
      const std::string name = item.first.Scalar();
      const std::string full = key.empty() ? name : absl::StrCat(key, ".", name);
      if (!allowed.empty() &&
          std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        Fail(item.first, full,
             absl::StrCat("unknown key (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
      }
      if (!seen.insert(name).second) Fail(item.first, full, "key given twice");
    }
  }

  std::string Text(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) Fail(node, key, "expected a single value");
    return node.Scalar();
  }

  int64_t Integer(const YAML::Node& node, const std::string& key, int64_t lo, int64_t hi) const {
    const std::string text = Text(node, key);
    if (node.Tag() == "!") Fail(node, key, absl::StrCat("expected an integer, got the string \"", text, "\""));
    errno = 0;
    char* end = nullptr;
    const long long value = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE) {
      Fail(node, key, absl::StrCat("expected an integer, got \"", text, "\""));
    }
    if (value < lo || value > hi) {
      Fail(node, key, absl::StrCat("must be between ", lo, " and ", hi, ", got ", value));
    }
    return value;
  }

  double Real(const YAML::Node& node, const std::string& key, double lo, double hi,
              bool lo_open) const {
    const std::string text = Text(node, key);
    if (node.Tag() == "!") Fail(node, key, absl::StrCat("expected a number, got the string \"", text, "\""));
    errno = 0;
    char* end = nullptr;
    const double value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(value)) {
      Fail(node, key, absl::StrCat("expected a number, got \"", text, "\""));
    }
    if (value < lo || value > hi || (lo_open && value == lo)) {
      Fail(node, key, absl::StrCat("must be ", lo_open ? "greater than " : "at least ", lo,
                                   " and at most ", hi, ", got ", text));
    }
    return value;
  }

  bool Boolean(const YAML::Node& node, const std::string& key) const {
    const std::string text = Text(node, key);
    if (node.Tag() != "!") {
      if (text == "true" || text == "True" || text == "yes" || text == "on") return true;
      if (text == "false" || text == "False" || text == "no" || text == "off") return false;
    }
    Fail(node, key, absl::StrCat("expected true or false, got \"", text, "\""));
  }

  std::string OneOf(const YAML::Node& node, const std::string& key,
                    const std::vector<std::string>& choices) const {
    const std::string text = Text(node, key);
    if (std::find(choices.begin(), choices.end(), text) == choices.end()) {
      Fail(node, key, absl::StrCat("expected one of ", absl::StrJoin(choices, ", "), ", got \"",
                                   text, "\""));
    }
    return text;
  }

  std::string Name(const YAML::Node& node, const std::string& key) const {
    const std::string text = Text(node, key);
    if (!IsValidName(text)) {
      Fail(node, key, absl::StrCat("\"", text, "\" is not a valid name (", kNameRule, ")"));
    }
    return text;
  }

 private:
  std::string source_;
};

SeedMode ParseSeedMode(const Validator& v, const YAML::Node& node, const std::string& key) {
  return v.OneOf(node, key, {"fixed", "per_run"}) == "fixed" ? SeedMode::kFixed
                                                               : SeedMode::kPerRun;
}

void ParseDeterminism(const Validator& v, const YAML::Node& node, const std::string& key,
                      DeterminismSpec* out) {
  v.CheckMap(node, key, {"deterministic_algorithms", "cudnn_benchmark", "threads", "device"});
  if (node["cudnn_benchmark"]) {
    out->cudnn_benchmark = v.Boolean(node["cudnn_benchmark"], absl::StrCat(key, ".cudnn_benchmark"));
  }
  if (node["deterministic_algorithms"]) {
    out->deterministic_algorithms = v.Boolean(node["deterministic_algorithms"],
                                              absl::StrCat(key, ".deterministic_algorithms"));
  }
  if (node["threads"]) {
    out->threads = static_cast<int>(v.Integer(node["threads"], absl::StrCat(key, ".threads"), 0, 1024));
  }
  if (node["device"]) out->device = v.OneOf(node["device"], absl::StrCat(key, ".device"), {"cpu", "cuda"});
}

// `runs: {min, max, step, until: {ratio_ci_width, metric, reference}}`; the reference
// is checked once the arms are known (CheckAdaptiveRuns).
void ParseAdaptiveRuns(const Validator& v, const YAML::Node& r, Plan* plan) {
  v.CheckMap(r, "runs", {"min", "max", "step", "until"});
  for (const char* required : {"min", "max", "until"}) {
    if (!r[required]) v.Fail(r, absl::StrCat("runs.", required), "missing (an adaptive run count needs min, max and until)");
  }
  AdaptiveRuns a;
  // A look compares stdevs, so each arm needs two runs from the first.
  plan->runs = static_cast<int>(v.Integer(r["min"], "runs.min", 2, 100000));
  a.max = static_cast<int>(v.Integer(r["max"], "runs.max", 2, 100000));
  if (a.max < plan->runs) {
    v.Fail(r["max"], "runs.max", absl::StrCat("must be at least runs.min (", plan->runs, "), got ", a.max));
  }
  a.step = r["step"] ? static_cast<int>(v.Integer(r["step"], "runs.step", 1, 100000)) : plan->runs;
  const YAML::Node u = r["until"];
  v.CheckMap(u, "runs.until", {"ratio_ci_width", "metric", "reference"});
  if (!u["ratio_ci_width"]) v.Fail(u, "runs.until.ratio_ci_width", "missing (the interval width that settles an arm)");
  a.ratio_ci_width = v.Real(u["ratio_ci_width"], "runs.until.ratio_ci_width", 0, 1000, true);
  if (u["metric"]) a.metric = v.OneOf(u["metric"], "runs.until.metric", {"accuracy", "loss"});
  if (u["reference"]) a.reference = v.Name(u["reference"], "runs.until.reference");
  plan->adaptive = a;
}

// The single values at the top of the plan: its name, its size and how runs are retried.
void ParseTopLevelValues(const Validator& v, const YAML::Node& root, Plan* plan) {
  for (const char* required : {"experiment", "runs", "epochs"}) {
    if (!root[required]) v.Fail(root, required, "missing (this key is required)");
  }
  plan->experiment = v.Name(root["experiment"], "experiment");
  if (root["runs"].IsMap()) {
    ParseAdaptiveRuns(v, root["runs"], plan);
  } else {
    plan->runs = static_cast<int>(v.Integer(root["runs"], "runs", 1, 100000));
  }
  plan->epochs = static_cast<int>(v.Integer(root["epochs"], "epochs", 1, 100000));
  if (root["base_seed"]) {
    plan->base_seed = static_cast<uint64_t>(
        v.Integer(root["base_seed"], "base_seed", 0, std::numeric_limits<int64_t>::max() / 2));
  }
  if (root["checkpoint_every"]) {
    plan->checkpoint_every =
        static_cast<int>(v.Integer(root["checkpoint_every"], "checkpoint_every", 0, 100000));
  }
  if (root["max_attempts"]) {
    plan->max_attempts = static_cast<int>(v.Integer(root["max_attempts"], "max_attempts", 1, 100));
  }
}

// A file the plan names at `key`, by role, appended to `inputs`.
void AddInput(const Validator& v, const YAML::Node& node, const std::string& key,
              const std::string& role, std::vector<InputFile>* inputs) {
  InputFile file;
  file.role = role;
  file.path = v.Text(node, key);
  if (file.path.empty()) v.Fail(node, key, "must not be empty");
  inputs->push_back(std::move(file));
}

// dataset.train and dataset.test of kind arrays: {x: FILE.npy, y: FILE.npy}.
void ParseArrays(const Validator& v, const YAML::Node& d, std::vector<InputFile>* inputs) {
  for (const char* split : {"train", "test"}) {
    const std::string key = absl::StrCat("dataset.", split);
    if (!d[split]) v.Fail(d, key, "is required for dataset.kind arrays: {x: FILE.npy, y: FILE.npy}");
    v.CheckMap(d[split], key, {"x", "y"});
    for (const char* part : {"x", "y"}) {
      if (!d[split][part]) v.Fail(d[split], absl::StrCat(key, ".", part), "is required");
      AddInput(v, d[split][part], absl::StrCat(key, ".", part), absl::StrCat(split, "_", part),
               inputs);
    }
  }
}

void ParseDataset(const Validator& v, const YAML::Node& d, DatasetSpec* out,
                  std::vector<InputFile>* inputs) {
  v.CheckMap(d, "dataset", {"kind", "path", "train", "test", "train_limit", "test_limit"});
  if (d["kind"]) {
    out->kind = v.OneOf(d["kind"], "dataset.kind", {"fashion-mnist", "mnist", "cifar10", "arrays"});
  }
  if (out->kind == "arrays") {
    if (d["path"]) v.Fail(d["path"], "dataset.path", "does not apply to kind arrays: give train and test");
    out->path.clear();
    ParseArrays(v, d, inputs);
  } else {
    for (const char* key : {"train", "test"}) {
      if (d[key]) v.Fail(d[key], absl::StrCat("dataset.", key), "applies to dataset.kind arrays only");
    }
    if (d["path"]) out->path = v.Text(d["path"], "dataset.path");
    if (out->path.empty()) v.Fail(d, "dataset.path", "must not be empty");
  }
  const int64_t max_limit = std::numeric_limits<int32_t>::max();
  if (d["train_limit"]) out->train_limit = v.Integer(d["train_limit"], "dataset.train_limit", 0, max_limit);
  if (d["test_limit"]) out->test_limit = v.Integer(d["test_limit"], "dataset.test_limit", 0, max_limit);
}

void ParseModel(const Validator& v, const YAML::Node& m, ModelSpec* out,
                std::vector<InputFile>* inputs) {
  v.CheckMap(m, "model", {"kind", "version", "depth", "l2", "path", "init"});
  // noop: no data read, no training; each run returns a valid result at once, so a
  // fleet of workers can be checked (and dispatch measured) before paying for GPUs.
  if (m["kind"]) {
    out->kind = v.OneOf(m["kind"], "model.kind", {"small-cnn", "resnet", "torchscript", "noop"});
  }
  const bool torchscript = out->kind == "torchscript";
  for (const char* key : {"path", "init"}) {
    if (m[key] && !torchscript) v.Fail(m[key], absl::StrCat("model.", key), "applies to model.kind torchscript only");
  }
  if (torchscript) {
    if (!m["path"]) v.Fail(m, "model.path", "is required for model.kind torchscript (a file of torch.jit.script(module).save)");
    AddInput(v, m["path"], "model.path", "model", inputs);
    if (m["init"]) out->init = v.OneOf(m["init"], "model.init", {"file", "seeded"});
  }
  const bool resnet = out->kind == "resnet";
  for (const char* key : {"version", "depth"}) {
    if (m[key] && !resnet) v.Fail(m[key], absl::StrCat("model.", key), "applies to model.kind resnet only");
  }
  if (m["version"]) out->version = static_cast<int>(v.Integer(m["version"], "model.version", 1, 2));
  if (m["depth"]) {
    out->depth = static_cast<int>(v.Integer(m["depth"], "model.depth", 8, 1001));
  } else if (out->version == 1) {
    out->depth = 20;  // ResNet20v1, the Keras example's own default
  }
  if (resnet) {
    const int step = out->version == 1 ? 6 : 9;
    if ((out->depth - 2) % step != 0) {
      v.Fail(m["depth"] ? m["depth"] : m, "model.depth",
             absl::StrCat("ResNet v", out->version, " needs a depth of ", step,
                          "n+2 (for example ", step * 3 + 2, "), got ", out->depth));
    }
    out->l2 = 1e-4;  // Keras's example: L2 1e-4 on every conv kernel
  }
  if (m["l2"]) out->l2 = v.Real(m["l2"], "model.l2", 0, 1, false);
}

// training.reduce_on_plateau: true/false, or a mapping of settings that turns it on.
void ParsePlateau(const Validator& v, const YAML::Node& p, TrainingSpec* out) {
  if (!p.IsMap()) {
    out->plateau = v.Boolean(p, "training.reduce_on_plateau");
    return;
  }
  v.CheckMap(p, "training.reduce_on_plateau", {"factor", "patience", "min_lr"});
  out->plateau = true;
  if (p["factor"]) out->plateau_factor = v.Real(p["factor"], "training.reduce_on_plateau.factor", 0, 0.9999, true);
  if (p["patience"]) out->plateau_patience = static_cast<int>(v.Integer(p["patience"], "training.reduce_on_plateau.patience", 0, 100000));
  if (p["min_lr"]) out->plateau_min_lr = v.Real(p["min_lr"], "training.reduce_on_plateau.min_lr", 0, 10, false);
}

// training.augment: true/false, or a mapping of settings that turns it on.
void ParseAugment(const Validator& v, const YAML::Node& a, TrainingSpec* out) {
  if (!a.IsMap()) {
    out->augment = v.Boolean(a, "training.augment");
    return;
  }
  v.CheckMap(a, "training.augment", {"shift", "flip"});
  out->augment = true;
  if (a["shift"]) out->augment_shift = v.Real(a["shift"], "training.augment.shift", 0, 0.5, false);
  if (a["flip"]) out->augment_flip = v.Boolean(a["flip"], "training.augment.flip");
}

void ParseTraining(const Validator& v, const YAML::Node& t, TrainingSpec* out) {
  v.CheckMap(t, "training", {"batch_size", "optimizer", "lr", "momentum", "lr_schedule",
                             "reduce_on_plateau", "augment"});
  if (t["lr_schedule"]) out->lr_schedule = v.OneOf(t["lr_schedule"], "training.lr_schedule", {"constant", "keras-cifar10"});
  if (t["reduce_on_plateau"]) ParsePlateau(v, t["reduce_on_plateau"], out);
  if (t["augment"]) ParseAugment(v, t["augment"], out);
  if (t["batch_size"]) out->batch_size = v.Integer(t["batch_size"], "training.batch_size", 1, 65536);
  if (t["optimizer"]) out->optimizer = v.OneOf(t["optimizer"], "training.optimizer", {"adam", "adam-keras", "sgd"});
  if (t["lr"]) out->lr = v.Real(t["lr"], "training.lr", 0, 10, true);
  if (t["momentum"]) out->momentum = v.Real(t["momentum"], "training.momentum", 0, 0.9999, false);
}

void ParseFingerprints(const Validator& v, const YAML::Node& f, Plan* plan) {
  v.CheckMap(f, "fingerprints", {"batch_digests", "predictions"});
  if (f["batch_digests"]) plan->batch_digests = v.Boolean(f["batch_digests"], "fingerprints.batch_digests");
  if (f["predictions"]) plan->predictions = v.Boolean(f["predictions"], "fingerprints.predictions");
}

void ParseExports(const Validator& v, const YAML::Node& x, Plan* plan) {
  v.CheckMap(x, "exports", {"weights"});
  const YAML::Node w = x["weights"];
  if (!w) return;
  if (!w.IsSequence()) v.Fail(w, "exports.weights", "expected a list such as [initial, final]");
  for (const auto& item : w) {
    const std::string which = v.OneOf(item, "exports.weights", {"initial", "final", "epochs"});
    (which == "initial" ? plan->export_initial
                        : which == "final" ? plan->export_final : plan->export_every_epoch) = true;
  }
}

// The plan's placement keys and the worker capability each one reads.
constexpr std::pair<const char*, const char*> kPlacementCapabilities[] = {
    {"gpu", "gpu_name"}, {"driver", "driver"}, {"cuda", "cuda"}, {"cudnn", "cudnn"},
    {"torch", "torch"},  {"cpu", "cpu_model"}, {"host", "host"}};

std::string PlacementValue(const Validator& v, const YAML::Node& node, const std::string& key) {
  const std::string text = v.Text(node, key);
  if (!IsValidLabelValue(text)) v.Fail(node, key, absl::StrCat("must be ", kLabelValueRule));
  const size_t star = text.find('*');
  if (star != std::string::npos && star + 1 != text.size()) {
    v.Fail(node, key, "'*' may only end the value (a prefix match, \"NVIDIA A100*\")");
  }
  return text;
}

PlacementSpec ParsePlacement(const Validator& v, const YAML::Node& node, const std::string& key) {
  std::vector<std::string> allowed = {"gpu_memory_gb", "labels", "spread"};
  for (const auto& [plan_key, capability] : kPlacementCapabilities) allowed.push_back(plan_key);
  v.CheckMap(node, key, allowed);
  PlacementSpec out;
  for (const auto& [plan_key, capability] : kPlacementCapabilities) {
    if (node[plan_key]) {
      out.capabilities[capability] = PlacementValue(v, node[plan_key], absl::StrCat(key, ".", plan_key));
    }
  }
  if (node["gpu_memory_gb"]) {
    const double gb = v.Real(node["gpu_memory_gb"], key + ".gpu_memory_gb", 0, 1e6, true);
    out.min_gpu_memory_mb = static_cast<int64_t>(std::llround(gb * 1024));
  }
  if (const YAML::Node labels = node["labels"]) {
    v.CheckMap(labels, key + ".labels", {});
    for (const auto& item : labels) {
      const std::string label = v.Name(item.first, key + ".labels");
      out.labels[label] = PlacementValue(v, item.second, absl::StrCat(key, ".labels.", label));
    }
  }
  if (node["spread"]) {
    const std::string spread = v.OneOf(node["spread"], key + ".spread", {"none", "hosts", "gpus"});
    out.spread = spread == "hosts" ? Spread::kHosts : spread == "gpus" ? Spread::kGpus : Spread::kNone;
  }
  return out;
}

// One entry of `arms`: its seed modes, and the plan's determinism and placement with its
// overrides (an arm's placement replaces the plan's whole).
ArmSpec ParseArm(const Validator& v, const YAML::Node& name, const YAML::Node& body,
                 const ArmSpec& plan_arm) {
  ArmSpec arm;
  arm.name = v.Name(name, "arms");
  const std::string key = absl::StrCat("arms.", arm.name);
  v.CheckMap(body, key, {"seed", "init", "shuffle", "augment", "determinism", "localize",
                         "placement"});
  arm.determinism = plan_arm.determinism;
  arm.placement = body["placement"] ? ParsePlacement(v, body["placement"], key + ".placement")
                                    : plan_arm.placement;
  if (body["localize"]) arm.localize = v.Boolean(body["localize"], key + ".localize");
  if (body["seed"]) {
    arm.init = arm.shuffle = arm.augment = ParseSeedMode(v, body["seed"], key + ".seed");
  }
  if (body["augment"]) arm.augment = ParseSeedMode(v, body["augment"], key + ".augment");
  if (body["init"]) arm.init = ParseSeedMode(v, body["init"], key + ".init");
  if (body["shuffle"]) arm.shuffle = ParseSeedMode(v, body["shuffle"], key + ".shuffle");
  if (body["determinism"]) ParseDeterminism(v, body["determinism"], key + ".determinism", &arm.determinism);
  return arm;
}

std::vector<ArmSpec> ParseArms(const Validator& v, const YAML::Node& arms,
                               const ArmSpec& plan_arm) {
  v.CheckMap(arms, "arms", {});
  if (arms.size() == 0) v.Fail(arms, "arms", "must name at least one arm");
  if (arms.size() > kMaxArms) {
    v.Fail(arms, "arms", absl::StrCat("at most ", kMaxArms, " arms, got ", arms.size()));
  }
  std::vector<ArmSpec> parsed;
  for (const auto& item : arms) parsed.push_back(ParseArm(v, item.first, item.second, plan_arm));
  return parsed;
}

// The arms of a plan that names none: the comparison the tool exists for.
std::vector<ArmSpec> DefaultArms(const ArmSpec& plan_arm) {
  ArmSpec same = plan_arm, different = plan_arm;
  same.name = "same_seed";
  different.name = "different_seeds";
  different.init = different.shuffle = different.augment = SeedMode::kPerRun;
  return {same, different};
}

// An adaptive plan may grow to its max runs per arm, so that is what is bounded.
void CheckTotalRuns(const Validator& v, const YAML::Node& root, const Plan& plan) {
  const int per_arm = plan.adaptive ? plan.adaptive->max : plan.runs;
  const int64_t total_runs = int64_t{per_arm} * static_cast<int64_t>(plan.arms.size());
  if (total_runs > kMaxTotalRuns) {
    v.Fail(root["runs"], "runs",
           absl::StrCat(per_arm, " runs in each of ", plan.arms.size(), " arms is ", total_runs,
                        " runs; a plan may have at most ", kMaxTotalRuns));
  }
}

// The arm an adaptive plan compares the others with: the one named, else
// different_seeds; it must be one of at least two arms.
void CheckAdaptiveRuns(const Validator& v, const YAML::Node& root, Plan* plan) {
  if (!plan->adaptive) return;
  const YAML::Node at = root["runs"]["until"];
  std::string& reference = plan->adaptive->reference;
  if (plan->arms.size() < 2) {
    v.Fail(at, "runs.until", "an adaptive run count compares arms, and this plan has one arm");
  }
  std::vector<std::string> names;
  for (const ArmSpec& arm : plan->arms) names.push_back(arm.name);
  const bool named = !reference.empty();
  if (!named) reference = "different_seeds";
  if (std::find(names.begin(), names.end(), reference) == names.end()) {
    v.Fail(named ? at["reference"] : at, "runs.until.reference",
           absl::StrCat(named ? absl::StrCat("names no arm (\"", reference, "\")")
                              : "missing, and the plan has no arm different_seeds",
                        "; the arms are ", absl::StrJoin(names, ", ")));
  }
}

// Sections are parsed in this fixed order, not the file's, so a plan with several faults
// always reports the same one; determinism comes before arms because each arm starts
// from the plan's.
Plan ParseRoot(const Validator& v, const YAML::Node& root) {
  Plan plan;
  if (!root || root.IsNull()) v.Fail(root, "plan", "the file is empty");
  v.CheckMap(root, "", {"experiment", "runs", "epochs", "base_seed", "max_attempts", "dataset",
                        "model", "training", "determinism", "fingerprints", "exports", "arms",
                        "checkpoint_every", "placement"});
  ParseTopLevelValues(v, root, &plan);
  if (root["dataset"]) ParseDataset(v, root["dataset"], &plan.dataset, &plan.inputs);
  if (root["model"]) ParseModel(v, root["model"], &plan.model, &plan.inputs);
  if (root["training"]) ParseTraining(v, root["training"], &plan.training);
  if (root["determinism"]) ParseDeterminism(v, root["determinism"], "determinism", &plan.determinism);
  if (root["fingerprints"]) ParseFingerprints(v, root["fingerprints"], &plan);
  if (root["exports"]) ParseExports(v, root["exports"], &plan);
  ArmSpec plan_arm;  // what every arm starts from
  plan_arm.determinism = plan.determinism;
  if (root["placement"]) plan_arm.placement = ParsePlacement(v, root["placement"], "placement");
  plan.arms = root["arms"] ? ParseArms(v, root["arms"], plan_arm) : DefaultArms(plan_arm);
  CheckTotalRuns(v, root, plan);
  CheckAdaptiveRuns(v, root, &plan);
  return plan;
}

}  // namespace

absl::StatusOr<Plan> ParsePlan(std::string_view yaml_text, std::string_view source_view) {
  const std::string source(source_view);
  if (yaml_text.size() > kMaxPlanBytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": plan is ", yaml_text.size(),
                                                   " bytes; the limit is ", kMaxPlanBytes));
  }
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    return ParseRoot(Validator(source), root);
  } catch (const PlanError& e) {
    return absl::InvalidArgumentError(e.message);
  } catch (const YAML::Exception& e) {
    // e.msg without yaml-cpp's own position prefix; the mark is 0-based.
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.msg));
    return absl::InvalidArgumentError(absl::StrCat(source, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
}

absl::StatusOr<std::string> ReadPlanFile(const std::string& path) {
  // Only a regular file: a directory reads as nothing, and a device or a pipe
  // (/dev/zero, /dev/stdin) may never end.
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (!error && std::filesystem::is_directory(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is a directory, not a plan file"));
  }
  if (!error && !std::filesystem::is_regular_file(status)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": is not a regular file, so not a plan file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (error || !in) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot open plan file"));
  // The limit applies while reading: one byte past it is enough to refuse the file.
  std::string text(kMaxPlanBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read plan file"));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxPlanBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": plan file is larger than the limit of ",
                                                   kMaxPlanBytes, " bytes (1 MiB)"));
  }
  return text;
}

RunSeeds SeedsFor(const Plan& plan, const ArmSpec& arm, int index) {
  const uint64_t i = static_cast<uint64_t>(index);
  return RunSeeds{plan.base_seed + (arm.init == SeedMode::kPerRun ? i : 0),
                  plan.base_seed + (arm.shuffle == SeedMode::kPerRun ? i : 0),
                  plan.base_seed + (arm.augment == SeedMode::kPerRun ? i : 0)};
}

const char* SeedModeName(SeedMode mode) {
  return mode == SeedMode::kFixed ? "fixed" : "per_run";
}

const char* SpreadName(Spread spread) {
  return spread == Spread::kHosts ? "hosts" : spread == Spread::kGpus ? "gpus" : "none";
}

std::vector<InputFile> InputsOfCanonicalPlan(const std::string& canonical) {
  std::vector<InputFile> inputs;
  for (absl::string_view line : absl::StrSplit(canonical, '\n')) {
    // input:ROLE{sha256:HEX,size:N}, as CanonicalPlan writes it
    if (!absl::ConsumePrefix(&line, "input:")) continue;
    const size_t brace = line.find("{sha256:");
    const size_t comma = line.find(",size:");
    if (brace == absl::string_view::npos || comma == absl::string_view::npos || comma < brace ||
        !absl::EndsWith(line, "}")) {
      continue;
    }
    InputFile file;
    file.role = std::string(line.substr(0, brace));
    file.sha256 = std::string(line.substr(brace + 8, comma - brace - 8));
    const absl::string_view size = line.substr(comma + 6, line.size() - comma - 7);
    if (absl::SimpleAtoi(size, &file.size)) inputs.push_back(std::move(file));
  }
  return inputs;
}

namespace {

// How an adaptive plan grows is part of the experiment; plans with a plain run count
// keep the form they always had.
std::string AdaptiveCanonical(const Plan& p) {
  if (!p.adaptive) return "";
  const AdaptiveRuns& a = *p.adaptive;
  return absl::StrFormat("{max:%d,step:%d,until:{ratio_ci_width:%.17g,metric:%s,reference:%s}}",
                         a.max, a.step, a.ratio_ci_width, a.metric, a.reference);
}

}  // namespace

std::string CanonicalPlan(const Plan& p) {
  auto num = [](double x) { return absl::StrFormat("%.17g", x); };
  auto det = [](const DeterminismSpec& d) {
    return absl::StrCat("{deterministic_algorithms:", d.deterministic_algorithms,
                        ",cudnn_benchmark:", d.cudnn_benchmark, ",threads:", d.threads,
                        ",device:", d.device, "}");
  };
  const TrainingSpec& t = p.training;
  std::string out = absl::StrCat(
      "experiment:", p.experiment, "\nruns:", p.runs, AdaptiveCanonical(p), "\nepochs:", p.epochs,
      "\nbase_seed:", p.base_seed, "\nmax_attempts:", p.max_attempts,
      "\ncheckpoint_every:", p.checkpoint_every,
      "\nfingerprints:{batch_digests:", p.batch_digests, ",predictions:", p.predictions,
      "}\nexports:{initial:", p.export_initial, ",final:", p.export_final,
      ",epochs:", p.export_every_epoch, "}\ndataset:{kind:", p.dataset.kind,
      ",path:", p.dataset.path, ",train_limit:", p.dataset.train_limit,
      ",test_limit:", p.dataset.test_limit, "}\nmodel:{kind:", p.model.kind,
      ",version:", p.model.version, ",depth:", p.model.depth, ",l2:", num(p.model.l2),
      "}\ntraining:{batch_size:", t.batch_size, ",optimizer:", t.optimizer,
      ",lr:", num(t.lr), ",momentum:", num(t.momentum), ",lr_schedule:", t.lr_schedule,
      ",plateau:", t.plateau, ",", num(t.plateau_factor), ",", t.plateau_patience, ",",
      num(t.plateau_min_lr), ",augment:", t.augment, ",", num(t.augment_shift), ",",
      t.augment_flip, "}\ndeterminism:", det(p.determinism), "\n");
  // Files by content, not by where they are: moving them changes no result. Plans
  // without any keep the form they always had, so their experiments still resume.
  if (p.model.kind == "torchscript") absl::StrAppend(&out, "model_init:", p.model.init, "\n");
  for (const InputFile& f : p.inputs) {
    absl::StrAppend(&out, "input:", f.role, "{sha256:", f.sha256, ",size:", f.size, "}\n");
  }
  // Where runs ran is part of what their results mean (arms that differ only in
  // placement compare hardware); arms without one keep the form they always had.
  auto placement = [](const PlacementSpec& p) {
    if (p.empty()) return std::string();
    auto pairs = [](const std::map<std::string, std::string>& m) {
      return absl::StrJoin(m, ";", absl::PairFormatter("="));
    };
    return absl::StrCat(",placement:{", pairs(p.capabilities), ",gpu_memory_mb:",
                        p.min_gpu_memory_mb, ",labels:", pairs(p.labels),
                        ",spread:", SpreadName(p.spread), "}");
  };
  for (const ArmSpec& arm : p.arms) {
    absl::StrAppend(&out, "arm:", arm.name, "{init:", SeedModeName(arm.init), ",shuffle:",
                    SeedModeName(arm.shuffle), ",augment:", SeedModeName(arm.augment),
                    ",determinism:", det(arm.determinism), placement(arm.placement), "}\n");
  }
  return out;
}

}  // namespace repro
