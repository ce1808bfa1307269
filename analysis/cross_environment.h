// The cross-environment matrix: runs that started identical from the same seeds but
// trained in different places (arms that differ only in where or how they ran, or one
// arm's runs spread over hosts), compared environment against environment.
//
// An environment is a run's RunResult::environment (worker/engine/environment.h) less
// every key that starts with "model_": those describe the TorchScript model (the same
// for every run of a plan), not where the run trained. So it holds host, cpu_model,
// torch, compiler, threads, deterministic_algorithms, cudnn_benchmark, device and, on
// cuda, gpu_name, driver, cuda and cudnn, and any other key a worker sends; two runs are
// in the same environment when these maps are equal (a key one run lacks counts as a
// difference; a run that recorded nothing is in the environment of no fields). Only
// intact done runs (analysis.h, Intact) are placed. Environments are numbered 1, 2, ...
// by their first run in the order arm (plan order; arms the plan lacks last), then
// index.
//
// Two runs are a comparable pair when both are intact and their init, shuffle and
// augment seeds, initial_hash, data_x_hash and data_y_hash are all equal: they started
// identical, so anything that sets them apart came from where they ran (or from
// non-determinism within one place). A pair across environments Ei and Ej (i < j) counts
// in the cell (i, j); a pair of two runs of Ei in the diagonal cell (i, i).
//
// Thread safety: a pure function over a const view; the results are plain values.
#ifndef REPRO_ANALYSIS_CROSS_ENVIRONMENT_H_
#define REPRO_ANALYSIS_CROSS_ENVIRONMENT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/experiment_view.h"

namespace repro {

struct Environment {
  int id = 0;  // 1-based; "E<id>" in the renderers
  // "E2: host-b, 2 threads": "E<id>" and, in a fixed order (host, cpu_model, device,
  // gpu_name, driver, cuda, cudnn, torch, compiler, threads, deterministic_algorithms,
  // cudnn_benchmark, then any other key alphabetically), this environment's values of
  // the fields that are not the same in every environment; a field it lacks is left
  // out ("E3: none of the differing fields recorded" when it lacks them all). Labels
  // are plain text from the workers: renderers escape them.
  std::string label;
  std::map<std::string, std::string> fields;  // the environment itself
  int runs = 0;  // intact done runs that trained in it
};

// One cell of the matrix: every comparable pair of a run of environment `a` with a run
// of environment `b` (a < b), or of two runs of `a` (a == b).
struct EnvironmentCell {
  int a = 0;  // Environment::id
  int b = 0;
  int64_t pairs = 0;
  // Every pair has equal final_hash and equal weights_hash at every epoch either run
  // recorded (an epoch only one of them recorded counts as differing).
  bool identical = true;
  // When not identical: the earliest epoch (0-based) after which some pair's weights
  // differ; nullopt when identical, or when only final hashes differ.
  std::optional<int> diverged_epoch;
  // Off the diagonal only: the test-accuracy stdev (ddof 0) of the pooled runs of both
  // environments over the mean of the two environments' own stdevs, where the runs are
  // the scored ones (analysis.h, Scored) that take part in at least one of the cell's
  // pairs. About 1 when the environments add no spread of their own. nullopt on the
  // diagonal (it would be 1), when either environment has fewer than two such runs, when
  // that mean is 0 (neither has any spread) and when the ratio is not finite.
  std::optional<double> spread_ratio;
  // Off the diagonal only: the fields whose values differ between the two environments
  // or that only one has, in the order of Environment::label. Empty on the diagonal.
  std::vector<std::string> differing_fields;
};

struct CrossEnvironment {
  std::vector<Environment> environments;  // by id
  // The cells with at least one pair, ordered by (a, b); a cell not listed has none.
  std::vector<EnvironmentCell> cells;
};

// nullopt unless at least two environments have a comparable pair between them (some
// cell with a < b): then the report has no "Across environments" section (text, HTML)
// and "cross_environment" is null (JSON).
std::optional<CrossEnvironment> CompareAcrossEnvironments(const ExperimentView& view);

// "E1", "E2", ...
std::string EnvironmentName(int id);

// The cell (a, b) of `matrix`; nullptr when it has no pair.
const EnvironmentCell* FindEnvironmentCell(const CrossEnvironment& matrix, int a, int b);

}  // namespace repro

#endif  // REPRO_ANALYSIS_CROSS_ENVIRONMENT_H_
