#!/usr/bin/env python3
"""Time per step, images/s, deterministic-mode overhead and the study's projected cost,
from a finished gpu-study.sh experiment's SQLite file.

    gpu_study_timing.py DB --train N --batch B --wall SECONDS --slots S [--gpu-samples CSV]

Per arm, from the epochs' recorded seconds (training, validation and fingerprints of
one epoch of one run, as the engine times it; with S slots packed, each run shares the
GPU with up to S-1 others): the mean epoch time, the time per training step it implies
(epoch seconds / steps per epoch, an upper bound: validation is inside), and one run's
images/s. Over the whole experiment: aggregate images/s (every image of every epoch of
every run over the worker's wall time, packing included). The deterministic overhead is
the mean epoch time of the *_det arms over that of the others. The study's protocol (2
arms x 50 runs x 200 epochs x 50,000 images) is projected at the aggregate rate of the
non-deterministic arms (the study's condition) measured here. Standard library only.
"""
import argparse
import math
import os
import sqlite3
import statistics

STUDY_IMAGES = 2 * 50 * 200 * 50000


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("db")
    p.add_argument("--train", type=int, required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--wall", type=float, required=True)
    p.add_argument("--slots", type=int, required=True)
    p.add_argument("--gpu-samples")
    a = p.parse_args()
    db = sqlite3.connect(a.db)
    rows = db.execute(
        "SELECT r.arm, e.seconds FROM runs r JOIN attempts t ON t.id = r.result_attempt "
        "JOIN epochs e ON e.attempt_id = t.id ORDER BY r.arm_order, r.idx, e.epoch").fetchall()
    if not rows:
        raise SystemExit("gpu_study_timing.py: no finished epochs in " + a.db)
    steps = math.ceil(a.train / a.batch)
    by_arm = {}
    for arm, seconds in rows:
        by_arm.setdefault(arm, []).append(seconds)
    print("time per epoch of one run (%d slots packed), per arm:" % a.slots)
    for arm, times in by_arm.items():
        mean = statistics.mean(times)
        print("  %-20s %3d epochs: %7.2f s per epoch (stdev %.2f), %6.2f ms per step, %7.0f images/s per run"
              % (arm, len(times), mean, statistics.pstdev(times), 1000 * mean / steps, a.train / mean))
    det = [t for arm, ts in by_arm.items() if arm.endswith("_det") for t in ts]
    nondet = [t for arm, ts in by_arm.items() if not arm.endswith("_det") for t in ts]
    if det and nondet:
        print("deterministic-mode overhead: %.3fx (mean epoch time, deterministic over not)"
              % (statistics.mean(det) / statistics.mean(nondet)))
    epochs_done = len(rows)
    aggregate = epochs_done * a.train / a.wall
    print("aggregate: %d run-epochs x %d images in %.0f s = %.0f images/s over %d slots"
          % (epochs_done, a.train, a.wall, aggregate, a.slots))
    if nondet and det:
        # The non-deterministic arms' share of the wall time, by their share of epoch time.
        share = sum(nondet) / (sum(nondet) + sum(det))
        rate = len(nondet) * a.train / (a.wall * share)
    else:
        rate = aggregate
    print("the study's protocol (2 arms x 50 runs x 200 epochs x 50,000 images) at %.0f images/s: "
          "%.1f hours on this device" % (rate, STUDY_IMAGES / rate / 3600))
    if a.gpu_samples and os.path.exists(a.gpu_samples):
        try:
            with open(a.gpu_samples) as f:
                samples = [line.split(",") for line in f if line.strip()]
            used = [float(s[0]) for s in samples]
            busy = [float(s[1]) for s in samples]
            if used:
                print("GPU while training: peak %.0f MiB used, mean utilization %.0f %% (%d samples)"
                      % (max(used), statistics.mean(busy), len(used)))
        except (OSError, ValueError, IndexError) as e:
            print("GPU samples unreadable: %s" % e)


if __name__ == "__main__":
    main()
