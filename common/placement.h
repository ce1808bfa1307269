// Which workers may run an arm's runs: the arm's device (cuda needs a worker with CUDA)
// and its placement (common/plan.h PlacementSpec) against what a worker registered
// (WorkerRecord: capabilities and labels). The coordinator leases a run only to a worker
// that matches (coordinator/worker_directory.h), and status says why an arm waits when
// no worker that is here matches. Spread: the host or GPU a worker counts as.
//
// Thread safety: pure functions.
#ifndef REPRO_COMMON_PLACEMENT_H_
#define REPRO_COMMON_PLACEMENT_H_

#include <functional>
#include <map>
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

// How `workers` that are here (not gone) answer `refuses` (why a worker may not do
// something; "" when it may): whether one may, how many are here, and the first three
// refusals as "name: why".
struct WorkerRefusals {
  bool one_may = false;
  int here = 0;
  std::vector<std::string> first;
  // The refusals joined by "; ", then "; ..." when more workers are here than named.
  std::string Joined() const;
};
WorkerRefusals RefusalsOf(const std::vector<WorkerRecord>& workers,
                          const std::function<std::string(const WorkerRecord&)>& refuses);

// Why none of `workers` that are not gone can run `arm`'s runs; "" when one can:
// "no worker is here" or "needs device cuda; none of 2 workers can (w1: it has no CUDA;
// w2: it has no CUDA)" (at most three named).
std::string WhyNoWorker(const ArmSpec& arm, const std::vector<WorkerRecord>& workers);

// The host ("host-a") or GPU ("host-a/GPU-8f2c...", from the gpu_uuid capability; a
// worker without one counts as a GPU of its own, "host-a/worker-name") that `worker`
// counts as for `arm`'s spread; "" when the arm does not spread.
std::string SpreadKey(const ArmSpec& arm, const WorkerRecord& worker);

// Replaying a run (reproctl localize) on a machine like the one it trained on: the fields
// of its recorded environment (RunResult::environment) that name the machine's make, not
// the machine itself: cpu_model, torch and compiler, and for a run on CUDA gpu_name,
// driver, cuda and cudnn. The host is not among them, so a run may replay on another
// host of the same make; its settings (threads, determinism switches) come from its spec.
//
// The fields, in that order, whose values differ between two runs' environments (or that
// only one has): empty when a worker like one would be like the other.
std::vector<std::string> MachineDifferences(const std::map<std::string, std::string>& a,
                                            const std::map<std::string, std::string>& b);
// Empty when `worker`'s capabilities agree with every such field the run recorded; else
// the first that does not, in words: "its gpu_name is \"NVIDIA A100\", the run's was
// \"NVIDIA H200\"".
std::string ReplayMismatch(const std::map<std::string, std::string>& environment,
                           const WorkerRecord& worker);
// Why `worker` may not replay a run of `arm` that recorded `environment`: the arm's
// placement (PlacementMismatch), else the machine (ReplayMismatch); "" when it may.
std::string ReplayRefusal(const ArmSpec& arm, const std::map<std::string, std::string>& environment,
                          const WorkerRecord& worker);

}  // namespace repro

#endif  // REPRO_COMMON_PLACEMENT_H_
