#include "analysis/cross_environment.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "analysis/analysis.h"
#include "analysis/stats.h"

namespace repro {
namespace {

using Fields = std::map<std::string, std::string>;

// The order in which labels and differing fields name the fields: where the run was,
// its hardware and software, then its settings; other keys after, alphabetically.
constexpr std::string_view kFieldOrder[] = {
    "host",  "cpu_model", "device",   "gpu_name", "driver",  "cuda",
    "cudnn", "torch",     "compiler", "threads",  "deterministic_algorithms",
    "cudnn_benchmark"};

Fields EnvironmentOf(const RunResult& result) {
  Fields out;
  for (const auto& [key, value] : result.environment) {
    if (!absl::StartsWith(key, "model_")) out.emplace(key, value);
  }
  return out;
}

std::pair<size_t, std::string_view> Rank(std::string_view key) {
  const auto known = std::find(std::begin(kFieldOrder), std::end(kFieldOrder), key);
  return {static_cast<size_t>(known - std::begin(kFieldOrder)), key};
}

void SortByRank(std::vector<std::string>* keys) {
  std::sort(keys->begin(), keys->end(), [](const std::string& a, const std::string& b) {
    return Rank(a) < Rank(b);
  });
}

// The fields whose values differ between `a` and `b`, or that only one has.
std::vector<std::string> DifferingFields(const Fields& a, const Fields& b) {
  std::vector<std::string> out;
  for (const auto& [key, value] : a) {
    const auto other = b.find(key);
    if (other == b.end() || other->second != value) out.push_back(key);
  }
  for (const auto& [key, value] : b) {
    if (a.find(key) == a.end()) out.push_back(key);
  }
  SortByRank(&out);
  return out;
}

const char* OnOff(const std::string& value) {
  return value == "true" ? "on" : value == "false" ? "off" : nullptr;
}

// One field as a label shows it: "2 threads", "torch 2.1.0", "host-a".
std::string Describe(const std::string& key, const std::string& value) {
  if (key == "threads") return absl::StrCat(value, value == "1" ? " thread" : " threads");
  if (key == "deterministic_algorithms" || key == "cudnn_benchmark") {
    const char* on_off = OnOff(value);
    return absl::StrCat(key == "cudnn_benchmark" ? "cudnn benchmark" : "deterministic algorithms",
                        " ", on_off != nullptr ? on_off : value);
  }
  if (key == "torch" || key == "cuda" || key == "cudnn" || key == "driver") {
    return absl::StrCat(key, " ", value);
  }
  if (key == "host" || key == "cpu_model" || key == "device" || key == "gpu_name" ||
      key == "compiler") {
    return value;
  }
  return absl::StrCat(key, "=", value);
}

// The runs of one group (same seeds, same start) that trained in one environment, and
// where they agree among themselves.
struct Side {
  std::vector<const RunView*> runs;
  // Per epoch position up to the most any of them recorded: every run recorded the same
  // weights_hash there, or none recorded it.
  std::vector<bool> uniform;
  bool final_uniform = true;
};

std::optional<std::string_view> HashAt(const RunView& run, size_t position) {
  const std::vector<EpochRecord>& epochs = run.result.epochs;
  if (position >= epochs.size()) return std::nullopt;
  return std::string_view(epochs[position].weights_hash);
}

void Summarize(Side* side) {
  size_t positions = 0;
  for (const RunView* run : side->runs) {
    positions = std::max(positions, run->result.epochs.size());
  }
  side->uniform.assign(positions, true);
  const RunView& first = *side->runs.front();
  for (size_t r = 1; r < side->runs.size(); ++r) {
    const RunView& run = *side->runs[r];
    for (size_t k = 0; k < positions; ++k) {
      if (HashAt(run, k) != HashAt(first, k)) side->uniform[k] = false;
    }
    if (run.result.final_hash != first.result.final_hash) side->final_uniform = false;
  }
}

bool UniformAt(const Side& side, size_t position) {
  return position >= side.uniform.size() || side.uniform[position];
}

// The first epoch position at which some pair (a run of `a` with one of `b`; two runs
// of `a` when both are the same side) differs. Two sets of runs have no differing pair
// at a position exactly when all their runs agree there, so this needs no pairs.
std::optional<size_t> FirstParting(const Side& a, const Side& b) {
  const size_t positions = std::max(a.uniform.size(), b.uniform.size());
  for (size_t k = 0; k < positions; ++k) {
    if (!UniformAt(a, k) || !UniformAt(b, k) ||
        HashAt(*a.runs.front(), k) != HashAt(*b.runs.front(), k)) {
      return k;
    }
  }
  return std::nullopt;
}

// The epoch number recorded at `position` by the first run of either side that has it.
int EpochAt(const Side& a, const Side& b, size_t position) {
  for (const Side* side : {&a, &b}) {
    for (const RunView* run : side->runs) {
      if (position < run->result.epochs.size()) return run->result.epochs[position].epoch;
    }
  }
  return static_cast<int>(position);
}

void AppendScoredAccuracies(const Side& side, std::vector<double>* out) {
  for (const RunView* run : side.runs) {
    if (Scored(*run)) out->push_back(run->result.test_accuracy);
  }
}

std::optional<double> SpreadRatio(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 2 || b.size() < 2) return std::nullopt;
  const double own = (Stdev(a, 0) + Stdev(b, 0)) / 2;
  if (!(own > 0)) return std::nullopt;  // no spread of their own (or NaN scores)
  std::vector<double> pooled = a;
  pooled.insert(pooled.end(), b.begin(), b.end());
  const double ratio = Stdev(pooled, 0) / own;
  if (!std::isfinite(ratio)) return std::nullopt;
  return ratio;
}

struct CellData {
  EnvironmentCell cell;
  std::vector<double> a_accuracy;  // of the scored runs taking part, per side
  std::vector<double> b_accuracy;
};

// Runs with the same seeds that started from the same model and data.
using GroupKey = std::tuple<uint64_t, uint64_t, uint64_t, std::string_view, std::string_view,
                            std::string_view>;

// The view's intact runs by arm (plan order; arms the plan lacks last), then index.
std::vector<const RunView*> IntactRunsInOrder(const ExperimentView& view) {
  std::map<std::string_view, size_t> arm_position;
  for (size_t i = 0; i < view.arms.size(); ++i) arm_position.emplace(view.arms[i], i);
  const auto position = [&](const RunView& run) {
    const auto found = arm_position.find(run.arm);
    return found == arm_position.end() ? view.arms.size() : found->second;
  };
  std::vector<const RunView*> runs;
  for (const RunView& run : view.runs) {
    if (Intact(run)) runs.push_back(&run);
  }
  std::stable_sort(runs.begin(), runs.end(), [&](const RunView* a, const RunView* b) {
    return std::make_pair(position(*a), a->index) < std::make_pair(position(*b), b->index);
  });
  return runs;
}

void Label(std::vector<Environment>* environments) {
  // The fields not the same in every environment.
  std::set<std::string> keys;
  for (const Environment& e : *environments) {
    for (const auto& [key, value] : e.fields) keys.insert(key);
  }
  std::vector<std::string> differing;
  for (const std::string& key : keys) {
    const auto first = environments->front().fields.find(key);
    for (const Environment& e : *environments) {
      const auto here = e.fields.find(key);
      if (here == e.fields.end() || first == environments->front().fields.end() ||
          here->second != first->second) {
        differing.push_back(key);
        break;
      }
    }
  }
  SortByRank(&differing);
  for (Environment& e : *environments) {
    std::vector<std::string> parts;
    for (const std::string& key : differing) {
      const auto here = e.fields.find(key);
      if (here != e.fields.end()) parts.push_back(Describe(key, here->second));
    }
    e.label = EnvironmentName(e.id);
    if (!parts.empty()) {
      absl::StrAppend(&e.label, ": ", absl::StrJoin(parts, ", "));
    } else if (!differing.empty()) {
      absl::StrAppend(&e.label, ": none of the differing fields recorded");
    }
  }
}

// The `pairs` pairs of a run of `a` with one of `b` (two of `a` on the diagonal), of one
// group of runs that started alike, into their cell.
void AddPairs(const Side& a, const Side& b, int64_t pairs, bool diagonal, CellData* data) {
  EnvironmentCell& cell = data->cell;
  cell.pairs += pairs;
  const std::optional<size_t> parting = FirstParting(a, b);
  const bool finals_equal = a.final_uniform && b.final_uniform &&
                            a.runs.front()->result.final_hash == b.runs.front()->result.final_hash;
  if (parting || !finals_equal) cell.identical = false;
  if (parting) {
    const int epoch = EpochAt(a, b, *parting);
    if (!cell.diverged_epoch || epoch < *cell.diverged_epoch) cell.diverged_epoch = epoch;
  }
  if (!diagonal) {
    AppendScoredAccuracies(a, &data->a_accuracy);
    AppendScoredAccuracies(b, &data->b_accuracy);
  }
}

}  // namespace

