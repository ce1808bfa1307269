// The experiment's status (runs pending/running/done/failed per arm, what each running
// run is doing, the workers, an ETA): a view over the store, rendered for
// `reproctl status` and the coordinator's progress display. Shared by the coordinator
// (over gRPC, through proto/convert.h) and reproctl --db, so both show the same thing.
//
// Thread safety: free functions; RunStore is thread-safe.
#ifndef REPRO_STORE_STATUS_VIEW_H_
#define REPRO_STORE_STATUS_VIEW_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/experiment_view.h"
#include "store/store.h"

namespace repro {

absl::StatusOr<ExperimentStatus> BuildStatus(RunStore& store, const std::string& experiment);

// "text" or "json"; the JSON keys are documented in README.md.
absl::StatusOr<std::string> RenderStatus(const ExperimentStatus& status,
                                         const std::string& format, int64_t now_ms);

// An adaptive run count as the status shows it after the arms, one line each, indented
// two spaces: "  adaptive: look 2 of at most 20, level 99.75 %, target width 0.1" and then
// per arm "    same_seed: ratio 0.91 [0.7, 1.18], width 0.48, about 180 runs per arm
// needed"; once stopped, "  adaptive: stopped, every arm settled at look 3 (...)" or
// "  adaptive: stopped at max runs (200) at look 20; width still 0.23 for same_seed
// (target 0.1)"; before the first look "  adaptive: first look once the 10 runs per arm
// are done (...)".
std::string DescribeAdaptive(const AdaptiveState& adaptive);

// A line per localization asked and not yet answered: "  localizing t1#0 and t2#0 (epoch
// 0): each run on a worker like its own, stage trace (the last taken by worker w2)"; ""
// when none.
std::string DescribeLocalizing(const std::vector<LocalizationState>& localizing);

// "3m12s", "45s", "unknown" (negative).
std::string FormatDuration(double seconds);

}  // namespace repro

#endif  // REPRO_STORE_STATUS_VIEW_H_
