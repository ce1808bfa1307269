// The rule for the names a plan gives its experiment and arms. Those names become
// folder names on the workers (--artifacts DIR/EXPERIMENT/ARM/run-I), so the worker
// checks the names of every assignment against the same rule before it writes a file:
// no '/', no leading '.', hence no "..", whatever the coordinator sends.
//
// Thread safety: pure functions.
#ifndef REPRO_COMMON_NAMES_H_
#define REPRO_COMMON_NAMES_H_

#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace repro {

inline constexpr size_t kMaxNameLength = 100;
// How the rule reads in error messages.
inline constexpr char kNameRule[] =
    "1 to 100 letters, digits, '-', '_' or '.', not starting with '.'";

inline bool IsValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength || name[0] == '.') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

// A worker's label (`worker --label KEY=VALUE`, an arm's placement.labels): the key by
// the name rule, the value 1 to 256 printable ASCII characters.
inline constexpr size_t kMaxLabelValueLength = 256;
inline constexpr char kLabelValueRule[] = "1 to 256 printable ASCII characters";
inline bool IsValidLabelValue(std::string_view value) {
  if (value.empty() || value.size() > kMaxLabelValueLength) return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

// A run as status and the report name it, "ARM#INDEX" ("same_seed#0"): true, with its
// parts, when `label` is one (an arm name by the rule, a non-negative index).
inline bool ParseRunLabel(std::string_view label, std::string* arm, int* index) {
  const size_t hash = label.rfind('#');
  if (hash == std::string_view::npos || !IsValidName(label.substr(0, hash))) return false;
  const std::string_view digits = label.substr(hash + 1);
  if (digits.empty() || digits.size() > 9) return false;
  int value = 0;
  for (char c : digits) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    value = value * 10 + (c - '0');
  }
  arm->assign(label.substr(0, hash));
  *index = value;
  return true;
}

}  // namespace repro

#endif  // REPRO_COMMON_NAMES_H_