std::string EnvironmentName(int id) { return absl::StrCat("E", id); }

const EnvironmentCell* FindEnvironmentCell(const CrossEnvironment& matrix, int a, int b) {
  for (const EnvironmentCell& cell : matrix.cells) {
    if (cell.a == a && cell.b == b) return &cell;
  }
  return nullptr;
}

std::optional<CrossEnvironment> CompareAcrossEnvironments(const ExperimentView& view) {
  std::vector<Environment> environments;
  std::map<Fields, int> ids;
  std::map<GroupKey, std::map<int, Side>> groups;
  for (const RunView* run : IntactRunsInOrder(view)) {
    Fields fields = EnvironmentOf(run->result);
    auto [known, added] = ids.emplace(fields, static_cast<int>(environments.size()) + 1);
    if (added) {
      Environment e;
      e.id = known->second;
      e.fields = std::move(fields);
      environments.push_back(std::move(e));
    }
    ++environments[static_cast<size_t>(known->second - 1)].runs;
    const RunResult& r = run->result;
    groups[GroupKey{run->init_seed, run->shuffle_seed, run->augment_seed, r.initial_hash,
                    r.data_x_hash, r.data_y_hash}][known->second]
        .runs.push_back(run);
  }

  std::map<std::pair<int, int>, CellData> cells;
  bool across = false;
  for (auto& [key, sides] : groups) {
    for (auto& [id, side] : sides) Summarize(&side);
    for (auto i = sides.begin(); i != sides.end(); ++i) {
      for (auto j = i; j != sides.end(); ++j) {
        const bool diagonal = i == j;
        const int64_t na = static_cast<int64_t>(i->second.runs.size());
        const int64_t nb = static_cast<int64_t>(j->second.runs.size());
        const int64_t pairs = diagonal ? na * (na - 1) / 2 : na * nb;
        if (pairs == 0) continue;
        across |= !diagonal;
        AddPairs(i->second, j->second, pairs, diagonal, &cells[{i->first, j->first}]);
      }
    }
  }
  if (!across) return std::nullopt;

  CrossEnvironment out;
  Label(&environments);
  for (auto& [ab, data] : cells) {
    EnvironmentCell& cell = data.cell;
    cell.a = ab.first;
    cell.b = ab.second;
    if (cell.a != cell.b) {
      cell.spread_ratio = SpreadRatio(data.a_accuracy, data.b_accuracy);
      cell.differing_fields =
          DifferingFields(environments[static_cast<size_t>(cell.a - 1)].fields,
                          environments[static_cast<size_t>(cell.b - 1)].fields);
    }
    out.cells.push_back(std::move(cell));
  }
  out.environments = std::move(environments);
  return out;
}

}  // namespace repro
