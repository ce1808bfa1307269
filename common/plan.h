// The experiment plan: a YAML file parsed into a validated, typed Plan. Every error
// names the file, line and column and the key or value at fault, and nothing is
// returned (so nothing is written) until the whole plan validates. The keys are
// documented in README.md ("The plan").
//
// Thread safety: immutable values; free functions are thread-safe.
#ifndef REPRO_COMMON_PLAN_H_
#define REPRO_COMMON_PLAN_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/experiment_view.h"

namespace repro {

// How a source of randomness is seeded across an arm's runs.
enum class SeedMode {
  kFixed,   // every run uses base_seed
  kPerRun,  // run i uses base_seed + i
};

// A file a run reads by role: the arrays of dataset kind arrays (train_x, train_y,
// test_x, test_y) and a TorchScript model (model). The plan gives paths relative to
// its own folder; ResolvePlanFiles (common/plan_files.h) makes them absolute and fills in the SHA-256 and
// size, which the worker checks the file it reads against.
struct InputFile {
  std::string role;
  std::string path;
  std::string sha256;  // hex, lower case; empty until ResolvePlanFiles
  int64_t size = 0;
};

struct DatasetSpec {
  std::string kind = "fashion-mnist";  // fashion-mnist | mnist | cifar10 | arrays
  std::string path = "/usr/share/datasets/fashion-mnist";  // not for arrays
  int64_t train_limit = 0;  // 0 = the whole split
  int64_t test_limit = 0;
};

struct ModelSpec {
  // small-cnn | resnet | torchscript (a scripted module's file) | noop (no training:
  // checks a fleet)
  std::string kind = "small-cnn";
  // torchscript: where the first weights come from: "file" (the module's own: init
  // seeds then change nothing) or "seeded" (drawn again from the run's init seed,
  // layer by layer as worker/engine/torchscript_model.h states).
  std::string init = "file";
  int version = 2;                 // resnet: 1 (depth 6n+2) or 2 (depth 9n+2)
  int depth = 29;                  // resnet
  double l2 = 0;                   // L2 on conv kernels; resnet's default is Keras's 1e-4
};

struct TrainingSpec {
  int64_t batch_size = 128;
  std::string optimizer = "adam";  // adam (LibTorch's) | adam-keras (Keras 2.2.4's) | sgd
  double lr = 0.001;
  double momentum = 0.9;
  std::string lr_schedule = "constant";  // constant | keras-cifar10 (the study's)
  bool plateau = false;                  // ReduceLROnPlateau on validation loss
  double plateau_factor = 0.31622776601683794;  // sqrt(0.1), as the study
  int plateau_patience = 5;
  double plateau_min_lr = 0.5e-6;
  bool augment = false;                  // shifts and horizontal flips (Keras's example)
  double augment_shift = 0.1;
  bool augment_flip = true;
};

struct DeterminismSpec {
  bool deterministic_algorithms = true;
  bool cudnn_benchmark = false;
  int threads = 1;                 // 0 = each worker's --threads
  std::string device = "cpu";      // cpu | cuda
};

// Where an arm's runs may run (README, "Placement"): what a worker must have registered
// (worker/engine/environment.h names its capabilities) and carry as labels, and whether
// the arm's runs are spread across distinct hosts or GPUs. Every arm also needs a worker
// with its device (determinism.device: cuda needs a worker with CUDA). common/placement.h
// applies it.
enum class Spread { kNone, kHosts, kGpus };

struct PlacementSpec {
  // Capability key as the worker registers it (gpu_name, driver, cuda, cudnn, torch,
  // cpu_model, host) -> the value wanted; a value ending in '*' matches by prefix.
  std::map<std::string, std::string> capabilities;
  int64_t min_gpu_memory_mb = 0;             // gpu_memory_gb in the plan; 0 = any
  std::map<std::string, std::string> labels;  // each must be the worker's --label
  Spread spread = Spread::kNone;
  bool empty() const {
    return capabilities.empty() && min_gpu_memory_mb == 0 && labels.empty() &&
           spread == Spread::kNone;
  }
};

struct ArmSpec {
  std::string name;
  SeedMode init = SeedMode::kFixed;
  SeedMode shuffle = SeedMode::kFixed;
  SeedMode augment = SeedMode::kFixed;
  DeterminismSpec determinism;     // the plan's, with this arm's overrides applied
  // Once every run of the arm has finished, ask the workers where its run #0 and the
  // first run that ended with other weights part (reproctl localize). It changes no
  // result, so it is not part of the canonical plan.
  bool localize = false;
  PlacementSpec placement;         // the plan's, unless the arm gives its own
};

// An adaptive run count (README, "Adaptive run counts"): `runs: {min, max, step, until:
// {ratio_ci_width, metric, reference}}`. Each arm starts with `min` runs (Plan::runs);
// once every run has finished the coordinator looks at the scores, and while some arm's
// stdev ratio against the reference arm has an interval wider than `ratio_ci_width` it
// adds a round of `step` runs to that arm and to the reference, up to `max` runs each.
// The interval at each look is the delta-method one of analysis/adaptive.h at level
// 1 - 0.05 / Looks() (Bonferroni over the looks the rule may take): conservative.
struct AdaptiveRuns {
  int max = 0;                     // runs per arm never exceeded
  int step = 0;                    // runs a round adds to each arm still undecided
  double ratio_ci_width = 0;       // the widest interval that settles an arm
  std::string metric = "accuracy";  // the score compared: "accuracy" or "loss" (test set)
  std::string reference;           // the arm the others are compared with
  // How many looks the rule may take from `min` runs per arm: the first, then one per
  // round until `max`.
  int Looks(int min) const { return AdaptiveLooks(min, max, step); }
};

struct Plan {
  std::string experiment;
  int runs = 0;                    // runs per arm; with `adaptive`, those of the first round
  std::optional<AdaptiveRuns> adaptive;  // `runs: {min, max, ...}`; nullopt: `runs: N`
  int epochs = 0;
  uint64_t base_seed = 0;
  int max_attempts = 3;            // a run that fails this many times is marked failed
  int checkpoint_every = 0;        // epochs between checkpoints a retry resumes from; 0 = none
  bool batch_digests = false;      // keep per-batch digests (fingerprints.batch_digests)
  bool predictions = true;         // keep the final model's test predictions
  bool export_initial = false;     // exports.weights: initial, final, epochs
  bool export_final = false;
  bool export_every_epoch = false;
  DatasetSpec dataset;
  ModelSpec model;
  // The files runs read by role (arrays data, a TorchScript model), in plan order:
  // dataset.train.x, .train.y, .test.x, .test.y as train_x .. test_y, then model.path as
  // model. Paths as the plan gives them until ResolvePlanFiles.
  std::vector<InputFile> inputs;
  TrainingSpec training;
  DeterminismSpec determinism;
  std::vector<ArmSpec> arms;       // in file order; default same_seed, different_seeds
};

struct RunSeeds {
  uint64_t init = 0;
  uint64_t shuffle = 0;
  uint64_t augment = 0;
};

// Parses and validates plan text. `source` names the file in error messages.
// Errors are INVALID_ARGUMENT: "<source>:<line>:<col>: <key>: <what is wrong>".
absl::StatusOr<Plan> ParsePlan(std::string_view yaml_text, std::string_view source);
// The text of a plan file (the store keeps it beside the parsed plan); a missing or
// unreadable file, one that is not a regular file (a directory, a device) or one over
// the plan's limit of 1 MiB (refused after reading one byte past it) is
// INVALID_ARGUMENT naming it. Parse it with ParsePlan(text, path).
absl::StatusOr<std::string> ReadPlanFile(const std::string& path);

// The seeds of run `index` (0-based) of `arm`.
RunSeeds SeedsFor(const Plan& plan, const ArmSpec& arm, int index);

// A stable text form of everything that defines the experiment's results (not the
// formatting or comments of the file): two plans with the same canonical form are the
// same experiment, so a coordinator restarted with either resumes it.
std::string CanonicalPlan(const Plan& plan);
// The input files (role, SHA-256, size; no path) a canonical plan records.
std::vector<InputFile> InputsOfCanonicalPlan(const std::string& canonical);

const char* SeedModeName(SeedMode mode);  // "fixed" | "per_run"
const char* SpreadName(Spread spread);     // "none" | "hosts" | "gpus"

}  // namespace repro

#endif  // REPRO_COMMON_PLAN_H_
