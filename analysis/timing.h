// What an epoch costs: each arm's seconds per epoch with an interval (EpochTime in
// analysis/analysis.h), and, for arms that differ only in their determinism switches,
// the overhead of determinism (DeterminismCost).
//
// Thread safety: pure functions over const inputs.
#ifndef REPRO_ANALYSIS_TIMING_H_
#define REPRO_ANALYSIS_TIMING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "common/experiment_view.h"

namespace repro {

// The determinism switches of a run's environment (worker/engine/environment.h).
inline constexpr const char* kDeterminismSwitches[] = {"deterministic_algorithms",
                                                       "cudnn_benchmark"};

// Each intact done run of `arm` with at least one epoch: its mean EpochRecord::seconds,
// in run index order.
std::vector<double> RunSecondsPerEpoch(const ExperimentView& view, const std::string& arm);

// The mean of `per_run` and its Student-t 95% interval.
EpochTime SummarizeEpochTime(const std::vector<double>& per_run);

// Every pair of the view's arms that differ only in determinism switches, as
// DeterminismCost documents; `resamples` and `seed` are the report's bootstrap's.
std::vector<DeterminismCost> CompareDeterminismCost(const ExperimentView& view,
                                                    int resamples, uint64_t seed);

}  // namespace repro

#endif  // REPRO_ANALYSIS_TIMING_H_
