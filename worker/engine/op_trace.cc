#include "worker/engine/op_trace.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/ScalarType.h>
#include <c10/util/StringUtil.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "worker/engine/fingerprint.h"

namespace repro::engine {

// What the observer callbacks share. They are plain function pointers (LibTorch's
// RecordFunctionCallback), so they reach it through `active` below; the mutex orders the
// autograd engine's thread against the caller's on a GPU.
struct OpTracer::State {
  std::mutex mu;
  at::CallbackHandle handle = 0;
  std::optional<int64_t> dump_op;
  // Parameters, buffers and parameters' gradients, by tensor, to their module's path.
  std::map<const c10::TensorImpl*, std::string> owners;
  // Forward ops' autograd sequence numbers to their module, for the backward nodes.
  std::map<int64_t, std::string> node_modules;
  std::vector<std::string> node_stack;  // the module of each backward node running
  std::optional<OpPhase> phase;         // inside a PhaseScope
  std::string current_module;           // the last traced op's
  std::vector<size_t> unowned_updates;  // update ops since the last that had an owner
  int depth = 0;  // ops running, nested ones included
  std::vector<OpRecord> trace;
  std::optional<OpDump> dump;
  // Per operator ("name.overload"), which arguments are out= arguments.
  std::map<std::string, std::vector<bool>> out_arguments;
};

namespace {

std::atomic<OpTracer::State*> active{nullptr};

constexpr std::string_view kPhaseScopes[] = {"repro::forward", "repro::backward",
                                             "repro::update"};

// Ops whose outputs are uninitialized memory: their bytes mean nothing.
bool Uninitialized(std::string_view name) {
  return name == "aten::empty" || name == "aten::empty_like" || name == "aten::empty_strided" ||
         name == "aten::new_empty" || name == "aten::new_empty_strided" ||
         name == "aten::resize_";
}

std::string TensorValueHash(const at::Tensor& t) {
  if (!t.defined()) return "";
  if (t.layout() != at::kStrided) return c10::str("layout ", t.layout());
  return HashTensor(t);
}

void AddValue(const c10::IValue& v, Hasher& hasher) {
  hasher.UpdateField(v.tagKind());
  if (v.isTensor()) {
    hasher.UpdateField(TensorValueHash(v.toTensor()));
  } else if (v.isList()) {
    const c10::ArrayRef<c10::IValue> items = v.toListRef();
    hasher.UpdateU64(items.size());
    for (const c10::IValue& item : items) AddValue(item, hasher);
  } else if (v.isDouble()) {
    const double d = v.toDouble();
    uint64_t bits = 0;
    std::memcpy(&bits, &d, sizeof bits);
    hasher.UpdateU64(bits);
  } else if (v.isInt()) {
    hasher.UpdateU64(static_cast<uint64_t>(v.toInt()));
  } else if (v.isBool()) {
    hasher.UpdateU64(v.toBool() ? 1 : 0);
  } else if (v.isString()) {
    hasher.UpdateField(v.toStringRef());
  } else if (v.isDevice()) {
    hasher.UpdateField(v.toDevice().str());
  }  // None, a generator, ...: the kind alone
}

// A tensor argument's hash is its tensor's, so a dumped input can be checked against it.
std::string ValueHash(const c10::IValue& v) {
  if (v.isTensor()) return TensorValueHash(v.toTensor());
  Hasher hasher;
  AddValue(v, hasher);
  return hasher.HexDigest();
}

void AddTraced(const c10::IValue& v, std::vector<TracedValue>& out) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (!t.defined()) {
      out.push_back({"", "undefined", {}});
    } else {
      out.push_back({TensorValueHash(t), c10::toString(t.scalar_type()), t.sizes().vec()});
    }
  } else if (v.isTensorList()) {
    for (const c10::IValue& item : v.toListRef()) AddTraced(item, out);
  } else {
    out.push_back({ValueHash(v), v.tagKind(), {}});
  }
}

// A copy that later ops cannot change: tensors (also in lists) copied to the CPU.
c10::IValue CopyValue(const c10::IValue& v) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    return t.defined() ? c10::IValue(t.detach().to(at::kCPU).clone()) : v;
  }
  if (v.isTensorList()) {
    c10::List<at::Tensor> copies;
    for (const c10::IValue& item : v.toListRef()) copies.push_back(CopyValue(item).toTensor());
    return copies;
  }
  return v;
}

template <typename Values>
std::vector<c10::IValue> CopyValues(const Values& values) {
  std::vector<c10::IValue> copies;
  copies.reserve(values.size());
  for (const c10::IValue& v : values) copies.push_back(CopyValue(v));
  return copies;
}

// What the start callback hands the end callback.
struct Context : at::ObserverContext {
  enum class Kind { kOp, kNested, kNode, kPhase } kind = Kind::kOp;
  OpRecord record;                        // kOp
  std::optional<OpPhase> previous_phase;  // kPhase
};

std::unique_ptr<Context> MakeContext(Context::Kind kind) {
  auto context = std::make_unique<Context>();
  context->kind = kind;
  return context;
}

