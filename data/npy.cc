#include "data/npy.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace repro::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
// The most bytes an array may declare: far beyond any file, and small enough that the
// sums below cannot overflow int64.
constexpr int64_t kMaxElements = int64_t{1} << 62;

template <typename... Parts>
absl::Status Invalid(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

// The header text as Python's ast.literal_eval would see it, reduced to what np.save
// writes: a dict of the three keys with a string, a bool and a tuple of integers.
class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  absl::Status Parse(NpyHeader* out) {
    SkipSpace();
    if (!Eat('{')) return Fail("does not start with '{'");
    bool have_descr = false, have_order = false, have_shape = false;
    while (true) {
      SkipSpace();
      if (Eat('}')) break;
      std::string key;
      if (absl::Status s = String(&key); !s.ok()) return s;
      SkipSpace();
      if (!Eat(':')) return Fail("has no ':' after key '", key, "'");
      SkipSpace();
      if (key == "descr") {
        if (have_descr) return Fail("has key 'descr' twice");
        have_descr = true;
        if (Peek() != '\'' && Peek() != '"') {
          return Fail("has a 'descr' that is not a string (a structured dtype is not an array of numbers)");
        }
        if (absl::Status s = String(&out->descr); !s.ok()) return s;
      } else if (key == "fortran_order") {
        if (have_order) return Fail("has key 'fortran_order' twice");
        have_order = true;
        if (Word("True")) {
          out->fortran_order = true;
        } else if (Word("False")) {
          out->fortran_order = false;
        } else {
          return Fail("has a 'fortran_order' that is not True or False");
        }
      } else if (key == "shape") {
        if (have_shape) return Fail("has key 'shape' twice");
        have_shape = true;
        if (absl::Status s = Shape(&out->shape); !s.ok()) return s;
      } else {
        return Fail("has key '", key, "' (an .npy header has descr, fortran_order and shape only)");
      }
      SkipSpace();
      if (Eat(',')) continue;
      SkipSpace();
      if (Eat('}')) break;
      return Fail("has no ',' or '}' after the value of '", key, "'");
    }
    SkipSpace();
    if (pos_ != text_.size()) return Fail("has text after its closing '}'");
    for (const auto& [have, name] : {std::pair{have_descr, "descr"},
                                     std::pair{have_order, "fortran_order"},
                                     std::pair{have_shape, "shape"}}) {
      if (!have) return Fail("has no key '", name, "'");
    }
    return absl::OkStatus();
  }

 private:
  template <typename... Parts>
  absl::Status Fail(const Parts&... parts) const {
    return Invalid("header is not the dict literal an .npy file has: it ", parts..., " (at byte ",
                   pos_, " of the header)");
  }

  char Peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  // Python's whitespace as np.save writes it (spaces, a newline at the end).
  void SkipSpace() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t' ||
            text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool IsWordChar(char c) const {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  }
  // `word` as a whole token.
  bool Word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    const size_t end = pos_ + word.size();
    if (end < text_.size() && IsWordChar(text_[end])) return false;
    pos_ = end;
    return true;
  }

  // A quoted string of printable ASCII without escapes (all np.save writes in a
  // simple array's header).
  absl::Status String(std::string* out) {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return Fail("has a key that is not a quoted string");
    ++pos_;
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '\\') return Fail("has an escape in a string");
      if (c < 0x20 || c > 0x7e) return Fail("has a character that is not printable ASCII in a string");
      ++pos_;
    }
    if (pos_ == text_.size()) return Fail("has a string without its closing quote");
    *out = std::string(text_.substr(start, pos_ - start));
    ++pos_;
    return absl::OkStatus();
  }

  // A non-negative decimal integer (Python 2's long suffix L accepted, as NumPy does).
  absl::Status Integer(int64_t* out) {
    const size_t start = pos_;
    int64_t value = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      const int digit = text_[pos_] - '0';
      if (value > (kMaxElements - digit) / 10) {
        return Fail("has a dimension over ", kMaxElements);
      }
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) return Fail("has a shape entry that is not a non-negative integer");
    if (pos_ - start > 1 && text_[start] == '0') return Fail("has a dimension with a leading zero");
    if (Peek() == 'L') ++pos_;
    if (IsWordChar(Peek()) || Peek() == '.') {
      return Fail("has a shape entry that is not a non-negative integer");
    }
    *out = value;
    return absl::OkStatus();
  }

  // A tuple of integers: (), (n,), (n, m), (n, m,) ... Python's one-tuple needs its comma.
  absl::Status Shape(std::vector<int64_t>* out) {
    if (!Eat('(')) return Fail("has a 'shape' that is not a tuple");
    out->clear();
    while (true) {
      SkipSpace();
      if (Eat(')')) break;
      if (static_cast<int64_t>(out->size()) == kMaxNpyDims) {
        return Fail("has a shape of more than ", kMaxNpyDims, " dimensions");
      }
      int64_t dim = 0;
      if (absl::Status s = Integer(&dim); !s.ok()) return s;
      out->push_back(dim);
      SkipSpace();
      if (Eat(',')) continue;
      SkipSpace();
      if (out->size() == 1) return Fail("has a 'shape' of one entry without its comma: (n,)");
      if (Eat(')')) break;
      return Fail("has no ',' or ')' in its 'shape'");
    }
    return absl::OkStatus();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

uint32_t LittleEndian(const unsigned char* p, int bytes) {
  uint32_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

// The bytes of `rows` rows of the array, which Read/ParseNpyHeader bounded already.
int64_t RowBytes(const NpyHeader& h) {
  if (h.shape.empty() || h.shape[0] == 0) return 0;
  return h.Elements() / h.shape[0] * h.ItemSize();
}

}  // namespace

int64_t NpyHeader::Elements() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d == 0) return 0;
    if (n > kMaxElements / d) return kMaxElements;  // not reached for a parsed header
    n *= d;
  }
  return n;
}

