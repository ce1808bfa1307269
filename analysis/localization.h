// Where two runs part (reproctl localize), said in words or as JSON: the epoch replayed,
// the first batch after which the replays' weights differ, the first operation whose
// outputs differ, its module, whether its inputs were equal, and by how much.
//
// Thread safety: pure functions.
#ifndef REPRO_ANALYSIS_LOCALIZATION_H_
#define REPRO_ANALYSIS_LOCALIZATION_H_

#include <string>

#include "common/records.h"

namespace repro {

// Lines of text about runs `run_a` and `run_b` ("arm#index").
std::string LocalizationText(const std::string& run_a, const std::string& run_b,
                             const LocalizationResult& result);

// {"run_a", "run_b", "epoch", "batches", "batch" (null: none), "reproduced": {"a", "b"}
// (each true, false or null), "op": null or {"kind", "index", "name", "name_b",
// "module", "phase", "inputs_equal", "differing_outputs", "values",
// "differing_values", "max_abs", "max_ulps"}, "trace_changed_nothing", "trace_ops",
// "trace_bytes", "seconds": {"replay", "step", "traced_step", "total"}, "worker"}.
std::string LocalizationJson(const std::string& run_a, const std::string& run_b,
                             const LocalizationResult& result);

}  // namespace repro

#endif  // REPRO_ANALYSIS_LOCALIZATION_H_
