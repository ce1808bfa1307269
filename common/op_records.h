// What a traced training step leaves behind, without LibTorch: the ops with the hashes of
// their inputs and outputs (OpRecord, worker/engine/op_trace.h says how a trace is taken),
// where two traces of the same step first differ (CompareTraces), and one op's outputs as
// plain bytes (OpOutputs), so that two sides' outputs can be compared value by value
// wherever they meet: on the worker that replayed both runs, or on the coordinator when
// each run was replayed on a worker of its own and the outputs crossed the wire as blobs
// (EncodeOpOutputs).
//
// Thread safety: plain values and functions.
#ifndef REPRO_COMMON_OP_RECORDS_H_
#define REPRO_COMMON_OP_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace repro {

// The parts of a training step: forward (and loss), backward, the optimizer's update.
enum class OpPhase { kForward, kBackward, kUpdate };

// "forward", "backward", "update".
const char* PhaseName(OpPhase phase);
// The phase PhaseName names; nullopt for any other text.
std::optional<OpPhase> PhaseNamed(std::string_view name);

// An output: a tensor's hash, dtype (c10's name, "Float") and shape; for an undefined
// tensor dtype "undefined" and no hash; for a non-tensor value its hash and its kind
// ("Int", "Double", ...) as dtype.
struct TracedValue {
  std::string hash;
  std::string dtype;
  std::vector<int64_t> shape;

  bool operator==(const TracedValue& other) const {
    return hash == other.hash && dtype == other.dtype && shape == other.shape;
  }
  bool operator!=(const TracedValue& other) const { return !(*this == other); }
};

struct OpRecord {
  std::string name;     // the operator, "aten::convolution"
  std::string module;   // "stage2.block0.conv1" (op_trace.h says how it is found)
  OpPhase phase = OpPhase::kForward;
  std::vector<std::string> inputs;   // one hash per argument, in the schema's order
  std::vector<TracedValue> outputs;  // a list's tensors one by one
};

// The bytes a trace takes in memory: what keeping or sending it costs.
int64_t TraceBytes(const std::vector<OpRecord>& trace);

// Where two traces of the same step first differ.
struct OpDivergence {
  enum class Kind {
    kNone,     // the same ops with the same outputs throughout
    kOutputs,  // the same op at `index`, with different outputs
    kOps,      // different ops at `index` (or one trace ended there): the paths parted
  };
  Kind kind = Kind::kNone;
  int64_t index = -1;             // in both traces
  std::string name, name_b;       // a's op, and b's where it differs (kOps)
  std::string module;             // a's
  OpPhase phase = OpPhase::kForward;
  // kOutputs: every input hash equal, so this op is where the difference arises (the
  // kernel computes differently); otherwise it came in through an input.
  bool inputs_equal = false;
  int differing_outputs = 0;      // kOutputs: how many of its outputs differ
};

OpDivergence CompareTraces(const std::vector<OpRecord>& a, const std::vector<OpRecord>& b);

// The first batch whose hash differs between two replays of the same epoch (where one
// list ends early, its end); none when they are equal.
std::optional<int64_t> FirstDifferentBatch(const std::vector<std::string>& a,
                                           const std::vector<std::string>& b);

// One tensor's values: c10's dtype name ("Float", "Half", "BFloat16", "Long", "Bool",
// ...), its shape, and its elements' bytes in row-major order, in this machine's byte
// order (every host repro runs on is little-endian). `defined` false: an undefined tensor
// (no dtype, shape or bytes).
struct TensorValues {
  bool defined = true;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// One op's output tensors, in the trace's order (a list's tensors one by one).
struct OpOutputs {
  std::string name;      // the operator, "aten::convolution_backward"
  std::string overload;  // its schema's overload name, "" for the default one
  std::vector<TensorValues> tensors;
};

// The bytes of a dtype's element; 0 for a dtype this file does not know.
int ElementBytes(std::string_view dtype);

// A self-describing byte string ("repro-op-outputs 1" and then lengths and bytes), and
// back. Decode refuses, with INVALID_ARGUMENT naming what, anything that is not exactly
// such a string: a short or overlong field, a tensor whose bytes do not fit its dtype and
// shape, trailing bytes.
std::string EncodeOpOutputs(const OpOutputs& outputs);
absl::StatusOr<OpOutputs> DecodeOpOutputs(std::string_view bytes);

// How much two dumps of the same op's outputs differ, over their tensors.
struct OutputDifference {
  int64_t elements = 0;   // compared
  int64_t differing = 0;  // not bit-equal
  double max_abs = 0;     // largest |a - b|, in double
  // Largest distance in units in the last place of the tensors' own floating type
  // (float32 ULPs for Float, float16's for Half): how many representable values lie
  // between a and b (+0 and -0 are 1 apart). 0 for integer and boolean tensors.
  uint64_t max_ulps = 0;
};

// INVALID_ARGUMENT unless both are the same operator's, with tensors of the same dtypes
// and shapes.
absl::StatusOr<OutputDifference> CompareOpOutputs(const OpOutputs& a, const OpOutputs& b);

}  // namespace repro

#endif  // REPRO_COMMON_OP_RECORDS_H_
