#include "analysis/inference.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis/stats.h"

namespace repro {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// The continued fraction of I_x(a, b) by the modified Lentz method (Numerical Recipes,
// 3rd ed., betacf): converges quickly for x < (a + 1) / (a + b + 2).
double BetaContinuedFraction(double a, double b, double x) {
  constexpr int kMaxIterations = 100000;
  constexpr double kEpsilon = std::numeric_limits<double>::epsilon();
  constexpr double kTiny = std::numeric_limits<double>::min() / kEpsilon;
  const double qab = a + b;
  const double qap = a + 1;
  const double qam = a - 1;
  double c = 1;
  double d = 1 - qab * x / qap;
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIterations; ++m) {
    const int m2 = 2 * m;
    // Even step.
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    // Odd step.
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) <= kEpsilon) return h;
  }
  return h;  // not converged to the last bit; the best estimate
}

// The arm's and the reference's columns, each centred on its full-sample mean so that
// a resample's variance is mean(d^2) - mean(d)^2 with little cancellation, and
// identical values give deviations of exactly 0.
struct CentredColumns {
  size_t rows = 0;
  std::vector<std::vector<double>> deviations;
};

CentredColumns Centre(const std::vector<std::vector<double>>& columns) {
  CentredColumns out;
  out.rows = columns.empty() ? 0 : columns.front().size();
  for (const std::vector<double>& column : columns) {
    const double mean = Mean(column);
    std::vector<double> d;
    d.reserve(column.size());
    for (double v : column) d.push_back(v - mean);
    out.deviations.push_back(std::move(d));
  }
  return out;
}

// Draws one resample's rows and writes each column's population stdev to *stdevs.
void ResampleStdevs(const CentredColumns& data, Rng* rng, std::vector<double>* sum,
                    std::vector<double>* sum_sq, std::vector<char>* constant,
                    std::vector<double>* first, std::vector<double>* stdevs) {
  const size_t columns = data.deviations.size();
  std::fill(sum->begin(), sum->end(), 0.0);
  std::fill(sum_sq->begin(), sum_sq->end(), 0.0);
  std::fill(constant->begin(), constant->end(), 1);
  for (size_t i = 0; i < data.rows; ++i) {
    const size_t row = static_cast<size_t>(rng->Below(data.rows));
    for (size_t c = 0; c < columns; ++c) {
      const double d = data.deviations[c][row];
      if (i == 0) (*first)[c] = d;
      (*constant)[c] &= static_cast<char>(d == (*first)[c]);
      (*sum)[c] += d;
      (*sum_sq)[c] += d * d;
    }
  }
  const double n = static_cast<double>(data.rows);
  for (size_t c = 0; c < columns; ++c) {
    if ((*constant)[c]) {
      (*stdevs)[c] = 0;  // exactly: rounding must not invent a spread
      continue;
    }
    const double mean = (*sum)[c] / n;
    const double variance = (*sum_sq)[c] / n - mean * mean;
    (*stdevs)[c] = variance > 0 ? std::sqrt(variance) : 0.0;
  }
}

bool AllFinite(const std::vector<std::vector<double>>& columns) {
  for (const std::vector<double>& column : columns) {
    for (double v : column) {
      if (!std::isfinite(v)) return false;
    }
  }
  return true;
}

}  // namespace

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (uint64_t& word : s_) word = SplitMix64(&seed);
}

uint64_t Rng::Next() {
  const uint64_t result = RotateLeft(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = RotateLeft(s_[3], 45);
  return result;
}

uint64_t Rng::Below(uint64_t n) {
  // Lemire, "Fast random integer generation in an interval" (2019): the high word of
  // a 128-bit product, rejecting the few low words that would bias it.
  unsigned __int128 product = static_cast<unsigned __int128>(Next()) * n;
  uint64_t low = static_cast<uint64_t>(product);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(Next()) * n;
      low = static_cast<uint64_t>(product);
    }
  }
  return static_cast<uint64_t>(product >> 64);
}

uint64_t DeriveSeed(uint64_t seed, std::string_view label) {
  uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a, 64 bits
  for (unsigned char c : label) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  uint64_t state = seed ^ hash;
  SplitMix64(&state);
  return SplitMix64(&state);
}

