// Which workers may run an arm's runs: the arm's device (cuda needs a worker with CUDA)
// and its placement (common/plan.h PlacementSpec) against what a worker registered
// (WorkerRecord: capabilities and labels). The coordinator leases a run only to a worker
// that matches (coordinator/worker_directory.h), and status says why an arm waits when
// no worker that is here matches. Spread: the host or GPU a worker counts as.
//
// Thread safety: pure functions.
#ifndef REPRO_COMMON_PLACEMENT_H_
#define REPRO_COMMON_PLACEMENT_H_

#include <string>
#include <vector>

#include "common/experiment_view.h"
#include "common/plan.h"

namespace repro {

// Empty when `worker` can run `arm`'s runs; else the first reason it cannot, in words:
// "it has no CUDA", "its gpu_name is \"NVIDIA A100\", not \"NVIDIA H200\"", "it has no
// label pool", "its GPU has 40960 MB, the arm wants at least 81920".
std::string PlacementMismatch(const ArmSpec& arm, const WorkerRecord& worker);

// What the arm asks of a worker: "device cuda, gpu_name NVIDIA H200, label pool=a,
// spread over hosts"; "" when any worker will do.
std::string DescribePlacement(const ArmSpec& arm);

// Why none of `workers` that are not gone can run `arm`'s runs; "" when one can:
// "no worker is here" or "needs device cuda; none of 2 workers can (w1: it has no CUDA;
// w2: it has no CUDA)" (at most three named).
std::string WhyNoWorker(const ArmSpec& arm, const std::vector<WorkerRecord>& workers);

// The host ("host-a") or GPU ("host-a/GPU-8f2c...", from the gpu_uuid capability; a
// worker without one counts as a GPU of its own, "host-a/worker-name") that `worker`
// counts as for `arm`'s spread; "" when the arm does not spread.
std::string SpreadKey(const ArmSpec& arm, const WorkerRecord& worker);

}  // namespace repro

#endif  // REPRO_COMMON_PLACEMENT_H_
