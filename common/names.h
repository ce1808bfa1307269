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

}  // namespace repro

#endif  // REPRO_COMMON_NAMES_H_
