#include "analysis/scores.h"

#include <cmath>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "analysis/inference.h"
#include "analysis/json_writer.h"
#include "analysis/planning.h"
#include "analysis/report.h"
#include "analysis/report_text.h"
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
  ScoresOptions options;
  options.bootstrap_resamples = bootstrap_resamples;
  options.seed = seed;
  return AnalyzeScores(paths, options);
}

namespace {

std::optional<double> Defined(double value) {
  if (std::isnan(value)) return std::nullopt;
  return value;
}

void JsonPair(JsonWriter& w, std::string_view key, double loss, double accuracy) {
  w.Key(key);
  w.BeginObject();
  w.Field("loss", Defined(loss));
  w.Field("accuracy", Defined(accuracy));
  w.EndObject();
}

std::string ScoresJson(const std::vector<ScoreFile>& files,
                       const std::vector<ArmComparison>& comparisons,
                       const ScoresOptions& options) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  w.Field("reference", files.back().name);
  w.Key("bootstrap");
  w.BeginObject();
  w.Field("resamples", options.bootstrap_resamples);
  w.Field("seed", options.seed);
  w.EndObject();
  WritePlanningJson(w, options.ci_width, options.power_ratio);
  w.Key("files");
  w.BeginArray();
  for (const ScoreFile& file : files) {
    w.BeginObject();
    w.Field("name", file.name);
    w.Field("n", static_cast<int64_t>(file.loss.size()));
    JsonPair(w, "mean", Mean(file.loss), Mean(file.accuracy));
    JsonPair(w, "stdev", Stdev(file.loss, 0), Stdev(file.accuracy, 0));
    JsonPair(w, "stdev_ddof1", Stdev(file.loss, 1), Stdev(file.accuracy, 1));
    JsonPair(w, "min", Min(file.loss), Min(file.accuracy));
    JsonPair(w, "max", Max(file.loss), Max(file.accuracy));
    w.EndObject();
  }
  w.EndArray();
  w.Key("comparisons");
  w.BeginArray();
  for (const ArmComparison& c : comparisons) WriteComparisonJson(w, c);
  w.EndArray();
  w.EndObject();
  out.push_back('\n');
  return out;
}

}  // namespace

absl::StatusOr<std::string> AnalyzeScores(const std::vector<std::string>& paths,
                                          const ScoresOptions& options) {
  const int bootstrap_resamples = options.bootstrap_resamples;
  const uint64_t seed = options.seed;
  if (paths.empty()) {
    return absl::InvalidArgumentError(
        "analyze-scores needs at least one score file (FILE.csv [FILE.csv ...])");
  }
  if (bootstrap_resamples < 0 || bootstrap_resamples > kMaxBootstrapResamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap resamples must be between 0 and ", kMaxBootstrapResamples,
                     ", got ", bootstrap_resamples));
  }
  if (!(options.ci_width > 0) || !std::isfinite(options.ci_width)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ci width must be a number above 0, got ", options.ci_width));
  }
  if (absl::Status s = CheckPowerRatio(options.power_ratio); !s.ok()) return s;
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
  std::vector<ArmComparison> comparisons;
  for (size_t i = 0; i + 1 < files.size(); ++i) {
    ArmComparison c;
    c.arm = files[i].name;
    c.reference = reference.name;
    c.scores = CompareScores(files[i].loss, files[i].accuracy, reference.loss,
                             reference.accuracy, bootstrap_resamples,
                             DeriveSeed(seed, absl::StrCat(c.arm, " vs ", c.reference)),
                             options.ci_width, options.power_ratio);
    comparisons.push_back(std::move(c));
  }
  if (options.json) return ScoresJson(files, comparisons, options);
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
    const ScoreComparison& c = comparisons[static_cast<size_t>(&file - files.data())].scores;
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
    AppendRow("CI width (approx.)",
              FormatNumpyArray({Value(c.loss.plan.pilot_width),
                                Value(c.accuracy.plan.pilot_width)}),
              &out);
    AppendRow(absl::StrCat("runs for width ", FormatNumpy(options.ci_width)).c_str(),
              RunsNeededLine(c, false), &out);
    AppendRow(PowerRowLabel(options.power_ratio).c_str(), RunsNeededLine(c, true), &out);
  }
  if (files.size() > 1) {
    absl::StrAppend(&out, "\n", PlanningMethodText(options.ci_width, options.power_ratio));
  }
  return out;
}

}  // namespace repro
