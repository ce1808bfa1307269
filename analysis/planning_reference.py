#!/usr/bin/python3
"""Reference run counts for analysis/planning_test.cc, computed independently of repro's C++.

Python's standard library only (no NumPy needed):
    /usr/bin/python3 analysis/planning_reference.py tests/data/resnet_same_seed.csv
Splits the study's score file into rows 1-25 (the arm) and 26-50 (the reference), as
analysis/planning_test.cc does, and prints for each column the stdev ratio, the pilots'
kurtosis, the approximate 95% interval at 25 runs a side and the runs per arm needed for
intervals 0.05, 0.1 and 0.3 wide and for power 0.8. The normal quantiles come from
statistics.NormalDist, the moments from math.fsum over exact deviations, and the counts
from a search over n (bisection for the width, a scan of the exact two-sided power),
not from the closed forms in analysis/planning.cc.
"""
import math
import sys
from statistics import NormalDist

Z = NormalDist().inv_cdf(0.975)


def moments(xs):
    n = len(xs)
    mean = math.fsum(xs) / n
    m2 = math.fsum((x - mean) ** 2 for x in xs) / n
    m4 = math.fsum((x - mean) ** 4 for x in xs) / n
    return math.sqrt(m2), m4 / (m2 * m2)


def plan(arm, ref, width, power=0.8):
    s_a, k_a = moments(arm)
    s_r, k_r = moments(ref)
    ratio = s_a / s_r

    def se(n):
        return math.sqrt((k_a - 1) / (4 * n) + (k_r - 1) / (4 * n))

    def w(n):
        return ratio * (math.exp(Z * se(n)) - math.exp(-Z * se(n)))

    def pw(n):
        d = abs(math.log(ratio)) / se(n)
        return NormalDist().cdf(d - Z) + NormalDist().cdf(-d - Z)

    lo, hi = 1, 2
    while w(hi) > width:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if w(mid) > width:
            lo = mid
        else:
            hi = mid
    n_power = 2
    while pw(n_power) < power:
        n_power += 1
    return ratio, k_a, k_r, max(hi, 2), n_power, w(len(arm))


def main():
    rows = [tuple(float(v) for v in line.split(","))
            for line in open(sys.argv[1]) if line.strip()]
    first, last = rows[:25], rows[25:]
    for c, name in ((0, "loss"), (1, "accuracy")):
        a = [r[c] for r in first]
        b = [r[c] for r in last]
        for width in (0.05, 0.1, 0.3):
            ratio, k_a, k_r, n_width, n_power, pilot = plan(a, b, width)
            print(f"{name} width {width}: ratio {ratio!r} kurtosis {k_a!r} {k_r!r} "
                  f"runs {n_width} power {n_power} pilot width {pilot!r}")


if __name__ == "__main__":
    main()