// A PhaseScope of the engine's step begins; other user scopes are not ours.
std::unique_ptr<Context> EnterPhase(OpTracer::State& s, const at::RecordFunction& fn) {
  const std::string_view name = fn.name();
  for (int p = 0; p < 3; ++p) {
    if (name != kPhaseScopes[p]) continue;
    auto context = MakeContext(Context::Kind::kPhase);
    context->previous_phase = s.phase;
    s.phase = static_cast<OpPhase>(p);
    return context;
  }
  return nullptr;
}

// A backward node begins: the ops it calls are in its forward op's module.
std::unique_ptr<Context> EnterNode(OpTracer::State& s, const at::RecordFunction& fn) {
  if (!s.phase) return nullptr;
  const auto known = s.node_modules.find(fn.seqNr());
  s.node_stack.push_back(known != s.node_modules.end() ? known->second : s.current_module);
  return MakeContext(Context::Kind::kNode);
}

const std::vector<bool>& OutArguments(OpTracer::State& s, const at::RecordFunction& fn) {
  const c10::optional<c10::OperatorName> op = fn.operator_name();
  const std::string key = op ? absl::StrCat(op->name, ".", op->overload_name) : fn.name();
  auto [it, inserted] = s.out_arguments.try_emplace(key);
  if (!inserted || !op) return it->second;
  if (const auto handle = c10::Dispatcher::singleton().findSchema(*op);
      handle && handle->hasSchema()) {
    for (const c10::Argument& argument : handle->schema().arguments()) {
      it->second.push_back(argument.is_out());
    }
  }
  return it->second;
}

// The module of the first parameter, buffer or gradient among `inputs`.
std::optional<std::string> OwnerOf(const OpTracer::State& s,
                                   c10::ArrayRef<const c10::IValue> inputs) {
  for (const c10::IValue& v : inputs) {
    if (!v.isTensor() || !v.toTensor().defined()) continue;
    const auto owner = s.owners.find(v.toTensor().unsafeGetTensorImpl());
    if (owner != s.owners.end()) return owner->second;
  }
  return std::nullopt;
}

// The module of the op about to be recorded (see op_trace.h). Optimizers update one
// parameter at a time, so the update ops that touch only the optimizer's state (Adam's
// moments) before the one that reads the parameter or its gradient are that one's.
std::string ModuleOf(OpTracer::State& s, OpPhase phase, c10::ArrayRef<const c10::IValue> inputs) {
  const std::optional<std::string> owner = OwnerOf(s, inputs);
  if (phase == OpPhase::kUpdate) {
    if (!owner) {
      s.unowned_updates.push_back(s.trace.size());
    } else {
      for (const size_t i : s.unowned_updates) s.trace[i].module = *owner;
      s.unowned_updates.clear();
    }
  }
  if (owner) return *owner;
  return s.node_stack.empty() ? s.current_module : s.node_stack.back();
}

// Only top-level ops are traced: an op called by another sees the inside of its kernel,
// such as an output buffer not written yet (aten::addmm's result, which it passes to
// aten::resolve_conj before the gemm fills it), so its hashes would change from run to
// run for no reason. The nested ones are counted, to know when the top level is back.
std::unique_ptr<Context> EnterOp(OpTracer::State& s, const at::RecordFunction& fn) {
  // Not an operator (the autograd engine's evaluate_function ranges) or not in a phase.
  if (!s.phase || !fn.operator_name()) return nullptr;
  if (s.depth++ > 0 || Uninitialized(fn.name())) return MakeContext(Context::Kind::kNested);
  auto context = MakeContext(Context::Kind::kOp);
  OpRecord& r = context->record;
  r.name = fn.name();
  r.phase = *s.phase;
  const c10::ArrayRef<const c10::IValue> inputs = fn.inputs();
  r.module = s.current_module = ModuleOf(s, r.phase, inputs);
  const std::vector<bool>& out = OutArguments(s, fn);
  r.inputs.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    r.inputs.push_back(i < out.size() && out[i] ? "" : ValueHash(inputs[i]));
  }
  if (r.phase == OpPhase::kForward && fn.seqNr() >= 0) {
    s.node_modules.try_emplace(fn.seqNr(), r.module);  // the op that made the node
  }
  if (s.dump_op == static_cast<int64_t>(s.trace.size())) {
    const c10::optional<c10::OperatorName> op = fn.operator_name();
    s.dump = OpDump{*s.dump_op, r.name, op ? op->overload_name : "", CopyValues(inputs), {}};
  }
  return context;
}

void Leave(OpTracer::State& s, const at::RecordFunction& fn, Context& context) {
  switch (context.kind) {
    case Context::Kind::kPhase:
      s.phase = context.previous_phase;
      return;
    case Context::Kind::kNode:
      s.node_stack.pop_back();
      return;
    case Context::Kind::kNested:
      --s.depth;
      return;
    case Context::Kind::kOp:
      break;
  }
  --s.depth;
  OpRecord& r = context.record;
  for (const c10::IValue& v : fn.outputs()) AddTraced(v, r.outputs);
  if (s.dump_op == static_cast<int64_t>(s.trace.size())) s.dump->outputs = CopyValues(fn.outputs());
  s.trace.push_back(std::move(r));
}

