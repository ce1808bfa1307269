#include "analysis/json_writer.h"

#include <charconv>
#include <cmath>

#include "nlohmann/json.hpp"

namespace repro {
namespace {

// Printable ASCII other than '"' and '\\': written as they are, by nlohmann too.
bool Plain(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

}  // namespace

void JsonWriter::Newline(size_t depth) {
  if (indent_ < 0) return;
  out_->push_back('\n');
  out_->append(depth * static_cast<size_t>(indent_), ' ');
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (levels_.empty()) return;  // the top-level value
  Level& level = levels_.back();
  if (level.has_members) out_->push_back(',');
  level.has_members = true;
  Newline(levels_.size());
}

void JsonWriter::Open(char bracket) {
  BeforeValue();
  out_->push_back(bracket);
  levels_.push_back(Level{});
}

void JsonWriter::Close(char bracket) {
  const bool had_members = levels_.back().has_members;
  levels_.pop_back();
  if (had_members) Newline(levels_.size());
  out_->push_back(bracket);
}

void JsonWriter::Key(std::string_view key) {
  BeforeValue();
  Quoted(key);
  out_->append(indent_ < 0 ? ":" : ": ");
  after_key_ = true;
}

void JsonWriter::String(std::string_view value) {
  BeforeValue();
  Quoted(value);
}

void JsonWriter::Quoted(std::string_view value) {
  if (Plain(value)) {
    out_->push_back('"');
    out_->append(value);
    out_->push_back('"');
    return;
  }
  // Escapes, multi-byte UTF-8 and invalid bytes: exactly as nlohmann writes them.
  out_->append(nlohmann::json(std::string(value))
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void JsonWriter::Bool(bool value) {
  BeforeValue();
  out_->append(value ? "true" : "false");
}

void JsonWriter::Null() {
  BeforeValue();
  out_->append("null");
}

void JsonWriter::Double(double value) {
  BeforeValue();
  if (!std::isfinite(value)) {
    out_->append("null");
    return;
  }
  char buffer[64];
  char* end = nlohmann::detail::to_chars(buffer, buffer + sizeof buffer, value);
  out_->append(buffer, static_cast<size_t>(end - buffer));
}

void JsonWriter::Int(int64_t value) {
  BeforeValue();
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out_->append(buffer, static_cast<size_t>(result.ptr - buffer));
}

void JsonWriter::Uint(uint64_t value) {
  BeforeValue();
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out_->append(buffer, static_cast<size_t>(result.ptr - buffer));
}

void JsonWriter::Field(std::string_view key, const std::optional<double>& value) {
  Key(key);
  if (value) {
    Double(*value);
  } else {
    Null();
  }
}

void JsonWriter::Field(std::string_view key, const std::optional<int>& value) {
  Key(key);
  if (value) {
    Int(*value);
  } else {
    Null();
  }
}

void JsonWriter::Field(std::string_view key, const std::optional<int64_t>& value) {
  Key(key);
  if (value) {
    Int(*value);
  } else {
    Null();
  }
}

}  // namespace repro
