#!/usr/bin/python3
"""Reference values for analysis/inference_test.cc, computed independently of repro's C++.

Run with Debian 12's python3-scipy (SciPy 1.10.1, NumPy 1.24.2):
    /usr/bin/python3 analysis/inference_reference.py
Distribution functions, the median, quantiles and the Brown-Forsythe test come from
SciPy and NumPy. The generator and the bootstrap are re-implemented here in Python from
their published descriptions (SplitMix64, xoshiro256**, Lemire's bounded draw), so the
C++ must reproduce these draws exactly; scipy.stats.bootstrap (its own generator) gives
an interval the C++ one must be close to, not equal.
"""
import numpy as np
from scipy import special, stats

M = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class Rng:
    def __init__(self, seed):
        self.s = []
        for _ in range(4):
            seed, out = splitmix64(seed)
            self.s.append(out)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        product = self.next() * n
        low = product & M
        if low < n:
            threshold = ((1 << 64) - n) % n
            while low < threshold:
                product = self.next() * n
                low = product & M
        return product >> 64


def bootstrap_ratio(arm, ref, resamples, seed):
    """arm, ref: arrays rows x columns. Same algorithm as BootstrapStdevRatio."""
    rng = Rng(seed)
    ratios = [[] for _ in range(arm.shape[1])]
    for _ in range(resamples):
        ia = [rng.below(len(arm)) for _ in range(len(arm))]
        ir = [rng.below(len(ref)) for _ in range(len(ref))]
        for c in range(arm.shape[1]):
            sa = np.std(arm[ia, c])
            sr = np.std(ref[ir, c])
            if sr > 0:
                ratios[c].append(sa / sr)
            elif sa > 0:
                ratios[c].append(np.inf)
    return [(np.percentile(r, 2.5), np.percentile(r, 97.5), len(r)) for r in ratios]


def main():
    np.set_printoptions(precision=17)
    print("SplitMix64 seed 1234567:", end=" ")
    state = 1234567
    for _ in range(3):
        state, out = splitmix64(state)
        print(out, end=" ")
    print()
    rng = Rng(0)
    print("xoshiro256** seeded 0:", [rng.next() for _ in range(3)])
    rng = Rng(42)
    print("Below(10) seeded 42:", [rng.below(10) for _ in range(10)])

    for x in (0.1, 0.5, 1.0, 2.5, 10.0, 171.3, 5000.0):
        print(f"gammaln({x}) = {special.gammaln(x)!r}")
    for a, b, x in ((0.5, 0.5, 0.3), (2, 3, 0.4), (10, 20, 0.5), (0.5, 2500, 0.001),
                    (50, 50, 0.48), (5, 0.5, 0.99), (49, 0.5, 0.2), (1e-3, 2, 0.5)):
        print(f"betainc({a}, {b}, {x}) = {special.betainc(a, b, x)!r}")
    for f, d1, d2 in ((3.2, 1, 98), (0.5, 3, 20), (12.7, 1, 8), (100, 2, 5000),
                      (1.0, 1, 1), (40, 1, 98)):
        print(f"f.cdf({f}, {d1}, {d2}) = {stats.f.cdf(f, d1, d2)!r}  "
              f"f.sf = {stats.f.sf(f, d1, d2)!r}")

    print("median([3, 1, 2]) =", np.median([3, 1, 2]),
          " median([4, 1, 3, 2]) =", np.median([4, 1, 3, 2]))
    v = np.array([0.5, 1.5, 2.0, 7.0, 11.0])
    print("percentile 2.5, 97.5, 50 of", v, np.percentile(v, [2.5, 97.5, 50]))

    a = [2, 4, 4, 4, 5, 5, 7, 9]
    b = [1, 3, 8, 12, 13]
    c = [10, 10.5, 9.75, 10.25]
    print("levene(a, b, median):", stats.levene(a, b, center="median"))
    print("levene(a, b, c, median):", stats.levene(a, b, c, center="median"))
    scores = np.genfromtxt("tests/data/resnet_same_seed.csv", delimiter=",")
    first, last = scores[:25], scores[25:]
    for col, name in ((0, "loss"), (1, "accuracy")):
        print(f"levene(same_seed rows 0-24, rows 25-49, {name}):",
              stats.levene(first[:, col], last[:, col], center="median"))
        print(f"  std ratio {name}:", np.std(first[:, col]) / np.std(last[:, col]))

    small_arm = np.array([[0.5, 0.80], [0.7, 0.79], [0.4, 0.82], [0.6, 0.78], [0.9, 0.81]])
    small_ref = np.array([[0.3, 0.9], [0.8, 0.7], [0.2, 0.95], [1.0, 0.6]])
    for seed in (0, 1):
        print(f"bootstrap_ratio(small_arm, small_ref, 2000, seed {seed}):",
              bootstrap_ratio(small_arm, small_ref, 2000, seed))
    print("bootstrap_ratio(first, last, 10000, 7):", bootstrap_ratio(first, last, 10000, 7))
    for col, name in ((0, "loss"), (1, "accuracy")):
        res = stats.bootstrap((first[:, col], last[:, col]),
                              lambda x, y, axis: np.std(x, axis=axis) / np.std(y, axis=axis),
                              n_resamples=10000, method="percentile", vectorized=True,
                              random_state=np.random.default_rng(1))
        print(f"scipy.stats.bootstrap percentile {name}:", res.confidence_interval)


if __name__ == "__main__":
    main()
