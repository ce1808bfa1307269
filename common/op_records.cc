#include "common/op_records.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace repro {

const char* PhaseName(OpPhase phase) {
  switch (phase) {
    case OpPhase::kForward:
      return "forward";
    case OpPhase::kBackward:
      return "backward";
    case OpPhase::kUpdate:
      return "update";
  }
  return "?";
}

std::optional<OpPhase> PhaseNamed(std::string_view name) {
  for (OpPhase phase : {OpPhase::kForward, OpPhase::kBackward, OpPhase::kUpdate}) {
    if (name == PhaseName(phase)) return phase;
  }
  return std::nullopt;
}

int64_t TraceBytes(const std::vector<OpRecord>& trace) {
  int64_t bytes = static_cast<int64_t>(trace.size() * sizeof(OpRecord));
  for (const OpRecord& r : trace) {
    bytes += static_cast<int64_t>(r.name.size() + r.module.size() +
                                  r.outputs.size() * sizeof(TracedValue));
    for (const std::string& h : r.inputs) bytes += static_cast<int64_t>(sizeof h + h.size());
    for (const TracedValue& v : r.outputs) {
      bytes += static_cast<int64_t>(v.hash.size() + v.dtype.size() +
                                    v.shape.size() * sizeof(int64_t));
    }
  }
  return bytes;
}

namespace {

void Describe(const OpRecord& a, OpDivergence& d) {
  d.name = a.name;
  d.module = a.module;
  d.phase = a.phase;
}

}  // namespace

OpDivergence CompareTraces(const std::vector<OpRecord>& a, const std::vector<OpRecord>& b) {
  OpDivergence d;
  const size_t common = std::min(a.size(), b.size());
  for (size_t i = 0; i < common; ++i) {
    if (a[i].name == b[i].name && a[i].outputs == b[i].outputs) continue;
    d.index = static_cast<int64_t>(i);
    Describe(a[i], d);
    if (a[i].name != b[i].name || a[i].outputs.size() != b[i].outputs.size()) {
      d.kind = OpDivergence::Kind::kOps;
      d.name_b = b[i].name;
      return d;
    }
    d.kind = OpDivergence::Kind::kOutputs;
    d.inputs_equal = a[i].inputs == b[i].inputs;
    for (size_t o = 0; o < a[i].outputs.size(); ++o) {
      d.differing_outputs += a[i].outputs[o] != b[i].outputs[o] ? 1 : 0;
    }
    return d;
  }
  if (a.size() == b.size()) return d;
  d.kind = OpDivergence::Kind::kOps;
  d.index = static_cast<int64_t>(common);
  if (common < a.size()) Describe(a[common], d);
  if (common < b.size()) d.name_b = b[common].name;
  return d;
}

std::optional<int64_t> FirstDifferentBatch(const std::vector<std::string>& a,
                                           const std::vector<std::string>& b) {
  const auto [at_a, at_b] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  if (at_a == a.end() && at_b == b.end()) return std::nullopt;
  return static_cast<int64_t>(at_a - a.begin());
}

int ElementBytes(std::string_view dtype) {
  static constexpr std::pair<std::string_view, int> kSizes[] = {
      {"Float", 4}, {"Double", 8}, {"Half", 2},  {"BFloat16", 2}, {"Long", 8},
      {"Int", 4},   {"Short", 2},  {"Char", 1},  {"Byte", 1},     {"Bool", 1},
      {"ComplexFloat", 8}, {"ComplexDouble", 16}};
  for (const auto& [name, bytes] : kSizes) {
    if (name == dtype) return bytes;
  }
  return 0;
}

// ------------------------------------------------------------------ encoding

namespace {

constexpr std::string_view kMagic = "repro-op-outputs 1\n";
constexpr uint64_t kMaxDims = 64;

void PutU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutText(std::string& out, std::string_view text) {
  PutU64(out, text.size());
  out.append(text);
}

// Reads what EncodeOpOutputs wrote, refusing to step past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}

