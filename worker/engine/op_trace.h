// Op traces (the records themselves and their comparison: common/op_records.h): every
// operation of one training step (forward, backward and the optimizer's
// update) with the hashes of its inputs and outputs, so that two runs that part at a
// batch can be compared op by op and the first op whose outputs differ named.
//
// How. LibTorch's RecordFunction observers (at::addThreadLocalCallback), which the
// dispatcher calls around every operator call with its arguments (needsInputs) and, in
// LibTorch 1.13, its return values (needsOutputs: Dispatcher::callWithDispatchKeySlowPath
// captures them). That one mechanism sees the forward, the ops the autograd engine's
// nodes call in the backward and the optimizer's in-place updates, for the built-in
// models and TorchScript ones alike (the interpreter calls operators through the
// dispatcher too). Module hooks plus autograd hooks would see modules' outputs and
// gradients but no op inside them, and LibTorch's C++ modules have no forward hooks.
//
// Which ops. The top-level operator calls inside the step's phases (PhaseScope, set by
// the engine's step): those the model's code, the loss, the autograd engine's nodes and
// the optimizer make, in the order they run. Ops that those ops call are not traced:
// they see the inside of a kernel, such as an output buffer before it is written
// (aten::addmm hands its result to aten::resolve_conj before the gemm fills it), so their
// hashes would differ from run to run for no reason; the top-level ops' inputs and
// outputs are the values the step passes around. So the first differing op is named at
// that level (aten::convolution_backward, not the MKL-DNN kernel it chose); RerunOp
// reproduces it at the same level. Not traced either: ops outside the phases (zero_grad,
// the batch's metrics), aten::empty and its kin, whose outputs are uninitialized, and
// ranges that are no operator (the autograd engine's "evaluate_function" around a node).
//
// Hashes. A tensor's is HashTensor's (fingerprint.h: dtype, shape and the bytes of a
// contiguous CPU copy); no tensor is kept. A non-tensor argument (a scalar, a list of
// sizes) is hashed by its value; a generator by its kind only (not its state). An out=
// argument's value before the op is no input and is not hashed (""). A tensor with no
// plain bytes (an MKL-DNN tensor) is hashed by its layout only.
//
// Module paths. C++ modules have no forward hooks, so an op's module is found from the
// tensors it touches: an op that reads a parameter, a buffer or a parameter's gradient is
// in that tensor's module ("stage2.block0.conv1"); an op inside a backward node is in the
// module of the forward op that made the node (by the node's sequence number); an update
// of the optimizer's own state (Adam's moments) is in the module of the next update op
// that reads a parameter or gradient, as optimizers update one parameter at a time; any
// other op (an activation, pooling, a residual add, the loss) takes the module of the op
// traced before it, i.e. it reads "at or right after that module". TorchScript models are
// covered the same way, as their parameters are the engine's tensors
// (torchscript_model.h); their method scopes are not used. The model itself is "", as
// is the module of an op before any op had one.
//
// Magnitude. A trace holds hashes only, so the size of a difference comes from a second
// replay of the batch on each side that dumps the first differing op whole (OpTracer's
// dump_op, by its index in the trace: its inputs before it ran and its outputs, copied
// to the CPU), compared by CompareOutputs (max absolute difference, max ULPs). RerunOp
// runs a dumped op again alone, under this process's settings, so a test or a person can
// check that it is the source: the same inputs give different outputs by the setting
// alone.
//
// Thread safety: one OpTracer per process at a time (Start refuses a second). It traces
// the thread that started it and the threads LibTorch hands that thread's state to (the
// autograd engine's), and assumes the step's ops run one at a time, as they do on the
// CPU (the backward runs on the calling thread) and on one GPU (on its device thread
// while the caller waits).
#ifndef REPRO_WORKER_ENGINE_OP_TRACE_H_
#define REPRO_WORKER_ENGINE_OP_TRACE_H_

#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/op_records.h"

namespace torch::nn {
class Module;
}  // namespace torch::nn

namespace repro::engine {

// Marks the ops run while it lives as `phase`'s for a tracer; without one it costs a
// check of LibTorch's callback lists.
class PhaseScope {
 public:
  explicit PhaseScope(OpPhase phase);

 private:
  at::RecordFunction guard_;
};

// One op whole, to measure a difference and to rerun the op.
struct OpDump {
  int64_t index = 0;     // in the trace
  std::string name;      // "aten::convolution_backward"
  std::string overload;  // the schema's overload name, "" for the default one
  std::vector<c10::IValue> inputs;   // as the op received them; tensors as CPU copies
  std::vector<c10::IValue> outputs;  // tensors as CPU copies
};

// Traces the ops of the phases (PhaseScope) run while it lives.
class OpTracer {
 public:
  // `model` names the modules (see above); with `dump_op`, the op at that index of the
  // trace is also dumped whole.
  // FAILED_PRECONDITION when another tracer is on.
  static absl::StatusOr<std::unique_ptr<OpTracer>> Start(const torch::nn::Module& model,
                                                         std::optional<int64_t> dump_op = {});
  ~OpTracer();  // stops tracing
  OpTracer(const OpTracer&) = delete;
  OpTracer& operator=(const OpTracer&) = delete;

  // The records so far, in order; the dump, once its op has run.
  std::vector<OpRecord> TakeTrace();
  std::optional<OpDump> TakeDump();

  struct State;  // what the observer callbacks share (op_trace.cc)

 private:
  explicit OpTracer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// The dump's output tensors as plain bytes (common/op_records.h), to compare or to send.
OpOutputs OutputsOf(const OpDump& dump);

// CompareOpOutputs of both dumps' outputs: INVALID_ARGUMENT unless both dump the same
// operator with outputs of the same dtypes and shapes.
absl::StatusOr<OutputDifference> CompareOutputs(const OpDump& a, const OpDump& b);

// Runs the dumped op again on copies of its inputs (the dump is not changed); its
// outputs, tensors on the CPU. NOT_FOUND for an operator this LibTorch does not have,
// INTERNAL when it fails.
absl::StatusOr<std::vector<c10::IValue>> RerunOp(const OpDump& op);

}  // namespace repro::engine

#endif  // REPRO_WORKER_ENGINE_OP_TRACE_H_
