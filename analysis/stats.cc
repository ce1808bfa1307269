#include "analysis/stats.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace repro {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Neumaier's compensated sum: the error of each addition is carried separately.
class CompensatedSum {
 public:
  void Add(double x) {
    const double t = sum_ + x;
    if (std::fabs(sum_) >= std::fabs(x)) {
      compensation_ += (sum_ - t) + x;
    } else {
      compensation_ += (x - t) + sum_;
    }
    sum_ = t;
  }
  double Value() const { return sum_ + compensation_; }

 private:
  double sum_ = 0;
  double compensation_ = 0;
};

// True when values is non-empty and every value equals the first, which is finite.
bool AllSameFinite(const std::vector<double>& values) {
  if (values.empty() || !std::isfinite(values.front())) return false;
  for (double v : values) {
    if (v != values.front()) return false;
  }
  return true;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Parses the whole of `field` as a double, correctly rounded and locale-independent.
bool ParseDouble(std::string_view field, double* out) {
  // from_chars takes no '+' sign; accept one, as strtod does, but not "+-1".
  if (!field.empty() && field.front() == '+') {
    field.remove_prefix(1);
    if (!field.empty() && field.front() == '-') return false;
  }
  if (field.empty()) return false;
  const char* end = field.data() + field.size();
  auto [ptr, ec] = std::from_chars(field.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

// Removes trailing zeros of a decimal fraction, then a trailing '.'.
std::string TrimFraction(std::string text) {
  if (text.find('.') == std::string::npos) return text;
  while (!text.empty() && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

std::string Excerpt(std::string_view line) {
  constexpr size_t kMax = 80;
  if (line.size() <= kMax) return std::string(line);
  return std::string(line.substr(0, kMax)) + "...";
}

// Splits on `delimiter`, keeping empty pieces. (This Abseil build has its own
// string_view type, so absl::StrSplit does not take std::string_view.)
std::vector<std::string_view> Split(std::string_view text, char delimiter) {
  std::vector<std::string_view> pieces;
  while (true) {
    const size_t at = text.find(delimiter);
    pieces.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return pieces;
    text.remove_prefix(at + 1);
  }
}

}  // namespace

double Mean(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  if (AllSameFinite(values)) return values.front();
  CompensatedSum sum;
  for (double v : values) sum.Add(v);
  return sum.Value() / static_cast<double>(values.size());
}

double Stdev(const std::vector<double>& values, int ddof) {
  if (ddof < 0 || values.size() <= static_cast<size_t>(ddof)) return kNaN;
  if (AllSameFinite(values)) return 0.0;
  const double mean = Mean(values);
  // Corrected two-pass: sum(d^2) - sum(d)^2 / n, where sum(d) would be 0 in exact
  // arithmetic and cancels the rounding error of the mean.
  CompensatedSum sum_d;
  CompensatedSum sum_d2;
  for (double v : values) {
    const double d = v - mean;
    sum_d.Add(d);
    sum_d2.Add(d * d);
  }
  const double n = static_cast<double>(values.size());
  double variance = (sum_d2.Value() - sum_d.Value() * sum_d.Value() / n) /
                    (n - static_cast<double>(ddof));
  if (variance < 0) variance = 0;  // rounding only; NaN passes through
  return std::sqrt(variance);
}

double Min(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  double result = values.front();
  for (double v : values) {
    if (std::isnan(v)) return kNaN;
    if (v < result) result = v;
  }
  return result;
}

double Max(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  double result = values.front();
  for (double v : values) {
    if (std::isnan(v)) return kNaN;
    if (v > result) result = v;
  }
  return result;
}

absl::StatusOr<std::vector<std::pair<double, double>>> ParseScoreCsv(
    std::string_view text, std::string_view source) {
  std::vector<std::pair<double, double>> rows;
  int line_number = 0;
  for (std::string_view raw : Split(text, '\n')) {
    ++line_number;
    std::string_view line = raw;
    if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
      line = line.substr(0, hash);
    }
    line = TrimBlanks(line);
    if (line.empty()) continue;
    const std::vector<std::string_view> fields = Split(line, ',');
    double loss = 0;
    double accuracy = 0;
    if (fields.size() != 2 || !ParseDouble(TrimBlanks(fields[0]), &loss) ||
        !ParseDouble(TrimBlanks(fields[1]), &accuracy)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s line %d: expected two numbers 'loss,accuracy', got '%s'",
          std::string(source), line_number, Excerpt(TrimBlanks(raw))));
    }
    rows.emplace_back(loss, accuracy);
  }
  return rows;
}

absl::StatusOr<std::vector<std::pair<double, double>>> ReadScoreCsv(
    const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot open score file ", path, ": ", std::strerror(error));
    if (error == ENOENT) return absl::NotFoundError(message);
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::UnavailableError(message);
  }
  std::string text;
  char buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) {
    return absl::UnavailableError(
        absl::StrCat("cannot read score file ", path, ": ", std::strerror(error)));
  }
  return ParseScoreCsv(text, path);
}

std::string FormatNumpy(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";  // also -0
  if (std::fabs(value) < 1e16) {
    std::string fixed = TrimFraction(absl::StrFormat("%.8f", value));
    if (fixed != "0" && fixed != "-0") return fixed;
  }
  // Too small to show at 8 decimals, or too large: scientific, mantissa trimmed.
  const std::string text = absl::StrFormat("%.8e", value);
  const size_t exponent = text.find('e');
  return TrimFraction(text.substr(0, exponent)) + text.substr(exponent);
}

std::string FormatNumpyArray(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ' ';
    out += FormatNumpy(values[i]);
  }
  out += ']';
  return out;
}

}  // namespace repro