  absl::StatusOr<uint64_t> U64(std::string_view what) {
    if (rest_.size() < 8) return Short(what);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(rest_[i])) << (8 * i);
    rest_.remove_prefix(8);
    return v;
  }

  absl::StatusOr<std::string> Text(std::string_view what) {
    absl::StatusOr<uint64_t> size = U64(what);
    if (!size.ok()) return size.status();
    if (*size > rest_.size()) return Short(what);
    std::string text(rest_.substr(0, *size));
    rest_.remove_prefix(*size);
    return text;
  }

  bool done() const { return rest_.empty(); }

 private:
  static absl::Status Short(std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("op outputs end inside ", std::string(what)));
  }
  std::string_view rest_;
};

absl::StatusOr<TensorValues> ReadTensor(Reader& in, size_t index) {
  const std::string what = absl::StrCat("tensor ", index);
  TensorValues t;
  absl::StatusOr<uint64_t> defined = in.U64(what);
  if (!defined.ok()) return defined.status();
  t.defined = *defined != 0;
  if (!t.defined) return t;
  absl::StatusOr<std::string> dtype = in.Text(what);
  absl::StatusOr<uint64_t> dims = dtype.ok() ? in.U64(what) : dtype.status();
  if (!dims.ok()) return dims.status();
  t.dtype = *dtype;
  const int element = ElementBytes(t.dtype);
  if (element == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has dtype \"", t.dtype.substr(0, 40), "\", which repro does not know"));
  }
  if (*dims > kMaxDims) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", *dims, " dimensions"));
  }
  uint64_t elements = 1;
  for (uint64_t d = 0; d < *dims; ++d) {
    absl::StatusOr<uint64_t> size = in.U64(what);
    if (!size.ok()) return size.status();
    if (*size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (*size != 0 && elements > std::numeric_limits<uint64_t>::max() / 8 / *size)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " has a dimension too large"));
    }
    elements *= *size;
    t.shape.push_back(static_cast<int64_t>(*size));
  }
  absl::StatusOr<std::string> bytes = in.Text(what);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() != elements * static_cast<uint64_t>(element)) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", bytes->size(), " bytes for ",
                                                   elements, " ", t.dtype, " values"));
  }
  t.bytes = *std::move(bytes);
  return t;
}

}  // namespace

std::string EncodeOpOutputs(const OpOutputs& outputs) {
  std::string out(kMagic);
  PutText(out, outputs.name);
  PutText(out, outputs.overload);
  PutU64(out, outputs.tensors.size());
  for (const TensorValues& t : outputs.tensors) {
    PutU64(out, t.defined ? 1 : 0);
    if (!t.defined) continue;
    PutText(out, t.dtype);
    PutU64(out, t.shape.size());
    for (int64_t d : t.shape) PutU64(out, static_cast<uint64_t>(d));
    PutText(out, t.bytes);
  }
  return out;
}

absl::StatusOr<OpOutputs> DecodeOpOutputs(std::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::InvalidArgumentError("not op outputs (they start with \"repro-op-outputs 1\")");
  }
  Reader in(bytes.substr(kMagic.size()));
  OpOutputs out;
  absl::StatusOr<std::string> name = in.Text("the op's name");
  absl::StatusOr<std::string> overload = name.ok() ? in.Text("the op's overload") : name;
  absl::StatusOr<uint64_t> count = overload.ok() ? in.U64("the tensor count") : overload.status();
  if (!count.ok()) return count.status();
  out.name = *std::move(name);
  out.overload = *std::move(overload);
  for (uint64_t i = 0; i < *count; ++i) {
    absl::StatusOr<TensorValues> t = ReadTensor(in, i);
    if (!t.ok()) return t.status();
    out.tensors.push_back(*std::move(t));
  }
  if (!in.done()) return absl::InvalidArgumentError("op outputs go on past their last tensor");
  return out;
}

// ------------------------------------------------------------------ comparing

