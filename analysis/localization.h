// Where two runs part (reproctl localize), said in words or as JSON: the epoch replayed,
// the first batch after which the replays' weights differ, the first operation whose
// outputs differ, its module, whether its inputs were equal, and by how much.
//
// Thread safety: pure functions.
#ifndef REPRO_ANALYSIS_LOCALIZATION_H_
#define REPRO_ANALYSIS_LOCALIZATION_H_

#include <string>

#include "analysis/json_writer.h"
#include "common/experiment_view.h"

namespace repro {

// Lines of text: the answer when there is one, else what it waits for or why it failed.
std::string LocalizationText(const LocalizationState& localization);

// {"run_a", "run_b", "state", "error", "epoch", "worker", "worker_b" (run b's worker when
// each run replays on a worker of its own, else null), "stage" (then the stage: epoch,
// trace, dump or done; else null), "answer": null or {"batches",
// "batch" (null: none), "reproduced": {"a", "b"} (each true, false or null), "op": null
// or {"kind", "index", "name", "name_b", "module", "phase", "inputs_equal",
// "differing_outputs", "values", "differing_values", "max_abs", "max_ulps"},
// "trace_changed_nothing", "trace_ops", "trace_bytes", "seconds": {"replay", "step",
// "traced_step", "total"}}}: as reproctl localize --format json prints it and as the
// JSON report's "where_runs_part" lists it.
void WriteLocalization(JsonWriter& w, const LocalizationState& localization);
std::string LocalizationJson(const LocalizationState& localization);

}  // namespace repro

#endif  // REPRO_ANALYSIS_LOCALIZATION_H_
