// repro-train's output for --replay-epoch (replay.h): the batch hashes, the traced batch's
// summary and its trace, as text or as JSON (written by hand, as the rest of repro-train's
// --json), and a dumped op's tensors as a safetensors file.
//
// Text, one line each: "start <hash>", "batch <b> <hash>", "traced batch <b>: <n> ops,
// <bytes> bytes, step <s> s traced, <s> s untraced; ends with the untraced weights" (or
// "ends with other weights <hash>"), "replay <s> s"; a trace as one line per op:
// "op <i> <phase> <name> <module or -> in <hash>,... out <hash>:<dtype>[<shape>],...",
// where an input that is not hashed (an out= argument) is "-".
//
// Thread safety: free functions with no shared state.
#ifndef REPRO_WORKER_ENGINE_REPLAY_OUTPUT_H_
#define REPRO_WORKER_ENGINE_REPLAY_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "worker/engine/op_trace.h"
#include "worker/engine/replay.h"

namespace repro::engine {

// The replay's lines; the trace's too when `with_trace`.
std::string ReplayText(const ReplayRequest& request, const ReplayResult& result,
                       bool with_trace);
std::string TraceText(const std::vector<OpRecord>& trace);

// {"epoch", "start_hash", "batch_hashes", "seconds", and with a traced batch
// "trace_batch", "ops", "trace_bytes", "batch_seconds", "traced_batch_seconds",
// "traced_batch_end_hash", "trace_changed_nothing", "trace" (when `with_trace`) and
// "dump" (the dumped op's index, name and hashes)}.
std::string ReplayJson(const ReplayRequest& request, const ReplayResult& result,
                       bool with_trace);
// [{"index", "phase", "name", "module", "inputs": [hash], "outputs": [{"hash",
// "dtype", "shape"}]}].
std::string TraceJson(const std::vector<OpRecord>& trace);

// The dump's defined tensors as "input.<i>" and "output.<i>" (a list's items as
// "input.<i>.<k>"), with the op's name, overload and index in the metadata.
// WriteSafetensors's errors (an I/O error, a dtype safetensors has none for).
absl::Status WriteOpDump(const OpDump& dump, const std::string& path);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_REPLAY_OUTPUT_H_
