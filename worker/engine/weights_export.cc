#include "worker/engine/weights_export.h"

#include <torch/nn/module.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace repro::engine {
namespace {

struct DtypePair {
  at::ScalarType type;
  const char* name;
};
constexpr DtypePair kPairs[] = {
    {at::kBool, "BOOL"}, {at::kByte, "U8"},    {at::kChar, "I8"},  {at::kShort, "I16"},
    {at::kInt, "I32"},   {at::kLong, "I64"},   {at::kHalf, "F16"}, {at::kBFloat16, "BF16"},
    {at::kFloat, "F32"}, {at::kDouble, "F64"},
};

}  // namespace

std::string SafetensorsDtype(at::ScalarType type) {
  for (const DtypePair& p : kPairs) {
    if (p.type == type) return p.name;
  }
  return "";
}

at::ScalarType ScalarTypeOfSafetensorsDtype(const std::string& dtype) {
  for (const DtypePair& p : kPairs) {
    if (dtype == p.name) return p.type;
  }
  return at::ScalarType::Undefined;
}

absl::Status ExportModelWeights(const torch::nn::Module& model, const std::string& path,
                                const SafetensorsMetadata& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> named;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    named.emplace_back(item.key(), item.value());
  }
  for (const auto& item : model.named_buffers(/*recurse=*/true)) {
    named.emplace_back(item.key(), item.value());
  }
  std::vector<at::Tensor> keep;  // owns the canonical copies while the views point at them
  std::vector<SafetensorsTensorView> views;
  keep.reserve(named.size());
  views.reserve(named.size());
  for (auto& [name, tensor] : named) {
    if (tensor.layout() != at::kStrided) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", name, " is not dense and cannot be exported"));
    }
    keep.push_back(tensor.detach().to(at::kCPU).contiguous());
    const at::Tensor& t = keep.back();
    SafetensorsTensorView view;
    view.name = name;
    view.dtype = SafetensorsDtype(t.scalar_type());
    if (view.dtype.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has dtype ",
                                                     c10::toString(t.scalar_type()),
                                                     ", which safetensors cannot hold"));
    }
    view.shape.assign(t.sizes().begin(), t.sizes().end());
    view.data = t.numel() > 0 ? t.data_ptr() : nullptr;
    view.nbytes = t.nbytes();
    views.push_back(std::move(view));
  }
  return WriteSafetensors(path, views, metadata);
}

}  // namespace repro::engine
