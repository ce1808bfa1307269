#include "worker/engine/torchscript_model.h"

#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <system_error>
#include <tuple>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/hash.h"
#include "worker/engine/engine.h"

namespace repro::engine {
namespace {

constexpr size_t kMaxEnvironmentText = 1000;  // under the coordinator's 1024 per value

// The module's type name without its namespaces: Python's original_name ("Conv2d" for
// "__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d").
std::string TypeName(const torch::jit::Module& module) {
  const auto& name = module.type()->name();
  return name ? name->name() : "";
}

// The tensor attribute `name` of `module`, or an undefined tensor.
at::Tensor TensorAttr(const torch::jit::Module& module, const std::string& name) {
  if (!module.hasattr(name)) return {};
  const c10::IValue value = module.attr(name);
  return value.isTensor() ? value.toTensor() : at::Tensor();
}

// Registers `from`'s own parameters and buffers in `to`, then its submodules' as
// submodules of the same names; a tensor seen before is skipped (Python lists it once).
void Mirror(const torch::jit::Module& from, torch::nn::Module& to,
            std::unordered_set<const c10::TensorImpl*>& seen) {
  for (const auto& p : from.named_parameters(/*recurse=*/false)) {
    if (!seen.insert(p.value.unsafeGetTensorImpl()).second) continue;
    to.register_parameter(p.name, p.value, p.value.requires_grad());
  }
  for (const auto& b : from.named_buffers(/*recurse=*/false)) {
    if (!seen.insert(b.value.unsafeGetTensorImpl()).second) continue;
    to.register_buffer(b.name, b.value);
  }
  for (const auto& child : from.named_children()) {
    auto sub = std::make_shared<torch::nn::Module>(TypeName(child.value));
    Mirror(child.value, *sub, seen);
    to.register_module(child.name, sub);
  }
}

bool IsConv(const std::string& type) {
  return type == "Conv1d" || type == "Conv2d" || type == "Conv3d";
}

bool IsNorm(const std::string& type) {
  return absl::StartsWith(type, "BatchNorm") || type == "LayerNorm" || type == "GroupNorm";
}

// One line of what LibTorch says: the interpreter's "RuntimeError: ..." line when there
// is one (its traceback is about the model's source), else the first line.
std::string Brief(const std::exception& e) {
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  const std::string text = error != nullptr ? error->what_without_backtrace() : e.what();
  std::string first, runtime;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    line = absl::StripAsciiWhitespace(line);
    if (first.empty()) first = std::string(line);
    if (absl::ConsumePrefix(&line, "RuntimeError: ")) runtime = std::string(line);
  }
  std::string out = runtime.empty() ? first : runtime;
  if (out.size() > 300) out = out.substr(0, 300) + "...";
  return out;
}

std::string ShapeText(at::IntArrayRef sizes) {
  return absl::StrCat("[", absl::StrJoin(sizes, ", "), "]");
}

// `names`, comma-separated, cut near kMaxEnvironmentText characters.
std::string NameList(const std::vector<std::string>& names) {
  if (names.empty()) return "none";
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (out.size() + names[i].size() > kMaxEnvironmentText - 40) {
      absl::StrAppend(&out, " ... and ", names.size() - i, " more");
      break;
    }
    absl::StrAppend(&out, i ? ", " : "", names[i]);
  }
  return out;
}

// The plan's own error (engine.h): every run of the plan would meet it alike.
absl::Status Invalid(const std::string& file, const std::string& what) {
  return PlanError(absl::InvalidArgumentError(absl::StrCat("model file ", file, " ", what)));
}

// forward, in eval mode and without gradients, on 2 zero images of the data's shape.
absl::Status Probe(TorchScriptClassifierImpl& model, const std::string& file,
                   const InputShape& shape) {
  torch::NoGradGuard no_grad;
  model.eval();
  const std::vector<int64_t> sizes = {2, shape.channels, shape.height, shape.width};
  const std::string expected = ShapeText({2, shape.classes});
  const std::string on = absl::StrCat("on 2 zero images ", ShapeText(sizes));
  c10::IValue out;
  try {
    torch::jit::GraphOptimizerEnabledGuard eager(false);
    out = model.jit_module().forward({at::zeros(sizes)});
  } catch (const std::exception& e) {
    return Invalid(file, absl::StrCat("does not fit the data: forward ", on, " fails: ", Brief(e)));
  }
  if (!out.isTensor()) {
    return Invalid(file, absl::StrCat("does not fit the data: forward ", on, " returns a ",
                                      out.tagKind(), ", not a tensor of logits ", expected));
  }
  const at::Tensor logits = out.toTensor();
  if (!logits.sizes().equals({2, shape.classes})) {
    return Invalid(file, absl::StrCat("does not fit the data: forward ", on, " gives ",
                                      ShapeText(logits.sizes()), ", not ", expected,
                                      " (one logit per class)"));
  }
  if (!logits.is_floating_point()) {
    return Invalid(file, absl::StrCat("does not fit the data: forward ", on, " gives ",
                                      c10::toString(logits.scalar_type()),
                                      " logits, not floating point"));
  }
  return absl::OkStatus();
}

}  // namespace

TorchScriptClassifierImpl::TorchScriptClassifierImpl(torch::jit::Module module)
    : module_(std::move(module)) {
  std::unordered_set<const c10::TensorImpl*> seen;
  Mirror(module_, *this, seen);
}

at::Tensor TorchScriptClassifierImpl::forward(at::Tensor x) {
  torch::jit::GraphOptimizerEnabledGuard eager(false);
  return module_.forward({std::move(x)}).toTensor();
}

void TorchScriptClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  // jit::Module::train asserts that every module has the attribute; a module scripted
  // from Python has, one built in C++ need not.
  for (const torch::jit::Module& m : module_.modules()) {
    if (auto slot = m.type()->findAttributeSlot("training")) m._ivalue()->setSlot(*slot, on);
  }
}

std::vector<at::Tensor> TorchScriptClassifierImpl::RegularizedWeights() const {
  std::vector<at::Tensor> weights;
  for (const torch::jit::Module& m : module_.modules()) {
    if (!IsConv(TypeName(m))) continue;
    if (at::Tensor w = TensorAttr(m, "weight"); w.defined()) weights.push_back(w);
  }
  return weights;
}

std::vector<std::string> TorchScriptClassifierImpl::Reseed() {
  torch::NoGradGuard no_grad;
  std::unordered_set<const c10::TensorImpl*> drawn;
  // Applies `fill` to the tensor attribute `name` of `m` when it has one.
  auto draw = [&](const torch::jit::Module& m, const char* name, auto fill) {
    at::Tensor t = TensorAttr(m, name);
    if (!t.defined()) return t;
    fill(t);
    drawn.insert(t.unsafeGetTensorImpl());
    return t;
  };
  for (const torch::jit::Module& m : module_.modules()) {
    const std::string type = TypeName(m);
    if (IsConv(type) || type == "Linear") {
      const at::Tensor w = draw(m, "weight", [](at::Tensor& t) {
        torch::nn::init::kaiming_uniform_(t, std::sqrt(5.0));
      });
      if (!w.defined()) continue;
      const int64_t fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(w));
      if (fan_in <= 0) continue;
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
      draw(m, "bias", [&](at::Tensor& t) { torch::nn::init::uniform_(t, -bound, bound); });
    } else if (IsNorm(type)) {
      draw(m, "weight", [](at::Tensor& t) { t.fill_(1); });
      draw(m, "bias", [](at::Tensor& t) { t.zero_(); });
      draw(m, "running_mean", [](at::Tensor& t) { t.zero_(); });
      draw(m, "running_var", [](at::Tensor& t) { t.fill_(1); });
      draw(m, "num_batches_tracked", [](at::Tensor& t) { t.zero_(); });
    } else if (type == "Embedding") {
      const at::Tensor w = draw(m, "weight", [](at::Tensor& t) { torch::nn::init::normal_(t); });
      if (w.defined() && m.hasattr("padding_idx") && m.attr("padding_idx").isInt()) {
        const int64_t row = m.attr("padding_idx").toInt();
        if (row >= 0 && row < w.size(0)) w[row].fill_(0);
      }
    }
  }
  std::vector<std::string> kept;
  for (const auto& p : named_parameters(/*recurse=*/true)) {
    if (drawn.count(p.value().unsafeGetTensorImpl()) == 0) kept.push_back(p.key());
  }
  for (const auto& b : named_buffers(/*recurse=*/true)) {
    if (drawn.count(b.value().unsafeGetTensorImpl()) == 0) kept.push_back(b.key());
  }
  return kept;
}

absl::Status CheckTorchScriptOptions(const std::string& file, const std::string& init) {
  if (file.empty()) {
    return absl::InvalidArgumentError(
        "model kind torchscript needs a model file (the run's input of role \"model\"; "
        "repro-train: --model-file)");
  }
  if (init != "file" && init != "seeded") {
    return absl::InvalidArgumentError(
        absl::StrCat("model init must be file or seeded, got \"", init, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ClassifierImpl>> LoadTorchScriptModel(const std::string& file,
                                                                     const std::string& sha256,
                                                                     const std::string& init,
                                                                     const InputShape& shape) {
  if (absl::Status s = CheckTorchScriptOptions(file, init); !s.ok()) return s;
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(file, error);
  if (!std::filesystem::exists(status)) return Invalid(file, "does not exist");
  if (!std::filesystem::is_regular_file(status)) return Invalid(file, "is not a regular file");
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Invalid(file, "cannot be read");

  std::map<std::string, std::string> environment;
  environment["model_init"] = init;
  environment["model_file"] = file.size() <= kMaxEnvironmentText
                                  ? file
                                  : "..." + file.substr(file.size() - kMaxEnvironmentText);
  environment["model_file_hash"] = HashBytes(bytes.data(), bytes.size());
  // The plan's SHA-256 of the file, which the worker checked the file against before
  // the run (worker/inputs.h); none for repro-train's --model-file.
  if (!sha256.empty()) environment["model_file_sha256"] = sha256;

  torch::jit::Module module;
  try {
    std::istringstream stream(std::move(bytes));
    module = torch::jit::load(stream, at::Device(at::kCPU));
  } catch (const std::exception& e) {
    return Invalid(file, absl::StrCat("is not a TorchScript module (torch.jit.script(model)",
                                      ".save(path)): ", Brief(e)));
  }
  if (!module.find_method("forward")) {
    return Invalid(file, "has no forward method (a scripted module's forward(self, x) that "
                         "returns the logits)");
  }
  environment["model_type"] = TypeName(module);
  auto model = std::make_shared<TorchScriptClassifierImpl>(std::move(module));
  if (init == "seeded") environment["model_init_kept"] = NameList(model->Reseed());
  model->SetModelEnvironment(std::move(environment));
  if (absl::Status s = Probe(*model, file, shape); !s.ok()) return s;
  model->train(true);
  return std::shared_ptr<ClassifierImpl>(std::move(model));
}

}  // namespace repro::engine