double Median(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  for (double v : values) {
    if (std::isnan(v)) return kNaN;
  }
  std::vector<double> sorted = values;
  std::sort(sorted.begin(), sorted.end());
  return QuantileOfSorted(sorted, 0.5);
}

double QuantileOfSorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty() || !(q >= 0 && q <= 1)) return kNaN;
  const double position = q * static_cast<double>(sorted.size() - 1);
  const size_t below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, sorted.size() - 1);
  const double fraction = position - static_cast<double>(below);
  const double lo = sorted[below];
  const double hi = sorted[above];
  if (fraction == 0 || lo == hi) return lo;  // also keeps inf from becoming NaN
  return lo + (hi - lo) * fraction;
}

double LogGamma(double x) {
  if (!(x > 0)) return kNaN;
  if (std::isinf(x)) return kInf;
  if (x < 0.5) {
    // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x), with sin(pi x) > 0 here.
    return std::log(M_PI / std::sin(M_PI * x)) - LogGamma(1 - x);
  }
  static constexpr double kCoefficients[] = {
      0.99999999999980993,     676.5203681218851,     -1259.1392167224028,
      771.32342877765313,      -176.61502916214059,   12.507343278686905,
      -0.13857109526572012,    9.9843695780195716e-6, 1.5056327351493116e-7};
  constexpr double kG = 7;
  const double z = x - 1;
  double sum = kCoefficients[0];
  for (int i = 1; i < 9; ++i) sum += kCoefficients[i] / (z + i);
  const double t = z + kG + 0.5;
  return 0.5 * std::log(2 * M_PI) + (z + 0.5) * std::log(t) - t + std::log(sum);
}

double RegularizedIncompleteBeta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0 && x <= 1) || std::isinf(a) || std::isinf(b)) {
    return kNaN;
  }
  if (x == 0) return 0;
  if (x == 1) return 1;
  const double log_front = LogGamma(a + b) - LogGamma(a) - LogGamma(b) +
                           a * std::log(x) + b * std::log1p(-x);
  const double front = std::exp(log_front);
  if (x < (a + 1) / (a + b + 2)) return front * BetaContinuedFraction(a, b, x) / a;
  return 1 - front * BetaContinuedFraction(b, a, 1 - x) / b;
}

double FDistributionCdf(double f, double d1, double d2) {
  if (std::isnan(f) || !(d1 > 0) || !(d2 > 0)) return kNaN;
  if (f <= 0) return 0;
  if (std::isinf(f)) return 1;
  // P(X <= f) = I_{d1 f / (d1 f + d2)}(d1 / 2, d2 / 2).
  return RegularizedIncompleteBeta(d1 / 2, d2 / 2, d1 * f / (d1 * f + d2));
}

double FDistributionSf(double f, double d1, double d2) {
  if (std::isnan(f) || !(d1 > 0) || !(d2 > 0)) return kNaN;
  if (f <= 0) return 1;
  if (std::isinf(f)) return 0;
  // P(X > f) = I_{d2 / (d1 f + d2)}(d2 / 2, d1 / 2): the argument is formed without a
  // subtraction, so a small p-value is not 1 minus something close to 1.
  return RegularizedIncompleteBeta(d2 / 2, d1 / 2, d2 / (d1 * f + d2));
}

double StudentTCdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 1 : 0;
  // P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
  const double tail = RegularizedIncompleteBeta(df / 2, 0.5, df / (df + t * t)) / 2;
  return t > 0 ? 1 - tail : tail;
}

namespace {

// The p-quantile (0.5 < p < 1) of a distribution symmetric about 0 with CDF `cdf`, by
// bisection to the last bit.
template <typename Cdf>
double UpperQuantile(double p, const Cdf& cdf) {
  double low = 0;
  double high = 1;
  while (cdf(high) < p) {
    high *= 2;
    if (std::isinf(high)) return kInf;
  }
  for (int i = 0; i < 200; ++i) {
    const double mid = low + (high - low) / 2;
    if (mid <= low || mid >= high) break;
    (cdf(mid) < p ? low : high) = mid;
  }
  return high;
}

}  // namespace

double StudentTQuantile(double p, double df) {
  if (!(p > 0 && p < 1) || !(df > 0)) return kNaN;
  if (p == 0.5) return 0;
  if (p < 0.5) return -StudentTQuantile(1 - p, df);
  return UpperQuantile(p, [df](double t) { return StudentTCdf(t, df); });
}

