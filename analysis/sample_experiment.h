// A synthetic experiment for the report tests and the browser test of the HTML report
// (tests/html_report_test.sh): three arms that show every analysis at work, built
// without training anything.
//
//   same_seed        5 runs, every seed fixed; identical start, runs 3 and 4 part from
//                    run 0 after epochs 4 and 2 (weights only: non-determinism), run 2
//                    after epoch 3 where its batch order differs from batch 7 on.
//   different_seeds  5 runs, seeds per run: different initial models and batches.
//   threads_2        5 runs with same_seed's seeds: identical initial models, final
//                    models that differ from same_seed's from epoch 0 (conv1.weight).
// Every run has 6 epochs of 10 batches with per-batch digests, and 200 test-set
// predictions, whose true classes (test_labels) differ from run #0's predictions for
// about one in seven. Scores and curves come from a fixed formula: the same every time.
// Environments (CPU, deterministic algorithms): same_seed trained on host-a with 1
// thread (E1), different_seeds on host-b with 1 thread (E2; its run #0 has same_seed's
// seeds and trajectory), threads_2 on host-a with 2 threads (E3).
// An adaptive run count, made up rather than taken from the runs: 3 runs per arm, then 2
// more per round to at most 9, until the test accuracy's stdev ratio against
// different_seeds has an interval at most 0.1 wide (level 98.75 %, 4 looks possible).
// Look 1 at 3 runs: same_seed's interval [0.05, 0.24] too wide, threads_2 (no spread,
// ratio 0) settled; 2 more runs to same_seed and different_seeds. Look 2 at 5 runs:
// same_seed [0.05, 0.14] settled too: reached.
//
// Thread safety: a pure function.
#ifndef REPRO_ANALYSIS_SAMPLE_EXPERIMENT_H_
#define REPRO_ANALYSIS_SAMPLE_EXPERIMENT_H_

#include "common/experiment_view.h"

namespace repro {

ExperimentView SampleExperiment();

}  // namespace repro

#endif  // REPRO_ANALYSIS_SAMPLE_EXPERIMENT_H_
