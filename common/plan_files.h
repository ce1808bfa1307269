// The files a plan's runs read (Plan::inputs: arrays data, a TorchScript model), made
// absolute and addressed by content when the coordinator loads the plan, so that a run
// names exactly the bytes it trains on and a worker can check them.
//
// Thread safety: free functions; they read the file system.
#ifndef REPRO_COMMON_PLAN_FILES_H_
#define REPRO_COMMON_PLAN_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "common/plan.h"

namespace repro {

// Makes plan->inputs' paths absolute against `plan_dir` (the plan file's folder; a
// path that is absolute already stays) and fills in each file's SHA-256 and size.
// INVALID_ARGUMENT naming the plan's key and the file when one is missing, not a regular
// file or unreadable.
absl::Status ResolvePlanFiles(const std::string& plan_dir, Plan* plan);

// The plan key a role comes from ("dataset.train.x" for train_x, "model.path" for model).
std::string PlanKeyOfRole(const std::string& role);

}  // namespace repro

#endif  // REPRO_COMMON_PLAN_FILES_H_
