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
//
// Thread safety: a pure function.
#ifndef REPRO_ANALYSIS_SAMPLE_EXPERIMENT_H_
#define REPRO_ANALYSIS_SAMPLE_EXPERIMENT_H_

#include "common/experiment_view.h"

namespace repro {

ExperimentView SampleExperiment();

}  // namespace repro

#endif  // REPRO_ANALYSIS_SAMPLE_EXPERIMENT_H_
