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

// "3m12s", "45s", "unknown" (negative).
std::string FormatDuration(double seconds);

}  // namespace repro

#endif  // REPRO_STORE_STATUS_VIEW_H_
