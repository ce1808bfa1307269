#include "worker/engine/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "worker/engine/json_text.h"

namespace repro::engine {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference implementation's limit
constexpr char kMetadataKey[] = "__metadata__";

struct DtypeSize {
  const char* name;
  size_t size;
};
constexpr DtypeSize kDtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
};

// a * b, or false on overflow past `limit`.
bool MulWithin(uint64_t a, uint64_t b, uint64_t limit, uint64_t* out) {
  if (a != 0 && b > limit / a) return false;
  *out = a * b;
  return true;
}

// "[2, 3]" for messages; "[2,3]" (compact) for the header.
std::string ShapeText(const std::vector<int64_t>& shape, const char* separator = ", ") {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&out, i ? separator : "", shape[i]);
  return out + "]";
}

// ------------------------------------------------------------------ header parsing

struct ParseError {
  std::string message;
};

// A parser for the safetensors header schema only (an object of tensor entries and
// one metadata object): anything else is an error, so the nesting depth is bounded
// by construction and no general JSON tree is built.
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  struct Entry {
    std::string name;
    std::string dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0;
    uint64_t end = 0;
  };

  void Parse(std::vector<Entry>* entries, SafetensorsMetadata* metadata) {
    if (text_.empty() || text_[0] != '{') Fail("the header must start with '{'");
    std::set<std::string> names;
    ParseObject([&](std::string key) {
      if (!names.insert(key).second) Fail(absl::StrCat("key ", JsonQuote(key), " appears twice"));
      if (key == kMetadataKey) {
        ParseMetadata(metadata);
      } else {
        if (key.empty()) Fail("a tensor has an empty name");
        entries->push_back(ParseEntry(std::move(key)));
      }
    });
    SkipSpace();
    if (pos_ != text_.size()) Fail("unexpected text after the header's JSON object");
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw ParseError{absl::StrCat("header byte ", pos_, ": ", what)};
  }

  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }

  char Peek() {
    SkipSpace();
    if (pos_ >= text_.size()) Fail("the header's JSON ends too early");
    return text_[pos_];
  }

  void Expect(char c) {
    if (Peek() != c) Fail(absl::StrCat("expected '", std::string(1, c), "'"));
    ++pos_;
  }

  // { "key": <value parsed by on_member>, ... }
  template <typename OnMember>
  void ParseObject(OnMember on_member) {
    Expect('{');
    if (Peek() == '}') {
      ++pos_;
      return;
    }
    for (;;) {
      if (Peek() != '"') Fail("expected a key (a string)");
      std::string key = ParseString();
      Expect(':');
      on_member(std::move(key));
      const char c = Peek();
      ++pos_;
      if (c == '}') return;
      if (c != ',') {
        --pos_;
        Fail("expected ',' or '}'");
      }
    }
  }

  void ParseMetadata(SafetensorsMetadata* metadata) {
    std::set<std::string> keys;
    if (Peek() != '{') Fail("__metadata__ must be an object of strings");
    ParseObject([&](std::string key) {
      if (!keys.insert(key).second) {
        Fail(absl::StrCat("__metadata__ key ", JsonQuote(key), " appears twice"));
      }
      if (Peek() != '"') {
        Fail(absl::StrCat("__metadata__ value of ", JsonQuote(key), " must be a string"));
      }
      std::string value = ParseString();
      metadata->emplace_back(std::move(key), std::move(value));
    });
  }

  Entry ParseEntry(std::string name) {
    Entry entry;
    entry.name = std::move(name);
    const std::string quoted = JsonQuote(entry.name);
    if (Peek() != '{') Fail(absl::StrCat("tensor ", quoted, " must be an object"));
    bool has_dtype = false, has_shape = false, has_offsets = false;
    ParseObject([&](std::string key) {
      if (key == "dtype") {
        if (has_dtype) Fail(absl::StrCat("tensor ", quoted, " has dtype twice"));
        has_dtype = true;
        if (Peek() != '"') Fail(absl::StrCat("tensor ", quoted, ": dtype must be a string"));
        entry.dtype = ParseString();
      } else if (key == "shape") {
        if (has_shape) Fail(absl::StrCat("tensor ", quoted, " has shape twice"));
        has_shape = true;
        for (uint64_t d : ParseUintArray(quoted, "shape")) {
          if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            Fail(absl::StrCat("tensor ", quoted, ": dimension ", d, " is too large"));
          }
          entry.shape.push_back(static_cast<int64_t>(d));
        }
      } else if (key == "data_offsets") {
        if (has_offsets) Fail(absl::StrCat("tensor ", quoted, " has data_offsets twice"));
        has_offsets = true;
        const std::vector<uint64_t> offsets = ParseUintArray(quoted, "data_offsets");
        if (offsets.size() != 2) {
          Fail(absl::StrCat("tensor ", quoted, ": data_offsets must be [begin, end], got ",
                            offsets.size(), " numbers"));
        }
        entry.begin = offsets[0];
        entry.end = offsets[1];
      } else {
        Fail(absl::StrCat("tensor ", quoted, " has unknown key ", JsonQuote(key),
                          " (expected dtype, shape and data_offsets)"));
      }
    });
    if (!has_dtype || !has_shape || !has_offsets) {
      Fail(absl::StrCat("tensor ", quoted, " lacks ",
                        !has_dtype   ? "dtype"
                        : !has_shape ? "shape"
                                     : "data_offsets"));
    }
    return entry;
  }

  std::vector<uint64_t> ParseUintArray(const std::string& tensor, const char* what) {
    std::vector<uint64_t> values;
    if (Peek() != '[') Fail(absl::StrCat("tensor ", tensor, ": ", what, " must be an array"));
    ++pos_;
    if (Peek() == ']') {
      ++pos_;
      return values;
    }
    for (;;) {
      values.push_back(ParseUint(tensor, what));
      const char c = Peek();
      ++pos_;
      if (c == ']') return values;
      if (c != ',') {
        --pos_;
        Fail(absl::StrCat("tensor ", tensor, ": expected ',' or ']' in ", what));
      }
    }
  }

  // A JSON number that is a non-negative integer below 2^64.
  uint64_t ParseUint(const std::string& tensor, const char* what) {
    SkipSpace();
    const size_t start = pos_;
    size_t end = start;
    while (end < text_.size() && std::strchr("0123456789+-.eE", text_[end]) != nullptr &&
           text_[end] != '\0') {
      ++end;
    }
    const std::string_view token = text_.substr(start, end - start);
    const bool digits_only =
        !token.empty() && token.find_first_not_of("0123456789") == std::string_view::npos;
    if (!digits_only || (token.size() > 1 && token[0] == '0')) {
      Fail(absl::StrCat("tensor ", tensor, ": ", what, " must hold non-negative integers, got \"",
                        std::string(token.substr(0, 40)), "\""));
    }
    uint64_t value = 0;
    for (const char c : token) {
      const uint64_t digit = static_cast<uint64_t>(c - '0');
      if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
        Fail(absl::StrCat("tensor ", tensor, ": a number in ", what, " is too large"));
      }
      value = value * 10 + digit;
    }
    pos_ = end;
    return value;
  }

  unsigned Hex4() {
    if (text_.size() - pos_ < 4) Fail("truncated \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_++];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<unsigned>(c - 'A' + 10);
      } else {
        Fail("bad \\u escape");
      }
    }
    return value;
  }

  static void AppendUtf8(std::string* out, unsigned cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  // Length of the valid UTF-8 sequence at pos_ (lead byte >= 0x80), or 0.
  size_t Utf8Length() const {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(text_[pos_ + i]); };
    const unsigned char b0 = byte(0);
    size_t n;
    unsigned cp;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      n = 2;
      cp = b0 & 0x1f;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      n = 3;
      cp = b0 & 0x0f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      n = 4;
      cp = b0 & 0x07;
    } else {
      return 0;
    }
    if (text_.size() - pos_ < n) return 0;
    for (size_t i = 1; i < n; ++i) {
      if ((byte(i) & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (byte(i) & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return 0;  // overlong, out of range, or a surrogate
    }
    return n;
  }

  std::string ParseString() {
    ++pos_;  // the opening quote, checked by the caller
    std::string out;
    for (;;) {
      if (pos_ >= text_.size()) Fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) Fail("control character in a string");
      if (c == '\\') {
        ++pos_;
        if (pos_ >= text_.size()) Fail("unterminated string");
        const char e = text_[pos_++];
        switch (e) {
          case '"':
            out.push_back('"');
            break;
          case '\\':
            out.push_back('\\');
            break;
          case '/':
            out.push_back('/');
            break;
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'u': {
            unsigned cp = Hex4();
            if (cp >= 0xdc00 && cp <= 0xdfff) Fail("lone low surrogate in a \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
              if (text_.size() - pos_ < 2 || text_[pos_] != '\\' || text_[pos_ + 1] != 'u') {
                Fail("high surrogate without its low surrogate in a \\u escape");
              }
              pos_ += 2;
              const unsigned low = Hex4();
              if (low < 0xdc00 || low > 0xdfff) Fail("bad surrogate pair in a \\u escape");
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            }
            AppendUtf8(&out, cp);
            break;
          }
          default:
            --pos_;
            Fail("bad escape in a string");
        }
        continue;
      }
      if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        ++pos_;
        continue;
      }
      const size_t n = Utf8Length();
      if (n == 0) Fail("invalid UTF-8 in a string");
      out.append(text_.substr(pos_, n));
      pos_ += n;
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

size_t SafetensorsDtypeSize(std::string_view dtype) {
  for (const DtypeSize& d : kDtypes) {
    if (dtype == d.name) return d.size;
  }
  return 0;
}

absl::StatusOr<std::string> EncodeSafetensorsHeader(
    const std::vector<SafetensorsTensorView>& tensors, const SafetensorsMetadata& metadata) {
  std::set<std::string> keys;
  bool has_format = false;
  std::string meta = "{";
  for (const auto& [key, value] : metadata) {
    if (!keys.insert(key).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metadata key ", JsonQuote(key), " given twice"));
    }
    has_format = has_format || key == "format";
  }
  if (!has_format) meta += "\"format\":\"pt\"";
  for (const auto& [key, value] : metadata) {
    if (meta.size() > 1) meta += ",";
    absl::StrAppend(&meta, JsonQuote(key), ":", JsonQuote(value));
  }
  meta += "}";

  std::string json = absl::StrCat("{\"", kMetadataKey, "\":", meta);
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const SafetensorsTensorView& t : tensors) {
    const std::string quoted = JsonQuote(t.name);
    if (t.name.empty() || t.name == kMetadataKey) {
      return absl::InvalidArgumentError(absl::StrCat("tensor name ", quoted, " is not allowed"));
    }
    if (!names.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", quoted, " given twice"));
    }
    const size_t size = SafetensorsDtypeSize(t.dtype);
    if (size == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", quoted, " has unknown dtype ", JsonQuote(t.dtype)));
    }
    uint64_t count = 1;
    for (const int64_t d : t.shape) {
      if (d < 0 || !MulWithin(count, static_cast<uint64_t>(d), std::numeric_limits<uint64_t>::max(),
                              &count)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", quoted, " has a bad shape ", ShapeText(t.shape)));
      }
    }
    uint64_t nbytes = 0;
    if (!MulWithin(count, size, std::numeric_limits<uint64_t>::max(), &nbytes) ||
        nbytes != t.nbytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", quoted, " of shape ", ShapeText(t.shape), " and dtype ", t.dtype,
                       " needs ", count, " x ", size, " bytes but has ", t.nbytes));
    }
    absl::StrAppend(&json, ",", quoted, ":{\"dtype\":\"", t.dtype,
                    "\",\"shape\":", ShapeText(t.shape, ","), ",\"data_offsets\":[", offset, ",",
                    offset + nbytes, "]}");
    offset += nbytes;
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

absl::Status WriteSafetensors(const std::string& path,
                              const std::vector<SafetensorsTensorView>& tensors,
                              const SafetensorsMetadata& metadata) {
  absl::StatusOr<std::string> header = EncodeSafetensorsHeader(tensors, metadata);
  if (!header.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", header.status().message()));
  }
  const std::string temporary = path + ".tmp";
  std::FILE* file = std::fopen(temporary.c_str(), "wb");
  if (file == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", temporary, ": ", std::strerror(errno)));
  }
  bool ok = std::fwrite(header->data(), 1, header->size(), file) == header->size();
  for (const SafetensorsTensorView& t : tensors) {
    if (!ok) break;
    if (t.nbytes > 0) ok = std::fwrite(t.data, 1, t.nbytes, file) == t.nbytes;
  }
  const int write_errno = errno;
  ok = (std::fclose(file) == 0) && ok;
  if (!ok) {
    std::remove(temporary.c_str());
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write ", temporary, ": ", std::strerror(write_errno ? write_errno : errno)));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    const int rename_errno = errno;
    std::remove(temporary.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("cannot rename ", temporary, " to ", path, ": ", std::strerror(rename_errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<SafetensorsFile> ParseSafetensors(std::string_view bytes) {
  if (bytes.size() < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("file is ", bytes.size(), " bytes, too short for the 8-byte header length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  const uint64_t rest = bytes.size() - 8;
  if (n > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header length ", n, " is more than the limit of ", kMaxHeaderBytes, " bytes"));
  }
  if (n > rest) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", n, " is more than the ", rest,
                                                   " bytes after it (truncated file?)"));
  }
  const std::string_view header = bytes.substr(8, n);
  const std::string_view data = bytes.substr(8 + n);

  std::vector<HeaderParser::Entry> entries;
  SafetensorsFile file;
  try {
    HeaderParser(header).Parse(&entries, &file.metadata);
  } catch (const ParseError& e) {
    return absl::InvalidArgumentError(e.message);
  }

  for (const HeaderParser::Entry& e : entries) {
    const std::string quoted = JsonQuote(e.name);
    const size_t size = SafetensorsDtypeSize(e.dtype);
    if (size == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", quoted, " has unknown dtype ", JsonQuote(e.dtype)));
    }
    if (e.begin > e.end) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", quoted, " has data_offsets [",
                                                     e.begin, ", ", e.end,
                                                     "] that end before they begin"));
    }
    if (e.end > data.size()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", quoted, " has data_offsets [",
                                                     e.begin, ", ", e.end, "] past the end of the ",
                                                     data.size(), " data bytes (truncated file?)"));
    }
    // Bounded by the data size, so a huge shape cannot overflow unnoticed.
    // A zero dimension makes the tensor empty whatever the others are.
    const bool empty = std::find(e.shape.begin(), e.shape.end(), 0) != e.shape.end();
    uint64_t count = empty ? 0 : 1;
    bool fits = true;
    for (const int64_t d : e.shape) {
      if (!empty) fits = fits && MulWithin(count, static_cast<uint64_t>(d), data.size(), &count);
    }
    uint64_t nbytes = 0;
    fits = fits && MulWithin(count, size, data.size(), &nbytes);
    if (!fits || nbytes != e.end - e.begin) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", quoted, " of shape ", ShapeText(e.shape), " and dtype ", e.dtype,
                       " does not match its data_offsets [", e.begin, ", ", e.end, "] (",
                       e.end - e.begin, " bytes)"));
    }
  }

  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(entries[a].begin, entries[a].end) <
           std::make_pair(entries[b].begin, entries[b].end);
  });
  uint64_t expected = 0;
  const HeaderParser::Entry* previous = nullptr;
  for (const size_t i : order) {
    const HeaderParser::Entry& e = entries[i];
    if (e.begin != expected) {
      const std::string what =
          e.begin < expected ? absl::StrCat("overlap those of tensor ", JsonQuote(previous->name),
                                            " [", previous->begin, ", ", previous->end, "]")
                             : absl::StrCat("leave a gap after byte ", expected);
      return absl::InvalidArgumentError(absl::StrCat("data_offsets [", e.begin, ", ", e.end,
                                                     "] of tensor ", JsonQuote(e.name), " ", what));
    }
    expected = e.end;
    previous = &e;
  }
  if (expected != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the tensors' data ends at byte ", expected,
                                                   " but the file has ", data.size(),
                                                   " data bytes"));
  }

  file.tensors.reserve(entries.size());
  for (const size_t i : order) {
    HeaderParser::Entry& e = entries[i];
    SafetensorsTensor t;
    t.name = std::move(e.name);
    t.dtype = std::move(e.dtype);
    t.shape = std::move(e.shape);
    t.data.assign(data.substr(e.begin, e.end - e.begin));
    file.tensors.push_back(std::move(t));
  }
  return file;
}

absl::StatusOr<SafetensorsFile> ReadSafetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
  const std::string bytes = content.str();
  absl::StatusOr<SafetensorsFile> file = ParseSafetensors(bytes);
  if (!file.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a valid safetensors file: ", file.status().message()));
  }
  return file;
}

}  // namespace repro::engine