std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
  OpTracer::State* s = active.load();
  if (s == nullptr) return nullptr;
  const at::RecordFunctionGuard not_traced(false);  // the hashing calls ops of its own
  const std::lock_guard<std::mutex> lock(s->mu);
  switch (fn.scope()) {
    case at::RecordScope::USER_SCOPE:
      return EnterPhase(*s, fn);
    case at::RecordScope::BACKWARD_FUNCTION:
      return EnterNode(*s, fn);
    default:
      return EnterOp(*s, fn);
  }
}

void OnEnd(const at::RecordFunction& fn, at::ObserverContext* context) {
  OpTracer::State* s = active.load();
  if (s == nullptr || context == nullptr) return;
  const at::RecordFunctionGuard not_traced(false);
  const std::lock_guard<std::mutex> lock(s->mu);
  Leave(*s, fn, static_cast<Context&>(*context));
}

// The module path of every parameter, buffer and defined gradient of `model`.
std::map<const c10::TensorImpl*, std::string> Owners(const torch::nn::Module& model) {
  std::map<const c10::TensorImpl*, std::string> owners;
  for (const auto& item : model.named_modules()) {
    const torch::nn::Module& module = *item.value();
    for (const auto& p : module.named_parameters(/*recurse=*/false)) {
      owners.try_emplace(p.value().unsafeGetTensorImpl(), item.key());
      if (p.value().grad().defined()) {
        owners.try_emplace(p.value().grad().unsafeGetTensorImpl(), item.key());
      }
    }
    for (const auto& b : module.named_buffers(/*recurse=*/false)) {
      owners.try_emplace(b.value().unsafeGetTensorImpl(), item.key());
    }
  }
  return owners;
}

}  // namespace

PhaseScope::PhaseScope(OpPhase phase) : guard_(at::RecordScope::USER_SCOPE) {
  if (guard_.isActive()) guard_.before(kPhaseScopes[static_cast<int>(phase)].data());
}

absl::StatusOr<std::unique_ptr<OpTracer>> OpTracer::Start(const torch::nn::Module& model,
                                                          std::optional<int64_t> dump_op) {
  auto state = std::make_unique<State>();
  state->dump_op = dump_op;
  state->owners = Owners(model);
  State* expected = nullptr;
  if (!active.compare_exchange_strong(expected, state.get())) {
    return absl::FailedPreconditionError("an op tracer is on already (one per process)");
  }
  state->handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(OnStart, OnEnd)
          .needsInputs(true)
          .needsOutputs(true)
          .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION,
                   at::RecordScope::USER_SCOPE}));
  return std::unique_ptr<OpTracer>(new OpTracer(std::move(state)));
}

OpTracer::OpTracer(std::unique_ptr<State> state) : state_(std::move(state)) {}

OpTracer::~OpTracer() {
  at::removeCallback(state_->handle);
  active.store(nullptr);
}

std::vector<OpRecord> OpTracer::TakeTrace() {
  const std::lock_guard<std::mutex> lock(state_->mu);
  return std::move(state_->trace);
}

std::optional<OpDump> OpTracer::TakeDump() {
  const std::lock_guard<std::mutex> lock(state_->mu);
  std::optional<OpDump> dump = std::move(state_->dump);
  state_->dump.reset();
  return dump;
}

namespace {

TensorValues ValuesOf(const at::Tensor& tensor) {
  TensorValues v;
  v.defined = tensor.defined();
  if (!v.defined) return v;
  const at::Tensor t = tensor.to(at::kCPU).contiguous();
  v.dtype = c10::toString(t.scalar_type());
  v.shape = t.sizes().vec();
  v.bytes.assign(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return v;
}

}  // namespace

OpOutputs OutputsOf(const OpDump& dump) {
  OpOutputs out{dump.name, dump.overload, {}};
  for (const c10::IValue& v : dump.outputs) {
    if (v.isTensor()) out.tensors.push_back(ValuesOf(v.toTensor()));
    if (v.isTensorList()) {
      for (const c10::IValue& item : v.toListRef()) out.tensors.push_back(ValuesOf(item.toTensor()));
    }
  }
  return out;
}

absl::StatusOr<OutputDifference> CompareOutputs(const OpDump& a, const OpDump& b) {
  return CompareOpOutputs(OutputsOf(a), OutputsOf(b));
}

absl::StatusOr<std::vector<c10::IValue>> RerunOp(const OpDump& op) {
  try {
    const c10::optional<c10::OperatorHandle> handle =
        c10::Dispatcher::singleton().findSchema({op.name, op.overload});
    if (!handle) {
      return absl::NotFoundError(absl::StrCat("this LibTorch has no operator ", op.name,
                                              op.overload.empty() ? "" : ".", op.overload));
    }
    torch::jit::Stack stack = CopyValues(op.inputs);
    handle->callBoxed(&stack);
    return CopyValues(stack);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("rerunning ", op.name, " failed: ", e.what()));
  }
}

}  // namespace repro::engine