double NormalQuantile(double p) {
  if (!(p > 0 && p < 1)) return kNaN;
  if (p == 0.5) return 0;
  if (p < 0.5) return -NormalQuantile(1 - p);
  return UpperQuantile(p, [](double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); });
}

EqualVarianceTest BrownForsythe(const std::vector<std::vector<double>>& groups) {
  EqualVarianceTest test;
  test.f = kNaN;
  test.p = kNaN;
  const size_t k = groups.size();
  size_t n = 0;
  for (const std::vector<double>& group : groups) {
    if (group.empty()) return test;
    n += group.size();
  }
  if (k < 2 || n <= k) return test;
  test.df1 = static_cast<int>(k - 1);
  test.df2 = static_cast<int>(n - k);
  // z_ij = |x_ij - median_i|; F = [sum n_i (zbar_i - zbar)^2 / (k - 1)] /
  //                               [sum (z_ij - zbar_i)^2 / (N - k)].
  std::vector<std::vector<double>> deviations;
  std::vector<double> all;
  for (const std::vector<double>& group : groups) {
    const double median = Median(group);
    if (std::isnan(median)) return test;
    std::vector<double> z;
    for (double v : group) z.push_back(std::fabs(v - median));
    all.insert(all.end(), z.begin(), z.end());
    deviations.push_back(std::move(z));
  }
  const double grand_mean = Mean(all);
  double between = 0;
  double within = 0;
  for (const std::vector<double>& z : deviations) {
    const double mean = Mean(z);
    between += static_cast<double>(z.size()) * (mean - grand_mean) * (mean - grand_mean);
    for (double v : z) within += (v - mean) * (v - mean);
  }
  if (!std::isfinite(between) || !std::isfinite(within) || !(within > 0)) return test;
  test.f = (between / test.df1) / (within / test.df2);
  test.p = FDistributionSf(test.f, test.df1, test.df2);
  return test;
}

std::vector<BootstrapInterval> BootstrapStdevRatio(
    const std::vector<std::vector<double>>& arm,
    const std::vector<std::vector<double>>& reference, int resamples, uint64_t seed,
    double level) {
  const size_t columns = arm.size();
  std::vector<BootstrapInterval> intervals(columns, BootstrapInterval{kNaN, kNaN, 0});
  if (columns == 0 || reference.size() != columns || resamples < 1 ||
      !(level > 0 && level < 1)) {
    return intervals;
  }
  for (const auto* side : {&arm, &reference}) {
    for (const std::vector<double>& column : *side) {
      if (column.size() < 2 || column.size() != side->front().size()) return intervals;
    }
    if (!AllFinite(*side)) return intervals;
  }
  const CentredColumns arm_data = Centre(arm);
  const CentredColumns reference_data = Centre(reference);
  std::vector<std::vector<double>> ratios(columns);
  for (std::vector<double>& r : ratios) r.reserve(static_cast<size_t>(resamples));
  std::vector<double> sum(columns), sum_sq(columns), first(columns);
  std::vector<char> constant(columns);
  std::vector<double> arm_stdev(columns), reference_stdev(columns);
  Rng rng(seed);
  for (int r = 0; r < resamples; ++r) {
    ResampleStdevs(arm_data, &rng, &sum, &sum_sq, &constant, &first, &arm_stdev);
    ResampleStdevs(reference_data, &rng, &sum, &sum_sq, &constant, &first,
                   &reference_stdev);
    for (size_t c = 0; c < columns; ++c) {
      if (reference_stdev[c] > 0) {
        ratios[c].push_back(arm_stdev[c] / reference_stdev[c]);
      } else if (arm_stdev[c] > 0) {
        ratios[c].push_back(kInf);
      }  // 0 / 0: left out
    }
  }
  for (size_t c = 0; c < columns; ++c) {
    std::vector<double>& r = ratios[c];
    intervals[c].used = static_cast<int>(r.size());
    if (r.empty()) continue;
    std::sort(r.begin(), r.end());
    intervals[c].low = QuantileOfSorted(r, (1 - level) / 2);
    intervals[c].high = QuantileOfSorted(r, (1 + level) / 2);
  }
  return intervals;
}

}  // namespace repro