namespace {

// Floating values' bits mapped to unsigned integers in the same order, so that the
// distance of two keys counts the representable values between them.
template <typename Bits>
Bits OrderedKey(Bits bits) {
  constexpr Bits kSign = Bits{1} << (8 * sizeof(Bits) - 1);
  return (bits & kSign) ? static_cast<Bits>(~bits) : static_cast<Bits>(bits | kSign);
}

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

double HalfValue(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) {
    return mantissa == 0 ? sign * std::numeric_limits<double>::infinity()
                         : std::numeric_limits<double>::quiet_NaN();
  }
  return sign * std::ldexp(mantissa + 1024, exponent - 25);
}

// One element of `dtype` as a double and, for floating types, its ordered key.
struct Element {
  double value = 0;
  std::optional<uint64_t> key;
};

Element Read(std::string_view dtype, const char* p) {
  if (dtype == "Float") {
    const uint32_t bits = Load<uint32_t>(p);
    return {Load<float>(p), OrderedKey(bits)};
  }
  if (dtype == "Double") return {Load<double>(p), OrderedKey(Load<uint64_t>(p))};
  if (dtype == "Half") {
    const uint16_t bits = Load<uint16_t>(p);
    return {HalfValue(bits), OrderedKey(bits)};
  }
  if (dtype == "BFloat16") {
    const uint16_t bits = Load<uint16_t>(p);
    const uint32_t wide = uint32_t{bits} << 16;
    float value;
    std::memcpy(&value, &wide, sizeof value);
    return {value, OrderedKey(bits)};
  }
  if (dtype == "Long") return {static_cast<double>(Load<int64_t>(p)), std::nullopt};
  if (dtype == "Int") return {static_cast<double>(Load<int32_t>(p)), std::nullopt};
  if (dtype == "Short") return {static_cast<double>(Load<int16_t>(p)), std::nullopt};
  if (dtype == "Char") return {static_cast<double>(Load<int8_t>(p)), std::nullopt};
  if (dtype == "Byte" || dtype == "Bool") return {static_cast<double>(Load<uint8_t>(p)), std::nullopt};
  return {};  // complex: compared by their bytes alone
}

void AddDifference(const TensorValues& a, const TensorValues& b, OutputDifference& d) {
  const int size = ElementBytes(a.dtype);
  const int64_t n = size == 0 ? 0 : static_cast<int64_t>(a.bytes.size() / size);
  d.elements += n;
  const bool complex = a.dtype.rfind("Complex", 0) == 0;
  for (int64_t i = 0; i < n; ++i) {
    const char* x = a.bytes.data() + i * size;
    const char* y = b.bytes.data() + i * size;
    if (std::memcmp(x, y, size) == 0) continue;
    ++d.differing;
    if (complex) continue;
    const Element ex = Read(a.dtype, x), ey = Read(a.dtype, y);
    if (ex.key && ey.key) {
      d.max_ulps = std::max<uint64_t>(d.max_ulps, *ex.key > *ey.key ? *ex.key - *ey.key
                                                                     : *ey.key - *ex.key);
    }
    if (a.dtype != "Bool") d.max_abs = std::max(d.max_abs, std::abs(ex.value - ey.value));
  }
}

}  // namespace

absl::StatusOr<OutputDifference> CompareOpOutputs(const OpOutputs& a, const OpOutputs& b) {
  if (a.name != b.name || a.overload != b.overload) {
    return absl::InvalidArgumentError(
        absl::StrCat("the dumps are of different ops: ", a.name, " and ", b.name));
  }
  if (a.tensors.size() != b.tensors.size()) {
    return absl::InvalidArgumentError(absl::StrCat(a.name, " has ", a.tensors.size(),
                                                   " outputs on one side and ", b.tensors.size(),
                                                   " on the other"));
  }
  OutputDifference d;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const TensorValues& x = a.tensors[i];
    const TensorValues& y = b.tensors[i];
    if (!x.defined && !y.defined) continue;
    if (x.defined != y.defined || x.dtype != y.dtype || x.shape != y.shape ||
        x.bytes.size() != y.bytes.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(a.name, "'s output ", i, " differs in dtype or shape between the dumps"));
    }
    AddDifference(x, y, d);
  }
  return d;
}

}  // namespace repro
