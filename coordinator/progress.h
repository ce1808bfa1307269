// What the coordinator shows while it runs. On a terminal: a live block (runs done of
// total per arm, each running run's epoch and batch, an ETA) redrawn in place, with
// log lines (which worker took which run, results, failures) scrolling above it.
// Piped: timestamped log lines only, plus a progress line whenever a run finishes. An
// arm that waits because no worker here can run it (placement) says why: under its bar,
// or piped in a line each time the reason changes. An adaptive run count's last look
// (store/status_view.h DescribeAdaptive) under the arms; piped, the service's own line
// for each look (coordinator/adaptive_rounds.h DescribeLook) says it.
//
// Thread safety: thread-safe; gRPC handlers log while the main loop redraws.
#ifndef REPRO_COORDINATOR_PROGRESS_H_
#define REPRO_COORDINATOR_PROGRESS_H_

#include <cstdio>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/experiment_view.h"

namespace repro {

class ProgressDisplay {
 public:
  // `live`: redraw in place (stderr is a terminal).
  ProgressDisplay(FILE* out, bool live) : out_(out), live_(live) {}

  void Log(const std::string& line);
  void Show(const ExperimentStatus& status);
  // Leaves the last block on screen and stops redrawing.
  void Finish();

 private:
  void EraseLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  FILE* out_;
  const bool live_;
  absl::Mutex mu_;
  std::string block_ ABSL_GUARDED_BY(mu_);  // the live block as last drawn
  int block_lines_ ABSL_GUARDED_BY(mu_) = 0;
  int last_done_ ABSL_GUARDED_BY(mu_) = -1;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::string> told_waiting_ ABSL_GUARDED_BY(mu_);  // piped: by arm
};

}  // namespace repro

#endif  // REPRO_COORDINATOR_PROGRESS_H_
