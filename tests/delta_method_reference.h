// The stdev ratio's delta-method interval written out from its formula, apart from the
// code under test (analysis/planning.h, analysis/adaptive.h), for the tests that check
// an adaptive run count's looks against it: moments about the mean (ddof 0), and
//   width = r (e^{z se} - e^{-z se}),  se = sqrt((k_a - 1) / (4 n_a) + (k_r - 1) / (4 n_r)).
// Header-only; test code only.
#ifndef REPRO_TESTS_DELTA_METHOD_REFERENCE_H_
#define REPRO_TESTS_DELTA_METHOD_REFERENCE_H_

#include <cmath>
#include <vector>

namespace repro::reference {

// The power-th moment of `v` about its mean, over n (ddof 0).
inline double Moment(const std::vector<double>& v, int power) {
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double m = 0;
  for (double x : v) m += std::pow(x - mean, power);
  return m / static_cast<double>(v.size());
}

inline double Kurtosis(const std::vector<double>& v) {
  return Moment(v, 4) / (Moment(v, 2) * Moment(v, 2));
}

// The standard error of log(stdev ratio) of `arm` over `ref`.
inline double LogRatioError(const std::vector<double>& arm, const std::vector<double>& ref) {
  return std::sqrt((Kurtosis(arm) - 1) / (4.0 * static_cast<double>(arm.size())) +
                   (Kurtosis(ref) - 1) / (4.0 * static_cast<double>(ref.size())));
}

// The interval's width at normal quantile z; NaN where the ratio is undefined (no spread
// in `ref`), 0 where `arm` has none.
inline double IntervalWidth(const std::vector<double>& arm, const std::vector<double>& ref, double z) {
  if (!(Moment(ref, 2) > 0)) return std::nan("");
  if (Moment(arm, 2) == 0) return 0;
  const double ratio = std::sqrt(Moment(arm, 2) / Moment(ref, 2));
  const double se = LogRatioError(arm, ref);
  return ratio * (std::exp(z * se) - std::exp(-z * se));
}

}  // namespace repro::reference

#endif  // REPRO_TESTS_DELTA_METHOD_REFERENCE_H_
