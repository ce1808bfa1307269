#include "common/placement.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace repro {
namespace {

bool Matches(const std::string& wanted, const std::string& value) {
  if (!wanted.empty() && wanted.back() == '*') {
    return absl::StartsWith(value, absl::string_view(wanted).substr(0, wanted.size() - 1));
  }
  return wanted == value;
}

std::string Lookup(const std::map<std::string, std::string>& m, const std::string& key) {
  const auto it = m.find(key);
  return it == m.end() ? std::string() : it->second;
}

}  // namespace

std::string PlacementMismatch(const ArmSpec& arm, const WorkerRecord& worker) {
  if (arm.determinism.device == "cuda" && worker.device != "cuda") return "it has no CUDA";
  const PlacementSpec& p = arm.placement;
  for (const auto& [key, wanted] : p.capabilities) {
    const auto it = worker.capabilities.find(key);
    if (it == worker.capabilities.end()) return absl::StrCat("it did not register a ", key);
    if (!Matches(wanted, it->second)) {
      return absl::StrCat("its ", key, " is \"", it->second, "\", not \"", wanted, "\"");
    }
  }
  if (p.min_gpu_memory_mb > 0) {
    int64_t mb = 0;
    if (!absl::SimpleAtoi(Lookup(worker.capabilities, "gpu_memory_mb"), &mb)) {
      return "it registered no GPU memory";
    }
    if (mb < p.min_gpu_memory_mb) {
      return absl::StrCat("its GPU has ", mb, " MB, the arm wants at least ", p.min_gpu_memory_mb);
    }
  }
  for (const auto& [key, wanted] : p.labels) {
    const auto it = worker.labels.find(key);
    if (it == worker.labels.end()) return absl::StrCat("it has no label ", key);
    if (!Matches(wanted, it->second)) {
      return absl::StrCat("its label ", key, " is \"", it->second, "\", not \"", wanted, "\"");
    }
  }
  return "";
}

std::string DescribePlacement(const ArmSpec& arm) {
  std::vector<std::string> parts;
  if (arm.determinism.device == "cuda") parts.push_back("device cuda");
  const PlacementSpec& p = arm.placement;
  for (const auto& [key, wanted] : p.capabilities) parts.push_back(absl::StrCat(key, " ", wanted));
  if (p.min_gpu_memory_mb > 0) {
    parts.push_back(absl::StrCat("GPU memory >= ", p.min_gpu_memory_mb, " MB"));
  }
  for (const auto& [key, wanted] : p.labels) parts.push_back(absl::StrCat("label ", key, "=", wanted));
  if (p.spread != Spread::kNone) parts.push_back(absl::StrCat("spread over ", SpreadName(p.spread)));
  return absl::StrJoin(parts, ", ");
}

std::string WorkerRefusals::Joined() const {
  return absl::StrCat(absl::StrJoin(first, "; "),
                      here > static_cast<int>(first.size()) ? "; ..." : "");
}

WorkerRefusals RefusalsOf(const std::vector<WorkerRecord>& workers,
                          const std::function<std::string(const WorkerRecord&)>& refuses) {
  WorkerRefusals out;
  for (const WorkerRecord& w : workers) {
    if (w.gone()) continue;
    ++out.here;
    const std::string why = refuses(w);
    if (why.empty()) {
      out.one_may = true;
      return out;
    }
    if (out.first.size() < 3) out.first.push_back(absl::StrCat(w.name, ": ", why));
  }
  return out;
}

std::string WhyNoWorker(const ArmSpec& arm, const std::vector<WorkerRecord>& workers) {
  const WorkerRefusals r =
      RefusalsOf(workers, [&arm](const WorkerRecord& w) { return PlacementMismatch(arm, w); });
  if (r.one_may) return "";
  if (r.here == 0) return "no worker is here";
  return absl::StrCat("needs ", DescribePlacement(arm), "; none of ", r.here,
                      r.here == 1 ? " worker" : " workers", " can (", r.Joined(), ")");
}

std::string SpreadKey(const ArmSpec& arm, const WorkerRecord& worker) {
  switch (arm.placement.spread) {
    case Spread::kNone: return "";
    case Spread::kHosts: return worker.host;
    case Spread::kGpus: {
      const std::string uuid = Lookup(worker.capabilities, "gpu_uuid");
      return absl::StrCat(worker.host, "/", uuid.empty() ? worker.name : uuid);
    }
  }
  return "";
}

namespace {

// The machine fields a run's environment records: the CUDA ones only for a run on CUDA.
std::vector<std::string> MachineFields(const std::map<std::string, std::string>& environment) {
  std::vector<std::string> fields = {"cpu_model", "torch", "compiler"};
  const auto device = environment.find("device");
  if (device != environment.end() && device->second == "cuda") {
    fields.insert(fields.end(), {"gpu_name", "driver", "cuda", "cudnn"});
  }
  return fields;
}

}  // namespace

std::vector<std::string> MachineDifferences(const std::map<std::string, std::string>& a,
                                            const std::map<std::string, std::string>& b) {
  std::vector<std::string> fields = MachineFields(a);
  for (const std::string& field : MachineFields(b)) {
    if (std::find(fields.begin(), fields.end(), field) == fields.end()) fields.push_back(field);
  }
  std::vector<std::string> out;
  for (const std::string& field : fields) {
    const auto x = a.find(field), y = b.find(field);
    const bool in_a = x != a.end(), in_b = y != b.end();
    if (in_a != in_b || (in_a && x->second != y->second)) out.push_back(field);
  }
  return out;
}

std::string ReplayMismatch(const std::map<std::string, std::string>& environment,
                           const WorkerRecord& worker) {
  for (const std::string& field : MachineFields(environment)) {
    const auto recorded = environment.find(field);
    if (recorded == environment.end()) continue;
    const auto has = worker.capabilities.find(field);
    if (has == worker.capabilities.end()) {
      return absl::StrCat("it has no ", field, " (the run's was \"", recorded->second, "\")");
    }
    if (has->second != recorded->second) {
      return absl::StrCat("its ", field, " is \"", has->second, "\", the run's was \"",
                          recorded->second, "\"");
    }
  }
  return "";
}

std::string ReplayRefusal(const ArmSpec& arm, const std::map<std::string, std::string>& environment,
                          const WorkerRecord& worker) {
  std::string why = PlacementMismatch(arm, worker);
  return why.empty() ? ReplayMismatch(environment, worker) : why;
}

}  // namespace repro
