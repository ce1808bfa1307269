#include "coordinator/progress.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/cli.h"
#include "store/status_view.h"

namespace repro {
namespace {

std::string Bar(int done, int total, int width) {
  const int filled = total > 0 ? done * width / total : 0;
  std::string bar;
  for (int i = 0; i < width; ++i) bar += i < filled ? "#" : ".";
  return bar;
}

}  // namespace

void ProgressDisplay::EraseLocked() {
  if (live_ && block_lines_ > 0) {
    std::fprintf(out_, "\x1b[%dA\x1b[J", block_lines_);
    block_lines_ = 0;
  }
}

void ProgressDisplay::DrawLocked() {
  if (!live_ || finished_ || block_.empty()) return;
  std::fputs(block_.c_str(), out_);
  block_lines_ = static_cast<int>(std::count(block_.begin(), block_.end(), '\n'));
  std::fflush(out_);
}

void ProgressDisplay::Log(const std::string& line) {
  absl::MutexLock lock(&mu_);
  EraseLocked();
  std::fprintf(out_, "[%s] %s\n", cli::ClockTime().c_str(), line.c_str());
  DrawLocked();
  std::fflush(out_);
}

void ProgressDisplay::Show(const ExperimentStatus& s) {
  const RunCounts& c = s.runs;
  const int total = c.total();
  absl::MutexLock lock(&mu_);
  if (!live_) {
    // Why an arm waits, once each time it changes: placement may hold it for long. Not
    // while no worker is here at all, as at every start.
    const bool anyone = std::any_of(s.workers.begin(), s.workers.end(),
                                    [](const WorkerRecord& w) { return !w.gone(); });
    for (const auto& a : s.arms) {
      if (!anyone) break;
      std::string& told = told_waiting_[a.name];
      if (a.waiting == told) continue;
      told = a.waiting;
      if (!a.waiting.empty()) {
        std::fprintf(out_, "[%s] arm %s waits: %s\n", cli::ClockTime().c_str(), a.name.c_str(),
                     a.waiting.c_str());
      }
    }
    if (c.done + c.failed == last_done_) return;
    last_done_ = c.done + c.failed;
    std::string line = absl::StrCat("progress: ", c.done, "/", total, " runs done");
    for (const auto& a : s.arms) absl::StrAppend(&line, ", ", a.name, " ", a.runs.done, "/", a.total);
    if (c.failed > 0) absl::StrAppend(&line, ", ", c.failed, " failed");
    if (!s.complete) absl::StrAppend(&line, "; ETA ", FormatDuration(s.eta_seconds));
    std::fprintf(out_, "[%s] %s\n", cli::ClockTime().c_str(), line.c_str());
    std::fflush(out_);
    return;
  }
  std::string block = absl::StrFormat("%s: %d/%d runs done, %d running, %d failed, ETA %s\n",
                                      s.experiment, c.done, total, c.running, c.failed,
                                      s.complete ? "done" : FormatDuration(s.eta_seconds));
  for (const auto& a : s.arms) {
    absl::StrAppendFormat(&block, "  %-18s [%s] %d/%d\n", a.name,
                          Bar(a.runs.done, a.total, 20), a.runs.done, a.total);
    if (!a.waiting.empty()) absl::StrAppend(&block, "    waiting: ", a.waiting, "\n");
  }
  if (s.adaptive) absl::StrAppend(&block, DescribeAdaptive(*s.adaptive));
  absl::StrAppend(&block, DescribeLocalizing(s.localizing));
  for (const auto& r : s.running) {
    absl::StrAppendFormat(&block, "  %s#%d on %s: epoch %d/%d", r.arm, r.index, r.worker,
                          r.epoch + 1, r.epochs);
    if (r.batches > 0) absl::StrAppendFormat(&block, ", batch %d/%d", r.batch, r.batches);
    absl::StrAppend(&block, "\n");
  }
  EraseLocked();
  block_ = std::move(block);
  DrawLocked();
}

void ProgressDisplay::Finish() {
  absl::MutexLock lock(&mu_);
  finished_ = true;
  block_lines_ = 0;  // leave the last block where it is
}

}  // namespace repro
