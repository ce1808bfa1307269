// The analyses of an experiment: per arm, are the initial models, the training data,
// the per-epoch batch orders and the final models identical across runs, where did
// runs that started identical first diverge, and how large is the spread of the test
// scores. Analyze() turns an ExperimentView (what the store holds) into a Report that
// the renderers (coordinator/report.h) print as text, JSON or CSV.
//
// Only done runs (RunState::kDone) are compared and counted in the statistics; failed,
// running and pending runs are only counted. Within an arm every done run is compared
// with the arm's reference run: the done run with the lowest index (normally #0).
//
// Thread safety: Analyze is a pure function; Report is a plain value.
#ifndef REPRO_COORDINATOR_ANALYSIS_H_
#define REPRO_COORDINATOR_ANALYSIS_H_

#include <optional>
#include <string>
#include <vector>

#include "coordinator/experiment_view.h"

namespace repro {

// What of a run differs from the reference run.
enum class DifferenceKind {
  kModel,       // initial weights (initial_hash)
  kData,        // training inputs or labels (data_x_hash, data_y_hash)
  kBatches,     // per-epoch batch order (batch_digest)
  kFinalModel,  // final weights (final_hash)
};
// "model", "data", "batches", "final_model": the JSON report's "what".
const char* DifferenceKindName(DifferenceKind kind);

// One (run, what) that differs from the reference.
struct Difference {
  int run = 0;  // the differing run's index within its arm
  DifferenceKind what = DifferenceKind::kModel;
  // kModel / kFinalModel: the first tensor, by position in initial_tensors or
  // final_tensors, whose name or hash differs (the run's name; the reference's where
  // the run has fewer tensors). "" and -1 when the tensor lists do not tell.
  std::string tensor;
  int index = -1;
  // kBatches: the first epoch whose batch_digest differs. kFinalModel: the first epoch
  // whose weights_hash differs (nullopt when every recorded epoch agrees). An epoch
  // recorded by one run and not the other counts as differing. Epochs are 0-based.
  std::optional<int> epoch;
};

// Summary statistics of one score column over an arm's done runs. nullopt where
// undefined: every field with no done run, stdev_ddof1 with fewer than two.
struct ColumnStats {
  std::optional<double> mean;
  std::optional<double> stdev;        // ddof 0 (population), as the original study
  std::optional<double> stdev_ddof1;  // ddof 1 (sample)
  std::optional<double> min;
  std::optional<double> max;
};

struct ArmReport {
  std::string name;
  int runs_total = 0;      // the plan's runs per arm
  int runs_done = 0;
  int runs_failed = 0;
  int runs_running = 0;
  int runs_pending = 0;    // includes runs the view does not list yet
  int runs_remaining = 0;  // runs_total - runs_done - runs_failed
  int reference_run = -1;  // index of the run the others are compared with; -1: none done

  // Over done runs; true when fewer than two runs are done.
  bool models_all_same = true;
  bool data_all_same = true;
  bool batches_all_same = true;
  bool final_models_all_same = true;
  // Ordered by run index, then model, data, batches, final_model.
  std::vector<Difference> differences;

  // Defined only when at least two runs are done and all of them share the reference's
  // initial model and training data: the earliest epoch after which any run's weights
  // (weights_hash) differ from the reference's. nullopt when none differs, and when the
  // runs did not start identical (then the weights differ from the start and there is
  // no divergence to place).
  std::optional<int> first_divergence_epoch;
  // How many epochs the reference run recorded: with no divergence, runs are identical
  // through epoch epochs_compared - 1.
  int epochs_compared = 0;

  ColumnStats loss;      // test loss
  ColumnStats accuracy;  // test accuracy
};

struct Report {
  std::string experiment;
  int epochs = 0;        // the plan's epochs
  int runs_per_arm = 0;
  // Totals over all arms.
  int runs_total = 0;
  int runs_done = 0;
  int runs_failed = 0;
  int runs_remaining = 0;  // runs neither done nor failed
  bool complete = false;   // every run of every arm is done or failed

  std::vector<ArmReport> arms;  // in plan order
  // stdev (ddof 0) of the "same_seed" arm over that of the "different_seeds" arm, per
  // column; nullopt unless both arms exist, both stdevs are defined and the
  // denominator is > 0.
  std::optional<double> stdev_ratio_loss;
  std::optional<double> stdev_ratio_accuracy;

  // Every run of the view, in the view's order (arm, then index), for the per-run
  // listings of the renderers.
  std::vector<RunView> runs;
};

// The arm names the stdev ratio is taken over.
inline constexpr char kSameSeedArm[] = "same_seed";
inline constexpr char kDifferentSeedsArm[] = "different_seeds";

Report Analyze(const ExperimentView& view);

}  // namespace repro

#endif  // REPRO_COORDINATOR_ANALYSIS_H_
