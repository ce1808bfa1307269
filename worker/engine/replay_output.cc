#include "worker/engine/replay_output.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "worker/engine/json_text.h"
#include "worker/engine/safetensors.h"
#include "worker/engine/weights_export.h"

namespace repro::engine {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

std::string JsonStrings(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  quoted.reserve(items.size());
  for (const std::string& item : items) quoted.push_back(JsonQuote(item));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

std::string OutputJson(const TracedValue& v) {
  return absl::StrCat("{\"hash\":", JsonQuote(v.hash), ",\"dtype\":", JsonQuote(v.dtype),
                      ",\"shape\":", ShapeText(v.shape), "}");
}

std::string OpJson(int64_t index, const OpRecord& r) {
  std::vector<std::string> outputs;
  for (const TracedValue& v : r.outputs) outputs.push_back(OutputJson(v));
  return absl::StrCat("{\"index\":", index, ",\"phase\":", JsonQuote(PhaseName(r.phase)),
                      ",\"name\":", JsonQuote(r.name), ",\"module\":", JsonQuote(r.module),
                      ",\"inputs\":", JsonStrings(r.inputs), ",\"outputs\":[",
                      absl::StrJoin(outputs, ","), "]}");
}

std::string TracedBatchText(const ReplayRequest& request, const ReplayResult& result) {
  const bool same = TraceChangedNothing(result, *request.trace_batch);
  std::string text = absl::StrFormat(
      "traced batch %d: %d ops, %d bytes, step %.4f s traced, %.4f s untraced; ends with %s\n",
      *request.trace_batch, result.trace.size(), result.trace_bytes,
      result.traced_batch_seconds, result.batch_seconds,
      same ? "the untraced weights" : "other weights " + result.traced_batch_end_hash);
  if (result.dump) {
    absl::StrAppendFormat(&text, "dumped op %d %s (%d inputs, %d outputs)\n", result.dump->index,
                          result.dump->name, result.dump->inputs.size(),
                          result.dump->outputs.size());
  }
  return text;
}

// The dump's defined tensors, as `prefix`.<i> (a list's items as `prefix`.<i>.<k>).
void AddDumpTensors(const std::vector<c10::IValue>& values, const std::string& prefix,
                    std::vector<std::pair<std::string, at::Tensor>>& out) {
  for (size_t i = 0; i < values.size(); ++i) {
    const std::string name = absl::StrCat(prefix, ".", i);
    if (values[i].isTensor() && values[i].toTensor().defined()) {
      out.emplace_back(name, values[i].toTensor().contiguous());
    } else if (values[i].isTensorList()) {
      AddDumpTensors(values[i].toListRef().vec(), name, out);
    }
  }
}

}  // namespace

std::string TraceText(const std::vector<OpRecord>& trace) {
  std::string text;
  for (size_t i = 0; i < trace.size(); ++i) {
    const OpRecord& r = trace[i];
    std::vector<std::string> inputs, outputs;
    for (const std::string& h : r.inputs) inputs.push_back(h.empty() ? "-" : h);
    for (const TracedValue& v : r.outputs) {
      outputs.push_back(absl::StrCat(v.hash, ":", v.dtype, ShapeText(v.shape)));
    }
    absl::StrAppend(&text, "op ", i, " ", PhaseName(r.phase), " ", r.name, " ",
                    r.module.empty() ? "-" : r.module, " in ", absl::StrJoin(inputs, ","),
                    " out ", absl::StrJoin(outputs, ","), "\n");
  }
  return text;
}

std::string ReplayText(const ReplayRequest& request, const ReplayResult& result,
                       bool with_trace) {
  std::string text = absl::StrCat("start        ", result.start_hash, "\n");
  for (size_t b = 0; b < result.batch_hashes.size(); ++b) {
    absl::StrAppendFormat(&text, "batch %-6d %s\n", b, result.batch_hashes[b]);
  }
  if (request.trace_batch) absl::StrAppend(&text, TracedBatchText(request, result));
  absl::StrAppendFormat(&text, "replay       epoch %d, %.3f s\n", request.epoch, result.seconds);
  if (with_trace) absl::StrAppend(&text, TraceText(result.trace));
  return text;
}

std::string TraceJson(const std::vector<OpRecord>& trace) {
  std::vector<std::string> ops;
  ops.reserve(trace.size());
  for (size_t i = 0; i < trace.size(); ++i) {
    ops.push_back(OpJson(static_cast<int64_t>(i), trace[i]));
  }
  return absl::StrCat("[", absl::StrJoin(ops, ","), "]");
}

std::string ReplayJson(const ReplayRequest& request, const ReplayResult& result,
                       bool with_trace) {
  std::string json = absl::StrCat(
      "{\"epoch\":", request.epoch, ",\"start_hash\":", JsonQuote(result.start_hash),
      ",\"batch_hashes\":", JsonStrings(result.batch_hashes),
      ",\"seconds\":", JsonNumber(result.seconds));
  if (request.trace_batch) {
    absl::StrAppend(
        &json, ",\"trace_batch\":", *request.trace_batch, ",\"ops\":", result.trace.size(),
        ",\"trace_bytes\":", result.trace_bytes,
        ",\"batch_seconds\":", JsonNumber(result.batch_seconds),
        ",\"traced_batch_seconds\":", JsonNumber(result.traced_batch_seconds),
        ",\"traced_batch_end_hash\":", JsonQuote(result.traced_batch_end_hash),
        ",\"trace_changed_nothing\":",
        TraceChangedNothing(result, *request.trace_batch) ? "true" : "false");
  }
  if (with_trace) absl::StrAppend(&json, ",\"trace\":", TraceJson(result.trace));
  if (result.dump) {
    absl::StrAppend(&json, ",\"dump\":{\"index\":", result.dump->index,
                    ",\"name\":", JsonQuote(result.dump->name), "}");
  }
  return json + "}";
}

absl::Status WriteOpDump(const OpDump& dump, const std::string& path) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  AddDumpTensors(dump.inputs, "input", tensors);
  AddDumpTensors(dump.outputs, "output", tensors);
  std::vector<SafetensorsTensorView> views;
  for (const auto& [name, tensor] : tensors) {
    views.push_back({name, SafetensorsDtype(tensor.scalar_type()), tensor.sizes().vec(),
                     tensor.data_ptr(), tensor.nbytes()});
  }
  return WriteSafetensors(path, views,
                          {{"repro.op", dump.name},
                           {"repro.overload", dump.overload},
                           {"repro.op_index", absl::StrCat(dump.index)}});
}

}  // namespace repro::engine