int64_t NpyHeader::ItemSize() const {
  // <byte order><kind><digits>, e.g. "<f4", "|u1", "<i8"; NumPy's "<U3" etc. count
  // characters, not bytes, but no such dtype is read as numbers anyway.
  if (descr.size() < 3 || descr.size() > 5) return 0;
  int64_t size = 0;
  for (size_t i = 2; i < descr.size(); ++i) {
    if (descr[i] < '0' || descr[i] > '9') return 0;
    size = size * 10 + (descr[i] - '0');
  }
  return size;
}

absl::StatusOr<NpyHeader> ParseNpyHeader(std::string_view bytes) {
  if (bytes.size() < kMagicSize + 2 || bytes.substr(0, kMagicSize) != std::string_view(kMagic, kMagicSize)) {
    return Invalid("is not an .npy file (it does not start with \\x93NUMPY)");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  NpyHeader header;
  header.major = p[kMagicSize];
  const int minor = p[kMagicSize + 1];
  if ((header.major != 1 && header.major != 2 && header.major != 3) || minor != 0) {
    return Invalid("is .npy format version ", header.major, ".", minor,
                   "; versions 1.0, 2.0 and 3.0 are read");
  }
  const int length_bytes = header.major == 1 ? 2 : 4;
  const size_t prefix = kMagicSize + 2 + static_cast<size_t>(length_bytes);
  if (bytes.size() < prefix) return Invalid("ends inside its .npy header's length");
  const int64_t length = LittleEndian(p + kMagicSize + 2, length_bytes);
  if (length > kMaxNpyHeader) {
    return Invalid("has a header of ", length, " bytes, over the ", kMaxNpyHeader, " allowed");
  }
  if (static_cast<int64_t>(bytes.size() - prefix) < length) {
    return Invalid("is truncated: it ends inside its ", length, "-byte header");
  }
  header.data_offset = static_cast<int64_t>(prefix) + length;
  HeaderParser parser(bytes.substr(prefix, static_cast<size_t>(length)));
  if (absl::Status s = parser.Parse(&header); !s.ok()) return s;
  int64_t elements = 1;
  for (int64_t d : header.shape) {
    if (d != 0 && elements > kMaxElements / d) {
      return Invalid("has a shape whose element count overflows");
    }
    elements *= d;
  }
  const int64_t item = header.ItemSize();
  if (item > 0 && elements > kMaxElements / item) {
    return Invalid("has a shape whose byte size overflows");
  }
  return header;
}

absl::StatusOr<NpyHeader> ReadNpyHeader(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Invalid(path, ": ", std::filesystem::exists(path, ec) ? "is not a regular file"
                                                                  : "file does not exist");
  }
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  if (ec) return Invalid(path, ": cannot read its size (", ec.message(), ")");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid(path, ": cannot be opened for reading (", std::strerror(errno), ")");
  std::string prefix(static_cast<size_t>(kMagicSize + 2 + 4 + kMaxNpyHeader), '\0');
  in.read(prefix.data(), static_cast<std::streamsize>(prefix.size()));
  prefix.resize(static_cast<size_t>(in.gcount()));
  auto header = ParseNpyHeader(prefix);
  if (!header.ok()) return Invalid(path, ": ", header.status().message());
  const int64_t item = header->ItemSize();
  if (item <= 0) return Invalid(path, ": dtype ", header->descr, " has no item size in bytes");
  const int64_t need = header->Elements() * item;  // bounded by ParseNpyHeader
  const int64_t have = static_cast<int64_t>(file_size) - header->data_offset;
  if (have < need) {
    return Invalid(path, ": truncated: its shape and dtype need ", need, " bytes of data but the file holds ",
                   have < 0 ? 0 : have);
  }
  if (have > need) {
    return Invalid(path, ": has ", have - need, " bytes after the ", need,
                   " bytes of data its header declares");
  }
  return header;
}

absl::StatusOr<std::vector<uint8_t>> ReadNpyRows(const std::string& path, const NpyHeader& header,
                                                 int64_t first, int64_t rows) {
  if (header.shape.empty()) return Invalid(path, ": holds a scalar, not rows");
  if (first < 0 || rows < 0 || first > header.shape[0] || rows > header.shape[0] - first) {
    return Invalid(path, ": rows ", first, " to ", first + rows, " are not within its ",
                   header.shape[0]);
  }
  const int64_t row_bytes = RowBytes(header);
  const int64_t offset = header.data_offset + first * row_bytes;
  const int64_t bytes = rows * row_bytes;
  std::error_code ec;
  const uintmax_t file_size = std::filesystem::file_size(path, ec);
  if (ec || static_cast<int64_t>(file_size) < offset + bytes) {
    return Invalid(path, ": is shorter than its header said (has it changed?)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid(path, ": cannot be opened for reading (", std::strerror(errno), ")");
  in.seekg(offset);
  std::vector<uint8_t> out(static_cast<size_t>(bytes));
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(bytes));
  if (in.gcount() != static_cast<std::streamsize>(bytes)) {
    return Invalid(path, ": truncated: the file ends inside its data (has it changed?)");
  }
  return out;
}

}  // namespace repro::data
