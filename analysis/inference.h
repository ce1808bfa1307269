// Inferential statistics over score columns: a seeded random generator whose output is
// the same on every platform and standard library, the percentile bootstrap of the
// ratio of two standard deviations, the Brown-Forsythe test of equal variances and the
// distribution functions it needs (regularized incomplete beta, F distribution).
//
// Why our own generator: std::uniform_int_distribution and friends are specified only
// in what they produce on average, so libstdc++ and libc++ give different draws for the
// same engine and seed. A report must come out the same wherever it is computed, so
// draws here are xoshiro256** seeded through SplitMix64, bounded without bias by
// Lemire's multiply-and-reject, with nothing taken from <random>.
//
// Undefined results are quiet NaN, as in analysis/stats.h.
//
// Thread safety: free functions without shared state are safe to call concurrently;
// a Rng is a plain value that one thread at a time may use.
#ifndef REPRO_ANALYSIS_INFERENCE_H_
#define REPRO_ANALYSIS_INFERENCE_H_

#include <cstdint>
#include <string_view>
#include <vector>

namespace repro {

// One step of SplitMix64 (Steele, Lea and Flood 2014): advances *state and returns
// the next output. Also a good 64-bit mixer for deriving seeds.
uint64_t SplitMix64(uint64_t* state);

// xoshiro256** 1.0 (Blackman and Vigna 2018), its state filled from SplitMix64(seed)
// as the authors recommend. The same seed gives the same sequence everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t Next();
  // Uniform in [0, n) without modulo bias (Lemire 2019). n must be > 0.
  uint64_t Below(uint64_t n);

 private:
  uint64_t s_[4];
};

// A seed for one labelled use of a user's seed (for example one arm's bootstrap), so
// that the draws for one arm do not depend on which other arms are analysed. Stable:
// FNV-1a of the label mixed with the seed through SplitMix64.
uint64_t DeriveSeed(uint64_t seed, std::string_view label);

// The median; NumPy's median (mean of the two middle values for an even count). NaN
// when empty or when any value is NaN.
double Median(const std::vector<double>& values);

// The q-quantile (0 <= q <= 1) of values sorted ascending, with NumPy's default
// "linear" interpolation. NaN when empty.
double QuantileOfSorted(const std::vector<double>& sorted, double q);

// ln(Gamma(x)) for x > 0 (Lanczos, g = 7, 9 terms; relative error about 1e-15). NaN
// for x <= 0. Unlike std::lgamma it writes no global (signgam), so it is thread-safe.
double LogGamma(double x);

// The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1,
// by the continued fraction evaluated with the modified Lentz method (Numerical
// Recipes, 3rd ed., 6.4), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where it
// converges faster. NaN for arguments out of range.
double RegularizedIncompleteBeta(double a, double b, double x);

// The F distribution with d1 and d2 degrees of freedom: P(X <= f) and P(X > f), each
// computed directly (not as 1 - the other) so a small p-value keeps its precision.
// f <= 0 gives 0 and 1; f = +inf gives 1 and 0. NaN for d1 <= 0, d2 <= 0 or f NaN.
double FDistributionCdf(double f, double d1, double d2);
double FDistributionSf(double f, double d1, double d2);

// Student's t distribution with df > 0 degrees of freedom: P(T <= t), from the
// regularized incomplete beta function; and its p-quantile (0 < p < 1), by bisection
// to the last bit. NaN for arguments out of range.
double StudentTCdf(double t, double df);
double StudentTQuantile(double p, double df);
// The standard normal distribution's p-quantile (0 < p < 1), by the same bisection
// over 0.5 erfc(-z / sqrt 2). NaN out of range.
double NormalQuantile(double p);

// Brown-Forsythe test of equal variances (Levene's test with the median as centre;
// SciPy's levene(..., center='median')) over k >= 2 groups: the one-way ANOVA F of
// the absolute deviations from each group's median, with k - 1 and N - k degrees of
// freedom, and its upper-tail p-value.
struct EqualVarianceTest {
  double f = 0;   // NaN when undefined
  double p = 0;   // NaN when undefined
  int df1 = 0;    // k - 1
  int df2 = 0;    // N - k
};
// Undefined (NaN) with fewer than 2 groups, an empty group, N <= k, a NaN value, or
// when the absolute deviations have no spread within the groups (F would be 0/0 or
// x/0: no test can be made).
EqualVarianceTest BrownForsythe(const std::vector<std::vector<double>>& groups);

// Percentile bootstrap of stdev(arm) / stdev(reference), population stdev (ddof 0),
// for several columns at once. Each of `resamples` resamples draws the arm's rows and,
// independently, the reference's rows with replacement (n rows from n), and computes
// the ratio for every column from the same rows (a run's loss and accuracy stay
// together). The interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the
// ratios, as QuantileOfSorted. A resample whose reference has no spread gives +inf
// when the arm has some (so the upper bound may be +inf, unbounded) and is left out
// when neither has (0/0).
//
// `arm` and `reference` are columns of equal length: arm[c][i] is column c of row i.
// Both must have the same number of columns.
struct BootstrapInterval {
  double low = 0;     // NaN when undefined
  double high = 0;    // NaN when undefined; +inf when unbounded
  int used = 0;       // resamples whose ratio was defined
};
// Returns one interval per column; each NaN when either side has fewer than 2 rows,
// a column holds a NaN or infinity, or resamples < 1.
std::vector<BootstrapInterval> BootstrapStdevRatio(
    const std::vector<std::vector<double>>& arm,
    const std::vector<std::vector<double>>& reference, int resamples, uint64_t seed,
    double level = 0.95);

}  // namespace repro

#endif  // REPRO_ANALYSIS_INFERENCE_H_
