// `reproctl analyze-scores FILE.csv [FILE.csv ...]`: the spread of test scores in score
// files like the original study's (rows "loss,accuracy", no header; see ReadScoreCsv in
// analysis/stats.h), for files written by `reproctl report --format csv --arm NAME` or by
// the study itself. Each file is one arm, named by its file name; the last file is the
// reference (normally the different-seeds arm) that the others' spread is divided by.
//
// Thread safety: a pure function apart from reading the files; safe to call
// concurrently.
#ifndef REPRO_ANALYSIS_SCORES_H_
#define REPRO_ANALYSIS_SCORES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "analysis/analysis.h"

namespace repro {

// Reads every file and returns the printout: per file n, mean, stdev (ddof 0, the
// study's figure, printed like NumPy: "[0.01994929 0.00301954]"), stdev (ddof 1), min
// and max of [test loss, test accuracy]; and for each file but the reference, as the
// report compares an arm with its reference arm (CompareScores in analysis.h): its
// stdev over the reference's per column, that ratio squared (the share of the
// reference's variance), the percentile-bootstrap 95% interval of the ratio
// (`bootstrap_resamples` resamples, 0 for none, seeded with DeriveSeed(seed, "<file>
// vs <reference>")) and the Brown-Forsythe test of equal variances (F and p); "nan"
// where undefined (fewer than 2 rows in either file; for the ratio and its interval, a
// reference stdev of 0), "inf" for an unbounded interval. Errors: InvalidArgument with
// no paths, for a file without rows or a bootstrap count outside [0,
// kMaxBootstrapResamples]; ReadScoreCsv's errors, which name the file and line.
absl::StatusOr<std::string> AnalyzeScores(
    const std::vector<std::string>& paths,
    int bootstrap_resamples = kDefaultBootstrapResamples, uint64_t seed = 0);

// What analyze-scores may be asked for besides the files.
struct ScoresOptions {
  int bootstrap_resamples = kDefaultBootstrapResamples;
  uint64_t seed = 0;
  // The 95% interval width the runs needed aim at (analysis/planning.h); > 0.
  double ci_width = kDefaultCiWidth;
  double power_ratio = 0;  // the ratio the power counts tell from 1; 0: each pilot's own
  bool json = false;  // JSON (documented in the README) instead of text
};

// The same, and for each file but the reference how many runs per arm would narrow the
// ratio's 95% interval to `ci_width` and tell the ratio from 1 with power 0.8
// (PlanRuns), with that approximation's interval width at the files' own row counts.
// JSON: {"reference": str, "bootstrap": {"resamples", "seed"}, "planning": {...},
// "files": [{"name", "n", "mean", "stdev", "stdev_ddof1", "min", "max"}],
// "comparisons": [ the report's comparison entries ]}. Errors as above, and
// InvalidArgument for a ci_width that is not a finite number above 0.
absl::StatusOr<std::string> AnalyzeScores(const std::vector<std::string>& paths,
                                          const ScoresOptions& options);

}  // namespace repro

#endif  // REPRO_ANALYSIS_SCORES_H_
