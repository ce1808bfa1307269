#include "analysis/scores.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/inference.h"
#include "analysis/stats.h"

namespace repro {
namespace {

struct ScoreFile {
  std::string name;  // the file name, or the path where two files share a name
  std::vector<double> loss;
  std::vector<double> accuracy;
};

std::string BaseName(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

double Value(const std::optional<double>& value) { return value.value_or(std::nan("")); }

void AppendRow(const char* label, const std::string& value, std::string* out) {
  absl::StrAppendFormat(out, "  %-20s %s\n", label, value);
}

}  // namespace

absl::StatusOr<std::string> AnalyzeScores(const std::vector<std::string>& paths,
                                          int bootstrap_resamples, uint64_t seed) {
  if (paths.empty()) {
    return absl::InvalidArgumentError(
        "analyze-scores needs at least one score file (FILE.csv [FILE.csv ...])");
  }
  if (bootstrap_resamples < 0 || bootstrap_resamples > kMaxBootstrapResamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap resamples must be between 0 and ", kMaxBootstrapResamples,
                     ", got ", bootstrap_resamples));
  }
  std::set<std::string> seen;
  bool names_collide = false;
  for (const std::string& path : paths) {
    names_collide |= !seen.insert(BaseName(path)).second;
  }

  std::vector<ScoreFile> files;
  for (const std::string& path : paths) {
    absl::StatusOr<std::vector<std::pair<double, double>>> rows = ReadScoreCsv(path);
    if (!rows.ok()) return rows.status();
    if (rows->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": no score rows (expected lines 'loss,accuracy')"));
    }
    ScoreFile file;
    file.name = names_collide ? path : BaseName(path);
    for (const auto& [loss, accuracy] : *rows) {
      file.loss.push_back(loss);
      file.accuracy.push_back(accuracy);
    }
    files.push_back(std::move(file));
  }

  const ScoreFile& reference = files.back();
  std::string out = absl::StrFormat(
      "Scores [test loss, test accuracy] of %d file%s; reference: %s (the last)\n",
      files.size(), files.size() == 1 ? "" : "s", reference.name);
  if (files.size() > 1) {
    absl::StrAppend(&out, "stdev ratio: stdev (ddof 0) over ", reference.name,
                    "'s; variance share: its square\n");
    if (bootstrap_resamples > 0) {
      absl::StrAppendFormat(&out,
                            "95%% CI: of the stdev ratio, percentile bootstrap, %d "
                            "resamples, seed %d\n",
                            bootstrap_resamples, seed);
    }
    absl::StrAppend(&out,
                    "Brown-Forsythe: test of equal variances (Levene's, median-centred)\n");
  }
  for (const ScoreFile& file : files) {
    const std::vector<double>& loss = file.loss;
    const std::vector<double>& accuracy = file.accuracy;
    absl::StrAppend(&out, "\n", file.name, ":\n");
    AppendRow("n", absl::StrCat(loss.size()), &out);
    AppendRow("mean", FormatNumpyArray({Mean(loss), Mean(accuracy)}), &out);
    AppendRow("stdev (ddof 0)", FormatNumpyArray({Stdev(loss, 0), Stdev(accuracy, 0)}),
              &out);
    AppendRow("stdev (ddof 1)", FormatNumpyArray({Stdev(loss, 1), Stdev(accuracy, 1)}),
              &out);
    AppendRow("min", FormatNumpyArray({Min(loss), Min(accuracy)}), &out);
    AppendRow("max", FormatNumpyArray({Max(loss), Max(accuracy)}), &out);
    if (&file == &reference) continue;
    const ScoreComparison c = CompareScores(
        loss, accuracy, reference.loss, reference.accuracy, bootstrap_resamples,
        DeriveSeed(seed, absl::StrCat(file.name, " vs ", reference.name)));
    AppendRow("stdev ratio",
              FormatNumpyArray({Value(c.loss.stdev_ratio), Value(c.accuracy.stdev_ratio)}),
              &out);
    AppendRow("variance share",
              FormatNumpyArray(
                  {Value(c.loss.variance_share), Value(c.accuracy.variance_share)}),
              &out);
    if (bootstrap_resamples > 0) {
      AppendRow("95% CI loss",
                FormatNumpyArray({Value(c.loss.ci_low), Value(c.loss.ci_high)}), &out);
      AppendRow("95% CI accuracy",
                FormatNumpyArray({Value(c.accuracy.ci_low), Value(c.accuracy.ci_high)}),
                &out);
    }
    AppendRow("Brown-Forsythe F",
              FormatNumpyArray({Value(c.loss.brown_forsythe_f),
                                Value(c.accuracy.brown_forsythe_f)}),
              &out);
    AppendRow("Brown-Forsythe p",
              FormatNumpyArray({Value(c.loss.brown_forsythe_p),
                                Value(c.accuracy.brown_forsythe_p)}),
              &out);
  }
  return out;
}

}  // namespace repro
