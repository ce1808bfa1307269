// The experiment's status (runs pending/running/done/failed per arm, what each running
// run is doing, the workers, an ETA), built from the store and rendered for
// `reproctl status` and the coordinator's progress display. Shared by the coordinator
// (over gRPC) and reproctl --db, so both show the same thing.
//
// Thread safety: free functions; RunStore is thread-safe.
#ifndef REPRO_COORDINATOR_STATUS_VIEW_H_
#define REPRO_COORDINATOR_STATUS_VIEW_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/store.h"
#include "repro/v1/repro.pb.h"

namespace repro {

absl::StatusOr<v1::StatusResponse> BuildStatus(RunStore& store, const std::string& experiment);

// "text" or "json"; the JSON keys are documented in README.md.
absl::StatusOr<std::string> RenderStatus(const v1::StatusResponse& status,
                                         const std::string& format, int64_t now_ms);

// "3m12s", "45s", "unknown" (negative).
std::string FormatDuration(double seconds);

}  // namespace repro

#endif  // REPRO_COORDINATOR_STATUS_VIEW_H_
