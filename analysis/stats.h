// Descriptive statistics over score columns (test loss, test accuracy), the reader for
// score files in the original study's format (rows "loss,accuracy", no header), and the
// NumPy-like printing of score rows that the text reports use.
//
// Undefined results are quiet NaN, not errors: Mean, Min and Max of an empty input, and
// Stdev when there are no more values than ddof (n <= ddof). Callers that must not show
// NaN (the JSON report) test with std::isnan and print null. Non-finite inputs propagate
// as IEEE arithmetic makes them. Only file reading can fail, so only it returns a Status.
//
// Thread safety: free functions without shared state; safe to call concurrently.
#ifndef REPRO_ANALYSIS_STATS_H_
#define REPRO_ANALYSIS_STATS_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace repro {

// Arithmetic mean with compensated summation. When every value is the same finite
// number the result is exactly that number (a plain sum / n need not be).
double Mean(const std::vector<double>& values);

// Standard deviation sqrt(sum((x - mean)^2) / (n - ddof)), like NumPy's std(ddof=...):
// ddof 0 is the population stdev (the study's figure), ddof 1 the sample stdev.
// Two-pass with the correction term of Chan, Golub and LeVeque, so it does not lose
// precision when the spread is small relative to the mean. Exactly 0 when every value
// is the same finite number. NaN when values.size() <= ddof or ddof < 0.
double Stdev(const std::vector<double>& values, int ddof = 0);

double Min(const std::vector<double>& values);  // NaN if empty or any value is NaN
double Max(const std::vector<double>& values);  // NaN if empty or any value is NaN

// Reads a score file into (loss, accuracy) pairs as NumPy's
// genfromtxt(path, delimiter=',') reads it: two comma-separated numbers per line, no
// header; text after '#' is a comment; blank lines are skipped; spaces around values
// are ignored; CRLF line ends are accepted. Numbers are parsed with correct rounding
// (the double strtod gives, whatever the locale), so "9.702797208309174026e-01" reads
// as exactly the double NumPy reads; "nan" and "inf" are accepted. Unlike genfromtxt,
// a missing or malformed value is an error rather than NaN. Errors: NotFound /
// PermissionDenied when the file cannot be opened, InvalidArgument naming the file and
// 1-based line, e.g. "scores.csv line 7: expected two numbers 'loss,accuracy', got
// 'abc'". An empty file yields no rows, not an error.
absl::StatusOr<std::vector<std::pair<double, double>>> ReadScoreCsv(
    const std::string& path);

// The same over text already in memory; `source` names it in errors.
absl::StatusOr<std::vector<std::pair<double, double>>> ParseScoreCsv(
    std::string_view text, std::string_view source);

// A number as NumPy prints it in an array with its default precision of 8: "%.8f" with
// trailing zeros (and a trailing '.') removed, so 0 prints "0" and 0.0199492874 prints
// "0.01994929". A nonzero value that would print as 0 at 8 decimals, or one of 1e16 or
// more in magnitude, prints in scientific notation ("1.5e-12") so that a tiny spread is
// never shown as none. NaN prints "nan", infinities "inf" / "-inf".
std::string FormatNumpy(double value);

// Values as NumPy prints a 1-D array: "[0.01994929 0.00301954]".
std::string FormatNumpyArray(const std::vector<double>& values);

}  // namespace repro

#endif  // REPRO_ANALYSIS_STATS_H_
