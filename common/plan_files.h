// The files a plan's runs read (Plan::inputs: arrays data, a TorchScript model), made
// absolute and addressed by content when the coordinator loads the plan, so that a run
// names exactly the bytes it trains on and a worker can check them.
//
// Thread safety: free functions; they read the file system.
#ifndef REPRO_COMMON_PLAN_FILES_H_
#define REPRO_COMMON_PLAN_FILES_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "common/plan.h"

namespace repro {

// Where else a file of the plan may be, by its role, when it is not at its path (the
// coordinator's copy of a stored plan's file); "" for nowhere.
using CopyOfInput = std::function<std::string(const std::string& role)>;

// Makes plan->inputs' paths absolute against `plan_dir` (the plan file's folder; a
// path that is absolute already stays) and fills in each file's SHA-256 and size.
// A file missing at its path is taken from `copy_of` when that knows one (the path
// then names the copy). INVALID_ARGUMENT naming the plan's key and the file when one
// is missing, not a regular file or unreadable.
absl::Status ResolvePlanFiles(const std::string& plan_dir, Plan* plan,
                              const CopyOfInput& copy_of = nullptr);

// The plan key a role comes from ("dataset.train.x" for train_x, "model.path" for model).
std::string PlanKeyOfRole(const std::string& role);

}  // namespace repro

#endif  // REPRO_COMMON_PLAN_FILES_H_
